/**
 * Brings one host's Open vSwitch to the overlay's layout over OVSDB (RFC 7047), idempotently:
 * integration and underlay bridges (datapath type, datapath id, fail_mode secure, OpenFlow 1.3),
 * the uplink, one tunnel port per peer, one port per local endpoint, the controller target. What
 * exists already is kept; a controller target is only rewritten when it differs (rewriting it
 * makes ovs-vswitchd drop and redo the OpenFlow connection).
 *
 * fail_mode secure: while the controller is unreachable the bridge forwards nothing rather than
 * falling back to NORMAL (ovs-vswitchd.conf.db(5), Bridge fail_mode), so only coat's flows ever
 * forward.
 *
 * This is the I/O edge of the overlay; the flows come from `policy.ts`.
 */
import { CoatError } from '../errors.js';
import type { Logger } from '../log.js';
import type { VSwitch } from '../ovsdb/vswitch.js';
import type { HostPorts } from './policy.js';
import type { HostLayout } from './layout.js';
import type { Topology } from './topology.js';

export class HostConfigError extends CoatError {
  constructor(message: string) {
    super('OVERLAY_HOST_CONFIG', message);
  }
}

export interface HostConfigOptions {
  /** OpenFlow connection method OVS is given, e.g. `tcp:172.31.0.1:6653`. */
  controllerTarget: string;
  /** How long to wait for ovs-vswitchd to give each port its number. */
  portTimeoutMs?: number;
  log?: Logger;
}

export interface HostConfigResult {
  ports: HostPorts;
  /** Interfaces that did not get an OpenFlow port, with the reason (e.g. an endpoint not created yet). */
  missing: Record<string, string>;
}

export async function configureHost(vs: VSwitch, topo: Topology, layout: HostLayout, opts: HostConfigOptions): Promise<HostConfigResult> {
  const bridgeOpts = { datapathType: topo.datapath, failMode: 'secure' as const, protocols: ['OpenFlow13'], mayExist: true };
  const ext = { 'coat-host': layout.host };
  await vs.addBridge(layout.integrationBridge, { ...bridgeOpts, datapathId: layout.integrationDpid, externalIds: ext });
  await vs.addBridge(layout.underlayBridge, { ...bridgeOpts, datapathId: layout.underlayDpid, externalIds: ext });
  // A bridge whose datapath cannot be opened (datapath "system" without the OVS kernel module)
  // gets no ports at all: find out now, from its own internal interface, and say why.
  for (const br of [layout.integrationBridge, layout.underlayBridge]) {
    try {
      await vs.waitForInterface(br, opts.portTimeoutMs ?? 5000);
    } catch (e) {
      throw new HostConfigError(`${layout.host}: bridge ${br} (datapath_type ${topo.datapath}) is not working: ${(e as Error).message}`);
    }
  }
  await vs.addPort(layout.underlayBridge, layout.uplink, { type: 'system', ofportRequest: layout.uplinkOfport, mayExist: true });
  // The underlay IP lives on the underlay bridge's internal port: its MTU is the underlay's.
  if (topo.underlay.mtu !== undefined) await vs.setInterfaceMtu(layout.underlayBridge, topo.underlay.mtu);
  const selfIp = topo.hosts[layout.index]!.underlay.ip;
  const added = new Set<string>();
  for (const t of Object.values(layout.tunnels)) {
    if (added.has(t.port)) continue; // kernel mode: one device for every peer
    added.add(t.port);
    if (topo.tunnel === 'ovs') {
      // RFC 7348 §5: the VNI rides in every packet (options:key); local_ip pins the source VTEP.
      await vs.addVxlanPort(layout.integrationBridge, t.port, { remoteIp: t.remoteIp, key: topo.overlay.vni, localIp: selfIp, ofportRequest: t.ofport, mayExist: true });
    } else {
      // Kernel VXLAN devices (made by the lab or by the host's admin) attach as ordinary ports.
      await vs.addPort(layout.integrationBridge, t.port, { type: 'system', ofportRequest: t.ofport, mayExist: true });
    }
  }
  for (const e of Object.values(layout.endpoints)) {
    await vs.addPort(layout.integrationBridge, e.port, { type: 'system', ofportRequest: e.ofport, mayExist: true });
  }
  for (const br of [layout.integrationBridge, layout.underlayBridge]) {
    const current = await vs.controllers(br);
    if (current.length !== 1 || current[0]!.target !== opts.controllerTarget) {
      await vs.setControllers(br, [{ target: opts.controllerTarget, connectionMode: 'out-of-band' }], { protocols: ['OpenFlow13'] });
    }
  }
  // The ports asked for get the numbers asked for (ofport_request); read them back to be sure.
  const missing: Record<string, string> = {};
  const ofport = async (name: string, requested: number): Promise<number> => {
    try {
      return (await vs.waitForInterface(name, opts.portTimeoutMs ?? 5000)).ofport;
    } catch (e) {
      missing[name] = (e as Error).message;
      opts.log?.warn({ host: layout.host, port: name, err: (e as Error).message }, 'port has no ofport yet');
      return requested;
    }
  };
  const ports: HostPorts = { host: layout.host, endpointPorts: {}, tunnelPorts: {}, uplinkPort: await ofport(layout.uplink, layout.uplinkOfport) };
  for (const [peer, t] of Object.entries(layout.tunnels)) ports.tunnelPorts[peer] = await ofport(t.port, t.ofport);
  for (const [name, e] of Object.entries(layout.endpoints)) ports.endpointPorts[name] = await ofport(e.port, e.ofport);
  return { ports, missing };
}
