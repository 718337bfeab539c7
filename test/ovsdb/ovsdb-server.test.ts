/**
 * The OVSDB client against a real ovsdb-server with the Open_vSwitch schema (no ovs-vswitchd:
 * ovs-vsctl runs with --no-wait). What we write is read back with ovs-vsctl, what ovs-vsctl writes
 * must reach our replica.
 */
import t from 'tap';
import { startOvs } from '../fixtures/ovs.js';
import {
  AbortedError,
  ConstraintViolationError,
  DomainError,
  DuplicateUuidNameError,
  NotOwnerError,
  OvsdbClient,
  OvsdbError,
  ReferentialIntegrityError,
  TimedOutError,
  VSwitch,
  type Monitor,
  type MonitorMethod,
  type OvsdbOperationError,
} from '../../src/ovsdb/index.js';

const DB = 'Open_vSwitch';

async function rejection(p: Promise<unknown>): Promise<OvsdbError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof OvsdbError) return err;
    throw err;
  }
  throw new Error('expected a failure');
}

t.test('bridge / port / interface / controller lifecycle, read back with ovs-vsctl', async (t) => {
  const ovs = await startOvs(t, { vswitchd: false });
  const vs = await VSwitch.connect(ovs.dbRemote);
  t.teardown(() => vs.close());

  const brUuid = await vs.addBridge('br-int', {
    datapathId: 0xc0a7n,
    hwaddr: '02:00:00:00:0a:01',
    protocols: ['OpenFlow13'],
    failMode: 'secure',
    externalIds: { owner: 'coat' },
  });
  t.match(brUuid, /^[0-9a-f-]{36}$/);
  t.equal((await ovs.vsctl(['list-br'])).trim(), 'br-int');
  t.equal((await ovs.vsctl(['get', 'Bridge', 'br-int', 'datapath_type'])).trim(), 'netdev', 'default datapath type');
  t.equal((await ovs.vsctl(['get', 'Bridge', 'br-int', 'other_config:datapath-id'])).trim(), '"000000000000c0a7"');
  t.equal((await ovs.vsctl(['get', 'Bridge', 'br-int', 'other_config:hwaddr'])).trim(), '"02:00:00:00:0a:01"');
  t.equal((await ovs.vsctl(['get', 'Bridge', 'br-int', 'fail_mode'])).trim(), 'secure');
  t.equal((await ovs.vsctl(['get', 'Bridge', 'br-int', 'protocols'])).trim(), '[OpenFlow13]');
  t.equal((await ovs.vsctl(['get', 'Bridge', 'br-int', '_uuid'])).trim(), brUuid);
  t.equal((await ovs.vsctl(['get', 'Interface', 'br-int', 'type'])).trim(), 'internal', 'the local port exists');
  t.equal((await rejection(vs.addBridge('br-int'))).code, 'OVSDB_CONSTRAINT_VIOLATION', 'the name index refuses a duplicate');
  t.equal(await vs.addBridge('br-int', { mayExist: true }), brUuid, 'mayExist returns the existing bridge');

  await vs.addPort('br-int', 'tap-int0', { type: 'internal', ofportRequest: 10, tag: 5 });
  await vs.addPort('br-int', 'veth-sys0'); // system: a Linux device by that name (absent here; vswitchd is not running)
  await vs.addVxlanPort('br-int', 'vx-b', { remoteIp: '10.99.0.2', key: 4242, localIp: '10.99.0.1', dstPort: 4789 });
  t.same((await ovs.vsctl(['list-ports', 'br-int'])).trim().split('\n').sort(), ['tap-int0', 'veth-sys0', 'vx-b']);
  t.equal((await ovs.vsctl(['get', 'Interface', 'tap-int0', 'ofport_request'])).trim(), '10');
  t.equal((await ovs.vsctl(['get', 'Port', 'tap-int0', 'tag'])).trim(), '5');
  t.equal((await ovs.vsctl(['get', 'Interface', 'veth-sys0', 'type'])).trim(), '""');
  t.equal((await ovs.vsctl(['get', 'Interface', 'vx-b', 'type'])).trim(), 'vxlan');
  t.equal((await ovs.vsctl(['get', 'Interface', 'vx-b', 'options'])).trim(), '{dst_port="4789", key="4242", local_ip="10.99.0.1", remote_ip="10.99.0.2"}');
  t.equal((await rejection(vs.addPort('br-none', 'p'))).code, 'OVSDB_NOT_FOUND', 'a port on a missing bridge');

  await vs.setControllers('br-int', [{ target: 'tcp:127.0.0.1:6653', connectionMode: 'out-of-band', inactivityProbeMs: 3000, maxBackoffMs: 1000 }], {
    protocols: ['OpenFlow13'],
  });
  t.equal((await ovs.vsctl(['get-controller', 'br-int'])).trim(), 'tcp:127.0.0.1:6653');
  t.equal((await ovs.vsctl(['--bare', '--columns=connection_mode,inactivity_probe,max_backoff', 'list', 'Controller'])).trim(), 'out-of-band\n3000\n1000');
  const ctl = await vs.controllers('br-int');
  t.same(ctl.map((c) => [c.target, c.connection_mode, c.inactivity_probe, c.max_backoff]), [['tcp:127.0.0.1:6653', 'out-of-band', 3000, 1000]]);
  await vs.setControllers('br-int', [{ target: 'tcp:127.0.0.1:6654' }]);
  t.equal((await ovs.vsctl(['--columns=target', '--bare', 'list', 'Controller'])).trim(), 'tcp:127.0.0.1:6654', 'the replaced controller is gone');
  await vs.setInterfaceMtu('tap-int0', 9000);
  t.equal((await ovs.vsctl(['get', 'Interface', 'tap-int0', 'mtu_request'])).trim(), '9000');
  await vs.setInterfaceMtu('tap-int0', null);
  t.equal((await ovs.vsctl(['get', 'Interface', 'tap-int0', 'mtu_request'])).trim(), '[]', 'null removes the request');
  t.equal((await rejection(vs.setInterfaceMtu('no-such-if', 1500))).code, 'OVSDB_NOT_FOUND');
  await vs.setFailMode('br-int', 'standalone');
  t.equal((await ovs.vsctl(['get', 'Bridge', 'br-int', 'fail_mode'])).trim(), 'standalone');
  await vs.setBridgeOtherConfig('br-int', { hwaddr: null, 'disable-in-band': 'true' });
  t.equal((await ovs.vsctl(['get', 'Bridge', 'br-int', 'other_config'])).trim(), '{datapath-id="000000000000c0a7", disable-in-band="true"}');

  const br = await vs.bridge('br-int');
  t.equal(br?.fail_mode, 'standalone');
  t.equal(br?.ports.length, 4);
  t.same((await vs.ports('br-int')).map((p) => p.name).sort(), ['br-int', 'tap-int0', 'veth-sys0', 'vx-b']);
  const vx = await vs.interface('vx-b');
  t.equal(vx?.options.get('remote_ip'), '10.99.0.2');

  await vs.deletePort('br-int', 'vx-b');
  t.same((await ovs.vsctl(['list-ports', 'br-int'])).trim().split('\n').sort(), ['tap-int0', 'veth-sys0']);
  t.equal((await ovs.vsctl(['--columns=name', '--bare', 'find', 'Interface', 'name=vx-b'])).trim(), '', 'its Interface row went with it');
  t.equal((await rejection(vs.deletePort('br-int', 'vx-b'))).code, 'OVSDB_NOT_FOUND');
  await vs.deletePort('br-int', 'vx-b', { ifExists: true });

  const bulk = await vs.addPorts('br-int', [{ name: 'bulk0' }, { name: 'bulk1', type: 'internal', tag: 3 }]);
  t.same(bulk, [(await ovs.vsctl(['get', 'Port', 'bulk0', '_uuid'])).trim(), (await ovs.vsctl(['get', 'Port', 'bulk1', '_uuid'])).trim()], 'addPorts returns the Port uuids in order');
  t.equal((await ovs.vsctl(['port-to-br', 'bulk1'])).trim(), 'br-int');
  t.equal((await rejection(vs.addPorts('br-none', [{ name: 'x0' }]))).code, 'OVSDB_NOT_FOUND');

  await vs.deleteBridge('br-int');
  t.equal((await ovs.vsctl(['list-br'])).trim(), '');
  for (const table of ['Bridge', 'Port', 'Interface', 'Controller']) {
    t.equal((await ovs.vsctl(['--bare', '--columns=_uuid', 'list', table])).trim(), '', `no ${table} rows left`);
  }
  t.equal((await ovs.vsctl(['get', 'Open_vSwitch', '.', 'bridges'])).trim(), '[]', 'Open_vSwitch.bridges no longer refers to it');
  await vs.deleteBridge('br-int', { ifExists: true });

  // Without ovs-vswitchd nobody copies next_cfg into cur_cfg: the wait fails, typed, at its deadline.
  const nextBefore = (await vs.root()).next_cfg;
  const noSwitch = await rejection(vs.waitForVswitchd(300));
  t.equal(noSwitch.code, 'OVSDB_WAIT_TIMEOUT');
  t.match(noSwitch.message, /ovs-vswitchd to apply configuration \d+/);
  t.equal(Number((await ovs.vsctl(['get', 'Open_vSwitch', '.', 'next_cfg'])).trim()), nextBefore + 1, 'the wait asked for the next configuration');
});

t.test('every RFC 7047 §5.2 operation against the server, and named-uuid references', async (t) => {
  const ovs = await startOvs(t, { vswitchd: false });
  const c = await OvsdbClient.connect(ovs.dbRemote);
  t.teardown(() => c.close());
  t.same(await c.listDbs(), ['Open_vSwitch', '_Server']);

  const tx = await c.transaction(DB);
  const iface = tx.insert('Interface', { name: 'br-x', type: 'internal' });
  const port = tx.insert('Port', { name: 'br-x', interfaces: [iface] });
  const br = tx.insert('Bridge', { name: 'br-x', ports: [port], datapath_type: 'netdev' });
  tx.mutate('Open_vSwitch', [], [['bridges', 'insert', [br]], ['next_cfg', '+=', 1]]);
  tx.comment('coat test');
  tx.commit(false);
  const r = await c.transact(DB, tx);
  t.same(r.map((x) => x.op), ['insert', 'insert', 'insert', 'mutate', 'comment', 'commit']);
  t.same(r[3], { op: 'mutate', count: 1 });

  const tx2 = await c.transaction(DB);
  tx2.wait('Bridge', [['name', '==', 'br-x']], ['datapath_type'], '==', [{ datapath_type: 'netdev' }], 0);
  tx2.update('Bridge', [['name', '==', 'br-x']], { external_ids: { a: '1', b: '2' } });
  tx2.mutate('Bridge', [['name', '==', 'br-x']], [['external_ids', 'delete', ['a']]]);
  tx2.select('Bridge', [['external_ids', 'includes', { b: '2' }]], ['name', 'external_ids']);
  const r2 = await c.transact(DB, tx2);
  t.same(r2[3], { op: 'select', rows: [{ name: 'br-x', external_ids: new Map([['b', '2']]) }] });
  t.equal((await ovs.vsctl(['get', 'Bridge', 'br-x', 'external_ids'])).trim(), '{b="2"}');

  const tx3 = await c.transaction(DB);
  tx3.mutate('Open_vSwitch', [], [['bridges', 'delete', [(await ovs.vsctl(['get', 'Bridge', 'br-x', '_uuid'])).trim()]]]);
  tx3.delete('Bridge', [['name', '==', 'br-x']]);
  t.same((await c.transact(DB, tx3))[1], { op: 'delete', count: 1 });
  t.equal((await ovs.vsctl(['list-br'])).trim(), '');
});

t.test('a failed transaction leaves the database unchanged, with the typed error of the failing operation', async (t) => {
  const ovs = await startOvs(t, { vswitchd: false });
  await ovs.vsctl(['--no-wait', 'add-br', 'br-keep', '--', 'set', 'Bridge', 'br-keep', 'datapath_type=netdev', 'external_ids:v=1']);
  const c = await OvsdbClient.connect(ovs.dbRemote);
  t.teardown(() => c.close());
  const before = await ovs.vsctl(['--format=json', 'list', 'Bridge']);
  const beforeIfaces = await ovs.vsctl(['--format=json', 'list', 'Interface']);

  const cases: { name: string; build: (tx: Awaited<ReturnType<typeof c.transaction>>) => void; cls: new (...a: never[]) => OvsdbOperationError; index: number }[] = [
    {
      name: 'referential integrity: a port referring to an interface that does not exist',
      build: (tx) => {
        tx.update('Bridge', [['name', '==', 'br-keep']], { external_ids: { v: '2' } });
        tx.insert('Port', { name: 'ghost', interfaces: ['0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d'] });
      },
      cls: ReferentialIntegrityError,
      index: 2,
    },
    {
      name: 'constraint violation: a second bridge named br-keep (index)',
      build: (tx) => {
        tx.update('Bridge', [['name', '==', 'br-keep']], { external_ids: { v: '3' } });
        const i = tx.insert('Interface', { name: 'dup-if' });
        const p = tx.insert('Port', { name: 'dup-p', interfaces: [i] });
        const b = tx.insert('Bridge', { name: 'br-keep', ports: [p] });
        tx.mutate('Open_vSwitch', [], [['bridges', 'insert', [b]]]);
      },
      cls: ConstraintViolationError,
      index: 5,
    },
    {
      name: 'wait: the bridge does not have the expected value',
      build: (tx) => {
        tx.wait('Bridge', [['name', '==', 'br-keep']], ['datapath_type'], '==', [{ datapath_type: 'system' }], 0);
        tx.update('Bridge', [['name', '==', 'br-keep']], { external_ids: { v: '4' } });
      },
      cls: TimedOutError,
      index: 0,
    },
    {
      name: 'assert: a lock this session does not hold',
      build: (tx) => {
        tx.update('Bridge', [['name', '==', 'br-keep']], { external_ids: { v: '5' } });
        tx.assert('coat_not_mine');
      },
      cls: NotOwnerError,
      index: 1,
    },
    {
      name: 'abort',
      build: (tx) => {
        tx.update('Bridge', [['name', '==', 'br-keep']], { external_ids: { v: '6' } });
        tx.abort();
      },
      cls: AbortedError,
      index: 1,
    },
    {
      name: 'duplicate uuid-name',
      build: (tx) => {
        tx.insert('Interface', { name: 'd1' }, { uuidName: 'same' });
        tx.insert('Interface', { name: 'd2' }, { uuidName: 'same' });
      },
      cls: DuplicateUuidNameError,
      index: 1,
    },
    {
      name: 'domain error: division by zero in a mutation',
      build: (tx) => {
        tx.update('Bridge', [['name', '==', 'br-keep']], { external_ids: { v: '7' } });
        tx.mutate('Open_vSwitch', [], [['next_cfg', '/=', 0]]);
      },
      cls: DomainError,
      index: 1,
    },
  ];
  for (const k of cases) {
    const tx = await c.transaction(DB);
    k.build(tx);
    const err = await rejection(c.transact(DB, tx));
    t.ok(err instanceof k.cls, `${k.name}: ${err.constructor.name} ${err.message}`);
    t.equal((err as OvsdbOperationError).index, k.index, `${k.name}: names operation ${k.index}`);
  }
  t.equal(await ovs.vsctl(['--format=json', 'list', 'Bridge']), before, 'Bridge table unchanged');
  t.equal(await ovs.vsctl(['--format=json', 'list', 'Interface']), beforeIfaces, 'Interface table unchanged');
});

for (const method of ['monitor_cond_since', 'monitor_cond', 'monitor'] as MonitorMethod[]) {
  t.test(`${method}: the replica sees what ovs-vsctl commits within 1 s`, async (t) => {
    const ovs = await startOvs(t, { vswitchd: false });
    await ovs.vsctl(['--no-wait', 'add-br', 'br-pre', '--', 'set', 'Bridge', 'br-pre', 'datapath_type=netdev']);
    const c = await OvsdbClient.connect(ovs.dbRemote);
    t.teardown(() => c.close());
    const mon = await c.monitor(DB, { Bridge: { columns: ['name', 'other_config', 'ports'] }, Port: { columns: ['name'] } }, { method });
    t.equal(mon.method, method);
    const names = () => [...mon.replica.table('Bridge').values()].map((r) => r.name).sort();
    t.same(names(), ['br-pre'], 'initial contents');

    const seen = async (what: string, pred: () => boolean, action: () => Promise<unknown>) => {
      const waiting = mon.waitFor(what, () => pred(), 1000);
      const t0 = performance.now();
      await action();
      await waiting;
      t.ok(performance.now() - t0 < 1000, `${what} seen within 1 s`);
    };
    await seen('insert', () => names().includes('br-new'), () => ovs.vsctl(['--no-wait', 'add-br', 'br-new']));
    await seen(
      'modify',
      () => ([...mon.replica.table('Bridge').values()].find((r) => r.name === 'br-new')?.other_config as Map<string, string> | undefined)?.get('k') === 'v',
      () => ovs.vsctl(['--no-wait', 'set', 'Bridge', 'br-new', 'other_config:k=v']),
    );
    await seen('port added', () => [...mon.replica.table('Port').values()].some((p) => p.name === 'p-new'), () => ovs.vsctl(['--no-wait', 'add-port', 'br-new', 'p-new']));
    await seen('delete', () => !names().includes('br-new'), () => ovs.vsctl(['--no-wait', 'del-br', 'br-new']));
    t.same([...mon.replica.table('Port').values()].map((p) => p.name), ['br-pre'], 'ports went with their bridge');

    await mon.cancel();
    await ovs.vsctl(['--no-wait', 'add-br', 'br-after-cancel']);
    await c.echo();
    t.same(names(), ['br-pre'], 'no updates after monitor_cancel');
  });
}

t.test('monitor_cond: a condition limits the replica to matching rows', async (t) => {
  const ovs = await startOvs(t, { vswitchd: false });
  const c = await OvsdbClient.connect(ovs.dbRemote);
  t.teardown(() => c.close());
  const mon = await c.monitor(DB, { Interface: { columns: ['name', 'type'], where: [['type', '==', 'vxlan']] } });
  await ovs.vsctl(['--no-wait', 'add-br', 'br-c', '--', 'add-port', 'br-c', 'vx1', '--', 'set', 'Interface', 'vx1', 'type=vxlan', 'options:remote_ip=10.0.0.9']);
  await mon.waitFor('vx1', (r) => [...r.table('Interface').values()].some((i) => i.name === 'vx1'), 1000);
  t.same([...mon.replica.table('Interface').values()].map((i) => i.name), ['vx1'], 'the internal br-c interface is not replicated');
});

t.test('lock contention between two clients (RFC 7047 §4.1.8-4.1.10)', async (t) => {
  const ovs = await startOvs(t, { vswitchd: false });
  const a = await OvsdbClient.connect(ovs.dbRemote);
  const b = await OvsdbClient.connect(ovs.dbRemote);
  t.teardown(() => {
    a.close();
    b.close();
  });
  const LOCK = 'coat_lock';
  t.equal(await a.lock(LOCK), true, 'A gets the free lock');
  const bLocked = new Promise<string>((r) => b.once('locked', r));
  t.equal(await b.lock(LOCK), false, 'B is queued');

  const assertTx = async (cl: OvsdbClient) => {
    const tx = await cl.transaction(DB);
    tx.assert(LOCK);
    tx.mutate('Open_vSwitch', [], [['external_ids', 'insert', { holder: cl === a ? 'a' : 'b' }]]);
    return cl.transact(DB, tx);
  };
  await assertTx(a);
  t.ok((await rejection(assertTx(b))) instanceof NotOwnerError, 'B cannot assert the lock it waits for');

  await a.unlock(LOCK);
  t.equal(await bLocked, LOCK, 'B is told when A releases');
  await assertTx(b);

  const bStolen = new Promise<string>((r) => b.once('stolen', r));
  t.equal(await a.steal(LOCK), true, 'A steals it back');
  t.equal(await bStolen, LOCK, 'B is told it was stolen');
  t.ok((await rejection(assertTx(b))) instanceof NotOwnerError);
  await assertTx(a);
});

t.test('ovsdb-server restarted mid-session: a clear error, then a reconnect with the replica rebuilt', async (t) => {
  const ovs = await startOvs(t, { vswitchd: false });
  await ovs.vsctl(['--no-wait', 'add-br', 'br-one']);
  const c = await OvsdbClient.connect(ovs.dbRemote, { reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
  t.teardown(() => c.close());
  const mon: Monitor = await c.monitor(DB, { Bridge: { columns: ['name'] } });
  const names = () => [...mon.replica.table('Bridge').values()].map((r) => r.name).sort();
  t.same(names(), ['br-one']);

  const disconnected = new Promise<OvsdbError>((r) => c.once('disconnected', r));
  // A call in flight when the server dies gets the error too (a wait that cannot finish in time).
  const tx = await c.transaction(DB);
  tx.wait('Bridge', [['name', '==', 'br-never']], ['name'], '==', [{ name: 'br-never' }], 60_000);
  const inFlight = rejection(c.transact(DB, tx, 65_000));
  await new Promise((r) => setTimeout(r, 100));
  await ovs.stopDaemon('ovsdb-server');
  const err = await disconnected;
  t.equal(err.code, 'OVSDB_CONNECTION_LOST');
  t.match(err.message, /closed by the peer/);
  t.equal((await inFlight).code, 'OVSDB_CONNECTION_LOST', 'the pending call is rejected, not left hanging');
  t.equal((await rejection(c.listDbs())).code, 'OVSDB_CONNECTION_LOST', 'calls while down fail at once');

  // Change the database while the client is away: the rebuilt replica must show it.
  await ovs.startDb();
  const rebuilt = new Promise((r) => mon.once('rebuilt', r));
  const reconnected = new Promise((r) => c.once('reconnected', r));
  await ovs.vsctl(['--no-wait', 'del-br', 'br-one', '--', 'add-br', 'br-two']);
  await Promise.all([rebuilt, reconnected]);
  await mon.waitFor('br-two only', () => names().join() === 'br-two', 2000);
  t.same(names(), ['br-two'], 'replica rebuilt from the restarted server');
  await ovs.vsctl(['--no-wait', 'add-br', 'br-three']);
  await mon.waitFor('br-three', () => names().includes('br-three'), 1000);
  t.pass('updates flow again after the reconnect');
  t.same(await c.listDbs(), ['Open_vSwitch', '_Server']);
});
