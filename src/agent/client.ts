/**
 * The controller's side of the control plane: `AgentRegistry` discovers agents (their register
 * announcements and heartbeats), declares an agent gone when it misses heartbeats for
 * `deadAfterMs` (default 1.5 s: detection within 2 s) or says goodbye, and fails every command
 * pending on a gone agent at once instead of letting it wait for its deadline. `AgentClient` sends
 * typed, signed commands with deadlines to one agent and turns every outcome into a typed result
 * or a typed error (errors.ts).
 *
 * Usage (orchestrator):
 *
 *   const reg = await AgentRegistry.connect({ nats: { servers: url, user, pass }, secret });
 *   const a = await reg.waitFor('edge-a', 5000);
 *   await reg.agent('edge-b').request('stream.expect', { migrationId, token }, { deadlineMs: 2000 });
 *   reg.on('gone', (host, reason) => orchestrator.agentLost(host, reason));
 */
import { EventEmitter } from 'node:events';
import { connect, ErrorCode, JSONCodec, type NatsConnection, type NatsError, type Subscription } from 'nats';
import { logger as rootChild, type Logger } from '../log.js';
import { natsConnectionOptions, type NatsAuth } from './agent.js';
import { signCommand } from './auth.js';
import { AgentAbortedError, AgentBadReplyError, AgentGoneError, AgentRefusedError, AgentRemoteError, AgentTimeoutError, AgentUnknownError } from './errors.js';
import {
  DEAD_AFTER_MS,
  isSafeName,
  subjects,
  type AgentAnnouncement,
  type CommandName,
  type CommandReply,
  type Commands,
  type Heartbeat,
  type MigrationEvent,
  type MigrationHold,
  type StreamEndpoint,
} from './protocol.js';

const jc = JSONCodec();

/** What the registry knows of one agent. */
export interface AgentInfo {
  host: string;
  pid: number;
  startedAt: string;
  stream: StreamEndpoint | null;
  /** Migrations held, as of the last register announcement. */
  holds: MigrationHold[];
  /** Migration ids held, as of the last heartbeat. */
  holding: string[];
  /** performance.now() of the last heartbeat or announcement. */
  lastSeen: number;
  alive: boolean;
}

export interface RegistryEvents {
  /** An agent announced itself (start, restart, or answer to discover). */
  registered: [AgentInfo];
  /** An agent restarted (new pid or start time): its in-memory state is gone, its journal is not. */
  restarted: [AgentInfo];
  /** An agent missed heartbeats or said goodbye. */
  gone: [host: string, reason: string];
  /** A migration event from any agent. */
  event: [MigrationEvent];
}

export interface RegistryOptions {
  /** Shared HMAC secret for commands. */
  secret: Buffer;
  deadAfterMs?: number;
  /** How often liveness is checked (default 100 ms). */
  sweepMs?: number;
  log?: Logger;
  /** Subscribe to `coat.migration.*.events` and re-emit them as `event` (default true). */
  events?: boolean;
}

export interface RequestOptions {
  /** Deadline for the reply, ms (default 5000); the agent aborts the work at it too. */
  deadlineMs?: number;
  /** Abandons the wait (AgentAbortedError); the agent stops at its deadline, not at this signal. */
  signal?: AbortSignal;
}

interface Pending {
  command: string;
  reject(e: Error): void;
}

export class AgentRegistry extends EventEmitter<RegistryEvents> {
  private readonly agents = new Map<string, AgentInfo>();
  private readonly pending = new Map<string, Set<Pending>>();
  private readonly subs: Subscription[] = [];
  private sweep: NodeJS.Timeout | undefined;
  readonly deadAfterMs: number;
  readonly log: Logger;
  private readonly ownsConnection: boolean;

  constructor(
    readonly nc: NatsConnection,
    private readonly opts: RegistryOptions,
    ownsConnection = false,
  ) {
    super();
    this.deadAfterMs = opts.deadAfterMs ?? DEAD_AFTER_MS;
    this.log = opts.log ?? rootChild('agent-registry');
    this.ownsConnection = ownsConnection;
  }

  /** Connects to NATS with the controller's credentials and starts the registry. */
  static async connect(o: RegistryOptions & { nats: NatsAuth; name?: string }): Promise<AgentRegistry> {
    const nc = await connect(natsConnectionOptions(o.nats, o.name ?? 'coat-controller'));
    const reg = new AgentRegistry(nc, o, true);
    await reg.start();
    return reg;
  }

  async start(): Promise<void> {
    const nc = this.nc;
    this.subs.push(nc.subscribe(subjects.register, { callback: (_e, m) => this.onRegister(m.data) }));
    this.subs.push(nc.subscribe(subjects.healthAll, { callback: (_e, m) => this.onHeartbeat(m.data) }));
    this.subs.push(nc.subscribe(subjects.byeAll, { callback: (_e, m) => this.onBye(m.subject) }));
    if (this.opts.events !== false) {
      this.subs.push(
        nc.subscribe(subjects.eventsAll, {
          callback: (_e, m) => {
            try {
              this.emit('event', jc.decode(m.data) as MigrationEvent);
            } catch {
              /* not ours to crash on */
            }
          },
        }),
      );
    }
    await nc.flush();
    // A restarted controller learns every agent at once instead of waiting for heartbeats.
    nc.publish(subjects.discover);
    this.sweep = setInterval(() => this.checkLiveness(), this.opts.sweepMs ?? 100);
  }

  async close(): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
    for (const s of this.subs) s.unsubscribe();
    if (this.ownsConnection) await this.nc.drain().catch(() => this.nc.close());
  }

  list(): AgentInfo[] {
    return [...this.agents.values()];
  }

  info(host: string): AgentInfo | undefined {
    return this.agents.get(host);
  }

  /** Resolves when `host` is registered and alive; rejects with AgentUnknownError after `timeoutMs`. */
  waitFor(host: string, timeoutMs = 5000): Promise<AgentInfo> {
    const known = this.agents.get(host);
    if (known?.alive) return Promise.resolve(known);
    return new Promise((resolve, reject) => {
      const onReg = (a: AgentInfo) => {
        if (a.host !== host) return;
        clearTimeout(t);
        this.off('registered', onReg);
        resolve(a);
      };
      const t = setTimeout(() => {
        this.off('registered', onReg);
        reject(new AgentUnknownError(host));
      }, timeoutMs);
      this.on('registered', onReg);
    });
  }

  /** Resolves with the reason when `host` is declared gone. */
  waitGone(host: string): Promise<string> {
    return new Promise((resolve) => {
      const on = (h: string, reason: string) => {
        if (h !== host) return;
        this.off('gone', on);
        resolve(reason);
      };
      this.on('gone', on);
    });
  }

  agent(host: string): AgentClient {
    return new AgentClient(this, host, this.opts.secret);
  }

  private upsert(host: string, fields: Omit<AgentInfo, 'host' | 'lastSeen' | 'alive' | 'holds' | 'holding'> & { holds?: MigrationHold[]; holding?: string[] }): { info: AgentInfo; isNew: boolean; restarted: boolean } {
    const prev = this.agents.get(host);
    const restarted = prev !== undefined && (prev.pid !== fields.pid || prev.startedAt !== fields.startedAt);
    const info: AgentInfo = {
      host,
      pid: fields.pid,
      startedAt: fields.startedAt,
      stream: fields.stream,
      holds: fields.holds ?? (restarted ? [] : (prev?.holds ?? [])),
      holding: fields.holding ?? fields.holds?.map((h) => h.migrationId) ?? prev?.holding ?? [],
      lastSeen: performance.now(),
      alive: true,
    };
    this.agents.set(host, info);
    if (restarted) this.failPending(host, `restarted (pid ${prev!.pid} -> ${info.pid})`);
    return { info, isNew: prev === undefined || !prev.alive, restarted };
  }

  private onRegister(data: Uint8Array): void {
    let a: AgentAnnouncement;
    try {
      a = jc.decode(data) as AgentAnnouncement;
    } catch {
      return;
    }
    if (!isSafeName(a?.host) || typeof a.pid !== 'number') return;
    const { info, restarted } = this.upsert(a.host, { pid: a.pid, startedAt: a.startedAt, stream: a.stream, holds: Array.isArray(a.holds) ? a.holds : [] });
    this.log.info({ host: a.host, agentPid: a.pid, stream: a.stream, holds: info.holding }, "agent registered");
    if (restarted) this.emit('restarted', info);
    this.emit('registered', info);
  }

  private onHeartbeat(data: Uint8Array): void {
    let hb: Heartbeat;
    try {
      hb = jc.decode(data) as Heartbeat;
    } catch {
      return;
    }
    if (!isSafeName(hb?.host) || typeof hb.pid !== 'number') return;
    const { info, isNew, restarted } = this.upsert(hb.host, { pid: hb.pid, startedAt: hb.startedAt, stream: hb.stream, holding: Array.isArray(hb.holding) ? hb.holding : [] });
    if (restarted) this.emit('restarted', info);
    // A heartbeat from an agent we never saw register (controller started later): ask for details.
    if (isNew) this.nc.publish(subjects.discover);
  }

  private onBye(subject: string): void {
    const host = subject.split('.')[2]!;
    this.markGone(host, 'said goodbye');
  }

  private checkLiveness(): void {
    const now = performance.now();
    for (const a of this.agents.values()) {
      if (a.alive && now - a.lastSeen > this.deadAfterMs) this.markGone(a.host, `no heartbeat for ${Math.round(now - a.lastSeen)} ms`);
    }
  }

  private markGone(host: string, reason: string): void {
    const a = this.agents.get(host);
    if (!a || !a.alive) return;
    a.alive = false;
    this.log.warn({ host, reason }, 'agent gone');
    this.failPending(host, reason);
    this.emit('gone', host, reason);
  }

  private failPending(host: string, reason: string): void {
    const set = this.pending.get(host);
    if (!set) return;
    for (const p of set) p.reject(new AgentGoneError(host, reason, p.command));
    set.clear();
  }

  /** @internal Used by AgentClient to make a pending command fail when its agent goes. */
  track(host: string, p: Pending): () => void {
    let set = this.pending.get(host);
    if (!set) this.pending.set(host, (set = new Set()));
    set.add(p);
    return () => set.delete(p);
  }
}

/** Typed commands to one agent. */
export class AgentClient {
  constructor(
    private readonly registry: AgentRegistry,
    readonly host: string,
    private readonly secret: Buffer,
  ) {}

  /**
   * Sends one command and waits for its reply until the deadline. Resolves with the result; rejects
   * with AgentTimeoutError, AgentGoneError, AgentRefusedError, AgentRemoteError (carrying the
   * agent's error code as `remoteCode`), AgentUnknownError or AgentBadReplyError.
   */
  async request<C extends CommandName>(command: C, args: Commands[C]['args'], opts: RequestOptions = {}): Promise<Commands[C]['result']> {
    const deadlineMs = opts.deadlineMs ?? 5000;
    const info = this.registry.info(this.host);
    if (!info) throw new AgentUnknownError(this.host);
    if (!info.alive) throw new AgentGoneError(this.host, 'not heartbeating', command, false);
    const migrationId = (args as { migrationId?: string }).migrationId;
    if (opts.signal?.aborted) throw new AgentAbortedError(this.host, command, migrationId);
    const subject = subjects.command(this.host, command);
    const req = signCommand(this.secret, subject, args, deadlineMs, Date.now());
    let untrack = () => {};
    let unlisten = () => {};
    const gone = new Promise<never>((_, reject) => {
      untrack = this.registry.track(this.host, { command, reject });
      const onAbort = () => reject(new AgentAbortedError(this.host, command, migrationId));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      unlisten = () => opts.signal?.removeEventListener('abort', onAbort);
    });
    try {
      const msg = await Promise.race([
        this.registry.nc.request(subject, jc.encode(req), { timeout: deadlineMs }).catch((e: NatsError) => {
          if (e.code === ErrorCode.Timeout) throw new AgentTimeoutError(this.host, command, deadlineMs, migrationId);
          if (e.code === ErrorCode.NoResponders) throw new AgentGoneError(this.host, 'nobody serves its command subject', command, false);
          throw e;
        }),
        gone,
      ]);
      let reply: CommandReply<Commands[C]['result']>;
      try {
        reply = jc.decode(msg.data) as CommandReply<Commands[C]['result']>;
      } catch {
        throw new AgentBadReplyError(this.host, command, 'not JSON');
      }
      if (typeof reply !== 'object' || reply === null || typeof reply.ok !== 'boolean') throw new AgentBadReplyError(this.host, command, 'no ok field');
      if (reply.ok) return reply.result;
      if (reply.refused) throw new AgentRefusedError(this.host, command, reply.error?.message ?? 'no reason given');
      const err = reply.error ?? { code: 'ERR_INTERNAL', message: 'no error given', name: 'Error' };
      throw new AgentRemoteError(this.host, command, err.code, err.message, { name: err.name, code: err.code, message: err.message, ...(err.details ?? {}) });
    } finally {
      untrack();
      unlisten();
      gone.catch(() => {}); // settled or not, never an unhandled rejection
    }
  }

  ping(opts?: RequestOptions) {
    return this.request('ping', {}, opts);
  }

  status(opts?: RequestOptions) {
    return this.request('status', {}, opts);
  }
}
