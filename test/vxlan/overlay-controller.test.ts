/**
 * OverlayController against two real Open vSwitch instances (one per "host", no namespaces) and
 * the real OpenFlow controller: it configures both over OVSDB, the bridges connect, and each holds
 * exactly the policy's flows; extra flows join them; moving an endpoint reprograms both hosts.
 */
import t from 'tap';
import { Controller, coatFlowMods } from '../../src/controller/index.js';
import { OFPP } from '../../src/openflow/constants.js';
import { OverlayController, parseTopology } from '../../src/vxlan/index.js';
import { startOvs } from '../fixtures/ovs.js';
import { newTag } from '../../lab/tag.js';
import { createNetns, deleteNetns, openNetns } from '../../src/netns/index.js';

// the logs of the in-process controller only when debugging (src/log.ts)
process.env.COAT_LOG_LEVEL ??= 'silent';

async function flowsOf(ovs: Awaited<ReturnType<typeof startOvs>>, bridge: string): Promise<string[]> {
  return (await ovs.ofctl(['dump-flows', ovs.bridgeMgmt(bridge)])).split('\n').filter((l) => l.includes('cookie='));
}

t.test('configures two hosts over OVSDB and keeps their flows, extra flows and an endpoint move included', async (t) => {
  const tag = newTag();
  // each host's OVS in a namespace of its own (netdev bridges make tap devices named after the
  // bridge, and both hosts' bridges have the same names), reaching the controller over TCP through
  // a bridge in this namespace, as OVS reaches a controller across hosts
  const root = await openNetns();
  t.teardown(async () => {
    await root.deleteLink(`${tag}-br`).catch(() => undefined);
    await root.close();
  });
  await root.createBridge(`${tag}-br`);
  await root.addAddress(`${tag}-br`, '10.254.0.1/24');
  await root.setLink(`${tag}-br`, { up: true });
  for (const [i, h] of ['a', 'b'].entries()) {
    await createNetns(`${tag}-${h}`);
    t.teardown(() => deleteNetns(`${tag}-${h}`));
    await root.createVeth({ name: `${tag}-r${h}`, peer: `${tag}-n${h}`, peerNetns: `${tag}-${h}` });
    await root.setLink(`${tag}-r${h}`, { master: `${tag}-br`, up: true });
    const ns = await openNetns(`${tag}-${h}`);
    await ns.addAddress(`${tag}-n${h}`, `10.254.0.${2 + i}/24`);
    await ns.setLink(`${tag}-n${h}`, { up: true });
    await ns.close();
  }
  const a = await startOvs(t, { tag, netns: `${tag}-a` });
  const b = await startOvs(t, { tag, netns: `${tag}-b` });
  const controller = new Controller();
  t.teardown(() => controller.close());
  const l = await controller.listen('ptcp:0:10.254.0.1');
  const port = Number(l.address.split(':')[1]); // ptcp:PORT:IP
  t.ok(port > 0, `listening on ${l.address}`);
  const topo = parseTopology(`
controller: { openflow: "tcp:10.254.0.1:${port}" }
overlay: { subnet: 10.10.0.0/24, vni: 5000 }
hosts:
  - { name: edge-a, underlay: { ip: 192.168.100.11 }, ovsdb: "${a.dbRemote}", uplink: ${tag}-ua }
  - { name: edge-b, underlay: { ip: 192.168.100.12 }, ovsdb: "${b.dbRemote}", uplink: ${tag}-ub }
endpoints:
  - { name: service, host: edge-a, ip: 10.10.0.10, mac: "02:c0:a7:00:00:10" }
  - { name: client, host: edge-b, ip: 10.10.0.20, mac: "02:c0:a7:00:00:20" }
`);
  const overlay = new OverlayController(controller, { topology: topo, prefix: tag });
  t.teardown(() => overlay.close());
  await overlay.start();
  const [la, lb] = overlay.layouts;
  await Promise.all([la!.integrationDpid, la!.underlayDpid, lb!.integrationDpid, lb!.underlayDpid].map((d) => controller.waitForSwitch(d, 20_000)));
  // bridges exist with the layout's ports, fail_mode secure, our controller
  t.match(await a.vsctl(['get', 'Bridge', `${tag}-int`, 'fail_mode']), /secure/);
  t.match(await a.vsctl(['get', 'Interface', `${tag}-vx1`, 'options']), /key="5000".*remote_ip="192\.168\.100\.12"/);
  t.equal((await a.vsctl(['get', 'Interface', `${tag}-vx1`, 'ofport'])).trim(), '1001');
  // the endpoint veths and uplinks do not exist here: reported, not fatal
  t.ok(overlay.status().errors.some((e) => e.includes(`${tag}-e0`)), 'missing endpoint port reported');

  const poll = async (ovs: typeof a, bridge: string, want: (f: string[]) => boolean) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const f = await flowsOf(ovs, bridge);
      if (want(f)) return f;
      if (Date.now() > deadline) return f;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const intA = await poll(a, `${tag}-int`, (f) => f.length === 8);
  t.equal(intA.length, 8, 'edge-a: 2 ARP-to-controller, 1 tunnel ingress, 3 L2, 2 misses');
  t.ok(intA.every((f) => /cookie=0xc0a7/.test(f)), "only coat's cookies");
  t.ok(intA.some((f) => /dl_dst=02:c0:a7:00:00:10 actions=output:1$/.test(f)), 'service delivered to its local port');
  t.ok(intA.some((f) => /dl_dst=02:c0:a7:00:00:20 actions=output:1001$/.test(f)), 'client through the tunnel to edge-b');
  t.equal((await poll(b, `${tag}-phy`, (f) => f.length === 3)).length, 3);

  // extra flows (a migration's) sit next to the overlay's and leave with an empty list
  const hold = coatFlowMods([{ band: 'hold', match: [{ field: 'eth_dst', value: '02:c0:a7:00:00:10' }], instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.controller, maxLen: 0xffff }] }] }]);
  await overlay.setExtraFlows('test-migration', lb!.integrationDpid, hold);
  t.ok((await poll(b, `${tag}-int`, (f) => f.some((x) => /priority=30000/.test(x)))).some((x) => /priority=30000,dl_dst=02:c0:a7:00:00:10 actions=CONTROLLER/.test(x)));
  await overlay.setExtraFlows('test-migration', lb!.integrationDpid, []);
  t.notOk((await poll(b, `${tag}-int`, (f) => !f.some((x) => /priority=30000/.test(x)))).some((x) => /priority=30000/.test(x)));

  // the service moves to edge-b with a new MAC
  await overlay.moveEndpoint('service', 'edge-b', '02:c0:a7:00:00:11');
  const intB = await poll(b, `${tag}-int`, (f) => f.some((x) => /dl_dst=02:c0:a7:00:00:11 actions=output:1$/.test(x)));
  t.ok(intB.some((x) => /dl_dst=02:c0:a7:00:00:11 actions=output:1$/.test(x)), 'edge-b delivers the service locally');
  const intA2 = await poll(a, `${tag}-int`, (f) => f.some((x) => /dl_dst=02:c0:a7:00:00:11 actions=output:1001$/.test(x)));
  t.ok(intA2.some((x) => /dl_dst=02:c0:a7:00:00:11 actions=output:1001$/.test(x)), 'edge-a tunnels to it');
  t.notOk(intA2.some((x) => /02:c0:a7:00:00:10/.test(x)), 'the old MAC is gone');
  t.equal(overlay.arp.lookup('10.10.0.10'), '02:c0:a7:00:00:11');
  t.equal((await b.vsctl(['get', 'Interface', `${tag}-e0`, 'ofport_request'])).trim(), '1', 'edge-b got the endpoint port');
});
