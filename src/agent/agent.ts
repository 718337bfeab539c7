/**
 * The per-host agent: one per host (in the lab, one per host namespace). It registers with the
 * controller over NATS, heartbeats every 500 ms, and serves signed commands with deadlines on
 * `coat.agent.HOST.cmd.*`: service namespaces, executor steps, profiling, image streams (sent
 * straight to the peer agent over TCP, received by its own listener), step timings.
 *
 * Every command is checked before anything runs (auth.ts: HMAC, age, nonce; then the arguments);
 * a refusal is answered and logged with the host and the migration id. What the agent holds for a
 * migration is written to its journal before and after each step, so after a crash or restart it
 * announces exactly that, and the controller can roll back.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, type Dirent } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, credsAuthenticator, JSONCodec, type ConnectionOptions, type Msg, type NatsConnection, type Subscription } from 'nats';
import { CoatError } from '../errors.js';
import { createExecutor, EXECUTOR_NAMES, preCopyRound, preCopyStepName, type Executor, type ExecutorContext, type ExecutorName, type ExecutorOptions } from '../migration/executor.js';
import { logger as rootChild, type Logger } from '../log.js';
import { COMPRESSIONS } from '../transfer/frames.js';
import { ImageReceiver } from '../transfer/receiver.js';
import { closeIdleStreams, probeBandwidth, sendImage, type SendResult } from '../transfer/sender.js';
import { CommandVerifier, isCommandRequest } from './auth.js';
import { AgentCommandError } from './errors.js';
import { ImageArrivals } from './image-arrivals.js';
import { Journal } from './journal.js';
import { dirBytes, dirtyPageRate, PAGE_SIZE, privateMemoryBytes, stateDirDirtyRate } from './profile.js';
import {
  COMMAND_NAMES,
  EXECUTOR_STEPS,
  HEARTBEAT_INTERVAL_MS,
  isSafeName,
  PROTOCOL_VERSION,
  subjects,
  type AgentAnnouncement,
  type CommandName,
  type CommandReply,
  type Commands,
  type ErrorReport,
  type ExecutorStepArgs,
  type ExecutorStepResult,
  type Heartbeat,
  type MigrationEvent,
  type MigrationHold,
  type ProfileArgs,
  type ProfileResult,
  type StepTiming,
  type StreamEndpoint,
  type StreamSendArgs,
} from './protocol.js';
import { clearServiceNetns, flushNeighbour, prepareServiceNetns } from './service-netns.js';
import { collectGarbage } from './heap.js';

/** How to reach NATS; the same shape for agents and the controller (see docs/agent.md). */
export interface NatsAuth {
  /** One URL or several (a cluster: the client fails over between them). */
  servers: string | string[];
  token?: string;
  user?: string;
  pass?: string;
  /** A NATS `.creds` file (JWT + nkey seed) for decentralised auth. */
  credsFile?: string;
}

export function natsConnectionOptions(auth: NatsAuth, name: string): ConnectionOptions {
  const o: ConnectionOptions = {
    servers: auth.servers,
    name,
    // An agent outlives NATS restarts: keep reconnecting, and keep the first attempt waiting.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    pingInterval: 2000,
  };
  if (auth.token !== undefined) o.token = auth.token;
  if (auth.user !== undefined) o.user = auth.user;
  if (auth.pass !== undefined) o.pass = auth.pass;
  if (auth.credsFile !== undefined) o.authenticator = credsAuthenticator(readFileSync(auth.credsFile));
  return o;
}

export type ExecutorFactory = (name: ExecutorName, options: ExecutorOptions) => Promise<Executor>;

export interface AgentOptions {
  host: string;
  nats: NatsAuth;
  /** Shared HMAC secret for commands (the controller holds the same). */
  secret: Buffer;
  /** Journal and images live here. */
  dataDir: string;
  /** Where the image stream listener binds (default 0.0.0.0, port 0 = any free port). */
  listen?: StreamEndpoint;
  /** Address announced to the controller for streams (default: the listen host, unless 0.0.0.0). */
  advertise?: string;
  /** How executors are made (default: `createExecutor`, i.e. src/executors/NAME.ts). */
  executorFactory?: ExecutorFactory;
  heartbeatMs?: number;
  log?: Logger;
}

/** What one agent process did as a migration's destination (Agent.destinations). */
interface DestinationState {
  /**
   * The restore asked for and not ended (a restore on arrival from its request on, through its
   * wait for the image): an abort waits for it before undoing, a resume before resuming.
   */
  restoring?: Promise<unknown>;
  /** Aborted here: a restore on arrival for it never starts, nothing resumes. */
  aborted: boolean;
  /** Restored by this process and not aborted since: the only migrations it resumes. */
  restored: boolean;
  /** Its resume started here: an abort of it is refused (AGENT_RESUMED). */
  resumed: boolean;
}

const jc = JSONCodec();

function errorReport(e: unknown): ErrorReport {
  if (e instanceof CoatError) {
    const { name, code, message, ...details } = e.toJSON() as Record<string, unknown> & { name: string; code: string; message: string };
    return { code, message, name, details };
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return { code: 'ERR_INTERNAL', message: err.message, name: err.name };
}

export class Agent {
  readonly host: string;
  private readonly opts: AgentOptions;
  private readonly log: Logger;
  private readonly journal: Journal;
  private readonly verifier: CommandVerifier;
  private readonly receiver: ImageReceiver;
  private readonly executors = new Map<string, Executor>();
  private readonly arrivals: ImageArrivals;
  /** What this process did as each migration's destination, until `forget`. */
  private readonly destinations = new Map<string, DestinationState>();
  private nc: NatsConnection | undefined;
  private subs: Subscription[] = [];
  private heartbeat: NodeJS.Timeout | undefined;
  private seq = 0;
  private busy = 0;
  private readonly startedAt = new Date().toISOString();
  private stream: StreamEndpoint | null = null;

  constructor(opts: AgentOptions) {
    if (!isSafeName(opts.host)) throw new AgentCommandError('AGENT_BAD_ARGS', `host name ${JSON.stringify(opts.host)} must match [A-Za-z0-9_-]{1,64} (it is a NATS subject token)`);
    this.opts = opts;
    this.host = opts.host;
    this.log = opts.log ?? rootChild('agent', { host: opts.host });
    this.journal = new Journal(opts.dataDir);
    this.verifier = new CommandVerifier(opts.secret);
    this.receiver = new ImageReceiver({ imageRoot: (id) => this.imageDir(id), log: this.log.child({ part: 'receiver' }) });
    this.receiver.on('received', (r) => {
      void this.recordTiming(r.migrationId, { step: 'stream.receive', stepName: r.stepName, startedAt: new Date(Date.now() - r.elapsedMs).toISOString(), durationMs: r.elapsedMs, ok: true }, r.kind === 'image');
      this.event(r.migrationId, 'stream.received', { stepName: r.stepName, kind: r.kind, bytes: r.bytes, imageSha256: r.imageSha256, elapsedMs: r.elapsedMs, peer: r.peer });
    });
    this.arrivals = new ImageArrivals(this.receiver, (id) => this.imageDir(id));
    this.receiver.on('failed', (err, ctx) => {
      if (ctx.migrationId && isSafeName(ctx.migrationId) && this.receiver.isExpected(ctx.migrationId)) {
        this.event(ctx.migrationId, 'stream.failed', { code: err.code, message: err.message, peer: ctx.peer });
      }
    });
  }

  imageDir(migrationId: string): string {
    return join(this.opts.dataDir, 'images', migrationId);
  }

  get streamEndpoint(): StreamEndpoint | null {
    return this.stream;
  }

  async start(): Promise<void> {
    await this.journal.load();
    await mkdir(join(this.opts.dataDir, 'images'), { recursive: true });
    const listen = this.opts.listen ?? { host: '0.0.0.0', port: 0 };
    const addr = await this.receiver.listen(listen.host, listen.port);
    const adv = this.opts.advertise ?? (listen.host === '0.0.0.0' || listen.host === '::' ? undefined : listen.host);
    this.stream = adv ? { host: adv, port: addr.port } : { host: listen.host, port: addr.port };
    const nc = await connect(natsConnectionOptions(this.opts.nats, `coat-agent-${this.host}`));
    this.nc = nc;
    this.subs.push(nc.subscribe(subjects.commandsOf(this.host), { callback: (err, msg) => (err ? this.log.error({ err: err.message }, 'command subscription failed') : void this.onCommand(msg)) }));
    this.subs.push(nc.subscribe(subjects.discover, { callback: () => void this.register() }));
    await nc.flush();
    await this.register();
    const every = this.opts.heartbeatMs ?? HEARTBEAT_INTERVAL_MS;
    this.heartbeat = setInterval(() => this.beat(), every);
    this.beat();
    void (async () => {
      for await (const s of nc.status()) this.log.info({ natsStatus: s.type, data: String(s.data) }, 'nats connection status');
    })();
    this.log.info({ stream: this.stream, dataDir: this.opts.dataDir, holds: this.journal.all().map((h) => h.migrationId) }, 'agent started');
  }

  /** Says goodbye (the controller marks the agent gone at once), then drains and closes. */
  async stop(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    const nc = this.nc;
    this.nc = undefined;
    if (nc && !nc.isClosed()) {
      nc.publish(subjects.bye(this.host), jc.encode({ host: this.host, pid: process.pid }));
      await nc.drain().catch(() => nc.close());
    }
    await this.receiver.close();
    closeIdleStreams(); // kept image-stream connections (sender.ts); others reconnect if they need to
  }

  private announcement(): AgentAnnouncement {
    return { version: PROTOCOL_VERSION, host: this.host, pid: process.pid, startedAt: this.startedAt, stream: this.stream, holds: this.journal.all() };
  }

  private async register(): Promise<void> {
    this.nc?.publish(subjects.register, jc.encode(this.announcement()));
  }

  private beat(): void {
    const hb: Heartbeat = { host: this.host, pid: process.pid, seq: this.seq++, startedAt: this.startedAt, stream: this.stream, holding: this.journal.all().map((h) => h.migrationId), busy: this.busy };
    this.nc?.publish(subjects.health(this.host), jc.encode(hb));
  }

  private event(migrationId: string, event: MigrationEvent['event'], fields: Record<string, unknown>): void {
    const e: MigrationEvent = { migrationId, host: this.host, at: new Date().toISOString(), event, ...fields };
    this.nc?.publish(subjects.events(migrationId), jc.encode(e));
  }

  /** A full GC outside the downtime, after `what` (heap.ts), logged with its time. */
  private collectGarbage(migrationId: string, what: string, log: Logger): void {
    const ms = collectGarbage();
    if (ms !== undefined) log.debug({ migrationId, event: 'gc', after: what, ms: +ms.toFixed(2) }, `heap collected after ${what}`);
  }

  private reply(msg: Msg, r: CommandReply): void {
    if (msg.reply) msg.respond(jc.encode(r));
  }

  private refuse(msg: Msg, cmd: string, reason: string, migrationId?: string): void {
    this.log.warn({ subject: msg.subject, command: cmd, reason, ...(migrationId ? { migrationId } : {}) }, 'command refused');
    this.reply(msg, { ok: false, refused: true, error: { code: 'AGENT_REFUSED', message: reason, name: 'AgentRefusedError' } });
  }

  private async onCommand(msg: Msg): Promise<void> {
    const cmd = msg.subject.slice(`coat.agent.${this.host}.cmd.`.length);
    let req: unknown;
    try {
      req = jc.decode(msg.data);
    } catch {
      return this.refuse(msg, cmd, 'request is not JSON');
    }
    if (!isCommandRequest(req)) return this.refuse(msg, cmd, 'request lacks v/sentAt/nonce/deadlineMs/args/mac');
    const v = this.verifier.verify(msg.subject, req, Date.now());
    if (!v.ok) return this.refuse(msg, cmd, v.reason);
    if (!(COMMAND_NAMES as readonly string[]).includes(cmd)) return this.refuse(msg, cmd, `unknown command ${cmd}`);
    let args: Record<string, unknown>;
    try {
      args = JSON.parse(req.args) as Record<string, unknown>;
      if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new Error('not an object');
    } catch {
      return this.refuse(msg, cmd, 'args are not a JSON object');
    }
    const migrationId = args.migrationId;
    if (migrationId !== undefined && !isSafeName(migrationId)) return this.refuse(msg, cmd, `migrationId ${JSON.stringify(migrationId)} must match [A-Za-z0-9_-]{1,64}`);
    const log = this.log.child({ command: cmd, ...(migrationId ? { migrationId } : {}) });
    const signal = AbortSignal.timeout(req.deadlineMs);
    const t0 = performance.now();
    this.busy++;
    try {
      const result = await this.dispatch(cmd as CommandName, args, signal, log);
      const elapsedMs = performance.now() - t0;
      log.debug({ elapsedMs: Math.round(elapsedMs) }, 'command done');
      this.reply(msg, { ok: true, result, elapsedMs });
    } catch (e) {
      const report = errorReport(e);
      if (report.code === 'AGENT_BAD_ARGS') return this.refuse(msg, cmd, report.message, migrationId as string | undefined);
      log.warn({ err: report }, 'command failed');
      this.reply(msg, { ok: false, refused: false, error: report });
    } finally {
      this.busy--;
    }
  }

  private async dispatch(cmd: CommandName, a: Record<string, unknown>, signal: AbortSignal, log: Logger): Promise<unknown> {
    const need = (k: string, type: 'string' | 'number' | 'object') => {
      if (typeof a[k] !== type || a[k] === null) throw new AgentCommandError('AGENT_BAD_ARGS', `${cmd}: ${k} must be a ${type}`);
    };
    switch (cmd) {
      case 'ping':
        return { host: this.host, pid: process.pid, uptimeMs: Math.round(process.uptime() * 1000) } satisfies Commands['ping']['result'];
      case 'status':
        return this.announcement();
      case 'netns.prepare': {
        const args = a as unknown as Commands['netns.prepare']['args'];
        need('migrationId', 'string');
        need('netns', 'string');
        need('ip', 'string');
        need('mac', 'string');
        const t0 = Date.now();
        const r = await prepareServiceNetns(args, log);
        await this.journal.update(args.migrationId, () => this.newHold(args.migrationId), (h) => {
          h.netns = { name: r.netns, hostIf: r.hostIf, ...(args.bridge ? { bridge: args.bridge } : {}), ...(args.ovsDb ? { ovsDb: args.ovsDb } : {}) };
          h.steps.push({ step: 'netns.prepare', stepName: r.netns, startedAt: new Date(t0).toISOString(), durationMs: Date.now() - t0, ok: true });
        });
        this.event(args.migrationId, 'netns.prepared', { ...r });
        return r;
      }
      case 'netns.clear': {
        const args = a as unknown as Commands['netns.clear']['args'];
        need('migrationId', 'string');
        need('netns', 'string');
        const held = this.journal.get(args.migrationId)?.netns;
        const hostIf = args.hostIf ?? (held?.name === args.netns ? held.hostIf : undefined);
        const bridge = args.bridge ?? held?.bridge;
        const ovsDb = args.ovsDb ?? held?.ovsDb;
        const removed = await clearServiceNetns(args.netns, hostIf, bridge ? { bridge, ...(ovsDb ? { ovsDb } : {}) } : undefined);
        if (this.journal.get(args.migrationId)) await this.journal.update(args.migrationId, () => this.newHold(args.migrationId), (h) => delete h.netns);
        this.event(args.migrationId, 'netns.cleared', { netns: args.netns, removed });
        return { removed };
      }
      case 'executor.step':
        return this.executorStep(a as unknown as ExecutorStepArgs, signal, log);
      case 'profile':
        return this.profile(a as unknown as ProfileArgs, signal, log);
      case 'stream.expect': {
        need('migrationId', 'string');
        need('token', 'string');
        const ttl = typeof a.ttlMs === 'number' ? a.ttlMs : undefined;
        if (ttl !== undefined && !(ttl > 0 && ttl <= 24 * 3600_000)) throw new AgentCommandError('AGENT_BAD_ARGS', `stream.expect: ttlMs ${ttl} out of range (0, 24 h]`);
        this.receiver.expect(a.migrationId as string, a.token as string, ttl);
        log.info({ ttlMs: ttl }, 'stream announced');
        return { stream: this.stream! };
      }
      case 'stream.send': {
        const args = a as unknown as Commands['stream.send']['args'];
        const { sent } = await this.streamSend(args, signal, log);
        // A pre-copy round just went through this agent's buffers: collect now, not in the downtime.
        if (preCopyRound(args.stepName) !== undefined) this.collectGarbage(args.migrationId, `stream.send ${args.stepName}`, log);
        return sent;
      }
      case 'timings':
        need('migrationId', 'string');
        return { steps: this.journal.get(a.migrationId as string)?.steps ?? [] } satisfies Commands['timings']['result'];
      case 'neigh.flush': {
        need('migrationId', 'string');
        need('ip', 'string');
        const flushed = await flushNeighbour(a.ip as string, a.netns as string | undefined);
        log.info({ ip: a.ip, netns: a.netns, flushed }, 'neighbour entry flushed');
        return { flushed };
      }
      case 'forget': {
        need('migrationId', 'string');
        const id = a.migrationId as string;
        this.executors.delete(id);
        this.destinations.delete(id);
        this.arrivals.cancel(id, new AgentCommandError('AGENT_CANCELLED', `migration ${id} forgotten while a restore waited for its image`));
        this.receiver.forget(id);
        if (a.removeImage === true) await rm(this.imageDir(id), { recursive: true, force: true });
        return { forgotten: await this.journal.remove(id) };
      }
    }
  }

  /**
   * Streams one of this agent's image steps to an announced receiver (`stream.send`, or a `dump`
   * with `sendTo`). Its timing goes to the journal, unless `journaled` is false: the dump writes it
   * with its own record, one journal write inside the downtime instead of two.
   */
  private async streamSend(args: StreamSendArgs, signal: AbortSignal, log: Logger, journaled = true): Promise<{ sent: SendResult; timing: StepTiming }> {
    const bad = (m: string) => new AgentCommandError('AGENT_BAD_ARGS', `stream.send: ${m}`);
    if (!isSafeName(args.migrationId)) throw bad('migrationId missing');
    if (typeof args.token !== 'string') throw bad('token missing');
    if (typeof args.stepName !== 'string' || !isSafeName(args.stepName)) throw bad(`stepName ${JSON.stringify(args.stepName)} is not a plain name`);
    if (typeof args.peer !== 'object' || args.peer === null || typeof args.peer.host !== 'string' || !Number.isInteger(args.peer.port)) throw bad('peer needs host and port');
    if (args.rateBitsPerSecond !== undefined && !(typeof args.rateBitsPerSecond === 'number' && args.rateBitsPerSecond > 0 && Number.isFinite(args.rateBitsPerSecond))) throw bad(`rateBitsPerSecond ${String(args.rateBitsPerSecond)} must be a positive number`);
    if (args.compression !== undefined && !(COMPRESSIONS as readonly string[]).includes(args.compression)) throw bad(`compression ${JSON.stringify(args.compression)} is not one of ${COMPRESSIONS.join(', ')}`);
    const dir = join(this.imageDir(args.migrationId), args.stepName);
    const t0 = Date.now();
    const r = await sendImage(dir, {
      host: args.peer.host,
      port: args.peer.port,
      migrationId: args.migrationId,
      token: args.token,
      stepName: args.stepName,
      signal,
      log,
      ...(args.compression ? { compression: args.compression } : {}),
      ...(args.rateBitsPerSecond ? { rateBitsPerSecond: args.rateBitsPerSecond } : {}),
    });
    const timing: StepTiming = { step: 'stream.send', stepName: args.stepName, startedAt: new Date(t0).toISOString(), durationMs: r.elapsedMs, ok: true };
    if (journaled) await this.recordTiming(args.migrationId, timing, false);
    this.event(args.migrationId, 'stream.sent', { stepName: args.stepName, bytes: r.bytes, wireBytes: r.wireBytes, elapsedMs: r.elapsedMs, bitsPerSecond: r.bitsPerSecond, imageSha256: r.imageSha256 });
    return { sent: r, timing };
  }

  private newHold(migrationId: string): MigrationHold {
    return { migrationId, imageDir: this.imageDir(migrationId), imageSteps: [], steps: [], updatedAt: new Date().toISOString() };
  }

  /**
   * The image step directories held for a migration. Synchronous (one small directory): it runs
   * after every step, inside the downtime for dump and restore, where a thread-pool hop waited
   * behind other I/O.
   */
  private async imageSteps(migrationId: string): Promise<string[]> {
    let entries: Dirent[];
    try {
      entries = readdirSync(this.imageDir(migrationId), { withFileTypes: true });
    } catch {
      entries = [];
    }
    return entries
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
  }

  private async recordTiming(migrationId: string, t: StepTiming, refreshSteps: boolean): Promise<void> {
    const steps = refreshSteps ? await this.imageSteps(migrationId) : undefined;
    await this.journal.update(migrationId, () => this.newHold(migrationId), (h) => {
      h.steps.push(t);
      if (steps) h.imageSteps = steps;
    });
  }

  private async executorStep(a: ExecutorStepArgs, signal: AbortSignal, log: Logger): Promise<ExecutorStepResult> {
    const bad = (m: string) => new AgentCommandError('AGENT_BAD_ARGS', `executor.step: ${m}`);
    if (!isSafeName(a.migrationId)) throw bad('migrationId missing');
    if (!(EXECUTOR_NAMES as readonly string[]).includes(a.executor)) throw bad(`executor ${JSON.stringify(a.executor)} is not one of ${EXECUTOR_NAMES.join(', ')}`);
    if (!EXECUTOR_STEPS.includes(a.step)) throw bad(`step ${JSON.stringify(a.step)} is not one of ${EXECUTOR_STEPS.join(', ')}`);
    if (a.role !== 'source' && a.role !== 'destination') throw bad(`role ${JSON.stringify(a.role)} is not source|destination`);
    if (typeof a.service !== 'object' || a.service === null || typeof a.service.name !== 'string') throw bad('service missing');
    if (a.step === 'preDump' && !(Number.isInteger(a.round) && a.round! >= 1)) throw bad('preDump needs round >= 1');
    if (a.sendTo !== undefined && (a.step !== 'dump' || typeof a.sendTo !== 'object' || a.sendTo === null)) throw bad('sendTo is for the dump step only');
    if (a.afterImage !== undefined && (a.step !== 'restore' || typeof a.afterImage !== 'string' || !isSafeName(a.afterImage))) throw bad('afterImage is an image step name, for the restore step only');
    if (a.role === 'destination' && (a.step === 'abort' || a.step === 'restore' || a.step === 'resume')) {
      const d = this.destination(a.migrationId);
      if (a.step === 'abort') {
        // The controller may abort to learn whether this destination resumed (its resume request
        // got no answer): once a resume started here, undoing it could leave two live copies.
        if (this.resumeStarted(a.migrationId, d)) throw new AgentCommandError('AGENT_RESUMED', `migration ${a.migrationId} resumed here; its abort is refused`);
        d.aborted = true;
        d.restored = false;
        await this.endRestore(a.migrationId, d, log);
      } else if (a.step === 'restore') {
        // A restore that reaches us after its migration was aborted must not restore behind the abort.
        if (a.afterImage !== undefined && d.aborted) throw new AgentCommandError('AGENT_CANCELLED', `migration ${a.migrationId} was aborted here; its restore does not start`);
        const running = this.restoreStep(a, d, signal, log);
        d.restoring = running;
        try {
          return await running;
        } finally {
          if (d.restoring === running) delete d.restoring;
        }
      } else {
        await this.awaitRestore(a.migrationId, d, log);
        d.resumed = true; // same turn as the check: no abort slips in between
      }
    }
    return this.runExecutorStep(a, signal, log);
  }

  private destination(migrationId: string): DestinationState {
    let d = this.destinations.get(migrationId);
    if (!d) this.destinations.set(migrationId, (d = { aborted: false, restored: false, resumed: false }));
    return d;
  }

  private async restoreStep(a: ExecutorStepArgs, d: DestinationState, signal: AbortSignal, log: Logger): Promise<ExecutorStepResult> {
    if (a.afterImage !== undefined) {
      // Restore on arrival: the wait is not a step yet (no journal record, no executor call).
      await this.arrivals.wait(a.migrationId, a.afterImage, signal);
      log.debug({ image: a.afterImage }, 'image landed: restoring');
    }
    const result = await this.runExecutorStep(a, signal, log);
    // Inside the promise a resume waits on (`restoring`), so it sees this when that settles.
    if (!d.aborted) d.restored = true;
    return result;
  }

  /**
   * Whether a resume of this migration started here: in this process, or, after a restart, in the
   * journal (its write-ahead record precedes the executor's resume), since a service the previous
   * process resumed may still run.
   */
  private resumeStarted(migrationId: string, d: DestinationState): boolean {
    if (d.resumed) return true;
    const h = this.journal.get(migrationId);
    return h !== undefined && (h.inFlight?.step === 'resume' || h.steps.some((s) => s.step === 'resume'));
  }

  /**
   * Before a resume: the controller asks for it while the restore may still be waiting for its
   * image or running (it sends the resume when the source's dump is done), so wait for that
   * restore. Resumes only what this process restored: otherwise AGENT_NOT_RESTORED, which tells
   * the controller that nothing resumed here and its rollback may thaw the source.
   */
  private async awaitRestore(migrationId: string, d: DestinationState, log: Logger): Promise<void> {
    const pending = d.restoring;
    if (pending) {
      log.debug('resume waits for the restore of this migration');
      await pending.catch(() => {});
    }
    if (!d.restored) {
      const why = d.aborted ? 'it was aborted here' : pending ? 'its restore failed' : 'no restore of it succeeded in this agent process';
      throw new AgentCommandError('AGENT_NOT_RESTORED', `migration ${migrationId} not resumed: ${why}`);
    }
  }

  /**
   * Before an abort: ends a restore of this migration that waits for its image, and lets one that
   * is already restoring finish, so the abort undoes all it made and nothing restores after it.
   */
  private async endRestore(migrationId: string, d: DestinationState, log: Logger): Promise<void> {
    const cancelled = this.arrivals.cancel(migrationId, new AgentCommandError('AGENT_CANCELLED', `migration ${migrationId} aborted while its restore waited for the image`));
    const running = d.restoring;
    if (cancelled > 0 || running) log.info({ cancelledWaits: cancelled, restoreRunning: running !== undefined }, 'abort: ending the restore of this migration first');
    await running?.catch(() => {});
  }

  private async runExecutorStep(a: ExecutorStepArgs, signal: AbortSignal, log: Logger): Promise<ExecutorStepResult> {
    let executor = this.executors.get(a.migrationId);
    if (!executor || executor.name !== a.executor) {
      executor = await (this.opts.executorFactory ?? createExecutor)(a.executor, a.executorOptions ?? {});
      this.executors.set(a.migrationId, executor);
    }
    const imageDir = this.imageDir(a.migrationId);
    const producesImage = a.step === 'preDump' || a.step === 'dump';
    // Image steps get a fresh directory each (executor.ts contract); the others work on the image.
    const stepName = a.step === 'preDump' ? preCopyStepName(a.round!) : producesImage ? 'dump' : a.step;
    const stepDir = producesImage ? join(imageDir, stepName) : imageDir;
    // Synchronous: small directory operations right before the freeze (dump), where thread-pool
    // hops would wait behind other I/O of the agent.
    mkdirSync(imageDir, { recursive: true });
    if (producesImage) {
      rmSync(stepDir, { recursive: true, force: true });
      mkdirSync(stepDir);
    }
    const startedAt = new Date();
    await this.journal.update(a.migrationId, () => this.newHold(a.migrationId), (h) => {
      h.role = a.role;
      h.executor = a.executor;
      h.executorOptions = a.executorOptions ?? {};
      h.service = a.service;
      h.inFlight = { step: a.step, stepName, startedAt: startedAt.toISOString() };
    });
    this.event(a.migrationId, 'step.start', { step: a.step, stepName, role: a.role });
    const ctx: ExecutorContext = { migrationId: a.migrationId, service: a.service, imageDir, stepDir, stepName, log: log.child({ step: a.step }), signal };
    const t0 = performance.now();
    let result: ExecutorStepResult;
    /** The dump's own stream (`sendTo`): journaled with the step's record below. */
    let streamTiming: StepTiming | undefined;
    try {
      result = { step: a.step, stepName, durationMs: 0 };
      switch (a.step) {
        case 'prepare':
          await executor.prepare(ctx, a.role);
          break;
        case 'preDump':
          result.dump = await executor.preDump(ctx, a.round!);
          break;
        case 'dump':
          result.dump = await executor.dump(ctx);
          // The image leaves at once; the journal records below wait until it is on its way.
          if (a.sendTo) {
            const s = await this.streamSend({ migrationId: a.migrationId, stepName, token: a.sendTo.token, peer: a.sendTo.peer, ...(a.sendTo.rateBitsPerSecond !== undefined ? { rateBitsPerSecond: a.sendTo.rateBitsPerSecond } : {}) }, signal, log, false);
            result.sent = s.sent;
            streamTiming = s.timing;
          }
          break;
        case 'settle':
          await executor.settle?.(ctx);
          // The round just received and applied went through this agent's buffers (heap.ts).
          this.collectGarbage(a.migrationId, 'settle', log);
          break;
        case 'restore':
          result.restore = await executor.restore(ctx);
          break;
        case 'resume':
          await executor.resume(ctx);
          break;
        case 'release':
          await executor.release(ctx);
          break;
        case 'abort':
          await executor.abort(ctx, a.role);
          break;
      }
      result.durationMs = performance.now() - t0;
      if (producesImage) result.stepDir = stepName;
    } catch (e) {
      const durationMs = performance.now() - t0;
      const steps = await this.imageSteps(a.migrationId);
      await this.journal.update(a.migrationId, () => this.newHold(a.migrationId), (h) => {
        delete h.inFlight;
        h.lastStep = { step: a.step, stepName, ok: false, error: `${(e as { code?: string }).code ?? 'ERR_INTERNAL'}: ${(e as Error).message}` };
        h.steps.push({ step: a.step, stepName, startedAt: startedAt.toISOString(), durationMs, ok: false });
        h.imageSteps = steps;
      });
      this.event(a.migrationId, 'step.end', { step: a.step, stepName, ok: false, durationMs, code: (e as { code?: string }).code });
      throw e;
    }
    const timings = result.dump?.timings ?? result.restore?.timings;
    const steps = await this.imageSteps(a.migrationId);
    await this.journal.update(a.migrationId, () => this.newHold(a.migrationId), (h) => {
      delete h.inFlight;
      h.lastStep = { step: a.step, stepName, ok: true };
      if (streamTiming) h.steps.push(streamTiming);
      h.steps.push({ step: a.step, stepName, startedAt: startedAt.toISOString(), durationMs: result.durationMs, ok: true, ...(timings ? { timings } : {}) });
      h.imageSteps = steps;
    });
    this.event(a.migrationId, 'step.end', { step: a.step, stepName, ok: true, durationMs: result.durationMs });
    log.info({ step: a.step, stepName, durationMs: Math.round(result.durationMs) }, 'executor step done');
    return result;
  }

  private async profile(a: ProfileArgs, signal: AbortSignal, log: Logger): Promise<ProfileResult> {
    const windowMs = a.windowMs ?? 1000;
    if (!(Number.isFinite(windowMs) && windowMs >= 0 && windowMs <= 60_000)) throw new AgentCommandError('AGENT_BAD_ARGS', `profile: windowMs ${windowMs} out of range 0..60000`);
    if (a.pid !== undefined && !(Number.isInteger(a.pid) && a.pid > 0)) throw new AgentCommandError('AGENT_BAD_ARGS', `profile: pid ${a.pid} is not a pid`);
    if (a.probeBytes !== undefined && !(Number.isInteger(a.probeBytes) && a.probeBytes > 0 && a.probeBytes <= 2 ** 30)) throw new AgentCommandError('AGENT_BAD_ARGS', `profile: probeBytes ${a.probeBytes} out of range (0, 1 GiB]`);
    if (a.peer !== undefined && (typeof a.peer.host !== 'string' || !Number.isInteger(a.peer.port) || typeof a.peer.token !== 'string')) throw new AgentCommandError('AGENT_BAD_ARGS', 'profile: peer needs host, port and token');
    const out: ProfileResult = { stateBytes: 0, pageSize: PAGE_SIZE, windowMs };
    // L and R run side by side: both take a window of wall time.
    const bandwidth = a.peer
      ? probeBandwidth(a.probeBytes ?? 8 * 1024 * 1024, { host: a.peer.host, port: a.peer.port, migrationId: a.migrationId, token: a.peer.token, stepName: 'probe', signal, log })
      : undefined;
    if (a.dirtySource !== undefined && a.dirtySource !== 'memory' && a.dirtySource !== 'state-dir') throw new AgentCommandError('AGENT_BAD_ARGS', `profile: dirtySource ${JSON.stringify(a.dirtySource)} is not memory or state-dir`);
    if (a.dirtySource === 'state-dir' && a.stateDir === undefined) throw new AgentCommandError('AGENT_BAD_ARGS', 'profile: dirtySource state-dir needs stateDir');
    if (a.stateDir !== undefined) out.stateDirBytes = await dirBytes(a.stateDir);
    if (a.dirtySource === 'state-dir' && windowMs > 0) {
      out.dirtyPagesPerSecond = await stateDirDirtyRate(a.stateDir!, windowMs);
      out.dirtyMethod = 'state-compare';
    }
    if (a.pid !== undefined) {
      out.memoryBytes = await privateMemoryBytes(a.pid);
      if (windowMs > 0 && a.dirtySource !== 'state-dir') {
        out.dirtyPagesPerSecond = await dirtyPageRate(a.pid, windowMs);
        out.dirtyMethod = 'page-hash';
      }
    }
    out.stateBytes = (out.stateDirBytes ?? 0) + (out.memoryBytes ?? 0);
    if (bandwidth) out.bandwidthBitsPerSecond = (await bandwidth).bitsPerSecond;
    log.info({ ...out }, 'profiled');
    return out;
  }
}
