/**
 * The Mininet topology (Debian's mininet, OVS user-space switches) with the real `coat controller`
 * as remote controller: endpoints on different switches reach each other over VXLAN, ARP answered
 * by coat, and nothing with the run's tag is left afterwards.
 */
import t from 'tap';
import { coat, leftovers } from './helpers.js';
import { mininetPlan } from '../../lab/mininet/run.js';
import { defaultTopology } from '../../src/vxlan/topology.js';

t.test('the Mininet plan mirrors the lab layout: dpids, endpoint ports, a VTEP per host on the tunnel port', async (t) => {
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
  // every switch reaches every peer through one VTEP on its tunnel port (the lab's kernel layout),
  // whose FDB sends each remote endpoint MAC to that endpoint's host's underlay address
  t.same(p.vteps, [
    { name: 'c3k9x1v0', switch: 'c3k9x10', port: 1000, underlayIp: '192.168.100.11/24', vni: 5000, fdb: [{ mac: '02:c0:a7:00:00:20', dst: '192.168.100.13' }] },
    { name: 'c3k9x1v1', switch: 'c3k9x11', port: 1000, underlayIp: '192.168.100.12/24', vni: 5000, fdb: [{ mac: '02:c0:a7:00:00:10', dst: '192.168.100.11' }, { mac: '02:c0:a7:00:00:20', dst: '192.168.100.13' }] },
    { name: 'c3k9x1v2', switch: 'c3k9x12', port: 1000, underlayIp: '192.168.100.13/24', vni: 5000, fdb: [{ mac: '02:c0:a7:00:00:10', dst: '192.168.100.11' }] },
  ]);
  t.equal(p.fabric.name, 'c3k9x1f');
  t.notOk(p.switches.some((s) => s.dpid === p.fabric.dpid), 'the fabric dpid is no switch of the overlay');
  for (const n of [...p.switches.map((s) => `${s.name}-eth1000`), ...p.hosts.map((h) => `${h.name}-eth0`), ...p.vteps.map((v) => `${v.name}-eth1`), `${p.fabric.name}-eth99`]) t.ok(n.length <= 15, `${n} fits IFNAMSIZ`);
});

t.test('coat lab mininet --test: hosts on different switches talk through coat-programmed switches', async (t) => {
  const r = await coat(['lab', 'mininet', '--test', '--json'], 200_000);
  t.equal(r.code, 0, `exit 0: ${r.stderr.slice(-1500)}`);
  t.match(r.stderr, /Open vSwitch in[\s\S]*coat controller on 127\.0\.0\.1:\d+[\s\S]*Mininet \(3 OVS user-space switches, 2 hosts, VXLAN between 3 VTEPs over an underlay bridge\)/);
  const j = JSON.parse(r.stdout) as { tag: string; pairs: number; failures: string[]; arp: { replies: number }; vxlan: Record<string, { txPackets: number; rxPackets: number }> };
  t.equal(j.pairs, 2, 'service -> client and client -> service');
  t.same(j.failures, []);
  // switch 0 (edge-a, service) and switch 2 (client) have no link but their VTEPs: the pings crossed VXLAN
  for (const sw of [`${j.tag}0`, `${j.tag}2`]) {
    t.ok(j.vxlan[sw]!.txPackets >= 2 && j.vxlan[sw]!.rxPackets >= 2, `${sw}'s VTEP sent ${j.vxlan[sw]!.txPackets} and received ${j.vxlan[sw]!.rxPackets} VXLAN packets`);
  }
  t.ok(j.arp.replies >= 2, `coat answered ${j.arp.replies} ARP requests`);
  t.same(await leftovers(j.tag, []), [], 'no namespace, link or process with the tag is left');
});
