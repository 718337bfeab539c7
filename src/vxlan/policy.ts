/**
 * The overlay policy, pure: from the topology and the live OpenFlow port numbers of one host, the
 * exact flows its two bridges must hold. Nothing here sends anything; the controller reconciles
 * switches to these lists (Faucet's valve_flood / valve_host managers return messages the same way).
 *
 * Integration bridge (one per host; endpoints and tunnels attach here), OpenFlow 1.3:
 *
 *   table 0 "classify" (traffic from local endpoints and from tunnels):
 *     control  ARP request for a known endpoint IP        -> CONTROLLER (the controller answers)
 *     forward  in_port=<tunnel>                            -> goto table 1 (split horizon: what
 *                                                             came over a tunnel is only delivered
 *                                                             locally, never re-tunnelled)
 *     forward  eth_dst=<endpoint on this host>             -> output:<its port>
 *     forward  eth_dst=<endpoint on host H>                -> output:<tunnel to H>
 *     miss     (anything else)                             -> drop, counted by the miss flow
 *   table 1 "deliver" (traffic from tunnels):
 *     forward  eth_dst=<endpoint on this host>             -> output:<its port>
 *     miss                                                 -> drop, counted
 *
 * No NORMAL, no flooding: every endpoint is known from the topology, and ARP for it is answered
 * by the controller, so broadcast never needs to cross the overlay. Unknown traffic (an unknown
 * MAC, ARP for an IP the overlay does not own, IPv6 multicast chatter) hits an explicit
 * table-miss flow whose packet counter is the "dropped" count. OpenFlow 1.3.5 §5.4: a table-miss
 * flow with no instructions drops.
 *
 * Underlay bridge (br-phy style; its internal port holds the host's underlay IP so that OVS's
 * userspace VXLAN can route): a two-port cable, uplink <-> LOCAL, and a counted miss.
 *
 * Flows carry coat cookies (band id + content hash, src/controller/cookies.ts) and priorities from
 * named bands: `control` > `forward` > `table-miss`. A migration adds its own bands (hold,
 * redirect, staged) around these without touching them.
 */
import { coatFlowMods, type FlowSpec } from '../controller/flows.js';
import type { FlowMod } from '../openflow/index.js';
import type { Instruction } from '../openflow/actions.js';
import { OFPCML, OFPP } from '../openflow/constants.js';
import type { Match } from '../openflow/oxm.js';
import { EtherType } from '../packet/ethernet.js';
import { ArpOp } from '../packet/arp.js';
import { CoatError } from '../errors.js';
import type { EndpointSpec, Topology } from './topology.js';

export const OverlayTable = { classify: 0, deliver: 1 } as const;

/**
 * One flow a bridge must hold, as the controller layer describes flows (band + rank instead of a
 * raw priority, cookie derived from the content by `coatFlowMod`), with what it is for in words.
 */
export interface OverlayFlow extends FlowSpec {
  note: string;
}

/** The live facts the policy needs about one host's bridges. */
export interface HostPorts {
  host: string;
  /** OpenFlow port of each local endpoint's veth on the integration bridge, by endpoint name. */
  endpointPorts: Record<string, number>;
  /** OpenFlow port of the tunnel to each other host, by host name. */
  tunnelPorts: Record<string, number>;
  /** OpenFlow port of the underlay uplink on the underlay bridge. */
  uplinkPort: number;
}

export interface HostFlows {
  integration: OverlayFlow[];
  underlay: OverlayFlow[];
}

export class PolicyError extends CoatError {
  constructor(message: string) {
    super('POLICY_MISSING_PORT', message);
  }
}

/** Ranks inside the bands, so that more specific rules can be added later without renumbering. */
const Rank = { arpToController: 10, tunnelIngress: 20, l2: 10 } as const;

function flow(table: number, band: string, rank: number, match: Match, instructions: Instruction[], note: string): OverlayFlow {
  return { table, band, rank, match, instructions, note };
}

/** The OFPFC_ADD flow-mods (coat cookies, band priorities) for a list of overlay flows. */
export function overlayFlowMods(flows: readonly OverlayFlow[]): FlowMod[] {
  return coatFlowMods(flows.map(({ note: _note, ...spec }) => spec));
}

const output = (port: number): Instruction[] => [{ type: 'apply_actions', actions: [{ type: 'output', port, maxLen: 0 }] }];
/** The whole packet to the controller, no buffering (OpenFlow 1.3.5 §7.2.5: OFPCML_NO_BUFFER). */
const toController: Instruction[] = [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.controller, maxLen: OFPCML.no_buffer }] }];
const drop: Instruction[] = [];

function need(ports: Record<string, number>, key: string, what: string, host: string): number {
  const p = ports[key];
  if (p === undefined || !Number.isInteger(p) || p <= 0 || p >= OFPP.max) throw new PolicyError(`${host}: no valid OpenFlow port for ${what} ${key} (got ${String(p)})`);
  return p;
}

/** ARP request for `ip` (prerequisites per §7.2.3.6: eth_type=0x0806 before arp_op/arp_tpa). */
function arpRequestFor(ip: string): Match {
  return [
    { field: 'eth_type', value: EtherType.ARP },
    { field: 'arp_op', value: ArpOp.REQUEST },
    { field: 'arp_tpa', value: ip },
  ];
}

/** The flows of one host's integration bridge. */
export function integrationFlows(topo: Topology, ports: HostPorts): OverlayFlow[] {
  const flows: OverlayFlow[] = [];
  const local = (e: EndpointSpec) => e.host === ports.host;
  for (const e of topo.endpoints) {
    flows.push(flow(OverlayTable.classify, 'control', Rank.arpToController, arpRequestFor(e.ip), toController, `ARP for ${e.name} (${e.ip}) answered by the controller`));
  }
  for (const h of topo.hosts) {
    if (h.name === ports.host) continue;
    const tun = need(ports.tunnelPorts, h.name, 'tunnel to', ports.host);
    flows.push(flow(OverlayTable.classify, 'forward', Rank.tunnelIngress, [{ field: 'in_port', value: tun }], [{ type: 'goto_table', tableId: OverlayTable.deliver }], `from tunnel ${h.name}: deliver locally only`));
  }
  for (const e of topo.endpoints) {
    const match: Match = [{ field: 'eth_dst', value: e.mac }];
    if (local(e)) {
      const port = need(ports.endpointPorts, e.name, 'endpoint', ports.host);
      flows.push(flow(OverlayTable.classify, 'forward', Rank.l2, match, output(port), `to ${e.name} on this host`));
      flows.push(flow(OverlayTable.deliver, 'forward', Rank.l2, match, output(port), `from a tunnel to ${e.name} on this host`));
    } else {
      const port = need(ports.tunnelPorts, e.host, 'tunnel to', ports.host);
      flows.push(flow(OverlayTable.classify, 'forward', Rank.l2, match, output(port), `to ${e.name} on ${e.host} through its tunnel`));
    }
  }
  for (const t of [OverlayTable.classify, OverlayTable.deliver]) flows.push(flow(t, 'table-miss', 0, [], drop, `unknown traffic in table ${t}: drop and count`));
  return flows;
}

/** The flows of one host's underlay bridge: uplink <-> LOCAL (the internal port with the underlay IP). */
export function underlayFlows(ports: Pick<HostPorts, 'host' | 'uplinkPort'>): OverlayFlow[] {
  const up = need({ uplink: ports.uplinkPort }, 'uplink', 'underlay', ports.host);
  return [
    flow(0, 'forward', Rank.l2, [{ field: 'in_port', value: up }], output(OFPP.local), 'underlay in: to the host stack / tunnel endpoint'),
    flow(0, 'forward', Rank.l2, [{ field: 'in_port', value: OFPP.local }], output(up), 'underlay out: to the fabric'),
    flow(0, 'table-miss', 0, [], drop, 'unknown underlay traffic: drop and count'),
  ];
}

export function hostFlows(topo: Topology, ports: HostPorts): HostFlows {
  return { integration: integrationFlows(topo, ports), underlay: underlayFlows(ports) };
}

/** The endpoint owning `ip` on the overlay, if any (what the ARP responder answers for). */
export function endpointByIp(topo: Topology, ip: string): EndpointSpec | undefined {
  return topo.endpoints.find((e) => e.ip === ip);
}
