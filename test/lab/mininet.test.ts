/**
 * The Mininet topology (Debian's mininet, OVS user-space switches) with the real `coat controller`
 * as remote controller: endpoints on different switches reach each other, ARP answered by coat,
 * and nothing with the run's tag is left afterwards.
 */
import t from 'tap';
import { coat, leftovers } from './helpers.js';
import { mininetPlan } from '../../lab/mininet/run.js';
import { defaultTopology } from '../../src/vxlan/topology.js';

t.test('the Mininet plan mirrors the lab layout: dpids, endpoint ports, one link per tunnel', async (t) => {
  const p = mininetPlan(defaultTopology(), 'c3k9x1', 6653);
  t.same(p.switches.map((s) => [s.name, s.dpid, s.host]), [
    ['c3k9x10', 'c0a7000000010001', 'edge-a'],
    ['c3k9x11', 'c0a7000000020001', 'edge-b'],
    ['c3k9x12', 'c0a7000000030001', 'client'],
  ]);
  t.same(p.hosts, [
    { name: 'c3k9x1h0', endpoint: 'service', ip: '10.10.0.10/24', mac: '02:c0:a7:00:00:10', switch: 'c3k9x10', port: 1 },
    { name: 'c3k9x1h1', endpoint: 'client', ip: '10.10.0.20/24', mac: '02:c0:a7:00:00:20', switch: 'c3k9x12', port: 2 },
  ]);
  // the link between hosts i and j uses port 1000+j on i and 1000+i on j, the tunnel ports' numbers
  t.same(p.links, [
    { a: 'c3k9x10', b: 'c3k9x11', portA: 1001, portB: 1000 },
    { a: 'c3k9x10', b: 'c3k9x12', portA: 1002, portB: 1000 },
    { a: 'c3k9x11', b: 'c3k9x12', portA: 1002, portB: 1001 },
  ]);
  for (const n of [...p.switches.map((s) => `${s.name}-eth1002`), ...p.hosts.map((h) => `${h.name}-eth0`)]) t.ok(n.length <= 15, `${n} fits IFNAMSIZ`);
});

t.test('coat lab mininet --test: hosts on different switches talk through coat-programmed switches', async (t) => {
  const r = await coat(['lab', 'mininet', '--test', '--json'], 200_000);
  t.equal(r.code, 0, `exit 0: ${r.stderr.slice(-1500)}`);
  t.match(r.stderr, /Open vSwitch in[\s\S]*coat controller on 127\.0\.0\.1:\d+[\s\S]*Mininet \(3 OVS user-space switches, 2 hosts\)/);
  const j = JSON.parse(r.stdout) as { tag: string; pairs: number; failures: string[]; arp: { replies: number } };
  t.equal(j.pairs, 2, 'service -> client and client -> service');
  t.same(j.failures, []);
  t.ok(j.arp.replies >= 2, `coat answered ${j.arp.replies} ARP requests`);
  t.same(await leftovers(j.tag, []), [], 'no namespace, link or process with the tag is left');
});
