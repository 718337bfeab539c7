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
import type { PacketIn } from '../openflow/index.js';
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
}

export class OverlayController {
  readonly layouts: HostLayout[];
  readonly arp: ArpResponder;
  readonly sessions = new Map<string, VSwitch>();
  readonly ports = new Map<string, HostPorts>();
  private readonly reconciled = new Map<bigint, number>();
  private readonly errors: string[] = [];
  private packetIns = 0;
  private readonly log: Logger;
  private statusFile: string | undefined;
  private statusDirty = false;
  private statusWriting: Promise<void> = Promise.resolve();

  constructor(
    readonly controller: Controller,
    private readonly opts: OverlayControllerOptions,
  ) {
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
    const controllerTarget = this.opts.topology.controller.openflow;
    await Promise.all(
      this.layouts.map(async (layout) => {
        const host = this.opts.topology.hosts[layout.index]!;
        let ports: HostPorts;
        if (this.opts.ovsdb !== false) {
          if (!host.ovsdb || !controllerTarget) throw new Error(`host ${host.name}: no ovsdb remote or controller.openflow in the topology`);
          const vs = await VSwitch.connect(host.ovsdb, { reconnect: true });
          this.sessions.set(host.name, vs);
          const r = await configureHost(vs, this.opts.topology, layout, { controllerTarget, log: this.log });
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
        await this.program(layout);
      }),
    );
  }

  /** (Re)computes and registers the flows of one host's two bridges. */
  async program(layout: HostLayout): Promise<void> {
    const ports = this.ports.get(layout.host);
    if (!ports) return;
    const flows = hostFlows(this.opts.topology, ports);
    for (const [dpid, list] of [[layout.integrationDpid, flows.integration], [layout.underlayDpid, flows.underlay]] as const) {
      const result = await this.controller.setDesiredFlows(dpid, overlayFlowMods(list));
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
    return { pid: process.pid, updatedAt: new Date().toISOString(), switches, hostsConfigured: [...this.ports.keys()], arp: { ...this.arp.counters }, packetIns: this.packetIns, errors: [...this.errors] };
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
