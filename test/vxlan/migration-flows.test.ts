/**
 * The migration flows (src/vxlan/migration-flows.ts) on fake OpenFlow pipelines (FakeOFTable,
 * OpenFlow 1.3.5 §5 semantics): a frame from the client is followed across the overlay's bridges
 * in every state of a migration, and the switch's flow-mods are applied to a bridge by cookie, as
 * a switch applies a bundle.
 */
import t from 'tap';
import { OFPCML, OFPFC, OFPP } from '../../src/openflow/constants.js';
import type { FlowMod } from '../../src/openflow/index.js';
import { cookieBand, DEFAULT_BANDS, isCoatCookie } from '../../src/controller/cookies.js';
import { decodeFrame } from '../../src/packet/frame.js';
import { defaultTopology, hostFlows, overlayFlowMods, type HostPorts, type Topology } from '../../src/vxlan/index.js';
import {
  AFTER,
  announcement,
  BEFORE,
  deliveryPort,
  holdFlows,
  isHoldCookie,
  migrationFlowMods,
  MigrationFlowError,
  topologyWith,
  transitionFlowMods,
  type MigrationFlowInput,
  type MigrationFlowState,
} from '../../src/vxlan/migration-flows.js';
import { FakeOFTable, type PacketFields } from './fake-of-table.js';

const band = (name: string) => DEFAULT_BANDS.find((b) => b.name === name)!.id;
const svc = { mac: '02:c0:a7:00:00:10', ip: '10.10.0.10' };
const cli = { mac: '02:c0:a7:00:00:20', ip: '10.10.0.20' };
const NEW_MAC = '02:c0:a7:00:00:99';
const tcp = (dstMac = svc.mac) => ({ eth_src: cli.mac, eth_dst: dstMac, eth_type: 0x0800, ipv4_src: cli.ip, ipv4_dst: svc.ip, ip_proto: 6, tcp_src: 40000, tcp_dst: 7000 });
const arpReq = { eth_src: cli.mac, eth_dst: 'ff:ff:ff:ff:ff:ff', eth_type: 0x0806, arp_op: 1, arp_spa: cli.ip, arp_tpa: svc.ip, arp_sha: cli.mac, arp_tha: '00:00:00:00:00:00' };

/**
 * Ports as a real switch numbers them, but different on every host so that a flow using another
 * host's number cannot pass by accident: the service's destination port on edge-b is 7, its source
 * port on edge-a is 3.
 */
function ports(topo: Topology): Record<string, HostPorts> {
  const tunnels = (host: string, base: number) => Object.fromEntries(topo.hosts.filter((h) => h.name !== host).map((h, i) => [h.name, base + i]));
  return {
    'edge-a': { host: 'edge-a', endpointPorts: { service: 3 }, tunnelPorts: tunnels('edge-a', 100), uplinkPort: 1 },
    'edge-b': { host: 'edge-b', endpointPorts: { service: 7 }, tunnelPorts: tunnels('edge-b', 200), uplinkPort: 1 },
    client: { host: 'client', endpointPorts: { client: 5 }, tunnelPorts: tunnels('client', 300), uplinkPort: 1 },
  };
}

function input(extra: Partial<MigrationFlowInput> = {}): MigrationFlowInput {
  const topology = defaultTopology();
  return { topology, service: 'service', source: 'edge-a', destination: 'edge-b', ports: ports(topology), ...extra };
}

/** One FakeOFTable per host's integration bridge, joined by the tunnels. */
class Overlay {
  readonly tables = new Map<string, FakeOFTable>();
  constructor(
    readonly inp: MigrationFlowInput,
    mods: Record<string, FlowMod[]>,
  ) {
    for (const [host, list] of Object.entries(mods)) this.tables.set(host, new FakeOFTable(list));
  }

  /** Follows a frame sent by the client: where it is delivered (host/port), held, or dropped. */
  fromClient(fields: Omit<PacketFields, 'in_port'>): { delivered: string[]; controller: string[]; dropped: string[]; holdCookies: number } {
    const out = { delivered: [] as string[], controller: [] as string[], dropped: [] as string[], holdCookies: 0 };
    const queue: { host: string; pkt: PacketFields }[] = [{ host: 'client', pkt: { ...fields, in_port: this.inp.ports['client']!.endpointPorts['client']! } }];
    for (let hops = 0; queue.length > 0; hops++) {
      if (hops > 10) throw new Error('forwarding loop');
      const { host, pkt } = queue.shift()!;
      const v = this.tables.get(host)!.lookup(pkt);
      if (v.dropped) out.dropped.push(host);
      if (v.toController) {
        out.controller.push(host);
        out.holdCookies += v.matched.filter(isHoldCookie).length;
      }
      const hp = this.inp.ports[host]!;
      for (const port of v.outputs) {
        if (port === OFPP.controller) continue;
        const local = Object.entries(hp.endpointPorts).find(([, p]) => p === port);
        if (local) {
          out.delivered.push(`${host}:${local[0]}`);
          continue;
        }
        const tunnel = Object.entries(hp.tunnelPorts).find(([, p]) => p === port);
        if (!tunnel) throw new Error(`${host}: output to port ${port}, neither an endpoint nor a tunnel`);
        queue.push({ host: tunnel[0], pkt: { ...v.packet, in_port: this.inp.ports[tunnel[0]]!.tunnelPorts[host]! } });
      }
    }
    return out;
  }
}

const overlay = (inp: MigrationFlowInput, s: MigrationFlowState) => new Overlay(inp, migrationFlowMods(inp, s));
const cookies = (mods: readonly FlowMod[]) => new Set(mods.map((m) => m.cookie));

/** Applies flow-mods to a bridge's flows the way a switch does: ADD, or DELETE by exact cookie. */
function apply(flows: readonly FlowMod[], mods: readonly FlowMod[]): FlowMod[] {
  const byCookie = new Map(flows.map((f) => [f.cookie, f]));
  for (const m of mods) {
    if (m.command === OFPFC.add) byCookie.set(m.cookie, m);
    else if (m.command === OFPFC.delete && m.cookieMask === 0xffffffffffffffffn) byCookie.delete(m.cookie);
    else throw new Error(`unexpected flow-mod command ${m.command} / mask ${m.cookieMask}`);
  }
  return [...byCookie.values()];
}

t.test('BEFORE and AFTER are exactly the overlay policy, with the service at the source and at the destination', async (t) => {
  const inp = input();
  const before = migrationFlowMods(inp, BEFORE);
  const after = migrationFlowMods(inp, AFTER);
  for (const h of inp.topology.hosts) {
    t.same(cookies(before[h.name]!), cookies(overlayFlowMods(hostFlows(inp.topology, inp.ports[h.name]!).integration)), `${h.name}: before = policy`);
    const moved = topologyWith(inp.topology, 'service', 'edge-b');
    t.same(cookies(after[h.name]!), cookies(overlayFlowMods(hostFlows(moved, inp.ports[h.name]!).integration)), `${h.name}: after = policy for the moved service (no leftovers)`);
  }
  t.same(overlay(inp, BEFORE).fromClient(tcp()), { delivered: ['edge-a:service'], controller: [], dropped: [], holdCookies: 0 });
  t.same(overlay(inp, AFTER).fromClient(tcp()), { delivered: ['edge-b:service'], controller: [], dropped: [], holdCookies: 0 });
});

t.test('staged: the destination path exists one band lower on every bridge and carries nothing yet', async (t) => {
  const inp = input();
  const staged = migrationFlowMods(inp, { live: 'source', staged: true, hold: false });
  const o = new Overlay(inp, staged);
  t.same(o.fromClient(tcp()), { delivered: ['edge-a:service'], controller: [], dropped: [], holdCookies: 0 }, 'traffic still reaches the source');
  const stagedBand = band('staged');
  const stagedFlows = Object.fromEntries(Object.entries(staged).map(([h, l]) => [h, l.filter((f) => cookieBand(f.cookie) === stagedBand)]));
  // client: to edge-b's tunnel; edge-a: to edge-b's tunnel; edge-b: to the new port, in both tables
  t.same(stagedFlows['client']!.map((f) => f.instructions), [[{ type: 'apply_actions', actions: [{ type: 'output', port: inp.ports['client']!.tunnelPorts['edge-b']!, maxLen: 0 }] }]]);
  t.same(stagedFlows['edge-a']!.map((f) => f.instructions), [[{ type: 'apply_actions', actions: [{ type: 'output', port: inp.ports['edge-a']!.tunnelPorts['edge-b']!, maxLen: 0 }] }]]);
  t.same(stagedFlows['edge-b']!.map((f) => [f.tableId, f.instructions]), [
    [0, [{ type: 'apply_actions', actions: [{ type: 'output', port: 7, maxLen: 0 }] }]],
    [1, [{ type: 'apply_actions', actions: [{ type: 'output', port: 7, maxLen: 0 }] }]],
  ]);
  for (const l of Object.values(stagedFlows)) for (const f of l) t.ok(f.priority >= 100 && f.priority < 1000, `staged priority ${f.priority} is below every forwarding flow`);
  // a frame already travelling to edge-b (a late one) is delivered there by the staged table-1 flow
  const v = o.tables.get('edge-b')!.lookup({ ...tcp(), in_port: inp.ports['edge-b']!.tunnelPorts['client']! });
  t.same(v.outputs, [7]);
});

t.test('hold: every frame for the service reaches the controller whole, at the first bridge it meets', async (t) => {
  const inp = input();
  const held = overlay(inp, { live: 'source', staged: true, hold: true });
  t.same(held.fromClient(tcp()), { delivered: [], controller: ['client'], dropped: [], holdCookies: 1 }, 'held at the client host (the ingress)');
  t.same(held.fromClient({ ...tcp(), eth_dst: '02:00:00:00:00:01' }).controller, ['client'], 'held by IP whatever the MAC');
  // a frame that crossed the tunnel before the hold is caught at the source's bridge, not delivered
  const late = held.tables.get('edge-a')!.lookup({ ...tcp(), in_port: inp.ports['edge-a']!.tunnelPorts['client']! });
  t.ok(late.toController && !late.outputs.includes(3), 'in-flight frame at the source held, not delivered to the frozen service');
  t.ok(late.matched.every(isHoldCookie));
  // ARP for the service is still answered by the controller's responder (control band), not held
  const arp = held.tables.get('client')!.lookup({ ...arpReq, in_port: 5 });
  t.ok(arp.toController);
  t.equal(cookieBand(arp.matched[0]!), band('control'));
  // the service's own frames to the client are not held
  const fromSvc = held.tables.get('edge-a')!.lookup({ eth_src: svc.mac, eth_dst: cli.mac, eth_type: 0x0800, ipv4_src: svc.ip, ipv4_dst: cli.ip, in_port: 3 });
  t.same(fromSvc.outputs, [inp.ports['edge-a']!.tunnelPorts['client']]);
  for (const f of holdFlows(inp)) {
    t.same(f.instructions, [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.controller, maxLen: OFPCML.no_buffer }] }], 'full frame, no buffer id');
    t.equal(f.band, 'hold');
  }
});

t.test('switch: one bundle per bridge flips staged and live priorities; nothing else changes', async (t) => {
  const inp = input();
  const heldSrc = migrationFlowMods(inp, { live: 'source', staged: true, hold: true });
  const heldDst = migrationFlowMods(inp, { live: 'destination', staged: true, hold: true });
  for (const h of inp.topology.hosts) {
    const mods = transitionFlowMods(heldSrc[h.name]!, heldDst[h.name]!);
    const adds = mods.filter((m) => m.command === OFPFC.add);
    const dels = mods.filter((m) => m.command === OFPFC.delete);
    t.ok(adds.length > 0 && adds.length === dels.length, `${h.name}: ${adds.length} adds, ${dels.length} deletes`);
    const lastAdd = mods.map((m) => m.command).lastIndexOf(OFPFC.add);
    t.ok(mods.findIndex((m) => m.command === OFPFC.delete) > lastAdd, 'adds before deletes (make before break without bundles)');
    for (const m of mods) t.ok([band('forward'), band('staged')].includes(cookieBand(m.cookie)), `${h.name}: only forward/staged flows change`);
    // the same matches and actions come back with their priorities swapped
    const key = (m: FlowMod) => JSON.stringify([m.tableId, m.match, m.instructions]);
    const added = new Map(adds.map((m) => [key(m), m.priority]));
    const removed = new Map(heldSrc[h.name]!.filter((f) => dels.some((d) => d.cookie === f.cookie)).map((m) => [key(m), m.priority]));
    t.same([...added.keys()].sort(), [...removed.keys()].sort(), `${h.name}: the switch re-prioritises the same flows, it does not build new ones`);
    for (const [k, p] of added) t.not(p, removed.get(k));
    // applying the bundle gives exactly the switched state
    t.same(cookies(apply(heldSrc[h.name]!, mods)), cookies(heldDst[h.name]!), `${h.name}: bundle applied = switched state`);
  }
  t.same(transitionFlowMods(heldDst['client']!, heldDst['client']!), [], 'no change, no flow-mod');
  const switched = new Overlay(inp, heldDst);
  t.same(switched.fromClient(tcp()).controller, ['client'], 'still held after the switch, until the replay');
  t.same(overlay(inp, { live: 'destination', staged: true, hold: false }).fromClient(tcp()), { delivered: ['edge-b:service'], controller: [], dropped: [], holdCookies: 0 }, 'hold removed: to the destination');
});

t.test('rollback states: switching back and unstaging return every bridge to its flows before the migration', async (t) => {
  const inp = input();
  const steps: MigrationFlowState[] = [
    BEFORE,
    { live: 'source', staged: true, hold: false },
    { live: 'source', staged: true, hold: true },
    { live: 'destination', staged: true, hold: true },
    // undo, in undoPlan's order
    { live: 'source', staged: true, hold: true },
    { live: 'source', staged: true, hold: false },
    BEFORE,
  ];
  const start = migrationFlowMods(inp, BEFORE);
  for (const h of inp.topology.hosts) {
    let flows: FlowMod[] = start[h.name]!;
    for (let i = 1; i < steps.length; i++) flows = apply(flows, transitionFlowMods(migrationFlowMods(inp, steps[i - 1]!)[h.name]!, migrationFlowMods(inp, steps[i]!)[h.name]!));
    t.same(cookies(flows), cookies(start[h.name]!), `${h.name}: back to the overlay's own flows`);
  }
  // the held frames replayed toward the source go out of its port there
  t.same(deliveryPort(inp, 'source'), { host: 'edge-a', port: 3 });
  t.same(deliveryPort(inp, 'destination'), { host: 'edge-b', port: 7 });
});

t.test('new MAC (COAT): hold catches both MACs, the destination serves the new one, a gratuitous ARP announces it', async (t) => {
  const inp = input({ newMac: NEW_MAC });
  const held = overlay(inp, { live: 'destination', staged: true, hold: true });
  t.same(held.fromClient(tcp(NEW_MAC)).controller, ['client']);
  t.same(held.fromClient(tcp(svc.mac)).controller, ['client']);
  t.equal(holdFlows(inp).length, 3);
  const after = overlay(inp, AFTER);
  t.same(after.fromClient(tcp(NEW_MAC)).delivered, ['edge-b:service']);
  t.same(after.fromClient(tcp(svc.mac)).dropped, ['client'], 'the old MAC is unknown once the migration is clean');
  const a = announcement(inp);
  t.same(a.targets, [{ host: 'client', port: 5 }], 'to the client port; the overlay does not flood');
  const f = decodeFrame(a.frame);
  t.equal(f.eth.src, NEW_MAC);
  t.equal(f.arp?.senderIp, svc.ip);
  t.equal(f.arp?.targetIp, svc.ip, 'gratuitous: sender IP = target IP');
  t.throws(() => announcement(input()), MigrationFlowError);
});

t.test('every flow is in coat cookie space; bad input is refused with a typed error', async (t) => {
  const inp = input();
  for (const l of Object.values(migrationFlowMods(inp, { live: 'destination', staged: true, hold: true }))) for (const f of l) t.ok(isCoatCookie(f.cookie));
  t.throws(() => migrationFlowMods({ ...inp, service: 'nope' }, BEFORE), { code: 'MIGRATION_FLOWS_INVALID' });
  t.throws(() => migrationFlowMods({ ...inp, source: 'edge-b', destination: 'edge-a' }, BEFORE), { code: 'MIGRATION_FLOWS_INVALID' }, 'source must be where the service is');
  t.throws(() => migrationFlowMods({ ...inp, destination: 'edge-a' }, BEFORE), { code: 'MIGRATION_FLOWS_INVALID' });
  t.throws(() => migrationFlowMods({ ...inp, destination: 'mars' }, BEFORE), { code: 'MIGRATION_FLOWS_INVALID' });
  const noPort = { ...inp.ports, 'edge-b': { ...inp.ports['edge-b']!, endpointPorts: {} } };
  t.throws(() => migrationFlowMods({ ...inp, ports: noPort }, { live: 'source', staged: true, hold: false }), { code: 'POLICY_MISSING_PORT' }, 'staging needs the destination port');
  t.throws(() => deliveryPort({ ...inp, ports: noPort }, 'destination'), { code: 'MIGRATION_FLOWS_INVALID' });
  t.doesNotThrow(() => migrationFlowMods({ ...inp, ports: noPort }, BEFORE), 'before staging the destination port is not needed');
});
