/**
 * One OpenFlow 1.3 channel to one switch (layer 2, "Channels"): framing over a byte stream, the
 * handshake (HELLO version negotiation, FEATURES, port descriptions), echo keepalive, requests
 * matched to replies by xid with deadlines, multipart reassembly, barriers, async config, roles,
 * ONF EXT-230 bundles, and the flow programming built on them (dump, reconcile, packet-out).
 *
 * The socket is handed in (transport.ts makes it), so the same class serves TCP, TLS and unix
 * sockets, passive or active, and the fake switch of the fault tests. Bytes are decoded with the
 * codec in src/openflow/; nothing here knows a wire offset.
 *
 * Any protocol violation closes this connection only, with a `CloseReason` saying why; a bad peer
 * never throws into the caller and never takes the controller down.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import {
  OfpError, OfpStreamParser, errorName, hello as helloMessage, flowDelete, bundleAdd, bundleControl,
  packetOut as packetOutMessage, OFPET, OFPCR_ROLE, OFPP, OFPG, OFPTT, OFPBF, OFPMPF, OFPCML, OFPPR, OFP_VERSION,
  type OfpMessage, type MessageOf, type Port, type FeaturesReply, type MultipartRequestBody, type MultipartReplyBody,
  type FlowStats, type FlowMod, type Action, type PacketIn, type PortStatus, type FlowRemoved, type ErrorMessage,
  type AsyncMaskPair,
} from '../openflow/index.js';
import { dpidString, logger as makeLogger, type Logger } from '../log.js';
import { ControllerError, ControllerErrorCode, type CloseReason } from './errors.js';
import { KeepaliveState, systemClock, type Clock } from './keepalive.js';
import { RequestTable, RequestTimeoutError } from './requests.js';
import { XidAllocator } from './xid.js';
import { COAT_COOKIE, COAT_COOKIE_MASK } from './cookies.js';
import { planReconcile, type DesiredFlows, type ReconcilePlan } from './reconcile.js';
import { encodeWithXid } from './wire-cache.js';

/** OFPT_ERROR received for one of our messages, tied to that message (OpenFlow 1.3.5 §7.4.4). */
export class OfpErrorReply extends ControllerError {
  readonly errorType: number;
  /** `code` of the ofp_error_msg (the class's `code` is the stable OFC_ERROR_REPLY). */
  readonly errorCode: number;
  /** e.g. `bad_match/bad_prereq`, or `experimenter 0x4f4e4600/2301` for experimenter errors. */
  readonly errorName: string;
  constructor(
    readonly dpid: string | undefined,
    readonly xid: number,
    readonly error: ErrorMessage,
    /** The message that caused it, found by xid; undefined when the xid is not one we remember. */
    readonly request: OfpMessage | undefined,
  ) {
    const name =
      'experimenter' in error
        ? `experimenter 0x${error.experimenter.toString(16)}/${error.expType}`
        : errorName(error.errorType, error.code) ?? `type ${error.errorType}/code ${error.code}`;
    super(ControllerErrorCode.ErrorReply, `switch ${dpid ?? '?'} answered ${request?.type ?? 'an unknown message'} xid ${xid} with error ${name}`);
    this.errorType = error.errorType;
    this.errorCode = 'experimenter' in error ? error.expType : error.code;
    this.errorName = name;
  }
}

/** Several flow-mods of one batch failed; `errors` holds each, tied to its flow-mod. */
export class FlowModsError extends ControllerError {
  constructor(
    readonly dpid: string | undefined,
    readonly errors: OfpErrorReply[],
    readonly total: number,
  ) {
    super(ControllerErrorCode.FlowMods, `${errors.length} of ${total} messages failed on switch ${dpid ?? '?'}; first: ${errors[0]?.message ?? '?'}`);
  }
}

/** The switch refused a bundle operation (open, add or commit). The bundle was discarded. */
export class BundleError extends ControllerError {
  constructor(
    readonly dpid: string | undefined,
    readonly phase: 'open' | 'add' | 'commit',
    readonly errors: OfpErrorReply[],
  ) {
    super(ControllerErrorCode.Bundle, `bundle ${phase} failed on switch ${dpid ?? '?'}: ${errors.map((e) => e.errorName).join(', ')}`);
  }
}

export class ConnectionClosedError extends ControllerError {
  constructor(
    readonly reason: CloseReason,
    readonly requestType?: string,
  ) {
    super(ControllerErrorCode.Closed, `connection closed${requestType ? ` while ${requestType} waited` : ''}: ${reason.message}`);
  }
}

export interface ConnectionOptions {
  /** Idle time before an echo request (default 5000 ms). */
  echoIntervalMs?: number;
  /** Silence after which the switch is declared dead (default 3 × echoIntervalMs). */
  deadAfterMs?: number;
  /** Default deadline of a request (default 10 000 ms). */
  requestTimeoutMs?: number;
  /** Deadline for HELLO + FEATURES + port descriptions (default 10 000 ms). */
  handshakeTimeoutMs?: number;
  /** Bytes of a packet sent to the controller on table miss (default OFPCML_NO_BUFFER: whole packet). */
  missSendLen?: number;
  clock?: Clock;
  logger?: Logger;
}

export type RoleName = 'nochange' | 'equal' | 'master' | 'slave';

export interface SwitchEvents {
  up: [];
  close: [reason: CloseReason];
  packet_in: [msg: PacketIn];
  port_status: [msg: PortStatus];
  flow_removed: [msg: FlowRemoved];
  /** An OFPT_ERROR from the switch, tied to the request it answers (when we remember it). */
  ofp_error: [err: OfpErrorReply];
  /** Every decoded message, before it is handled (for taps and debugging). */
  message: [msg: OfpMessage];
}

type Sendable = OfpMessage;

/** A multipart body type and what its reply carries. */
type ReplyBodyOf<T extends MultipartRequestBody['type']> = Extract<MultipartReplyBody, { type: T }>;

interface Unconfirmed {
  msg: OfpMessage;
  /** Position in send order, compared with a barrier's to know what the barrier confirms. */
  seq: number;
}

/** Messages of one `sendConfirmed`/`bundle` call by xid, and the errors they drew. */
interface Batch {
  msgs: Map<number, OfpMessage>;
  errors: OfpErrorReply[];
}

export interface ReconcileResult {
  added: number;
  deleted: number;
  kept: number;
  /** 'bundle' when applied atomically, 'plain' when sent as separate flow-mods. */
  mode: 'bundle' | 'plain' | 'none';
}

export interface BundleOptions {
  /** OFPBF_ATOMIC (default true). */
  atomic?: boolean;
  /** OFPBF_ORDERED (default true). */
  ordered?: boolean;
  /** When the switch refuses bundles: 'plain' sends the messages one by one (logged), 'throw' fails. */
  fallback?: 'plain' | 'throw';
  /**
   * Sends a barrier in the same write as the commit and resolves after its reply too: the commit
   * and its confirmation cost one round trip, not two (a barrier sent after the commit reply).
   */
  confirm?: boolean;
  /** Called with performance.now() as the commit (or, after a fallback, the first message) is written. */
  onCommit?: (atMs: number) => void;
}

/** A bundle opened and filled on one switch, every add checked, not committed (`prepareBundle`). */
export interface PreparedBundle {
  /** 'plain': the switch refuses bundles, and `commit` sends the messages one by one (not atomic). */
  readonly mode: 'bundle' | 'plain';
  /** Commits (with `confirm`, and its barrier); rejects with a BundleError the switch refused it. Once. */
  commit(): Promise<'bundle' | 'plain'>;
  /** Discards the bundle on the switch; nothing after a commit. Never rejects (a failure is logged). */
  discard(): Promise<void>;
}

const REPLY_TYPES = new Set<OfpMessage['type']>([
  'echo_reply', 'features_reply', 'get_config_reply', 'multipart_reply', 'barrier_reply', 'queue_get_config_reply',
  'role_reply', 'get_async_reply', 'bundle_control',
]);

/** At most this many bytes are queued to the socket before a batch waits for 'drain'. */
const HIGH_WATER = 4 * 1024 * 1024;
/** Queued bytes that trigger an immediate write instead of waiting for the microtask. */
const FLUSH_AT = 64 * 1024;
/**
 * Fire-and-forget messages remembered (to name them in errors) until a barrier confirms them; the
 * oldest are forgotten beyond this (a packet-out loop without barriers must not grow memory).
 * Batch calls keep their own messages, so their errors are never lost to this limit.
 */
const UNCONFIRMED_LIMIT = 65_536;

export class SwitchConnection extends EventEmitter<SwitchEvents> {
  /** Datapath id from FEATURES_REPLY; 0n until the handshake completes. */
  dpid = 0n;
  features: FeaturesReply | undefined;
  /** Ports by number, from port descriptions then kept current by PORT_STATUS. */
  readonly ports = new Map<number, Port>();
  state: 'handshaking' | 'up' | 'closed' = 'handshaking';
  closeReason: CloseReason | undefined;
  /** Whether the switch accepted ONF EXT-230 bundles; undefined until first tried. */
  bundlesSupported: boolean | undefined;
  /** Round-trip time of the last answered echo, in ms. */
  lastEchoRttMs: number | undefined;
  log: Logger;

  private readonly parser: OfpStreamParser;
  private readonly requests: RequestTable<OfpMessage>;
  private readonly xids = new XidAllocator(1);
  private readonly clock: Clock;
  private readonly opts: Required<Omit<ConnectionOptions, 'clock' | 'logger'>>;
  private keepalive: KeepaliveState | undefined;
  private keepaliveTimer: unknown;
  private handshakeTimer: unknown;
  private readonly unconfirmed = new Map<number, Unconfirmed>();
  private readonly batches = new Set<Batch>();
  private outQueue: Buffer[] = [];
  private outQueueBytes = 0;
  private flushScheduled = false;
  private nextBundleId = 1;
  private sawHello = false;
  private reconciling: Promise<unknown> = Promise.resolve();
  /** Send position of every message written, and of each barrier still waiting for its reply. */
  private sendSeq = 0;
  private readonly barrierMarks = new Map<number, number>();
  private handshakeWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;

  constructor(
    private readonly socket: Duplex,
    readonly peer: string,
    options: ConnectionOptions = {},
  ) {
    super();
    const echoIntervalMs = options.echoIntervalMs ?? 5000;
    this.opts = {
      echoIntervalMs,
      deadAfterMs: options.deadAfterMs ?? 3 * echoIntervalMs,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
      missSendLen: options.missSendLen ?? OFPCML.no_buffer,
    };
    this.clock = options.clock ?? systemClock;
    this.log = options.logger ?? makeLogger('openflow', { endpoint: peer });
    this.requests = new RequestTable<OfpMessage>(this.clock);
    // A body that does not decode is a protocol violation of this peer: report and close (below).
    this.parser = new OfpStreamParser({ onMessageError: (err, raw) => this.violation(err, raw) });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (e: Error) => this.close({ code: 'OFC_SOCKET', message: `socket error: ${e.message}` }));
    socket.on('close', () => this.close({ code: 'OFC_EOF', message: 'the peer closed the connection' }));
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  get dpidHex(): string {
    return dpidString(this.dpid);
  }

  // -------------------------------------------------------------------------------------------
  // Handshake (OpenFlow 1.3.5 §6.3.1 "Connection Setup", §7.3.1 features).

  /**
   * Sends HELLO and waits for the switch's; then FEATURES, port descriptions and SET_CONFIG.
   * Resolves when the connection is up; rejects (and closes) when negotiation fails.
   */
  handshake(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.handshakeWaiter = { resolve, reject };
    });
    this.handshakeTimer = this.clock.setTimeout(() => {
      this.fail({ code: ControllerErrorCode.Handshake, message: `no complete handshake within ${this.opts.handshakeTimeoutMs} ms` });
    }, this.opts.handshakeTimeoutMs);
    // Our bitmap offers 1.3 only: the one version we speak (§7.5.1 OFPHET_VERSIONBITMAP).
    this.write(helloMessage(this.xids.allocate(), [OFP_VERSION]));
    return done;
  }

  private onHello(msg: MessageOf<'hello'>): void {
    const bitmap = msg.elements.find((e) => e.type === 'versionbitmap');
    const peerVersion = msg.version ?? OFP_VERSION;
    // §6.3.1: with bitmaps on both sides the highest common bit wins; without, the smaller of the
    // two header versions. Either way it must be 1.3.
    const ok = bitmap && bitmap.type === 'versionbitmap' ? bitmap.versions.includes(OFP_VERSION) : peerVersion >= OFP_VERSION;
    if (!ok) {
      const offered = bitmap && bitmap.type === 'versionbitmap' ? `versions [${bitmap.versions.join(', ')}]` : `version ${peerVersion}`;
      const text = `we speak OpenFlow 1.3 (0x04) only; peer offered ${offered}`;
      // §6.3.1: "send an OFPT_ERROR message with a type field of OFPET_HELLO_FAILED, a code field of
      // OFPHFC_INCOMPATIBLE, and optionally an ASCII string explaining the situation in data".
      this.write({ type: 'error', xid: msg.xid, errorType: OFPET.hello_failed, code: 0, data: Buffer.from(text) });
      this.fail({ code: ControllerErrorCode.Handshake, message: `version negotiation failed: ${text}` });
      return;
    }
    void this.afterHello();
  }

  private async afterHello(): Promise<void> {
    try {
      const [features] = await this.request<MessageOf<'features_reply'>>({ type: 'features_request', xid: 0 });
      this.features = features!;
      this.dpid = features!.datapathId;
      this.log = this.log.child({ dpid: this.dpidHex });
      for (const p of await this.multipart({ type: 'port_desc' }).then((bodies) => bodies.flatMap((b) => b.ports))) this.ports.set(p.portNo, p);
      // §7.3.2: miss_send_len = OFPCML_NO_BUFFER sends whole packets, no buffer ids to track.
      this.send({ type: 'set_config', xid: 0, flags: 0, missSendLen: this.opts.missSendLen });
      await this.barrier();
    } catch (err) {
      if (this.state !== 'closed') {
        this.fail({ code: ControllerErrorCode.Handshake, message: `handshake failed: ${(err as Error).message}` });
      }
      return;
    }
    if (this.state === 'closed') return;
    this.clock.clearTimeout(this.handshakeTimer);
    this.state = 'up';
    this.startKeepalive();
    this.log.info({ event: 'switch_up', peer: this.peer, ports: this.ports.size, nTables: this.features?.nTables }, 'switch connected');
    this.handshakeWaiter?.resolve();
    this.handshakeWaiter = undefined;
    this.emit('up');
  }

  // -------------------------------------------------------------------------------------------
  // Keepalive (OpenFlow 1.3.5 §6.3.2: echo request/reply "verify the liveness of a connection").

  private startKeepalive(): void {
    this.keepalive = new KeepaliveState({ intervalMs: this.opts.echoIntervalMs, deadAfterMs: this.opts.deadAfterMs }, this.clock.now());
    this.scheduleKeepalive(this.opts.echoIntervalMs);
  }

  private scheduleKeepalive(ms: number): void {
    this.clock.clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = this.clock.setTimeout(() => this.keepaliveCheck(), Math.max(1, ms));
  }

  private keepaliveCheck(afterIoTurn = false): void {
    if (!this.keepalive || this.state === 'closed') return;
    const d = this.keepalive.decide(this.clock.now());
    if (d.action === 'dead') {
      // Node runs due timers before it polls the sockets: after the event loop stalled (GC, a long
      // synchronous job elsewhere in the process), a switch's reply may be waiting unread. Look
      // once more after one I/O turn (setImmediate runs after the poll phase) before judging.
      if (!afterIoTurn) {
        setImmediate(() => this.keepaliveCheck(true));
        return;
      }
      this.fail({
        code: ControllerErrorCode.Keepalive,
        message: `no message from the switch for ${d.silentMs} ms (echo every ${this.opts.echoIntervalMs} ms, dead after ${this.opts.deadAfterMs} ms)`,
      });
      return;
    }
    if (d.action === 'probe') this.echo().catch(() => {}); // a missing reply is the keepalive's to judge
    this.scheduleKeepalive(d.checkInMs);
  }

  /** Sends an echo request; resolves with the round-trip time in ms. */
  async echo(data: Buffer = Buffer.alloc(0)): Promise<number> {
    const start = this.clock.now();
    await this.request({ type: 'echo_request', xid: 0, data }, { timeoutMs: this.opts.deadAfterMs });
    this.lastEchoRttMs = this.clock.now() - start;
    return this.lastEchoRttMs;
  }

  // -------------------------------------------------------------------------------------------
  // Sending.

  /**
   * Sends a message that has no reply (flow-mod, packet-out, ...); returns its xid. An OFPT_ERROR
   * for it arrives as an `ofp_error` event naming this message; `barrier()` says when it is done.
   */
  send(msg: Sendable): number {
    this.assertOpen(msg.type);
    const xid = msg.xid || this.xids.allocate((x) => this.requests.has(x) || this.unconfirmed.has(x));
    this.remember(msg, xid);
    this.write(msg, xid);
    return xid;
  }

  /** Sends a request and resolves with its reply (every part of a multipart reply, in order). */
  async request<R extends OfpMessage = OfpMessage>(msg: Sendable, opts: { timeoutMs?: number } = {}): Promise<R[]> {
    this.assertOpen(msg.type);
    const xid = this.xids.allocate((x) => this.requests.has(x) || this.unconfirmed.has(x));
    const m = { ...msg, xid } as OfpMessage;
    const reply = this.requests.add(m, { timeoutMs: opts.timeoutMs ?? this.opts.requestTimeoutMs, multipart: m.type === 'multipart_request' });
    this.write(m);
    try {
      return (await reply) as R[];
    } catch (err) {
      if (err instanceof RequestTimeoutError) {
        throw new RequestTimeoutError(err.xid, err.requestType, err.timeoutMs, this.dpidHex);
      }
      throw err;
    }
  }

  /** A multipart request (§7.3.5); resolves with the body of every reply part. */
  async multipart<T extends MultipartRequestBody['type']>(body: Extract<MultipartRequestBody, { type: T }>, opts: { timeoutMs?: number } = {}): Promise<ReplyBodyOf<T>[]> {
    const replies = await this.request<MessageOf<'multipart_reply'>>({ type: 'multipart_request', xid: 0, flags: 0, body }, opts);
    return replies.map((r) => r.body as ReplyBodyOf<T>);
  }

  /**
   * OFPT_BARRIER_REQUEST (§6.2 "Message Ordering"): resolves once the switch has processed every
   * message sent before it. The way to know that earlier flow-mods took effect.
   */
  async barrier(opts: { timeoutMs?: number } = {}): Promise<void> {
    await this.request({ type: 'barrier_request', xid: 0 }, opts);
  }

  /**
   * Sends `msgs` (flow-mods, group-mods, ...) then a barrier; resolves when all took effect, rejects
   * with a FlowModsError listing every OFPT_ERROR, each tied to its message. Not atomic: use
   * `bundle()` for all-or-nothing.
   */
  async sendConfirmed(msgs: readonly Sendable[], opts: { timeoutMs?: number } = {}): Promise<void> {
    const batch = this.openBatch();
    try {
      await this.sendBatch(msgs, batch);
      await this.barrier({ timeoutMs: opts.timeoutMs ?? Math.max(this.opts.requestTimeoutMs, msgs.length) });
    } finally {
      this.batches.delete(batch);
    }
    if (batch.errors.length > 0) throw new FlowModsError(this.dpidHex, batch.errors, msgs.length);
  }

  /** Starts collecting the errors of one batch call's messages. */
  private openBatch(): Batch {
    const batch: Batch = { msgs: new Map(), errors: [] };
    this.batches.add(batch);
    return batch;
  }

  /** Writes many messages, pausing for 'drain' when the socket's queue is long. */
  private async sendBatch(msgs: readonly Sendable[], batch: Batch): Promise<number[]> {
    const xids: number[] = [];
    for (const msg of msgs) {
      this.assertOpen(msg.type);
      const xid = this.xids.allocate((x) => this.requests.has(x) || this.unconfirmed.has(x));
      // (For a bundle add, encodeWithXid puts the same xid on the inner message: EXT-230.)
      batch.msgs.set(xid, msg);
      this.write(msg, xid);
      xids.push(xid);
      if (this.outQueueBytes + this.socket.writableLength > HIGH_WATER) await this.drain();
    }
    return xids;
  }

  private async drain(): Promise<void> {
    this.flush();
    if (this.socket.writableLength <= HIGH_WATER / 2 || this.state === 'closed') return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.on('close', done);
    });
  }

  /** OFPT_PACKET_OUT (§7.3.7) of a whole packet (no buffer id), as if it came in on `inPort`. */
  packetOut(data: Buffer, actions: Action[], inPort: number = OFPP.controller): number {
    return this.send(packetOutMessage(data, actions, { inPort }));
  }

  /** OFPT_SET_ASYNC (§7.3.10): which async messages this controller receives, per role. */
  setAsync(masks: { packetIn: AsyncMaskPair; portStatus: AsyncMaskPair; flowRemoved: AsyncMaskPair }): number {
    return this.send({ type: 'set_async', xid: 0, packetInMask: masks.packetIn, portStatusMask: masks.portStatus, flowRemovedMask: masks.flowRemoved });
  }

  async getAsync(): Promise<MessageOf<'get_async_reply'>> {
    const [reply] = await this.request<MessageOf<'get_async_reply'>>({ type: 'get_async_request', xid: 0 });
    return reply!;
  }

  /**
   * OFPT_ROLE_REQUEST (§6.3.6, §7.3.9). For master and slave the generation id orders requests
   * from different controllers; the switch refuses one older than the newest it saw (STALE).
   */
  async requestRole(role: RoleName, generationId = 0n): Promise<{ role: RoleName; generationId: bigint }> {
    const [reply] = await this.request<MessageOf<'role_reply'>>({ type: 'role_request', xid: 0, role: OFPCR_ROLE[role], generationId });
    const name = (Object.keys(OFPCR_ROLE) as RoleName[]).find((k) => OFPCR_ROLE[k] === reply!.role) ?? 'nochange';
    return { role: name, generationId: reply!.generationId };
  }

  // -------------------------------------------------------------------------------------------
  // Bundles (ONF EXT-230 on OpenFlow 1.3; OpenFlow 1.4.1 §6.8 semantics).

  /**
   * Applies `msgs` as one bundle: open, add each, barrier, commit (ATOMIC|ORDERED by default), so
   * the switch applies all of them or none. Errors from any add discard the bundle before commit,
   * and the call rejects with a BundleError naming every failed message. Where the switch refuses
   * bundles, falls back (logged) to plain flow-mods confirmed by barrier, or throws when asked.
   */
  async bundle(msgs: readonly Sendable[], opts: BundleOptions = {}): Promise<'bundle' | 'plain'> {
    return (await this.prepareBundle(msgs, opts)).commit();
  }

  /**
   * The first half of `bundle`: the bundle opened, filled and every add checked by a barrier, but
   * not committed, so nothing in the switch's tables changed yet (OpenFlow 1.4.1 §6.8: a bundle's
   * messages are validated as they are added and applied only at its commit). Several switches
   * can be prepared in parallel and then committed in the same instant, and a switch refusing its
   * adds leaves every one of them unchanged.
   */
  async prepareBundle(msgs: readonly Sendable[], opts: BundleOptions = {}): Promise<PreparedBundle> {
    const flags = (opts.atomic === false ? 0 : OFPBF.atomic) | (opts.ordered === false ? 0 : OFPBF.ordered);
    if (this.bundlesSupported === false) return this.plainBundle(msgs, opts, 'the switch refused bundles before');
    const bundleId = this.nextBundleId++;
    const control = (controlType: MessageOf<'bundle_control'>['controlType']) =>
      this.request<MessageOf<'bundle_control'>>(bundleControl(0, bundleId, controlType, flags));
    try {
      await control('open_request');
    } catch (err) {
      if (err instanceof OfpErrorReply && this.bundlesSupported === undefined && isUnsupported(err)) {
        this.bundlesSupported = false;
        return this.plainBundle(msgs, opts, err.errorName);
      }
      throw err instanceof OfpErrorReply ? new BundleError(this.dpidHex, 'open', [err]) : err;
    }
    this.bundlesSupported = true;
    const discard = () =>
      control('discard_request').then(
        () => undefined,
        (e: Error) => this.log.warn({ event: 'bundle_discard_failed', bundleId, err: e.message }, 'bundle discard failed'),
      );
    const batch = this.openBatch();
    try {
      await this.sendBatch(msgs.map((m) => bundleAdd(bundleId, m, flags)), batch);
      // The barrier makes sure every add was checked before we decide to commit: a switch that
      // refused one add would otherwise commit the rest.
      await this.barrier({ timeoutMs: Math.max(this.opts.requestTimeoutMs, msgs.length) });
    } catch (err) {
      // A timeout leaves the bundle open on the switch; a closed connection discards it there.
      if (!this.closed) await discard();
      throw err;
    } finally {
      this.batches.delete(batch);
    }
    const errors = batch.errors;
    if (errors.length > 0) {
      await discard();
      throw new BundleError(this.dpidHex, 'add', errors);
    }
    let settled = false;
    const settle = () => {
      if (settled) throw new ControllerError(ControllerErrorCode.Bundle, `bundle ${bundleId} on switch ${this.dpidHex} was already committed or discarded`);
      settled = true;
    };
    return {
      mode: 'bundle',
      commit: async () => {
        settle();
        const timeoutMs = Math.max(this.opts.requestTimeoutMs, msgs.length);
        opts.onCommit?.(performance.now());
        const commit = this.request<MessageOf<'bundle_control'>>(bundleControl(0, bundleId, 'commit_request', flags), { timeoutMs });
        // Same write as the commit (writes are coalesced until the microtask): ordered behind it.
        const confirmed = opts.confirm ? this.barrier({ timeoutMs }) : undefined;
        try {
          await commit;
        } catch (err) {
          confirmed?.catch(() => undefined);
          if (err instanceof OfpErrorReply) throw new BundleError(this.dpidHex, 'commit', [err]);
          throw err;
        }
        await confirmed;
        return 'bundle';
      },
      discard: async () => {
        if (settled) return;
        settled = true;
        if (!this.closed) await discard();
      },
    };
  }

  /** A switch without bundles: the messages go one by one at commit, confirmed by a barrier. */
  private plainBundle(msgs: readonly Sendable[], opts: BundleOptions, why: string): PreparedBundle {
    if (opts.fallback === 'throw') {
      throw new ControllerError(ControllerErrorCode.Bundle, `switch ${this.dpidHex} does not support bundles (${why})`);
    }
    return {
      mode: 'plain',
      commit: async () => {
        this.log.warn({ event: 'bundle_fallback', why, messages: msgs.length }, 'switch refuses bundles; sending flow-mods one by one (not atomic)');
        opts.onCommit?.(performance.now());
        await this.sendConfirmed(msgs);
        return 'plain';
      },
      discard: async () => undefined,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Flow programming (layer 3).

  /** Flow stats (§7.3.5.2) of the flows whose cookie matches `cookie` under `cookieMask`. */
  async dumpFlows(filter: { cookie?: bigint; cookieMask?: bigint; tableId?: number } = {}): Promise<FlowStats[]> {
    const bodies = await this.multipart({
      type: 'flow',
      tableId: filter.tableId ?? OFPTT.all,
      outPort: OFPP.any,
      outGroup: OFPG.any,
      cookie: filter.cookie ?? 0n,
      cookieMask: filter.cookieMask ?? 0n,
      match: [],
    });
    return bodies.flatMap((b) => b.stats);
  }

  /** Every flow in coat's cookie space. */
  dumpCoatFlows(): Promise<FlowStats[]> {
    return this.dumpFlows({ cookie: COAT_COOKIE, cookieMask: COAT_COOKIE_MASK });
  }

  /**
   * Makes coat's flows on this switch exactly `desired`: dumps the flows in coat's cookie space,
   * diffs by cookie, sends the adds and deletes (in one bundle when the switch takes bundles,
   * else plain), and confirms with a barrier. Flows outside coat's cookie space are never read,
   * changed nor deleted.
   */
  reconcile(desired: DesiredFlows, opts: { atomic?: boolean } = {}): Promise<ReconcileResult & { plan: ReconcilePlan }> {
    // One at a time per switch: a plan computed from an older dump must not be applied after a
    // newer one, or the switch would end with the older desired set.
    const run = this.reconciling.then(() => this.reconcileNow(desired, opts));
    this.reconciling = run.catch(() => {});
    return run;
  }

  private async reconcileNow(desired: DesiredFlows, opts: { atomic?: boolean }): Promise<ReconcileResult & { plan: ReconcilePlan }> {
    const present = await this.dumpCoatFlows();
    const plan = planReconcile(desired, present);
    const msgs: FlowMod[] = [
      ...plan.deleteFirst.map(deleteByCookie),
      ...plan.add,
      ...plan.deleteAfter.map(deleteByCookie),
    ];
    let mode: ReconcileResult['mode'] = 'none';
    if (msgs.length > 0) {
      mode = opts.atomic === false ? (await this.sendConfirmed(msgs), 'plain') : await this.bundle(msgs);
    }
    const result = { added: plan.add.length, deleted: plan.deleteFirst.length + plan.deleteAfter.length, kept: plan.kept, mode, plan };
    this.log.info({ event: 'reconciled', added: result.added, deleted: result.deleted, kept: result.kept, mode }, 'flows reconciled');
    return result;
  }

  // -------------------------------------------------------------------------------------------
  // Receiving.

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    let msgs: OfpMessage[];
    try {
      msgs = this.parser.push(chunk);
    } catch (err) {
      // Framing is lost (length < 8): nothing after this point can be trusted.
      const e = err as OfpError;
      this.fail({ code: ControllerErrorCode.Protocol, message: `framing error: ${e.message}` });
      return;
    }
    const now = this.clock.now();
    for (const msg of msgs) {
      if (this.closed) return;
      this.keepalive?.received(now);
      this.emit('message', msg);
      this.handle(msg);
    }
  }

  private onEnd(): void {
    if (this.state === 'closed') return;
    const buffered = this.parser.buffered;
    this.close(
      buffered > 0
        ? { code: ControllerErrorCode.Protocol, message: `the peer closed the connection inside a message (${buffered} bytes of an incomplete message${buffered < 8 ? ', cut inside the header' : ''})` }
        : { code: 'OFC_EOF', message: 'the peer closed the connection' },
    );
  }

  private handle(msg: OfpMessage): void {
    if (this.state === 'handshaking' && this.features === undefined && msg.type !== 'hello' && msg.type !== 'error' && !this.sawHello) {
      this.fail({ code: ControllerErrorCode.Handshake, message: `expected HELLO first (§6.3.1), got ${msg.type}` });
      return;
    }
    switch (msg.type) {
      case 'hello':
        if (this.sawHello) {
          this.log.warn({ event: 'duplicate_hello' }, 'second HELLO ignored');
          return;
        }
        this.sawHello = true;
        this.onHello(msg);
        return;
      case 'echo_request':
        this.write({ type: 'echo_reply', xid: msg.xid, data: msg.data });
        return;
      case 'error':
        this.onError(msg);
        return;
      case 'packet_in':
        this.emit('packet_in', msg);
        return;
      case 'port_status':
        if (msg.reason === OFPPR.delete) this.ports.delete(msg.port.portNo);
        else this.ports.set(msg.port.portNo, msg.port);
        this.log.debug({ event: 'port_status', port: msg.port.portNo, name: msg.port.name, reason: msg.reason }, 'port status');
        this.emit('port_status', msg);
        return;
      case 'flow_removed':
        this.emit('flow_removed', msg);
        return;
      case 'barrier_reply':
        this.confirmUpTo(msg.xid);
        break;
      default:
        break;
    }
    if (REPLY_TYPES.has(msg.type)) {
      const more = msg.type === 'multipart_reply' && (msg.flags & OFPMPF.more) !== 0;
      const r = this.requests.deliver(msg, more);
      if (r === 'late') this.log.debug({ event: 'late_reply', type: msg.type, xid: msg.xid }, 'reply after its deadline');
      if (r === 'unknown') {
        this.fail({ code: ControllerErrorCode.Protocol, message: `${msg.type} with xid ${msg.xid} answers no request of ours` });
      }
      return;
    }
    this.log.warn({ event: 'unexpected_message', type: msg.type, xid: msg.xid }, 'message a switch should not send; ignored');
  }

  private onError(msg: ErrorMessage): void {
    const pending = this.requests.request(msg.xid);
    let sent = this.unconfirmed.get(msg.xid)?.msg;
    const batches = [...this.batches].filter((b) => b.msgs.has(msg.xid));
    sent ??= batches[0]?.msgs.get(msg.xid);
    const err = new OfpErrorReply(this.state === 'handshaking' && this.dpid === 0n ? undefined : this.dpidHex, msg.xid, msg, pending ?? sent);
    if (this.state === 'handshaking' && msg.errorType === OFPET.hello_failed) {
      this.fail({ code: ControllerErrorCode.Handshake, message: `the switch refused the handshake: ${err.errorName}: ${msg.data.toString('latin1').replace(/[^\x20-\x7e]/g, '')}` });
      return;
    }
    if (pending) this.requests.fail(msg.xid, err);
    for (const b of batches) b.errors.push(err);
    this.log.warn({ event: 'ofp_error', xid: msg.xid, error: err.errorName, request: err.request?.type }, err.message);
    this.emit('ofp_error', err);
  }

  /** A message whose frame is sound but whose body is not OpenFlow 1.3 as we know it. */
  private violation(err: OfpError, raw: Buffer): void {
    if (this.state === 'closed') return;
    // §7.4.4: answer an unknown type with OFPET_BAD_REQUEST / OFPBRC_BAD_TYPE (data: at least the
    // first 64 bytes of the offending message), then give up on this peer.
    const code = err.code === 'OFP_BAD_TYPE' ? 1 : err.code === 'OFP_BAD_VERSION' ? 0 : err.code === 'OFP_BAD_MULTIPART' ? 2 : 6;
    this.write({ type: 'error', xid: raw.length >= 8 ? raw.readUInt32BE(4) : 0, errorType: OFPET.bad_request, code, data: Buffer.from(raw.subarray(0, 64)) });
    this.fail({ code: ControllerErrorCode.Protocol, message: `undecodable message (${raw.length} bytes, type ${raw[1]}): ${err.code}: ${err.message}` });
  }

  // -------------------------------------------------------------------------------------------
  // Bookkeeping.

  /** Keeps a sent message (as the caller gave it) so an OFPT_ERROR carrying `xid` can name it. */
  private remember(m: OfpMessage, xid: number): void {
    if (m.type === 'barrier_request') return;
    if (this.unconfirmed.size >= UNCONFIRMED_LIMIT) {
      const oldest = this.unconfirmed.keys().next().value;
      if (oldest !== undefined) this.unconfirmed.delete(oldest);
    }
    this.unconfirmed.set(xid, { msg: m, seq: this.sendSeq });
  }

  /** A barrier reply: every message sent before it is done (errors for them already arrived). */
  private confirmUpTo(barrierXid: number): void {
    // The map is in send order: drop entries from the front up to the barrier's send position.
    const mark = this.barrierMarks.get(barrierXid);
    if (mark === undefined) return;
    this.barrierMarks.delete(barrierXid);
    for (const [xid, u] of this.unconfirmed) {
      if (u.seq >= mark) break;
      this.unconfirmed.delete(xid);
    }
  }

  private write(m: OfpMessage, xid: number = m.xid): void {
    if (this.state === 'closed') return;
    if (m.type === 'barrier_request') this.barrierMarks.set(xid, this.sendSeq);
    this.sendSeq++;
    let buf: Buffer;
    try {
      buf = encodeWithXid(m, xid);
    } catch (err) {
      this.unconfirmed.delete(xid);
      throw err; // the caller's message is malformed: its fault, not the switch's
    }
    this.outQueue.push(buf);
    this.outQueueBytes += buf.length;
    // Hand big batches to the kernel as they grow, so the switch works on the first flow-mods
    // while we still encode the last ones (two processes, two cores).
    if (this.outQueueBytes >= FLUSH_AT) {
      this.flush();
      return;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** Writes queued messages in one go (a loop of 100 000 flow-mods becomes a few big writes). */
  private flush(): void {
    if (this.outQueue.length === 0 || this.socket.destroyed) return;
    const data = this.outQueue.length === 1 ? this.outQueue[0]! : Buffer.concat(this.outQueue, this.outQueueBytes);
    this.outQueue = [];
    this.outQueueBytes = 0;
    this.socket.write(data);
  }

  private assertOpen(what: string): void {
    if (this.state === 'closed') throw new ConnectionClosedError(this.closeReason ?? { code: 'OFC_LOCAL', message: 'closed' }, what);
  }

  /** Closes because of a failure: logged as a warning with the reason. */
  private fail(reason: CloseReason): void {
    if (this.state === 'closed') return;
    this.log.warn({ event: 'connection_failed', reason: reason.code, peer: this.peer }, reason.message);
    this.close(reason);
  }

  /** Closes the connection (idempotent); pending requests fail with ConnectionClosedError. */
  close(reason: CloseReason = { code: 'OFC_LOCAL', message: 'closed by the controller' }): void {
    if (this.state === 'closed') return;
    const wasUp = this.state === 'up';
    this.state = 'closed';
    this.closeReason = reason;
    this.clock.clearTimeout(this.keepaliveTimer);
    this.clock.clearTimeout(this.handshakeTimer);
    this.requests.failAll((req) => new ConnectionClosedError(reason, req.type));
    this.unconfirmed.clear();
    // Send what is queued (an error reply, say) before closing our side.
    if (this.outQueue.length > 0 && !this.socket.destroyed) this.socket.write(Buffer.concat(this.outQueue));
    this.outQueue = [];
    this.outQueueBytes = 0;
    this.socket.end();
    const t = setTimeout(() => this.socket.destroy(), 1000);
    t.unref();
    this.socket.once('close', () => clearTimeout(t));
    if (wasUp) this.log.info({ event: 'switch_down', reason: reason.code }, reason.message);
    this.handshakeWaiter?.reject(new ControllerError(reason.code === ControllerErrorCode.Handshake ? ControllerErrorCode.Handshake : ControllerErrorCode.Closed, reason.message));
    this.handshakeWaiter = undefined;
    this.emit('close', reason);
  }
}

/** OFPFC_DELETE of every flow carrying exactly `cookie` (any table, any match; §7.3.4.1). */
export function deleteByCookie(cookie: bigint): FlowMod {
  return flowDelete({ cookie, cookieMask: 0xffffffffffffffffn });
}

/** Errors meaning "this switch does not do EXT-230 bundles" (as opposed to "this bundle is bad"). */
function isUnsupported(err: OfpErrorReply): boolean {
  // OFPET_BAD_REQUEST with BAD_EXPERIMENTER (3), BAD_EXP_TYPE (4) or BAD_TYPE (1).
  return err.errorType === OFPET.bad_request && [1, 3, 4].includes(err.errorCode);
}
