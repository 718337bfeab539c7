/**
 * The names and numbers of the overlay's OVS objects on every host, derived from the topology and
 * a prefix (a lab's tag, or `coat` on real hosts): bridges, their datapath ids, the uplink, one
 * tunnel port per peer host, one port per local endpoint, with the OpenFlow port numbers coat asks
 * for (Interface.ofport_request) so that they are stable across restarts. Pure.
 *
 * Datapath ids encode the host index and the bridge, so a connecting switch is identified by its
 * dpid alone: 0xC0A7_0000_00HH_000B (HH host index + 1, B 1 integration, 2 underlay).
 */
import { CoatError } from '../errors.js';
import type { Topology } from './topology.js';

export const DPID_BASE = 0xc0a7n << 48n;

export interface HostLayout {
  host: string;
  index: number;
  integrationBridge: string;
  underlayBridge: string;
  integrationDpid: bigint;
  underlayDpid: bigint;
  /** Linux device of the underlay, a port of the underlay bridge. */
  uplink: string;
  uplinkOfport: number;
  /** Tunnel port name and requested ofport, by peer host. */
  tunnels: Record<string, { port: string; ofport: number; remoteIp: string }>;
  /** Endpoint port (host end of its veth) and requested ofport, by endpoint name. */
  endpoints: Record<string, { port: string; ofport: number }>;
}

export class LayoutError extends CoatError {
  constructor(message: string) {
    super('LAYOUT_INVALID', message);
  }
}

/** Ofport ranges: endpoints from 1, tunnels from 1000 (room for many endpoints per host). */
export const ENDPOINT_OFPORT_BASE = 1;
export const TUNNEL_OFPORT_BASE = 1000;

/**
 * The host end of endpoint number `index`'s veth (its port on the integration bridge). By index,
 * not by name, so that it always fits IFNAMSIZ and never collides; a migration that recreates the
 * endpoint on another host passes this name to the agent (`hostIf`).
 */
export function endpointHostIf(prefix: string, index: number): string {
  return `${prefix}-e${index}`;
}

/** The namespace of an endpoint (`e-` keeps it apart from hosts' `h-` namespaces). */
export function endpointNetns(prefix: string, endpoint: string): string {
  return `${prefix}-e-${endpoint}`;
}

/** The one kernel VXLAN device of a host when `tunnel: kernel`. */
export function kernelVxlanDevice(prefix: string): string {
  return `${prefix}-vxk`;
}

/** The namespace of a lab host. */
export function hostNetns(prefix: string, host: string): string {
  return `${prefix}-h-${host}`;
}

export function hostLayout(topo: Topology, prefix: string, hostName: string): HostLayout {
  const index = topo.hosts.findIndex((h) => h.name === hostName);
  const host = topo.hosts[index];
  if (!host) throw new LayoutError(`no host named ${hostName}`);
  if (!/^[A-Za-z0-9_.-]{1,10}$/.test(prefix)) throw new LayoutError(`prefix ${JSON.stringify(prefix)} must be 1-10 characters of [A-Za-z0-9_.-]`);
  const tunnels: HostLayout['tunnels'] = {};
  for (const [j, peer] of topo.hosts.entries()) {
    if (peer.name === hostName) continue;
    tunnels[peer.name] =
      topo.tunnel === 'ovs'
        ? { port: `${prefix}-vx${j}`, ofport: TUNNEL_OFPORT_BASE + j, remoteIp: peer.underlay.ip }
        : // Linux allows one VXLAN device per VNI and UDP port in a namespace (a second one is
          // EEXIST, measured), so with kernel tunnels every peer is reached through the same
          // device; its FDB (static, learning off) picks the remote VTEP by destination MAC.
          { port: kernelVxlanDevice(prefix), ofport: TUNNEL_OFPORT_BASE, remoteIp: peer.underlay.ip };
  }
  const endpoints: HostLayout['endpoints'] = {};
  for (const [k, e] of topo.endpoints.entries()) {
    if (e.host === hostName) endpoints[e.name] = { port: endpointHostIf(prefix, k), ofport: ENDPOINT_OFPORT_BASE + k };
  }
  const hh = BigInt(index + 1) << 16n;
  return {
    host: hostName,
    index,
    integrationBridge: `${prefix}-int`,
    underlayBridge: `${prefix}-phy`,
    integrationDpid: DPID_BASE | hh | 1n,
    underlayDpid: DPID_BASE | hh | 2n,
    uplink: host.uplink ?? `${prefix}-u${index}`,
    uplinkOfport: 1,
    tunnels,
    endpoints,
  };
}

export function overlayLayout(topo: Topology, prefix: string): HostLayout[] {
  return topo.hosts.map((h) => hostLayout(topo, prefix, h.name));
}

/** Which host and bridge a dpid belongs to. */
export function bridgeOfDpid(layouts: readonly HostLayout[], dpid: bigint): { layout: HostLayout; bridge: 'integration' | 'underlay' } | undefined {
  for (const l of layouts) {
    if (l.integrationDpid === dpid) return { layout: l, bridge: 'integration' };
    if (l.underlayDpid === dpid) return { layout: l, bridge: 'underlay' };
  }
  return undefined;
}
