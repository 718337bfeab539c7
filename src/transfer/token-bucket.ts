/**
 * Token bucket rate limiter (RFC 2697's token bucket, one rate, one bucket) for the planner's
 * bandwidth L. Pure: the caller passes the clock, and gets back how long to wait before sending.
 *
 * Tokens are bytes. The bucket starts full; `reserve(n)` takes `n` tokens (going into debt if there
 * are too few) and returns the wait in ms until the debt is paid. Sending a frame after that wait
 * keeps the long-run rate at `rateBitsPerSecond`, with at most `burstBytes` sent ahead of it.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly bytesPerMs: number;

  constructor(
    readonly rateBitsPerSecond: number,
    readonly burstBytes: number,
    nowMs: number,
  ) {
    if (!(rateBitsPerSecond > 0) || !Number.isFinite(rateBitsPerSecond)) throw new RangeError(`rate ${rateBitsPerSecond} bit/s must be a positive number`);
    if (!(burstBytes > 0)) throw new RangeError(`burst ${burstBytes} must be positive`);
    this.bytesPerMs = rateBitsPerSecond / 8 / 1000;
    this.tokens = burstBytes;
    this.last = nowMs;
  }

  /** Takes `bytes` tokens at time `nowMs`; returns the ms to wait before sending them (0 = now). */
  reserve(bytes: number, nowMs: number): number {
    const elapsed = Math.max(0, nowMs - this.last);
    this.last = Math.max(this.last, nowMs);
    this.tokens = Math.min(this.burstBytes, this.tokens + elapsed * this.bytesPerMs) - bytes;
    return this.tokens >= 0 ? 0 : -this.tokens / this.bytesPerMs;
  }
}
