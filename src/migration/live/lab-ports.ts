/**
 * What a controller process in a lab's `ctl` namespace composes to migrate the lab's service,
 * shared by the lab scenario (lab-scenario.ts: tests, demo, bench) and `coat migrate` in a lab
 * (lab-backend.ts): the OpenFlow controller with the overlay on every host, and the orchestrator's
 * live ports (flows, agents, planner) placed by the lab's layout.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LabState } from '../../../lab/state.js';
import type { AgentRegistry } from '../../agent/client.js';
import { Controller } from '../../controller/index.js';
import type { Logger } from '../../log.js';
import { disableTxOffload } from '../../netns/index.js';
import { parseCidr } from '../../packet/address.js';
import { endpointHostIf, hostLayout, hostNetns } from '../../vxlan/layout.js';
import { OverlayController } from '../../vxlan/overlay-controller.js';
import type { Topology } from '../../vxlan/topology.js';
import { LiveAgentPort, type ServicePlacement } from './agent-port.js';
import { LiveFlowPort } from './flow-port.js';
import { LivePlannerPort, type LivePlannerPortOptions } from './planner-port.js';

/** The slower of two hosts' underlay links, Mbit/s (the bandwidth L between them). */
export function slowerLinkMbit(topo: Topology): (a: string, b: string) => number {
  return (a, b) => Math.min(...[a, b].map((n) => topo.hosts.find((h) => h.name === n)?.underlay.mbit ?? 1000));
}

/**
 * Listens where the lab's switches look for their controller, configures every host's OVS and
 * programs the overlay, and resolves once all bridges (integration and underlay) are connected.
 */
export async function connectLabController(topo: Topology, tag: string, ctlIp: string, log: Logger): Promise<{ controller: Controller; overlay: OverlayController }> {
  const controller = new Controller({ logger: log.child({ part: 'controller' }) });
  try {
    await controller.listen(`ptcp:${topo.controller.port}:${ctlIp}`);
    const overlay = new OverlayController(controller, { topology: topo, prefix: tag, log: log.child({ part: 'overlay' }) });
    await overlay.start();
    await Promise.all(
      topo.hosts.flatMap((h) => {
        const l = hostLayout(topo, tag, h.name);
        return [controller.waitForSwitch(l.integrationDpid, 30_000), controller.waitForSwitch(l.underlayDpid, 30_000)];
      }),
    );
    return { controller, overlay };
  } catch (e) {
    await controller.close().catch(() => undefined);
    throw e;
  }
}

export interface LabPortsInput {
  state: LabState;
  topo: Topology;
  controller: Controller;
  overlay: OverlayController;
  registry: AgentRegistry;
  /** The service endpoint's name. */
  service: string;
  /** The service's namespace, state directory and command line on a host. */
  netnsOf: (host: string) => string;
  stateDirOf: (host: string) => string;
  commandOf: (host: string) => string[];
  /** The client's host and namespace (new-MAC mode flushes the neighbour entry there). */
  client?: { host: string; netns: string };
  /** The orchestrator runs the `coat-baseline` mode (LiveFlowPort `coatBaseline`). */
  coatBaseline?: boolean;
  /** A pinned plan (LivePlannerPort `force`). */
  force?: LivePlannerPortOptions['force'];
  onTopologyChange?: (t: Topology) => void;
}

export function labLivePorts(i: LabPortsInput): { flows: LiveFlowPort; agents: LiveAgentPort; planner: LivePlannerPort } {
  const tag = i.state.tag;
  const svcIndex = i.topo.endpoints.findIndex((e) => e.name === i.service);
  const flows = new LiveFlowPort({
    controller: i.controller,
    topology: i.topo,
    arp: i.overlay.arp,
    prefix: tag,
    hostPorts: (h) => i.overlay.ports.get(h),
    servicePortName: () => endpointHostIf(tag, svcIndex),
    ...(i.coatBaseline ? { coatBaseline: true } : {}),
    ...(i.onTopologyChange ? { onTopologyChange: i.onTopologyChange } : {}),
  });
  const placementOf = (host: string): ServicePlacement => {
    const h = i.state.hosts.find((x) => x.name === host);
    if (!h) throw new Error(`no host ${host} in lab ${tag}`);
    return {
      netns: i.netnsOf(host),
      hostIf: endpointHostIf(tag, svcIndex),
      bridge: h.integrationBridge,
      ovsDb: `unix:${join(h.ovsDir, 'db.sock')}`,
      prefixLength: parseCidr(i.topo.overlay.subnet).prefixLength,
      mtu: i.topo.overlay.mtu,
      stateDir: i.stateDirOf(host),
      command: i.commandOf(host),
      ...(i.client && host === i.client.host ? { clientNetns: i.client.netns } : {}),
    };
  };
  const link = slowerLinkMbit(i.topo);
  const agents = new LiveAgentPort({
    registry: i.registry,
    placementOf: (host) => placementOf(host),
    // TCP through a netdev bridge stalls on partial checksums (machine fact): the agent turns TX
    // offload off inside the namespace; the bridge end is done here, in the host's namespace.
    afterPrepareNamespace: async (host, p) => {
      await mkdir(p.stateDir!, { recursive: true });
      await disableTxOffload(p.hostIf, hostNetns(tag, host));
    },
    // Pre-copy leaves half of the slower underlay link to the service's own traffic.
    precopyRateBitsPerSecond: (a, b) => 0.5e6 * link(a, b),
  });
  const planner = new LivePlannerPort({ registry: i.registry, ...(i.force ? { force: i.force } : {}), bandwidthMbit: link });
  return { flows, agents, planner };
}
