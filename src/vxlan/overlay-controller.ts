/**
 * The overlay, run: composes the OpenFlow `Controller` (src/controller), one OVSDB session per
 * host (src/ovsdb), the pure policy and the ARP responder. On start it configures every host's
 * OVS (`configureHost`), registers each bridge's desired flows with the controller (which
 * reconciles them now and on every reconnect), and answers ARP packet-ins with packet-outs.
 *
 * It holds no sockets of its own and no timers except the optional status-file writer, so the
 * `coat controller` command (and, later, the migration orchestrator) compose it with other parts.
 */
import { rename, writeFile } from 'node:fs/promises';
import type { Controller, SwitchConnection } from '../controller/index.js';
import { dpidString, logger as makeLogger, type Logger } from '../log.js';
import type { FlowMod, PacketIn } from '../openflow/index.js';
import { VSwitch } from '../ovsdb/vswitch.js';
import { ArpResponder } from './arp-responder.js';
import { bridgeOfDpid, overlayLayout, type HostLayout } from './layout.js';
import { configureHost } from './ovsdb-host.js';
import { hostFlows, overlayFlowMods, type HostPorts } from './policy.js';
import type { Topology } from './topology.js';

export interface OverlayControllerOptions {
  topology: Topology;
  /** Name prefix of the overlay's OVS objects (a lab's tag; `coat` on real hosts). */
  prefix: string;
  /** Configure hosts over OVSDB (default true; false when the bridges are made by someone else). */
  ovsdb?: boolean;
  /** Key, certificate and CA for `ssl:` OVSDB remotes (OVS's PKI: ovs-pki, `ovs-vsctl set-ssl`). */
  tls?: { key: Buffer; cert: Buffer; ca: Buffer };
  log?: Logger;
}

export interface SwitchStatus {
  dpid: string;
  host: string;
  bridge: 'integration' | 'underlay';
  flows: number;
  reconciled: boolean;
}

export interface OverlayStatus {
  pid: number;
  updatedAt: string;
  switches: SwitchStatus[];
  hostsConfigured: string[];
  arp: ArpResponder['counters'];
  packetIns: number;
  errors: string[];
  /** The agents the controller's registry knows (when `coat controller` runs with --nats). */
  agents?: AgentStatus[];
}

export interface AgentStatus {
  host: string;
  alive: boolean;
  /** Image stream listener, `ADDR:PORT`. */
  stream: string | null;
}

export class OverlayController {
  layouts: HostLayout[];
  /** The topology as it is now (endpoints move with migrations). */
  topology: Topology;
  readonly arp: ArpResponder;
  readonly sessions = new Map<string, VSwitch>();
  readonly ports = new Map<string, HostPorts>();
  private readonly reconciled = new Map<bigint, number>();
  /** Flows other parts keep on a bridge next to the overlay's (by owner, then dpid). */
  private readonly extra = new Map<string, Map<bigint, FlowMod[]>>();
  private readonly errors: string[] = [];
  private packetIns = 0;
  private readonly log: Logger;
  private statusFile: string | undefined;
  private statusDirty = false;
  private statusWriting: Promise<void> = Promise.resolve();
  private agentsSource: (() => AgentStatus[]) | undefined;

  constructor(
    readonly controller: Controller,
    private readonly opts: OverlayControllerOptions,
  ) {
    this.topology = opts.topology;
    this.layouts = overlayLayout(opts.topology, opts.prefix);
    this.arp = ArpResponder.fromTopology(opts.topology);
    this.log = opts.log ?? makeLogger('overlay');
    controller.on('packet_in', (sw, msg) => this.onPacketIn(sw, msg));
    controller.on('switch_up', (sw, info) => {
      const b = bridgeOfDpid(this.layouts, sw.dpid);
      if (!b) {
        this.log.warn({ dpid: sw.dpidHex, event: 'unknown_switch' }, 'a switch that is not in the topology connected; leaving it alone');
        return;
      }
      if (info.resync) this.reconciled.set(sw.dpid, Date.now());
      this.log.info({ dpid: sw.dpidHex, host: b.layout.host, bridge: b.bridge, resync: info.resync }, 'overlay switch up');
      this.touch();
    });
    controller.on('switch_down', (sw) => {
      this.reconciled.delete(sw.dpid);
      this.touch();
    });
    controller.on('resync_failed', (sw, err) => this.error(`${sw.dpidHex}: reconcile failed: ${err.message}`));
  }

  /** Configures every host and registers its bridges' flows. Hosts are done in parallel. */
  async start(): Promise<void> {
    await Promise.all(this.layouts.map((layout) => this.configure(layout).then(() => this.program(layout))));
  }

  /** Brings one host's OVS to its layout (over OVSDB unless disabled) and records its port numbers. */
  private async configure(layout: HostLayout): Promise<void> {
    const host = this.topology.hosts[layout.index]!;
    const controllerTarget = this.topology.controller.openflow;
    let ports: HostPorts;
    if (this.opts.ovsdb !== false) {
      if (!host.ovsdb || !controllerTarget) throw new Error(`host ${host.name}: no ovsdb remote or controller.openflow in the topology`);
      let vs = this.sessions.get(host.name);
      if (!vs) {
        vs = await VSwitch.connect(host.ovsdb, {
          reconnect: true,
          // OVS's SSL authenticates peers by the CA alone (ovs-pki certificates name no host), so
          // the host name check of Node's TLS is replaced by the CA check it already does.
          ...(this.opts.tls ? { tls: { ...this.opts.tls, checkServerIdentity: () => undefined } } : {}),
        });
        this.sessions.set(host.name, vs);
      }
      const r = await configureHost(vs, this.topology, layout, { controllerTarget, log: this.log });
      for (const [port, why] of Object.entries(r.missing)) this.error(`${host.name}: ${port}: ${why}`);
      ports = r.ports;
    } else {
      ports = {
        host: layout.host,
        endpointPorts: Object.fromEntries(Object.entries(layout.endpoints).map(([k, v]) => [k, v.ofport])),
        tunnelPorts: Object.fromEntries(Object.entries(layout.tunnels).map(([k, v]) => [k, v.ofport])),
        uplinkPort: layout.uplinkOfport,
      };
    }
    this.ports.set(host.name, ports);
    this.touch();
  }

  /**
   * Keeps `flows` (coat flow-mods, e.g. a migration's hold or redirect bands) on bridge `dpid`
   * next to the overlay's own; the controller reconciles the union. An empty list removes them.
   */
  async setExtraFlows(owner: string, dpid: bigint, flows: readonly FlowMod[]): Promise<void> {
    let byDpid = this.extra.get(owner);
    if (!byDpid) this.extra.set(owner, (byDpid = new Map()));
    if (flows.length === 0) byDpid.delete(dpid);
    else byDpid.set(dpid, [...flows]);
    const b = bridgeOfDpid(this.layouts, dpid);
    if (b) await this.program(b.layout);
  }

  /**
   * The endpoint now lives on `host` (after a migration), optionally with a new MAC: the ARP table
   * is updated, the new host's OVS gets the endpoint's port (its veth must exist there), and every
   * bridge is reprogrammed. The source host's port is left to whoever removes the old namespace.
   */
  async moveEndpoint(name: string, host: string, mac?: string): Promise<void> {
    const e = this.topology.endpoints.find((x) => x.name === name);
    if (!e) throw new Error(`no endpoint named ${name}`);
    if (!this.topology.hosts.some((h) => h.name === host)) throw new Error(`no host named ${host}`);
    this.topology = { ...this.topology, endpoints: this.topology.endpoints.map((x) => (x.name === name ? { ...x, host, ...(mac ? { mac } : {}) } : x)) };
    if (mac) this.arp.set(e.ip, mac);
    this.layouts = overlayLayout(this.topology, this.opts.prefix);
    const target = this.layouts.find((l) => l.host === host)!;
    await this.configure(target);
    await Promise.all(this.layouts.map((l) => this.program(l)));
  }

  /** (Re)computes and registers the flows of one host's two bridges. */
  async program(layout: HostLayout): Promise<void> {
    const ports = this.ports.get(layout.host);
    if (!ports) return;
    const flows = hostFlows(this.topology, ports);
    for (const [dpid, list] of [[layout.integrationDpid, flows.integration], [layout.underlayDpid, flows.underlay]] as const) {
      const extra = [...this.extra.values()].flatMap((m) => m.get(dpid) ?? []);
      const result = await this.controller.setDesiredFlows(dpid, [...overlayFlowMods(list), ...extra]);
      if (result) {
        this.reconciled.set(dpid, Date.now());
        this.log.info({ dpid: dpidString(dpid), host: layout.host, ...result }, 'overlay flows reconciled');
      }
    }
    this.touch();
  }

  /** ARP requests for overlay endpoints: answer from the table, out of the port they came in on. */
  private onPacketIn(sw: SwitchConnection, msg: PacketIn): void {
    this.packetIns++;
    const inPortField = msg.match.find((m) => m.field === 'in_port');
    const inPort = inPortField && inPortField.field === 'in_port' ? inPortField.value : undefined;
    const d = this.arp.answer(msg.data);
    if (d.kind === 'reply' && inPort !== undefined) {
      sw.packetOut(d.frame, [{ type: 'output', port: inPort, maxLen: 0 }]);
      this.log.debug({ dpid: sw.dpidHex, event: 'arp_reply', ip: d.targetIp, mac: d.answerMac, asker: d.askerIp, inPort }, 'answered ARP');
    } else if (d.kind === 'ignore') {
      this.log.debug({ dpid: sw.dpidHex, event: 'packet_in_ignored', reason: d.reason, detail: d.detail }, 'packet-in not answered');
    }
    this.touch();
  }

  private error(msg: string): void {
    this.errors.push(msg);
    if (this.errors.length > 50) this.errors.shift();
    this.log.error({ event: 'overlay_error' }, msg);
    this.touch();
  }

  status(): OverlayStatus {
    const switches: SwitchStatus[] = [];
    for (const l of this.layouts) {
      for (const [bridge, dpid] of [['integration', l.integrationDpid], ['underlay', l.underlayDpid]] as const) {
        if (!this.controller.switches.has(dpid)) continue;
        switches.push({ dpid: dpidString(dpid), host: l.host, bridge, flows: this.controller.desiredFlows(dpid)?.length ?? 0, reconciled: this.reconciled.has(dpid) });
      }
    }
    const st: OverlayStatus = { pid: process.pid, updatedAt: new Date().toISOString(), switches, hostsConfigured: [...this.ports.keys()], arp: { ...this.arp.counters }, packetIns: this.packetIns, errors: [...this.errors] };
    if (this.agentsSource) st.agents = this.agentsSource();
    return st;
  }

  /** Adds the agents' liveness to the status (the composition owns the registry); call `statusChanged` when it changes. */
  reportAgents(source: () => AgentStatus[]): void {
    this.agentsSource = source;
    this.touch();
  }

  /** Something the status shows changed outside the overlay (e.g. an agent registered). */
  statusChanged(): void {
    this.touch();
  }

  /** Keeps `file` holding the current status (JSON, replaced atomically on every change). */
  writeStatusTo(file: string): void {
    this.statusFile = file;
    this.touch();
  }

  private touch(): void {
    if (!this.statusFile || this.statusDirty) return;
    this.statusDirty = true;
    const file = this.statusFile;
    this.statusWriting = this.statusWriting.then(async () => {
      this.statusDirty = false;
      await writeFile(file + '.tmp', JSON.stringify(this.status(), null, 2) + '\n');
      await rename(file + '.tmp', file);
    }).catch((e: Error) => this.log.warn({ err: e.message }, 'cannot write status file'));
  }

  async close(): Promise<void> {
    for (const vs of this.sessions.values()) vs.close();
    this.sessions.clear();
    await this.statusWriting;
  }
}
