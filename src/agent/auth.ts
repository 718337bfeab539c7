/**
 * Command authentication, the second lock after NATS' own (user/password, token or creds on the
 * server decide who may publish to `coat.agent.*.cmd.*` at all). Every command carries an
 * HMAC-SHA256 (RFC 2104) under a secret shared by the controller and the agents, over:
 *
 *   "coat-agent-cmd-v1" LF subject LF sentAt LF nonce LF deadlineMs LF args
 *
 * The subject is inside the MAC, so a command signed for one agent or one command cannot be
 * replayed to another; `sentAt` must be within `maxSkewMs` of the agent's clock and each nonce is
 * accepted once within that window, so a captured command cannot be replayed later. Pure: the
 * caller passes the clock.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { CommandRequest } from './protocol.js';
import { PROTOCOL_VERSION } from './protocol.js';

export const MAX_SKEW_MS = 30_000;
/** Longest deadline a command may carry (timers above 2^31-1 ms would fire at once). */
export const MAX_DEADLINE_MS = 24 * 3600_000;

function macOf(secret: Buffer, subject: string, r: Omit<CommandRequest, 'mac' | 'v'>): Buffer {
  return createHmac('sha256', secret).update(`coat-agent-cmd-v1\n${subject}\n${r.sentAt}\n${r.nonce}\n${r.deadlineMs}\n${r.args}`, 'utf8').digest();
}

export function signCommand(secret: Buffer, subject: string, args: unknown, deadlineMs: number, nowMs: number): CommandRequest {
  const body = { sentAt: nowMs, nonce: randomBytes(12).toString('hex'), deadlineMs, args: JSON.stringify(args) };
  return { v: PROTOCOL_VERSION, ...body, mac: macOf(secret, subject, body).toString('hex') };
}

export type VerifyOutcome = { ok: true } | { ok: false; reason: string };

/** Checks a command's MAC, age and nonce. Remembers nonces it accepted. */
export class CommandVerifier {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly secret: Buffer,
    private readonly maxSkewMs = MAX_SKEW_MS,
  ) {}

  verify(subject: string, r: CommandRequest, nowMs: number): VerifyOutcome {
    if (r.v !== PROTOCOL_VERSION) return { ok: false, reason: `protocol version ${String(r.v)} is not ${PROTOCOL_VERSION}` };
    if (typeof r.mac !== 'string' || !/^[0-9a-f]{64}$/.test(r.mac)) return { ok: false, reason: 'missing or malformed mac' };
    const want = macOf(this.secret, subject, r);
    if (!timingSafeEqual(want, Buffer.from(r.mac, 'hex'))) return { ok: false, reason: 'bad mac (wrong secret, or the command was altered)' };
    if (Math.abs(nowMs - r.sentAt) > this.maxSkewMs) return { ok: false, reason: `sentAt is ${nowMs - r.sentAt} ms from this agent's clock (limit ${this.maxSkewMs})` };
    for (const [n, at] of this.seen) if (nowMs - at > 2 * this.maxSkewMs) this.seen.delete(n);
    if (this.seen.has(r.nonce)) return { ok: false, reason: `nonce ${r.nonce} already used (replay)` };
    this.seen.set(r.nonce, nowMs);
    return { ok: true };
  }
}

/** Checks the shape of a request before verifying it (bad input never crashes). */
export function isCommandRequest(v: unknown): v is CommandRequest {
  const r = v as CommandRequest;
  return (
    typeof r === 'object' && r !== null &&
    typeof r.v === 'number' && typeof r.sentAt === 'number' && typeof r.nonce === 'string' && r.nonce.length <= 64 &&
    typeof r.deadlineMs === 'number' && r.deadlineMs > 0 && r.deadlineMs <= MAX_DEADLINE_MS && typeof r.args === 'string' && typeof r.mac === 'string'
  );
}
