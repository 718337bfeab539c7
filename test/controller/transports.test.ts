/**
 * Transports: passive TCP and TLS (mutual certificates from a CA made for the test), active TCP
 * to a switch that listens, and active unix-socket connection to a real ovs-vswitchd listening
 * on `punix:` that reconnects after the switch is killed and restarted.
 */
import t from 'tap';

process.env.COAT_LOG_LEVEL ??= 'silent';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { newTag } from '../../lab/tag.js';
import { Controller, coatFlowMods } from '../../src/controller/index.js';
import { applyActions, match, output } from '../../src/openflow/index.js';
import { FakeSwitch } from './fake-switch.js';
import { addBridge, dumpFlows, makePki, startSwitchOvs } from './helpers.js';

t.test('passive TCP on an ephemeral loopback port', async (t) => {
  const ctl = new Controller();
  t.teardown(() => ctl.close());
  const l = await ctl.listen('ptcp:0:127.0.0.1');
  const port = Number(/^ptcp:(\d+):/.exec(l.address)![1]);
  t.ok(port > 0, l.address);
  const s = net.connect(port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  const fake = FakeSwitch.over(s, { dpid: 0x7001n });
  t.teardown(() => fake.close());
  const sw = await ctl.waitForSwitch(0x7001n);
  t.match(sw.peer, /^127\.0\.0\.1:\d+$/);
  t.ok((await sw.echo()) >= 0);
});

t.test('passive TLS with mutual certificates; a certificate from another CA is refused', async (t) => {
  const pki = await makePki(t);
  const ctl = new Controller({ tls: pki.ctl });
  t.teardown(() => ctl.close());
  const l = await ctl.listen('pssl:0:127.0.0.1');
  const port = Number(/^pssl:(\d+):/.exec(l.address)![1]);
  const s = tls.connect({ host: '127.0.0.1', port, ...pki.sw, checkServerIdentity: () => undefined });
  await new Promise((r, j) => (s.once('secureConnect', r), s.once('error', j)));
  t.equal(s.getPeerCertificate().subject.CN, 'ctl', 'the switch sees the controller certificate');
  const fake = FakeSwitch.over(s, { dpid: 0x7002n });
  t.teardown(() => fake.close());
  const sw = await ctl.waitForSwitch(0x7002n);
  t.equal(sw.dpid, 0x7002n);
  t.ok((await sw.echo()) >= 0, 'echo over TLS');

  const refused = new Promise<{ code: string; message: string }>((resolve) => ctl.once('connection_failed', (_peer, reason) => resolve(reason)));
  const rogue = tls.connect({ host: '127.0.0.1', port, key: pki.rogue.key, cert: pki.rogue.cert, ca: pki.sw.ca, checkServerIdentity: () => undefined });
  const outcome = await new Promise<string>((resolve) => {
    rogue.once('error', (e) => resolve(`error: ${e.message}`));
    rogue.once('close', () => resolve('closed'));
    rogue.once('data', () => resolve('data'));
  });
  t.notMatch(outcome, 'data', `rogue switch got nowhere (${outcome})`);
  t.match(await refused, { code: 'OFC_SOCKET', message: /TLS handshake failed/ }, 'the controller says why');
  t.equal(ctl.switches.size, 1);
});

t.test('active TCP to a switch that listens', async (t) => {
  const server = net.createServer((s) => fakes.push(FakeSwitch.over(s, { dpid: 0x7003n })));
  const fakes: FakeSwitch[] = [];
  t.teardown(() => (fakes.forEach((f) => f.close()), server.close()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const ctl = new Controller();
  t.teardown(() => ctl.close());
  const sw = await ctl.connect(`tcp:127.0.0.1:${port}`);
  t.equal(sw.dpid, 0x7003n);
  t.equal(ctl.switch(0x7003n), sw);
  await t.rejects(ctl.listen(`tcp:127.0.0.1:${port}`), { code: 'OFC_ENDPOINT' }, 'listen wants a passive method');
});

t.test('active unix connection to a real ovs-vswitchd on punix:, reconnecting after a restart', async (t) => {
  const tag = newTag();
  const ovs = await startSwitchOvs(t, tag);
  const dpid = 0xc0a70003n;
  const br = await addBridge(ovs, { dpid: dpid.toString(16).padStart(16, '0') });
  // OVS accepts punix: controller targets only as RUNDIR/BRIDGE.* (so it never overwrites a file).
  const sock = join(ovs.dir, `${br}.coat`);
  await ovs.vsctl(['set-controller', br, `punix:${sock}`]);
  const { OvsInstance } = await import('../../lab/ovs-daemons.js');
  await OvsInstance.waitFor('the punix socket', () => OvsInstance.exists(sock), 10_000);
  const ctl = new Controller({ reconnectMinMs: 50, reconnectMaxMs: 500 });
  t.teardown(() => ctl.close());
  const desired = coatFlowMods([{ band: 'control', match: match({ eth_type: 0x0806 }), instructions: [applyActions(output('controller'))] }]);
  await ctl.setDesiredFlows(dpid, desired);
  const sw = await ctl.connect(`unix:${sock}`, { reconnect: true });
  t.equal(sw.dpid, dpid);
  await OvsInstance.waitFor('coat flow installed', async () => (await dumpFlows(ovs, br)).length === 1, 5000);

  const up = new Promise<{ reconnect: boolean; resync?: { added: number } }>((resolve) => ctl.once('switch_up', (_sw, info) => resolve(info)));
  await ovs.stopDaemon('ovs-vswitchd', 'SIGKILL');
  await ovs.startVswitchd();
  const info = await up;
  t.equal(info.reconnect, true, 'the retry loop reconnected and recognised the dpid');
  t.match(info.resync, { added: 1 });
  t.match((await dumpFlows(ovs, br))[0], /priority=40000,arp actions=CONTROLLER:65535/);
});
