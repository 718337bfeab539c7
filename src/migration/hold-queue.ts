/**
 * The hold queue of one migration (pure): packets the hold flows sent to the controller as
 * packet-ins with the full frame (OpenFlow 1.3.5 §7.4.1, `buffer_id = OFP_NO_BUFFER`, so the
 * switch keeps nothing and the frame is the packet), kept in arrival order until the replay.
 *
 * Bounded in packets and in bytes, because a hold that lasts longer than planned must not eat the
 * controller's memory. Overflow is tail drop: the newest packet is refused, which keeps the accepted
 * ones in order and lets TCP recover the refused one by its own retransmission. Nothing is dropped
 * silently: every refused packet is counted in `dropped` and the report shows it (the verdict is
 * then "loss").
 *
 * Counters (the report's `hold` object):
 * - `held`: every packet that arrived while holding (accepted or not);
 * - `dropped`: refused by the bound, or handed to replay and lost there (`replayFailed`);
 * - `replayed`: sent by packet-out.
 * After the whole queue is replayed, `held === replayed + dropped` (tested as a property).
 */

export interface HoldLimits {
  /** Most packets queued at once. */
  maxPackets: number;
  /** Most frame bytes queued at once. */
  maxBytes: number;
}

/** Defaults: room for ~1 s of a 100 Mbit/s stream in full-size frames. */
export const DEFAULT_HOLD_LIMITS: HoldLimits = { maxPackets: 16_384, maxBytes: 16 * 1024 * 1024 };

export interface HeldPacket {
  /** Arrival order, from 0, counting refused packets too (gaps show where overflow hit). */
  seq: number;
  /** The whole Ethernet frame from the packet-in. A copy: the channel may reuse its buffer. */
  frame: Buffer;
  /** The switch that sent the packet-in and its ingress port, for the report and logs. */
  dpid?: bigint;
  inPort?: number;
  /** Arrival time, ms on the orchestrator's clock. */
  atMs: number;
}

export interface HoldStats {
  held: number;
  replayed: number;
  dropped: number;
  /** Packets and bytes waiting right now. */
  queuedPackets: number;
  queuedBytes: number;
  /** The most that waited at once. */
  peakPackets: number;
  peakBytes: number;
}

export type PushResult = 'queued' | 'dropped' | 'closed';

export class HoldQueue {
  readonly limits: HoldLimits;
  private queue: HeldPacket[] = [];
  private queuedBytes = 0;
  private arrivals = 0;
  private dropped = 0;
  private replayed = 0;
  private peakPackets = 0;
  private peakBytes = 0;
  private closed = false;

  constructor(limits: Partial<HoldLimits> = {}) {
    this.limits = { ...DEFAULT_HOLD_LIMITS, ...limits };
    if (!(this.limits.maxPackets >= 0) || !(this.limits.maxBytes >= 0)) {
      throw new RangeError(`hold limits must be >= 0 (got ${this.limits.maxPackets} packets, ${this.limits.maxBytes} bytes)`);
    }
  }

  /**
   * One packet-in for the service. `closed` once the hold is over: the caller forwards that
   * packet the normal way (it arrived between the hold flows' removal and its barrier reply).
   */
  push(frame: Buffer, atMs: number, from: { dpid?: bigint; inPort?: number } = {}): PushResult {
    if (this.closed) return 'closed';
    const seq = this.arrivals++;
    if (this.queue.length + 1 > this.limits.maxPackets || this.queuedBytes + frame.length > this.limits.maxBytes) {
      this.dropped++;
      return 'dropped';
    }
    this.queue.push({ seq, frame: Buffer.from(frame), atMs, ...from });
    this.queuedBytes += frame.length;
    this.peakPackets = Math.max(this.peakPackets, this.queue.length);
    this.peakBytes = Math.max(this.peakBytes, this.queuedBytes);
    return 'queued';
  }

  /**
   * Hands over everything queued, oldest first, and empties the queue. The caller replays them in
   * this order and reports each with `replayDone` or `replayFailed`. Packets that arrive meanwhile
   * queue up for the next `drain`, behind these.
   */
  drain(): HeldPacket[] {
    const out = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    return out;
  }

  replayDone(count = 1): void {
    this.replayed += count;
  }

  /** A packet-out that failed: the packet is lost, so it is counted as dropped, never hidden. */
  replayFailed(count = 1): void {
    this.dropped += count;
  }

  /** No more packets are accepted (hold flows removed); what is queued can still be drained. */
  close(): void {
    this.closed = true;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  stats(): HoldStats {
    return {
      held: this.arrivals,
      replayed: this.replayed,
      dropped: this.dropped,
      queuedPackets: this.queue.length,
      queuedBytes: this.queuedBytes,
      peakPackets: this.peakPackets,
      peakBytes: this.peakBytes,
    };
  }
}
