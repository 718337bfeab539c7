/**
 * Echo keepalive as a pure state machine driven by an injected clock (the same policy as Open
 * vSwitch's rconn): after `intervalMs` with nothing received, send an OFPT_ECHO_REQUEST
 * (OpenFlow 1.3.5 §6.3.2 "Echo Request/Reply messages ... used to verify the liveness of a
 * controller-switch connection"); if still nothing has arrived `deadAfterMs - intervalMs` after
 * that probe (`deadAfterMs` after the last message, unless we ourselves stalled), the peer is dead. Any message counts as a sign of life, not only echo replies: a switch
 * busy streaming a large multipart reply is alive.
 */

/** Time source and timers, injected so that tests can run hours of silence in microseconds. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface KeepaliveOptions {
  /** Idle time before an echo request is sent (default 5000 ms). */
  intervalMs: number;
  /** Silence after which the peer is declared dead (SwitchConnection's default: 3 × interval). */
  deadAfterMs: number;
}

export type KeepaliveDecision =
  | { action: 'wait'; checkInMs: number }
  | { action: 'probe'; checkInMs: number }
  | { action: 'dead'; silentMs: number };

export class KeepaliveState {
  private lastReceived: number;
  private probedAt: number | undefined;

  constructor(
    readonly opts: KeepaliveOptions,
    now: number,
  ) {
    if (!(opts.intervalMs > 0) || !(opts.deadAfterMs > opts.intervalMs)) {
      throw new RangeError(`keepalive needs 0 < intervalMs (${opts.intervalMs}) < deadAfterMs (${opts.deadAfterMs})`);
    }
    this.lastReceived = now;
  }

  /** A message arrived from the peer. */
  received(now: number): void {
    this.lastReceived = now;
    this.probedAt = undefined;
  }

  /**
   * What to do at `now`; the caller sends the echo on 'probe' and checks again after `checkInMs`.
   *
   * Dead means: a probe went out and nothing at all came back for `deadAfterMs - intervalMs` after
   * it (so, without stalls, `deadAfterMs` of silence in all, as rconn's IDLE state). The verdict
   * needs a probe the peer had time to answer: after this process stalled (GC, a long synchronous
   * job) the first check finds a long silence that is ours, not the peer's, and probes instead.
   */
  decide(now: number): KeepaliveDecision {
    const silent = now - this.lastReceived;
    const grace = this.opts.deadAfterMs - this.opts.intervalMs;
    if (this.probedAt === undefined) {
      if (silent < this.opts.intervalMs) return { action: 'wait', checkInMs: this.opts.intervalMs - silent };
      this.probedAt = now;
      // Look again at least every interval: a reply does not move the timer, and the next echo
      // must follow one interval of silence after it, not wait for the dead-peer deadline.
      return { action: 'probe', checkInMs: Math.min(grace, this.opts.intervalMs) };
    }
    const sinceProbe = now - this.probedAt;
    if (sinceProbe >= grace) return { action: 'dead', silentMs: silent };
    return { action: 'wait', checkInMs: Math.min(grace - sinceProbe, this.opts.intervalMs) };
  }
}
