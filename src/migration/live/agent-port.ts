/**
 * The orchestrator's AgentPort (ports.ts) on the real agents: each method is one signed command
 * over NATS (src/agent/client.ts) to the agent of the host named, with the step's deadline and
 * abort signal.
 *
 * The migration ref carries the service as it runs at the source (pid, namespace, state dir); what
 * it is at the destination (the namespace the agent makes there, the state dir, the command that
 * adopts restored sockets) is the placement, given per host by the caller (`placementOf`): in the
 * lab, derived from the tag and the layout (lab-placement.ts).
 */
import { randomBytes } from 'node:crypto';
import type { AgentRegistry } from '../../agent/client.js';
import type { RequestOptions } from '../../agent/client.js';
import type { ExecutorStep, ExecutorStepArgs, ExecutorStepResult, Role } from '../../agent/protocol.js';
import { preCopyRound, type DumpResult, type ExecutorOptions, type RestoreResult, type ServiceSpec } from '../executor.js';
import type { AgentPort, DumpAndSendResult, ImageTicket, MigrationRef, Side, StreamResult } from '../ports.js';
import { LiveMigrationError } from './errors.js';
import { MigrationError } from '../errors.js';
import { AgentGoneError, AgentRefusedError, AgentRemoteError, AgentUnknownError } from '../../agent/errors.js';

/** The step arguments only some steps take: preDump's round, dump's sendTo, restore's afterImage. */
type StepExtra = Pick<ExecutorStepArgs, 'round' | 'sendTo' | 'afterImage'>;

/** Where and how the service lives on one host. */
export interface ServicePlacement {
  /** Namespace of the service on this host. */
  netns: string;
  /** Host end of its veth (its port on the integration bridge). */
  hostIf: string;
  /** Integration bridge and the OVSDB the agent adds the port with (`ovs-vsctl --db`); none: the
   * host end stays unattached (a caller that wires it itself). */
  bridge?: string;
  ovsDb?: string;
  /** Prefix length of the overlay subnet ("/24"), and the overlay MTU. */
  prefixLength: number;
  mtu?: number;
  /** The service's state directory on this host. */
  stateDir?: string;
  /** argv starting the service at a destination (tcp-repair: it adopts the restored sockets). */
  command?: string[];
  /** Namespace of a client on this host (new-MAC mode: where the neighbour entry is flushed). */
  clientNetns?: string;
}

export interface LiveAgentPortOptions {
  registry: AgentRegistry;
  placementOf: (host: string, m: MigrationRef) => ServicePlacement;
  executorOptions?: ExecutorOptions;
  /** Deadline per command when the step gives none (default 30 s). */
  deadlineMs?: number;
  /** After the agent made a namespace (the lab turns TX offload off on the bridge end). */
  afterPrepareNamespace?: (host: string, p: ServicePlacement, signal: AbortSignal) => Promise<void>;
  /**
   * Undo commands (abort, clearNamespace) to an agent that is gone or not answering are retried
   * until it is back (agents are supervised and restart with their journal), for at most this long
   * (default 20 s): a rollback must not leave the destination half made because its agent blinked.
   */
  undoWaitMs?: number;
  /**
   * Pace of pre-copy image streams, bits/s (default: unpaced). Pre-copy runs while the service
   * serves its clients over the same underlay link: an image sent at the link's full rate fills
   * its queue and the service's own segments are dropped (seen in the lab as retransmissions of
   * lost segments during pre-copy). The final image (`dump`) gets only the plan's L: the service is
   * frozen then, nothing competes with it.
   */
  precopyRateBitsPerSecond?: (from: string, to: string) => number | undefined;
}

export class LiveAgentPort implements AgentPort {
  /**
   * Executor steps whose wait this port abandoned (the step's deadline or signal), by host and
   * migration, with when it was sent: the agent runs a step to
   * its own end, not to our signal (agent/client.ts), so an undo sent at once would race it.
   */
  private readonly abandoned = new Map<string, { step: ExecutorStep; sentAtMs: number }>();

  constructor(private readonly opts: LiveAgentPortOptions) {}

  private req(signal: AbortSignal): RequestOptions {
    return { deadlineMs: this.opts.deadlineMs ?? 30_000, signal };
  }

  private placement(host: string, m: MigrationRef): ServicePlacement {
    try {
      return this.opts.placementOf(host, m);
    } catch (e) {
      throw new LiveMigrationError('LIVE_NO_PLACEMENT', `no placement for ${m.service.name} on ${host}: ${(e as Error).message}`, { host, migrationId: m.migrationId }, { cause: e });
    }
  }

  /** The service spec an agent's executor gets for `role`. */
  serviceFor(host: string, m: MigrationRef, role: Side): ServiceSpec {
    if (role === 'source') return m.service;
    const p = this.placement(host, m);
    const { pid: _pid, ...rest } = m.service;
    return {
      ...rest,
      netns: p.netns,
      ...(m.newMac !== undefined ? { mac: m.newMac } : {}),
      ...(p.stateDir !== undefined ? { stateDir: p.stateDir } : {}),
      ...(p.command !== undefined ? { command: p.command } : {}),
    };
  }

  private async step(host: string, m: MigrationRef, role: Role, step: ExecutorStep, signal: AbortSignal, extra: StepExtra = {}) {
    // Only steps that build something the undo removes are waited for.
    const tracked = step === 'prepare' || step === 'restore' || step === 'dump';
    const sentAtMs = Date.now();
    try {
      return await this.sendStep(host, m, role, step, signal, extra);
    } catch (e) {
      if (tracked && (e as { code?: string }).code === 'AGENT_ABORTED') this.abandoned.set(`${host}/${m.migrationId}`, { step, sentAtMs });
      throw e;
    }
  }

  /**
   * Before an undo on `host`: lets a step whose wait was abandoned finish at the agent, i.e. until
   * the agent's timings list that step as started no earlier than it was sent (1 s of clock skew
   * allowed), bounded by `undoWaitMs`.
   */
  private async settleAbandoned(host: string, m: MigrationRef, signal: AbortSignal): Promise<void> {
    const key = `${host}/${m.migrationId}`;
    const a = this.abandoned.get(key);
    if (!a) return;
    const deadline = Date.now() + (this.opts.undoWaitMs ?? 20_000);
    while (!signal.aborted && Date.now() < deadline) {
      const r = await this.opts.registry.agent(host).request('timings', { migrationId: m.migrationId }, { deadlineMs: 5000, signal }).catch(() => ({ steps: [] }));
      if (r.steps.some((s) => s.step === a.step && Date.parse(s.startedAt) >= a.sentAtMs - 1000)) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    this.abandoned.delete(key);
  }

  private async sendStep(host: string, m: MigrationRef, role: Role, step: ExecutorStep, signal: AbortSignal, extra: StepExtra, deadlineMs?: number) {
    return this.opts.registry.agent(host).request(
      'executor.step',
      {
        migrationId: m.migrationId,
        executor: m.executor,
        ...(this.opts.executorOptions ? { executorOptions: this.opts.executorOptions } : {}),
        service: this.serviceFor(host, m, role),
        role,
        step,
        ...extra,
      },
      deadlineMs !== undefined ? { deadlineMs, signal } : this.req(signal),
    );
  }

  async prepareNamespace(host: string, m: MigrationRef, signal: AbortSignal): Promise<void> {
    const p = this.placement(host, m);
    await this.opts.registry.agent(host).request(
      'netns.prepare',
      {
        migrationId: m.migrationId,
        netns: p.netns,
        ip: `${m.service.ip}/${p.prefixLength}`,
        mac: m.newMac ?? m.service.mac,
        hostIf: p.hostIf,
        nsIf: 'eth0',
        ...(p.mtu !== undefined ? { mtu: p.mtu } : {}),
        ...(p.bridge !== undefined ? { bridge: p.bridge } : {}),
        ...(p.ovsDb !== undefined ? { ovsDb: p.ovsDb } : {}),
      },
      this.req(signal),
    );
    await this.opts.afterPrepareNamespace?.(host, p, signal);
  }

  /** Retries an undo command while its agent is away, until it answers or `undoWaitMs` passed. */
  private async undo<T>(host: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + (this.opts.undoWaitMs ?? 20_000);
    for (;;) {
      try {
        return await fn();
      } catch (e) {
        const code = (e as { code?: string }).code ?? '';
        const away = /GONE|TIMEOUT|UNKNOWN|NO_RESPONDERS|NOT_CONNECTED/i.test(code) || /no responders|not heartbeating|gone/i.test((e as Error).message);
        if (!away || signal.aborted || Date.now() > deadline) throw e;
        await this.opts.registry.waitFor(host, Math.max(1, deadline - Date.now())).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  async clearNamespace(host: string, m: MigrationRef, signal: AbortSignal): Promise<void> {
    await this.settleAbandoned(host, m, signal);
    const p = host === m.source ? { ...this.placement(host, m), netns: m.service.netns } : this.placement(host, m);
    await this.undo(host, signal, () => this.opts.registry.agent(host).request(
      'netns.clear',
      { migrationId: m.migrationId, netns: p.netns, hostIf: p.hostIf, ...(p.bridge !== undefined ? { bridge: p.bridge } : {}), ...(p.ovsDb !== undefined ? { ovsDb: p.ovsDb } : {}) },
      this.req(signal),
    ));
  }

  async prepare(host: string, m: MigrationRef, role: Side, signal: AbortSignal): Promise<void> {
    await this.step(host, m, role, 'prepare', signal);
  }

  async preDump(host: string, m: MigrationRef, round: number, signal: AbortSignal): Promise<DumpResult> {
    const r = await this.step(host, m, 'source', 'preDump', signal, { round });
    if (!r.dump) throw new LiveMigrationError('LIVE_LAB', `${host}: preDump round ${round} returned no dump result`, { host });
    return r.dump;
  }

  async dump(host: string, m: MigrationRef, signal: AbortSignal): Promise<DumpResult> {
    const r = await this.step(host, m, 'source', 'dump', signal);
    if (!r.dump) throw new LiveMigrationError('LIVE_LAB', `${host}: dump returned no dump result`, { host });
    return r.dump;
  }

  async settle(host: string, m: MigrationRef, signal: AbortSignal): Promise<void> {
    await this.step(host, m, 'destination', 'settle', signal);
  }

  async dumpAndSend(host: string, m: MigrationRef, ticket: ImageTicket, signal: AbortSignal, rateBitsPerSecond?: number): Promise<DumpAndSendResult> {
    const sendTo = { peer: ticket.peer, token: ticket.token, ...(rateBitsPerSecond !== undefined && rateBitsPerSecond > 0 ? { rateBitsPerSecond } : {}) };
    const r = await this.step(host, m, 'source', 'dump', signal, { sendTo });
    if (!r.dump || !r.sent) throw new LiveMigrationError('LIVE_LAB', `${host}: dump returned no ${r.dump ? 'stream' : 'dump'} result`, { host });
    return { ...r.dump, sent: { bytes: r.sent.bytes, sha256: r.sent.imageSha256, ms: r.sent.elapsedMs, ...(r.sent.setupMs !== undefined ? { setupMs: r.sent.setupMs } : {}) }, agentMs: r.durationMs };
  }

  async restore(host: string, m: MigrationRef, signal: AbortSignal): Promise<RestoreResult> {
    return restoreResultOf(host, await this.step(host, m, 'destination', 'restore', signal));
  }

  async restoreOnArrival(host: string, m: MigrationRef, ticket: ImageTicket, signal: AbortSignal): Promise<RestoreResult> {
    // Not tracked as abandoned: an abort at that agent ends the wait, or waits for the restore,
    // itself (agent.ts, endRestore). Its deadline covers two commands' worth: it waits through
    // the whole dump and stream, then restores.
    return restoreResultOf(host, await this.sendStep(host, m, 'destination', 'restore', signal, { afterImage: ticket.stepName }, 2 * (this.opts.deadlineMs ?? 30_000)));
  }

  async resume(host: string, m: MigrationRef, signal: AbortSignal): Promise<void> {
    try {
      await this.step(host, m, 'destination', 'resume', signal);
    } catch (e) {
      if (!nothingResumed(e)) throw e;
      throw new MigrationError('MIGRATION_NOT_RESUMED', `${host} did not resume migration ${m.migrationId}: ${(e as Error).message}`, { migrationId: m.migrationId, host }, { cause: e });
    }
  }

  async release(host: string, m: MigrationRef, signal: AbortSignal): Promise<void> {
    await this.step(host, m, 'source', 'release', signal);
  }

  async abort(host: string, m: MigrationRef, role: Side, signal: AbortSignal): Promise<void> {
    await this.settleAbandoned(host, m, signal);
    await this.undo(host, signal, () => this.step(host, m, role, 'abort', signal));
  }

  async expectImage(to: string, m: MigrationRef, stepName: string, signal: AbortSignal): Promise<ImageTicket> {
    // A fresh token per stream: the receiving agent accepts exactly this migration's image.
    const token = randomBytes(16).toString('hex');
    const { stream } = await this.opts.registry.agent(to).request('stream.expect', { migrationId: m.migrationId, token, ttlMs: this.opts.deadlineMs ?? 30_000 }, this.req(signal));
    return { to, stepName, token, peer: stream };
  }

  async streamImage(from: string, to: string, m: MigrationRef, stepName: string, signal: AbortSignal, planRateBitsPerSecond?: number): Promise<StreamResult> {
    const { token, peer: stream } = await this.expectImage(to, m, stepName, signal);
    // The plan's L always; pre-copy rounds also leave room for the service's own traffic.
    const pacing = preCopyRound(stepName) !== undefined ? this.opts.precopyRateBitsPerSecond?.(from, to) : undefined;
    const limits = [planRateBitsPerSecond, pacing].filter((r): r is number => r !== undefined && r > 0);
    const rate = limits.length ? Math.min(...limits) : undefined;
    const r = await this.opts.registry.agent(from).request('stream.send', { migrationId: m.migrationId, token, peer: stream, stepName, ...(rate ? { rateBitsPerSecond: rate } : {}) }, this.req(signal));
    return { bytes: r.bytes, ...(r.imageSha256 ? { sha256: r.imageSha256 } : {}) };
  }

  /**
   * After a migration ended (done or rolled back) and its report was written: both agents drop
   * their hold on it (journal entry, images). Not an AgentPort step: the caller decides when the
   * images are no longer wanted (e.g. after `coat verify`).
   */
  async forget(m: MigrationRef, removeImages = true, signal?: AbortSignal): Promise<void> {
    for (const host of [m.source, m.destination]) {
      await this.opts.registry.agent(host).request('forget', { migrationId: m.migrationId, removeImage: removeImages }, { deadlineMs: this.opts.deadlineMs ?? 30_000, ...(signal ? { signal } : {}) });
    }
  }

  async flushNeighbour(host: string, m: MigrationRef, signal: AbortSignal): Promise<void> {
    const p = this.placement(host, m);
    await this.opts.registry.agent(host).request('neigh.flush', { migrationId: m.migrationId, ip: m.service.ip, ...(p.clientNetns ? { netns: p.clientNetns } : {}) }, this.req(signal));
  }
}

function restoreResultOf(host: string, r: ExecutorStepResult): RestoreResult {
  if (!r.restore) throw new LiveMigrationError('LIVE_LAB', `${host}: restore returned no restore result`, { host });
  return r.restore;
}

/**
 * Whether a failed resume command provably resumed nothing at the agent (ports.ts, resume): the
 * agent refused it (AGENT_REFUSED: nothing was done) or said no restore of the migration succeeded
 * there (AGENT_NOT_RESTORED), or the command never reached it (no such agent; gone before it was
 * sent). A timeout, or an agent gone while the command was out, proves nothing.
 */
export function nothingResumed(e: unknown): boolean {
  if (e instanceof AgentRemoteError) return e.remoteCode === 'AGENT_NOT_RESTORED';
  if (e instanceof AgentGoneError) return !e.delivered;
  return e instanceof AgentRefusedError || e instanceof AgentUnknownError;
}
