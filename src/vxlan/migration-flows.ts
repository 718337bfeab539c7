/**
 * The flows of one live migration, pure: from the topology, the live OpenFlow port numbers of
 * every host, and where the migration stands, the exact flows each integration bridge must hold.
 * Nothing here sends anything; the live flow port (src/migration/live/) sends the differences.
 *
 * A migration's flows are a desired STATE, not a script (OVN's way: the northbound state decides
 * the flows): `{ live, staged, hold }`. Every step of the timeline (design.md, "Timeline of one
 * migration") is a change of that state, and every undo is the reverse change, so undoing twice,
 * or undoing what was never done, is the same state again (the ports' idempotence contract).
 *
 *   live    which side's flows carry the service's traffic, in the `forward` band;
 *   staged  the other side's flows exist too, one band lower (`staged`): present on every bridge
 *           but shadowed, so the switch only flips priorities, never builds a path (OVN stages a
 *           migrating VM's port the same way, "activation strategy" rarp);
 *   hold    `hold` band flows, above forwarding: every frame for the service's MAC(s) or IP goes
 *           to the controller whole (OFPCML_NO_BUFFER, OpenFlow 1.3.5 §7.2.5), on every
 *           integration bridge, so nothing for the service is forwarded nor dropped while it moves.
 *
 * The service's flows are the overlay policy's own (policy.ts: `eth_dst=<mac>` to its port or its
 * tunnel), computed for a topology where the endpoint sits on the side in question, then moved to
 * the band that side has. Everything else on a bridge is the policy's, untouched. So the state
 * `{live: destination, staged: false, hold: false}` is exactly the policy for the moved topology:
 * after cleanup no trace of the migration is left (same cookies, content-derived).
 *
 * The switch is the state change `live: source -> destination` with `staged` and `hold` kept:
 * on each bridge it deletes the live service flows and adds the staged ones at `forward` priority
 * (and the reverse at `staged`): `transitionFlowMods` gives those flow-mods for one bundle per
 * bridge (ONF EXT-230), atomic, so no packet ever sees a half-switched bridge.
 */
import { COAT_BAND_COOKIE_MASK, bandCookie } from '../controller/cookies.js';
import { planReconcile } from '../controller/reconcile.js';
import { DEFAULT_BAND_TABLE } from '../controller/flows.js';
import { deleteByCookie } from '../controller/connection.js';
import type { FlowMod } from '../openflow/index.js';
import type { Instruction } from '../openflow/actions.js';
import { OFPCML, OFPP } from '../openflow/constants.js';
import { EtherType } from '../packet/ethernet.js';
import { encodeGratuitousArpFrame } from '../packet/frame.js';
import { CoatError } from '../errors.js';
import { hostFlows, overlayFlowMods, OverlayTable, type HostPorts, type OverlayFlow } from './policy.js';
import type { EndpointSpec, Topology } from './topology.js';

export type Side = 'source' | 'destination';

export class MigrationFlowError extends CoatError {
  constructor(message: string) {
    super('MIGRATION_FLOWS_INVALID', message);
  }
}

/** What the policy needs to know about one migration. */
export interface MigrationFlowInput {
  /** The topology with the service where it runs before the migration (on `source`). */
  topology: Topology;
  /** Endpoint name of the service. */
  service: string;
  source: string;
  destination: string;
  /**
   * Live port numbers of every host's bridges. The service's endpoint port must be in
   * `endpointPorts` of BOTH the source host (its current port) and the destination host (the
   * port the destination namespace was given), since both sides' flows exist while it moves.
   */
  ports: Readonly<Record<string, HostPorts>>;
  /** COAT's `--new-mac` mode: the service's MAC at the destination. */
  newMac?: string;
}

/** Where a migration stands, as far as flows go. */
export interface MigrationFlowState {
  live: Side;
  staged: boolean;
  hold: boolean;
}

/** Before anything: the overlay's own flows, the service at the source. */
export const BEFORE: MigrationFlowState = { live: 'source', staged: false, hold: false };
/** After cleanup: the overlay's own flows for the moved service. */
export const AFTER: MigrationFlowState = { live: 'destination', staged: false, hold: false };

/** Ranks inside the hold band: one per kind of frame held (cookies then differ by content anyway). */
const HoldRank = { byMac: 10, byNewMac: 11, byIp: 12 } as const;

const toController: Instruction[] = [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.controller, maxLen: OFPCML.no_buffer }] }];

function serviceEndpoint(input: MigrationFlowInput): EndpointSpec {
  const e = input.topology.endpoints.find((x) => x.name === input.service);
  if (!e) throw new MigrationFlowError(`no endpoint named ${input.service} in topology ${input.topology.name}`);
  if (e.host !== input.source) throw new MigrationFlowError(`endpoint ${input.service} is on ${e.host} in the topology, not on the source ${input.source}`);
  if (input.source === input.destination) throw new MigrationFlowError(`source and destination are both ${input.source}`);
  if (!input.topology.hosts.some((h) => h.name === input.destination)) throw new MigrationFlowError(`no host named ${input.destination} in topology ${input.topology.name}`);
  for (const h of input.topology.hosts) if (!input.ports[h.name]) throw new MigrationFlowError(`no port numbers for host ${h.name}`);
  return e;
}

/** The topology with endpoint `service` on `host` (and with `mac`, when given). */
export function topologyWith(topo: Topology, service: string, host: string, mac?: string): Topology {
  return { ...topo, endpoints: topo.endpoints.map((e) => (e.name === service ? { ...e, host, ...(mac !== undefined ? { mac } : {}) } : e)) };
}

/** The endpoint's host and MAC on `side`. */
function placement(input: MigrationFlowInput, side: Side, e: EndpointSpec): { host: string; mac: string } {
  return side === 'source' ? { host: input.source, mac: e.mac } : { host: input.destination, mac: input.newMac ?? e.mac };
}

/** True for the policy's flows that carry the service's traffic: exactly `eth_dst=<mac>`. */
function isServiceFlow(f: OverlayFlow, mac: string): boolean {
  const m = f.match;
  return m.length === 1 && m[0]!.field === 'eth_dst' && typeof m[0]!.value === 'string' && m[0]!.value.toLowerCase() === mac.toLowerCase();
}

/** The policy's flows of `host` for the service sitting on `side`, split into its own and the rest. */
function policySplit(input: MigrationFlowInput, host: string, side: Side, e: EndpointSpec): { service: OverlayFlow[]; rest: OverlayFlow[] } {
  const at = placement(input, side, e);
  const flows = hostFlows(topologyWith(input.topology, e.name, at.host, at.mac), input.ports[host]!).integration;
  return { service: flows.filter((f) => isServiceFlow(f, at.mac)), rest: flows.filter((f) => !isServiceFlow(f, at.mac)) };
}

/** The hold flows (same on every integration bridge). */
export function holdFlows(input: MigrationFlowInput): OverlayFlow[] {
  const e = serviceEndpoint(input);
  const flows: OverlayFlow[] = [
    { table: OverlayTable.classify, band: 'hold', rank: HoldRank.byMac, match: [{ field: 'eth_dst', value: e.mac }], instructions: toController, note: `hold: frames to ${e.name} (${e.mac}) go to the controller` },
  ];
  if (input.newMac !== undefined && input.newMac.toLowerCase() !== e.mac.toLowerCase()) {
    flows.push({ table: OverlayTable.classify, band: 'hold', rank: HoldRank.byNewMac, match: [{ field: 'eth_dst', value: input.newMac }], instructions: toController, note: `hold: frames to ${e.name}'s new MAC ${input.newMac}` });
  }
  // By IP as well: a client whose neighbour entry is stale or being refreshed still addresses the
  // service's IP. ipv4_dst needs eth_type=0x0800 first (§7.2.3.6 prerequisites).
  flows.push({
    table: OverlayTable.classify,
    band: 'hold',
    rank: HoldRank.byIp,
    match: [{ field: 'eth_type', value: EtherType.IPV4 }, { field: 'ipv4_dst', value: e.ip }],
    instructions: toController,
    note: `hold: IPv4 to ${e.name} (${e.ip}) goes to the controller`,
  });
  return flows;
}

/**
 * The integration-bridge flows of `host` in migration state `state`: the policy's flows, the
 * service's flows of the live side at `forward`, those of the other side at `staged` when staged,
 * and the hold flows when holding.
 */
export function migrationHostFlows(input: MigrationFlowInput, host: string, state: MigrationFlowState): OverlayFlow[] {
  const e = serviceEndpoint(input);
  if (!input.ports[host]) throw new MigrationFlowError(`no port numbers for host ${host}`);
  const live = policySplit(input, host, state.live, e);
  const flows = [...live.rest, ...live.service];
  if (state.staged) {
    const other = policySplit(input, host, state.live === 'source' ? 'destination' : 'source', e);
    for (const f of other.service) flows.push({ ...f, band: 'staged', note: `staged: ${f.note}` });
  }
  if (state.hold) flows.push(...holdFlows(input));
  return flows;
}

/** Flow-mods (coat cookies) for every host's integration bridge in `state`, by host name. */
export function migrationFlowMods(input: MigrationFlowInput, state: MigrationFlowState): Record<string, FlowMod[]> {
  const out: Record<string, FlowMod[]> = {};
  for (const h of input.topology.hosts) out[h.name] = overlayFlowMods(migrationHostFlows(input, h.name, state));
  return out;
}

/**
 * The flow-mods that take one bridge from flows `before` to flows `after`, for one bundle: adds
 * first, then deletes by cookie (content-derived cookies: a flow whose priority flips is a delete
 * of one cookie and an add of another). Adds before deletes matters only where a switch refuses
 * bundles and they go one by one: make before break. Empty when nothing changes.
 */
export function transitionFlowMods(before: readonly FlowMod[], after: readonly FlowMod[]): FlowMod[] {
  const plan = planReconcile(after, before.map((f) => ({ cookie: f.cookie })));
  return [...plan.add, ...plan.deleteFirst.map(deleteByCookie), ...plan.deleteAfter.map(deleteByCookie)];
}

/** The cookie and mask selecting every hold flow (a packet-in's cookie tells a held frame). */
export function holdCookieFilter(): { cookie: bigint; mask: bigint } {
  return { cookie: bandCookie(DEFAULT_BAND_TABLE.get('hold')), mask: COAT_BAND_COOKIE_MASK };
}

/** True when a packet-in carrying `cookie` was sent by a hold flow. */
export function isHoldCookie(cookie: bigint): boolean {
  const f = holdCookieFilter();
  return (cookie & f.mask) === f.cookie;
}

/** Where a frame for the service is delivered on `side`: that host and the service's port there. */
export function deliveryPort(input: MigrationFlowInput, side: Side): { host: string; port: number } {
  const e = serviceEndpoint(input);
  const host = placement(input, side, e).host;
  const port = input.ports[host]!.endpointPorts[e.name];
  if (port === undefined || !Number.isInteger(port) || port <= 0 || port >= OFPP.max) throw new MigrationFlowError(`${host}: no OpenFlow port for ${e.name} on the ${side} (got ${String(port)})`);
  return { host, port };
}

/**
 * New-MAC mode: the gratuitous ARP announcing the service's IP at its new MAC, and the ports it
 * goes out of: every other local endpoint port on every host (the overlay does not flood, so the
 * controller delivers it where a neighbour cache may hold the old MAC).
 */
export function announcement(input: MigrationFlowInput, side: 'source' | 'destination' = 'destination'): { frame: Buffer; targets: { host: string; port: number }[] } {
  const e = serviceEndpoint(input);
  if (input.newMac === undefined) throw new MigrationFlowError('an announcement needs a new MAC (--new-mac)');
  // Toward the source (a rollback): the service's own MAC again, undoing the earlier announcement.
  const mac = side === 'destination' ? input.newMac : e.mac;
  const targets: { host: string; port: number }[] = [];
  for (const o of input.topology.endpoints) {
    if (o.name === e.name) continue;
    const port = input.ports[o.host]?.endpointPorts[o.name];
    if (port !== undefined) targets.push({ host: o.host, port });
  }
  return { frame: encodeGratuitousArpFrame(mac, e.ip), targets };
}
