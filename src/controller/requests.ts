/**
 * The table of requests waiting for their replies, keyed by xid, each with a deadline.
 *
 * Replies are matched by xid (OpenFlow 1.3.5 §6.2 "Message Handling": a reply carries the xid of
 * its request). Multipart replies arrive in pieces: every piece but the last carries
 * OFPMPF_REPLY_MORE (OpenFlow 1.3.5 §7.3.5), so the table gathers them and resolves once with all.
 * An OFPT_ERROR carrying a waiting xid rejects that request with a typed error naming it.
 *
 * A reply that arrives after its deadline passed is "late", not "unsolicited": the table remembers
 * the last few expired xids so that a slow switch is not mistaken for a broken one.
 */
import type { Clock } from './keepalive.js';
import { ControllerError, ControllerErrorCode } from './errors.js';

export interface XidMessage {
  type: string;
  xid: number;
}

export type DeliverResult = 'done' | 'partial' | 'late' | 'unknown';

interface Pending<M extends XidMessage> {
  request: M;
  multipart: boolean;
  parts: M[];
  resolve: (replies: M[]) => void;
  reject: (err: Error) => void;
  timer: unknown;
  timeoutMs: number;
}

export class RequestTimeoutError extends ControllerError {
  constructor(
    readonly xid: number,
    readonly requestType: string,
    readonly timeoutMs: number,
    readonly dpid?: string,
  ) {
    super(ControllerErrorCode.Timeout, `no reply to ${requestType} xid ${xid} within ${timeoutMs} ms`);
  }
}

const LATE_MEMORY = 1024;

export class RequestTable<M extends XidMessage> {
  private readonly pending = new Map<number, Pending<M>>();
  private readonly expired = new Set<number>();

  constructor(
    private readonly clock: Clock,
    private readonly onTimeout: (err: RequestTimeoutError) => void = () => {},
  ) {}

  get size(): number {
    return this.pending.size;
  }

  has(xid: number): boolean {
    return this.pending.has(xid);
  }

  /** The request waiting under `xid`, if any (used to name the offender of an OFPT_ERROR). */
  request(xid: number): M | undefined {
    return this.pending.get(xid)?.request;
  }

  /**
   * Registers `request` (already carrying its xid) before it is sent. Resolves with the reply, or
   * with every part of a multipart reply in order.
   */
  add(request: M, opts: { timeoutMs: number; multipart?: boolean }): Promise<M[]> {
    if (this.pending.has(request.xid)) throw new RangeError(`xid ${request.xid} is already waiting for a reply`);
    return new Promise<M[]>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.pending.delete(request.xid);
        this.remember(request.xid);
        const err = new RequestTimeoutError(request.xid, request.type, opts.timeoutMs);
        this.onTimeout(err);
        reject(err);
      }, opts.timeoutMs);
      this.pending.set(request.xid, { request, multipart: opts.multipart ?? false, parts: [], resolve, reject, timer, timeoutMs: opts.timeoutMs });
    });
  }

  /** Hands a reply to its request. `more` is the OFPMPF_REPLY_MORE flag of a multipart piece. */
  deliver(reply: M, more = false): DeliverResult {
    const p = this.pending.get(reply.xid);
    if (!p) return this.expired.has(reply.xid) ? 'late' : 'unknown';
    p.parts.push(reply);
    if (p.multipart && more) return 'partial';
    this.finish(reply.xid, p);
    p.resolve(p.parts);
    return 'done';
  }

  /** Rejects the request under `xid` (an OFPT_ERROR arrived for it). False when none waits. */
  fail(xid: number, err: Error): boolean {
    const p = this.pending.get(xid);
    if (!p) return false;
    this.finish(xid, p);
    p.reject(err);
    return true;
  }

  /** Rejects everything (the connection closed). */
  failAll(err: (request: M) => Error): void {
    for (const [xid, p] of [...this.pending]) {
      this.finish(xid, p);
      p.reject(err(p.request));
    }
  }

  private finish(xid: number, p: Pending<M>): void {
    this.clock.clearTimeout(p.timer);
    this.pending.delete(xid);
  }

  private remember(xid: number): void {
    this.expired.add(xid);
    if (this.expired.size > LATE_MEMORY) {
      const oldest = this.expired.values().next().value;
      if (oldest !== undefined) this.expired.delete(oldest);
    }
  }
}
