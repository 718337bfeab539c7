/**
 * The orchestrator's FlowPort (ports.ts) on the real controller: the pure migration policy
 * (src/vxlan/migration-flows.ts) says which flows every integration bridge must hold in each
 * state of a migration; this module sends the difference to each switch (one ONF EXT-230 bundle
 * per bridge, then a barrier), registers the new state as the bridge's desired flows (so a switch
 * that reconnects mid-migration is reconciled to it, hold flows included), catches the hold flows'
 * packet-ins and sends packet-outs.
 *
 * Bridges are addressed by datapath id through the overlay layout (layout.ts: one integration
 * bridge per host). Port numbers come from the overlay controller's view of each host, except the
 * service's own port on the source and the destination, which are looked up by name on the switch
 * (OFPMP_PORT_DESC, OpenFlow 1.3.5 §7.3.5.7): the destination's port is made by the agent during the
 * migration, so only the switch knows its number.
 */
import type { Controller, PreparedBundle, SwitchConnection } from '../../controller/index.js';
import { OfpErrorReply } from '../../controller/connection.js';
import { dpidString, logger as rootLogger, type Logger } from '../../log.js';
import type { FlowMod, PacketIn } from '../../openflow/index.js';
import { OFPFC, OFPP } from '../../openflow/constants.js';
import { hostLayout, type HostLayout } from '../../vxlan/layout.js';
import type { HostPorts } from '../../vxlan/policy.js';
import type { Topology } from '../../vxlan/topology.js';
import { decodeFrame } from '../../packet/frame.js';
import {
  AFTER,
  BEFORE,
  announcement,
  deliveryPort,
  isHoldCookie,
  migrationFlowMods,
  topologyWith,
  transitionFlowMods,
  type MigrationFlowInput,
  type MigrationFlowState,
} from '../../vxlan/migration-flows.js';
import { LiveMigrationError } from './errors.js';
import type { FlowPort, HeldPacketIn, MigrationRef, Side, SwitchResult } from '../ports.js';

export interface LiveFlowPortOptions {
  controller: Controller;
  /** The topology as it is now (where every endpoint runs); updated here after each migration. */
  topology: Topology;
  /** Name prefix of the overlay's OVS objects (the lab's tag). */
  prefix: string;
  /** Live port numbers per host (the overlay controller's `ports`); read when a migration starts. */
  hostPorts: (host: string) => HostPorts | undefined;
  /** The service's port name on a host's integration bridge (the layout's endpoint port name). */
  servicePortName: (host: string, service: string) => string;
  /** Time limit for one bridge's bundle + barrier (default 5 s). */
  timeoutMs?: number;
  log?: Logger;
  /** Called when a migration's flows reach their final state, with the topology after it. */
  onTopologyChange?: (topology: Topology) => void;
  /** The controller's ARP responder: in new-MAC mode it answers with the new MAC from the announce on. */
  arp?: { set(ip: string, mac: string): void };
  /**
   * COAT's published procedure (the orchestrator's `coat-baseline` mode): flow-mods one by one
   * confirmed by a barrier, deletes before adds, no bundle; and the switch to the destination is
   * the migration's last flow change (that mode has no hold to remove after it), so it goes
   * straight to the overlay's own flows for the moved service and records the service's new host
   * (a rollback to the source records the old one again). Default false: one atomic bundle per
   * bridge, and the cleanup with the hold's removal.
   */
  coatBaseline?: boolean;
  /**
   * How long an operation that must complete (every undo, and everything from the point of no
   * return on) waits for a disconnected bridge to connect again (default 20 s; OVS retries with a
   * back-off of at most 8 s, ovs-vswitchd.conf.db(5) Controller max_backoff). Operations before the
   * point of no return do not wait: inside the client's downtime a rollback beats a wait of seconds.
   */
  reconnectWaitMs?: number;
}

/** Whether an operation waits for a bridge that is reconnecting (see `reconnectWaitMs`). */
type BridgeWait = 'fail-fast' | 'wait';

interface Tracked {
  input: MigrationFlowInput;
  state: MigrationFlowState;
  /** Flow-mods each bridge holds now, by host (what the next transition diffs against). */
  current: Record<string, FlowMod[]>;
  /** Serialises this migration's flow changes: one state change at a time. */
  chain: Promise<unknown>;
}

export class LiveFlowPort implements FlowPort {
  /**
   * Where the endpoints run now, in a holder object: wrappers made with Object.create (the lab's
   * fault injection) then share the one placement instead of shadowing it with their own field.
   */
  private readonly placement: { topology: Topology };
  private readonly tracked = new Map<string, Tracked>();
  private readonly log: Logger;

  constructor(private readonly opts: LiveFlowPortOptions) {
    this.placement = { topology: opts.topology };
    this.log = opts.log ?? rootLogger('migration-flows');
  }

  /** The topology after the migrations this port finished. */
  get currentTopology(): Topology {
    return this.placement.topology;
  }

  private layout(host: string): HostLayout {
    return hostLayout(this.placement.topology, this.opts.prefix, host);
  }

  private sw(host: string): SwitchConnection {
    return this.opts.controller.switch(this.layout(host).integrationDpid);
  }

  /**
   * The host's integration bridge; with `wait`, one that is away is waited for (bounded). The
   * controller reconciles a reconnecting bridge to its desired flows (the last state this port
   * registered for it) before it reports it up, so the caller diffs against what the bridge holds.
   */
  private async bridge(host: string, wait: BridgeWait, signal: AbortSignal): Promise<SwitchConnection> {
    const dpid = this.layout(host).integrationDpid;
    const sw = this.opts.controller.switches.get(dpid);
    if ((sw && !sw.closed) || wait === 'fail-fast') return this.opts.controller.switch(dpid);
    this.log.warn({ host, dpid: dpidString(dpid), event: 'bridge-away' }, 'bridge not connected: waiting for it to reconnect');
    const limit = this.opts.reconnectWaitMs ?? 20_000;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([this.opts.controller.waitForSwitch(dpid, limit), aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort!);
    }
  }

  /** The service's port on `host`, by name, from the switch itself. */
  private async servicePort(host: string, service: string): Promise<number> {
    const name = this.opts.servicePortName(host, service);
    const bodies = await this.sw(host).multipart({ type: 'port_desc' }, { timeoutMs: this.opts.timeoutMs ?? 5000 });
    const port = bodies.flatMap((b) => b.ports).find((p) => p.name === name);
    if (!port || port.portNo >= OFPP.max) throw new LiveMigrationError('LIVE_NO_PORT', `${host}: no port ${name} on ${this.layout(host).integrationBridge} for ${service}`, { host, port: name });
    return port.portNo;
  }

  /** Starts tracking a migration (its flows as the overlay has them now, BEFORE). */
  private async track(m: MigrationRef): Promise<Tracked> {
    const have = this.tracked.get(m.migrationId);
    if (have) return have;
    const ports: Record<string, HostPorts> = {};
    for (const h of this.placement.topology.hosts) {
      const p = this.opts.hostPorts(h.name);
      if (!p) throw new LiveMigrationError('LIVE_NO_PORT', `no port numbers known for host ${h.name} (has its bridge connected?)`, { host: h.name });
      ports[h.name] = { ...p, endpointPorts: { ...p.endpointPorts } };
    }
    const svc = m.service.name;
    for (const host of [m.source, m.destination]) {
      // The source port exists; the destination port exists once prepareNamespace ran.
      ports[host]!.endpointPorts[svc] = await this.servicePort(host, svc);
    }
    const input: MigrationFlowInput = { topology: this.placement.topology, service: svc, source: m.source, destination: m.destination, ports, ...(m.newMac !== undefined ? { newMac: m.newMac } : {}) };
    const current = migrationFlowMods(input, BEFORE);
    const t: Tracked = { input, state: BEFORE, current, chain: Promise.resolve() };
    this.tracked.set(m.migrationId, t);
    return t;
  }

  /**
   * Moves every integration bridge to `next`: the flow-mods of the difference in one bundle per
   * bridge, prepared on all bridges in parallel and then committed together, a barrier behind each
   * commit, then the new flows registered as desired. Returns the time from the first commit
   * written to the last barrier reply.
   */
  private async moveTo(t: Tracked, m: MigrationRef, change: Partial<MigrationFlowState>, wait: BridgeWait, signal: AbortSignal): Promise<SwitchResult> {
    const run = async (): Promise<SwitchResult> => {
      const next: MigrationFlowState = { ...t.state, ...change };
      const target = migrationFlowMods(t.input, next);
      const jobs = this.placement.topology.hosts
        .map((h) => {
          const mods = transitionFlowMods(t.current[h.name]!, target[h.name]!);
          return { host: h.name, mods: this.opts.coatBaseline ? [...mods.filter((x) => x.command !== OFPFC.add), ...mods.filter((x) => x.command === OFPFC.add)] : mods };
        })
        .filter((j) => j.mods.length > 0);
      if (signal.aborted) throw signal.reason;
      // The switch time is the bench's: from the first commit written to the last confirmation
      // (the barrier behind each commit). Opening and filling the bundles changes no forwarding.
      let firstCommit = Infinity;
      let lastConfirm = -Infinity;
      const onCommit = (at: number) => (firstCommit = Math.min(firstCommit, at));
      const failure = (failed: { host: string; reason: unknown }[], changed: string[]) => {
        const why = failed.map((x) => `${x.host}: ${(x.reason as Error)?.message ?? String(x.reason)}`).join('; ');
        this.log.error({ migrationId: m.migrationId, event: 'flows-failed', state: next, failed: failed.map((x) => x.host), changed }, `migration flows not changed on ${failed.length} bridge(s)`);
        return new LiveMigrationError('LIVE_FLOWS', `flows for ${JSON.stringify(next)} not applied on ${why}${changed.length === 0 ? ' (no bridge changed)' : ''}`, { migrationId: m.migrationId }, { cause: failed[0]!.reason });
      };
      let commits: Array<() => Promise<unknown>>;
      if (this.opts.coatBaseline) {
        commits = jobs.map((j) => async () => {
          const sw = await this.bridge(j.host, wait, signal);
          onCommit(performance.now());
          for (const fm of j.mods) await sw.sendConfirmed([fm], { timeoutMs: this.opts.timeoutMs ?? 5000 });
        });
      } else {
        // Two phases: every bridge's bundle opened, filled and checked, then every commit written
        // in the same tick. So the flip is as near to one instant on all bridges as one controller
        // can make it, the switch time is the switches' commit work and not also the skew of their
        // preparations, and a bridge that fails before its commit leaves every bridge unchanged.
        const prepared = await Promise.allSettled(
          jobs.map(async (j) => (await this.bridge(j.host, wait, signal)).prepareBundle(j.mods, { fallback: 'plain', confirm: true, onCommit })),
        );
        const unprepared = jobs.map((j, i) => ({ host: j.host, r: prepared[i]! })).filter((x) => x.r.status === 'rejected');
        if (unprepared.length > 0 || signal.aborted) {
          await Promise.all(prepared.map((r) => (r.status === 'fulfilled' ? r.value.discard() : undefined)));
          if (unprepared.length === 0) throw signal.reason;
          throw failure(unprepared.map((x) => ({ host: x.host, reason: (x.r as PromiseRejectedResult).reason })), []);
        }
        commits = prepared.map((r) => () => (r as PromiseFulfilledResult<PreparedBundle>).value.commit());
      }
      // Every bridge is tried and each one's progress recorded on its own: when one fails (e.g. it
      // disconnected), the others did change, and the undo must diff against what each holds.
      const results = await Promise.allSettled(
        jobs.map(async (j, i) => {
          await commits[i]!();
          lastConfirm = Math.max(lastConfirm, performance.now());
          t.current[j.host] = target[j.host]!;
        }),
      );
      const switchMs = Number.isFinite(firstCommit) && Number.isFinite(lastConfirm) ? Math.max(0, lastConfirm - firstCommit) : 0;
      // Desired flows: a switch reconnecting mid-migration is reconciled to what this port last
      // applied to it. Recorded only: the switch confirmed exactly these, and a reconcile now would
      // dump its flows, one more round trip per bridge while the client's packets are held and
      // before the dump can start.
      const done = jobs.filter((_, i) => results[i]!.status === 'fulfilled');
      for (const j of done) this.opts.controller.recordDesiredFlows(this.layout(j.host).integrationDpid, target[j.host]!);
      const failed = jobs.map((j, i) => ({ host: j.host, r: results[i]! })).filter((x) => x.r.status === 'rejected');
      if (failed.length > 0) {
        throw failure(failed.map((x) => ({ host: x.host, reason: (x.r as PromiseRejectedResult).reason })), done.map((j) => j.host));
      }
      t.state = next;
      this.log.info({ migrationId: m.migrationId, event: 'flows', state: next, bridges: jobs.length, flowMods: jobs.reduce((n, j) => n + j.mods.length, 0), ms: +switchMs.toFixed(3) }, 'migration flows changed');
      return { switchMs, bridges: jobs.length };
    };
    const p = t.chain.then(run, run);
    t.chain = p.catch(() => undefined);
    return p;
  }

  async stageDestination(m: MigrationRef, signal: AbortSignal): Promise<void> {
    const t = await this.track(m);
    await this.moveTo(t, m, { staged: true }, 'fail-fast', signal);
  }

  async unstageDestination(m: MigrationRef, signal: AbortSignal): Promise<void> {
    const t = this.tracked.get(m.migrationId);
    if (!t) return; // never staged (or already forgotten): nothing to undo
    await this.moveTo(t, m, { staged: false }, 'wait', signal);
    if (t.state.live === 'source' && !t.state.hold) this.tracked.delete(m.migrationId);
  }

  async holdAndSwitch(m: MigrationRef, signal: AbortSignal): Promise<SwitchResult> {
    // One state change, so one bundle per bridge: the hold band and the flipped priorities land
    // together (the diff of the two states), and no bridge ever forwards to a destination that
    // does not run yet.
    return this.moveTo(await this.track(m), m, { hold: true, live: 'destination' }, 'fail-fast', signal);
  }

  /**
   * Removes the hold. When the service is live at the destination this is also the cleanup: the
   * source's staged flows go with it, leaving the overlay's own flows for the moved service.
   */
  async removeHold(m: MigrationRef, signal: AbortSignal): Promise<void> {
    const t = this.tracked.get(m.migrationId);
    if (!t) return;
    if (t.state.live === 'destination') {
      await this.moveTo(t, m, AFTER, 'wait', signal);
      this.moved(topologyWith(this.placement.topology, m.service.name, m.destination, m.newMac));
      // Kept (with the input it had): stragglers are replayed to the destination after this.
    } else {
      await this.moveTo(t, m, { hold: false }, 'wait', signal);
    }
  }

  async switchTo(m: MigrationRef, side: Side, signal: AbortSignal): Promise<SwitchResult> {
    const t = this.tracked.get(m.migrationId);
    if (!t) {
      if (side === 'source') return { switchMs: 0, bridges: 0 }; // rollback of a switch never made
      throw new LiveMigrationError('LIVE_NOT_STAGED', `migration ${m.migrationId}: switch to the destination before it was staged`, { migrationId: m.migrationId });
    }
    // Forward (inside the downtime) fails fast; back (rollback) must complete.
    if (!this.opts.coatBaseline) return this.moveTo(t, m, { live: side }, side === 'destination' ? 'fail-fast' : 'wait', signal);
    if (side === 'destination') {
      const r = await this.moveTo(t, m, AFTER, 'fail-fast', signal);
      this.moved(topologyWith(t.input.topology, m.service.name, m.destination, m.newMac));
      return r;
    }
    const r = await this.moveTo(t, m, BEFORE, 'wait', signal);
    if (this.placement.topology !== t.input.topology) this.moved(t.input.topology);
    return r;
  }

  /** The service's placement changed: the next migration starts from `topology`. */
  private moved(topology: Topology): void {
    this.placement.topology = topology;
    this.opts.onTopologyChange?.(topology);
  }

  async packetOut(m: MigrationRef, frames: readonly Buffer[], toward: Side, signal: AbortSignal): Promise<number> {
    if (frames.length === 0) return 0;
    const t = this.tracked.get(m.migrationId) ?? (await this.track(m));
    const { host, port } = deliveryPort(t.input, toward);
    // Replays happen after the point of no return or in a rollback: both must complete.
    const sw = await this.bridge(host, 'wait', signal);
    const xids = new Set<number>();
    let refused = 0;
    const onError = (e: OfpErrorReply) => {
      if (xids.has(e.xid)) refused++;
    };
    sw.on('ofp_error', onError);
    try {
      if (signal.aborted) throw signal.reason;
      // In arrival order on one connection: the switch processes them in order (§6.2).
      for (const f of frames) xids.add(sw.packetOut(f, [{ type: 'output', port, maxLen: 0 }]));
      await sw.barrier({ timeoutMs: this.opts.timeoutMs ?? 5000 });
    } finally {
      sw.off('ofp_error', onError);
    }
    this.log.debug({ migrationId: m.migrationId, event: 'replay', host, port, frames: frames.length, refused }, 'held frames sent');
    return frames.length - refused;
  }

  onHeldPacket(m: MigrationRef, handler: (p: HeldPacketIn) => void): () => void {
    const macs = new Set([m.service.mac.toLowerCase(), ...(m.newMac ? [m.newMac.toLowerCase()] : [])]);
    const listener = (sw: SwitchConnection, msg: PacketIn) => {
      if (!isHoldCookie(msg.cookie)) return;
      if (!isForService(msg.data, macs, m.service.ip)) return;
      const inPort = msg.match.find((f) => f.field === 'in_port');
      handler({ frame: msg.data, dpid: sw.dpid, ...(inPort && inPort.field === 'in_port' ? { inPort: inPort.value } : {}) });
    };
    this.opts.controller.on('packet_in', listener);
    return () => this.opts.controller.off('packet_in', listener);
  }

  async announce(m: MigrationRef, side: Side, signal: AbortSignal): Promise<void> {
    const t = this.tracked.get(m.migrationId) ?? (await this.track(m));
    const a = announcement(t.input, side);
    if (m.newMac !== undefined) this.opts.arp?.set(m.service.ip, side === 'destination' ? m.newMac : m.service.mac);
    const byHost = new Map<string, number[]>();
    for (const x of a.targets) byHost.set(x.host, [...(byHost.get(x.host) ?? []), x.port]);
    if (signal.aborted) throw signal.reason;
    await Promise.all(
      [...byHost].map(async ([host, ports]) => {
        const sw = this.sw(host);
        sw.packetOut(a.frame, ports.map((port) => ({ type: 'output' as const, port, maxLen: 0 })));
        await sw.barrier({ timeoutMs: this.opts.timeoutMs ?? 5000 });
        this.log.info({ migrationId: m.migrationId, event: 'garp', host, dpid: dpidString(sw.dpid), ports }, 'gratuitous ARP sent');
      }),
    );
  }
}

/** A held frame belongs to the migration when it is addressed to the service's MAC(s) or IP. */
function isForService(frame: Buffer, macs: Set<string>, ip: string): boolean {
  try {
    const f = decodeFrame(frame);
    return macs.has(f.eth.dst.toLowerCase()) || f.ipv4?.dst === ip;
  } catch {
    // A hold flow sent it, so it is for a migrating service; one coat cannot decode is still
    // better held and replayed than lost.
    return true;
  }
}
