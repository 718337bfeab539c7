/**
 * VSwitch against a real ovs-vswitchd (netdev datapath): the ports we configure come alive, get
 * their OpenFlow port numbers and MACs, the datapath id and protocols reach OpenFlow, and the
 * controller we set is dialled.
 */
import t from 'tap';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { startOvs } from '../fixtures/ovs.js';
import { newTag } from '../../lab/tag.js';
import { exec } from '../../src/exec.js';
import { VSwitch } from '../../src/ovsdb/index.js';

t.test('ports come alive under ovs-vswitchd: ofport, MAC, datapath id, controller', async (t) => {
  // Its own namespace: the netdev datapath creates a tap device "ovs-netdev", one per namespace,
  // so two ovs-vswitchd in one namespace (another test, another lab) cannot both run.
  const tag = newTag();
  const ns = `${tag}-ovs`;
  await exec('ip', ['netns', 'add', ns], { timeoutMs: 5000 });
  const ovs = await startOvs(t, { tag, netns: ns });
  t.teardown(() => exec('ip', ['netns', 'del', ns], { timeoutMs: 5000, allowFailure: true }));
  const vs = await VSwitch.connect(ovs.dbRemote);
  t.teardown(() => vs.close());
  const br = `${tag}-br`;
  const vethA = `${tag}-va`;
  const vethB = `${tag}-vb`;
  await exec('ip', ['link', 'add', vethA, 'type', 'veth', 'peer', 'name', vethB], { timeoutMs: 5000, netns: ns });
  await exec('ip', ['link', 'set', vethA, 'up'], { timeoutMs: 5000, netns: ns });

  await vs.addBridge(br, { datapathId: 0xc0a7n, protocols: ['OpenFlow13'], failMode: 'secure', hwaddr: '02:c0:a7:00:00:01' });
  await vs.addPort(br, `${tag}-in`, { type: 'internal', ofportRequest: 7 });
  await vs.addPort(br, vethA, { ofportRequest: 8 });
  await vs.addVxlanPort(br, `${tag}-vx`, { remoteIp: '192.0.2.2', localIp: '192.0.2.1', key: 100, ofportRequest: 9 });

  const internal = await vs.waitForInterface(`${tag}-in`, 10_000);
  t.equal(internal.ofport, 7, 'the requested ofport');
  const macOf = async (dev: string) => (await exec('cat', [`/sys/class/net/${dev}/address`], { netns: ns })).stdout.trim();
  t.match(internal.mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  t.equal(internal.mac, await macOf(`${tag}-in`), 'the MAC reported is the internal device MAC');
  t.equal((await ovs.vsctl(['get', 'Interface', `${tag}-in`, 'ofport'])).trim(), '7');
  const system = await vs.waitForInterface(vethA, 10_000);
  t.equal(system.ofport, 8);
  t.equal(system.mac, await macOf(vethA), 'the system port reports the device MAC');
  const vx = await vs.waitForInterface(`${tag}-vx`, 10_000);
  t.equal(vx.ofport, 9);

  const show = await ovs.ofctl(['show', ovs.bridgeMgmt(br)]);
  t.match(show, /dpid:000000000000c0a7/, 'datapath id reached OpenFlow');
  t.match(show, new RegExp(`7\\(${tag}-in\\)`));
  t.match(show, new RegExp(`8\\(${vethA}\\)`));
  t.match(show, new RegExp(`9\\(${tag}-vx\\)`));
  const bridge = await vs.bridge(br);
  t.equal(bridge?.datapath_id, '000000000000c0a7', 'ovs-vswitchd wrote back the datapath id');

  // A controller target we listen on: ovs-vswitchd must dial it. A unix socket, because the
  // switch's loopback is its namespace's, not ours; inside the run directory, because
  // ovs-vswitchd dials unix controllers only there.
  const ctlPath = join(ovs.dir, 'coat-ctl.sock');
  // Stop listening at the first connection: ovs-vswitchd keeps redialling a controller.
  const dialled = new Promise<Socket>((resolve) => {
    const server = createServer((sock) => {
      server.close();
      resolve(sock);
    });
    server.listen(ctlPath, async () => {
      await vs.setControllers(br, [{ target: `unix:${ctlPath}`, connectionMode: 'out-of-band', inactivityProbeMs: 5000 }]);
    });
  });
  let guard: NodeJS.Timeout | undefined;
  const sock = await Promise.race([
    dialled,
    new Promise<never>((_r, reject) => (guard = setTimeout(() => reject(new Error('ovs-vswitchd did not dial the controller within 10 s')), 10_000))),
  ]).finally(() => clearTimeout(guard)); // a pending guard would keep the process alive 10 s after the test
  t.pass('ovs-vswitchd connected to the controller target');
  sock.destroy();

  // A system port naming a device that does not exist: ofport -1, reported at once with the reason.
  await vs.addPort(br, `${tag}-nx`);
  const started = Date.now();
  try {
    await vs.waitForInterface(`${tag}-nx`, 10_000);
    t.fail('expected the missing device to fail');
  } catch (err) {
    t.equal((err as { code?: string }).code, 'OVSDB_NOT_FOUND');
    t.match((err as Error).message, /No such device|could not open/i);
    t.ok(Date.now() - started < 9000, 'fails on ofport -1, not on the deadline');
  }

  await vs.deletePort(br, vethA);
  await vs.deleteBridge(br);
  t.notMatch(await ovs.vsctl(['show']), new RegExp(tag), 'nothing of ours left in the database');
  // The commit is not the switch: ovs-vswitchd removes the devices when it next reconfigures.
  // Without this wait the check below raced ovs-vswitchd (device still there in 10 of 15 tries).
  const before = (await vs.root()).cur_cfg;
  const applied = await vs.waitForVswitchd(10_000);
  t.ok(applied > before, 'ovs-vswitchd applied a configuration newer than the one before the deletes');
  const links = (await exec('ip', ['-o', 'link', 'show'], { timeoutMs: 5000, netns: ns })).stdout;
  t.notMatch(links, new RegExp(`${tag}-in`), 'ovs-vswitchd removed the internal port device');
});
