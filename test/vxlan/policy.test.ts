import t from 'tap';
import { OFPP } from '../../src/openflow/constants.js';
import { isCoatCookie, cookieBand } from '../../src/controller/cookies.js';
import { defaultTopology, hostFlows, overlayFlowMods, parseTopology, PolicyError, type HostPorts, type Topology } from '../../src/vxlan/index.js';
import { FakeOFTable, type PacketFields, type Verdict } from './fake-of-table.js';

/** Port numbering a real switch might give: endpoints from 1, tunnels from 10, per host. */
function portsFor(topo: Topology): Map<string, HostPorts> {
  const out = new Map<string, HostPorts>();
  for (const h of topo.hosts) {
    const endpointPorts: Record<string, number> = {};
    topo.endpoints.filter((e) => e.host === h.name).forEach((e, i) => (endpointPorts[e.name] = 1 + i));
    const tunnelPorts: Record<string, number> = {};
    topo.hosts.filter((o) => o.name !== h.name).forEach((o, i) => (tunnelPorts[o.name] = 10 + i));
    out.set(h.name, { host: h.name, endpointPorts, tunnelPorts, uplinkPort: 1 });
  }
  return out;
}

/** One fake integration bridge per host, joined by tunnels: follows a packet across the overlay. */
class FakeOverlay {
  readonly tables = new Map<string, FakeOFTable>();
  readonly underlay = new Map<string, FakeOFTable>();
  constructor(readonly topo: Topology, readonly ports = portsFor(topo)) {
    for (const h of topo.hosts) {
      const flows = hostFlows(topo, ports.get(h.name)!);
      this.tables.set(h.name, new FakeOFTable(overlayFlowMods(flows.integration)));
      this.underlay.set(h.name, new FakeOFTable(overlayFlowMods(flows.underlay)));
    }
  }
  /** Sends a frame from endpoint `from`; returns where it ends: endpoint names, 'controller', or drops. */
  send(from: string, fields: Omit<PacketFields, 'in_port'>): { delivered: string[]; controller: string[]; droppedAt: string[]; hops: number } {
    const ep = this.topo.endpoints.find((e) => e.name === from)!;
    const result = { delivered: [] as string[], controller: [] as string[], droppedAt: [] as string[], hops: 0 };
    const queue: { host: string; pkt: PacketFields }[] = [{ host: ep.host, pkt: { ...fields, in_port: this.ports.get(ep.host)!.endpointPorts[from]! } }];
    while (queue.length) {
      const { host, pkt } = queue.shift()!;
      if (++result.hops > 20) throw new Error('forwarding loop');
      const v: Verdict = this.tables.get(host)!.lookup(pkt);
      if (v.dropped) result.droppedAt.push(host);
      if (v.toController) result.controller.push(host);
      const hp = this.ports.get(host)!;
      for (const port of v.outputs) {
        if (port === OFPP.controller) continue;
        const local = Object.entries(hp.endpointPorts).find(([, p]) => p === port);
        if (local) {
          result.delivered.push(local[0]);
          continue;
        }
        const tunnel = Object.entries(hp.tunnelPorts).find(([, p]) => p === port);
        if (!tunnel) throw new Error(`${host}: output to port ${port}, which is neither an endpoint nor a tunnel`);
        const peer = tunnel[0];
        queue.push({ host: peer, pkt: { ...v.packet, in_port: this.ports.get(peer)!.tunnelPorts[host]! } });
      }
    }
    return result;
  }
}

const svc = { mac: '02:c0:a7:00:00:10', ip: '10.10.0.10' };
const cli = { mac: '02:c0:a7:00:00:20', ip: '10.10.0.20' };
const ipv4 = (src: typeof svc, dst: typeof svc) => ({ eth_src: src.mac, eth_dst: dst.mac, eth_type: 0x0800, ipv4_src: src.ip, ipv4_dst: dst.ip, ip_proto: 6, tcp_src: 40000, tcp_dst: 5201 });
const arpReq = (src: typeof svc, tpa: string) => ({ eth_src: src.mac, eth_dst: 'ff:ff:ff:ff:ff:ff', eth_type: 0x0806, arp_op: 1, arp_spa: src.ip, arp_tpa: tpa, arp_sha: src.mac, arp_tha: '00:00:00:00:00:00' });

t.test('client and service reach each other across the tunnels, in both directions', async (t) => {
  const o = new FakeOverlay(defaultTopology());
  t.same(o.send('client', ipv4(cli, svc)), { delivered: ['service'], controller: [], droppedAt: [], hops: 2 });
  t.same(o.send('service', ipv4(svc, cli)), { delivered: ['client'], controller: [], droppedAt: [], hops: 2 });
  // the first hop used the tunnel client->edge-a, not edge-b
  const clientTable = o.tables.get('client')!;
  const v = clientTable.lookup({ ...ipv4(cli, svc), in_port: 1 });
  t.same(v.outputs, [o.ports.get('client')!.tunnelPorts['edge-a']]);
});

t.test('ARP requests for overlay endpoints go to the controller and nowhere else', async (t) => {
  const o = new FakeOverlay(defaultTopology());
  t.same(o.send('client', arpReq(cli, svc.ip)), { delivered: [], controller: ['client'], droppedAt: [], hops: 1 });
  // unicast ARP probe (Linux refreshing a STALE entry) also goes to the controller, not to the service
  t.same(o.send('client', { ...arpReq(cli, svc.ip), eth_dst: svc.mac }).controller, ['client']);
  // an ARP reply addressed to a known MAC is forwarded like any frame
  t.same(o.send('service', { ...arpReq(svc, cli.ip), arp_op: 2, eth_dst: cli.mac }).delivered, ['client']);
});

t.test('unknown traffic is dropped by a counted miss flow; nothing is flooded or sent to NORMAL', async (t) => {
  const topo = defaultTopology();
  const o = new FakeOverlay(topo);
  const arpUnknown = o.send('client', arpReq(cli, '10.10.0.99'));
  t.same(arpUnknown.droppedAt, ['client']);
  t.same(o.send('client', { ...ipv4(cli, svc), eth_dst: '02:00:00:00:00:99' }).droppedAt, ['client']);
  t.same(o.send('client', { ...ipv4(cli, svc), eth_dst: 'ff:ff:ff:ff:ff:ff' }).droppedAt, ['client']);
  t.same(o.send('client', { eth_src: cli.mac, eth_dst: '33:33:00:00:00:02', eth_type: 0x86dd }).droppedAt, ['client']);
  // the drop was counted by coat's miss flow (cookie in the table-miss band), not an implicit miss
  const v = o.tables.get('client')!.lookup({ ...ipv4(cli, svc), eth_dst: '02:00:00:00:00:99', in_port: 1 });
  t.equal(v.matched.length, 1);
  t.ok(isCoatCookie(v.matched[0]!));
  t.equal(cookieBand(v.matched[0]!), 1, 'table-miss band');
  for (const [host, table] of o.tables) {
    for (const p of table.outputPorts()) t.notOk([OFPP.normal, OFPP.flood, OFPP.all].includes(p as never), `${host}: no NORMAL/FLOOD/ALL output`);
  }
});

t.test('split horizon: a frame arriving over a tunnel is never sent into another tunnel', async (t) => {
  const o = new FakeOverlay(defaultTopology());
  const edgeB = o.ports.get('edge-b')!;
  // a frame from the client's tunnel addressed to the service (which lives on edge-a) reaches edge-b:
  const v = o.tables.get('edge-b')!.lookup({ ...ipv4(cli, svc), in_port: edgeB.tunnelPorts['client']! });
  t.ok(v.dropped, 'dropped, not re-tunnelled to edge-a');
  t.equal(cookieBand(v.matched.at(-1)!), 1);
});

t.test('underlay bridge is a counted two-port cable between the uplink and LOCAL', async (t) => {
  const o = new FakeOverlay(defaultTopology());
  const u = o.underlay.get('edge-a')!;
  t.same(u.lookup({ in_port: 1, eth_type: 0x0800 }).outputs, [OFPP.local]);
  t.same(u.lookup({ in_port: OFPP.local, eth_type: 0x0806 }).outputs, [1]);
  t.ok(u.lookup({ in_port: 7 }).dropped);
});

t.test('flows are deterministic, in coat cookie space, with distinct cookies', async (t) => {
  const topo = defaultTopology();
  const ports = portsFor(topo).get('edge-a')!;
  const a = overlayFlowMods(hostFlows(topo, ports).integration);
  const b = overlayFlowMods(hostFlows(topo, ports).integration);
  t.same(a, b);
  const cookies = a.map((f) => f.cookie);
  t.equal(new Set(cookies).size, cookies.length);
  t.ok(cookies.every(isCoatCookie));
  // a changed port number changes exactly the flows that use it
  const moved = overlayFlowMods(hostFlows(topo, { ...ports, endpointPorts: { service: 42 } }).integration);
  const changed = moved.filter((f, i) => f.cookie !== a[i]!.cookie);
  t.equal(changed.length, 2, 'the classify and deliver flows to the service');
});

t.test('a 6-host overlay with an endpoint per host reaches full mesh', async (t) => {
  const hosts = Array.from({ length: 6 }, (_, i) => `  - { name: h${i}, underlay: { ip: 192.168.100.${11 + i} } }`).join('\n');
  const eps = Array.from({ length: 6 }, (_, i) => `  - { name: e${i}, host: h${i}, ip: 10.10.0.${10 + i}, mac: "02:00:00:00:01:${(16 + i).toString(16)}" }`).join('\n');
  const topo = parseTopology(`overlay: { subnet: 10.10.0.0/24, vni: 7 }\nhosts:\n${hosts}\nendpoints:\n${eps}\n`);
  const o = new FakeOverlay(topo);
  let pairs = 0;
  for (const a of topo.endpoints) {
    for (const b of topo.endpoints) {
      if (a === b) continue;
      const r = o.send(a.name, { eth_src: a.mac, eth_dst: b.mac, eth_type: 0x0800, ipv4_src: a.ip, ipv4_dst: b.ip });
      t.same(r.delivered, [b.name], `${a.name} -> ${b.name}`);
      pairs++;
    }
  }
  t.equal(pairs, 30);
});

t.test('a missing port number is a typed error naming the host and the port', async (t) => {
  const topo = defaultTopology();
  const ports = portsFor(topo).get('edge-a')!;
  t.throws(() => hostFlows(topo, { ...ports, tunnelPorts: { 'edge-b': 11 } }), PolicyError);
  t.throws(() => hostFlows(topo, { ...ports, endpointPorts: {} }), { code: 'POLICY_MISSING_PORT', message: /edge-a: no valid OpenFlow port for endpoint service/ });
});
