/**
 * Pure bookkeeping of an ICMP echo run: which sequence numbers were sent when, which answers came
 * back when, and the figures a person checking a handover wants: lost, duplicated, late, RTT
 * percentiles and the longest silence between two answers (the interruption the client saw).
 */

export interface EchoSummary {
  target: string;
  sent: number;
  received: number;
  /** Sequence numbers never answered within the timeout. */
  lost: number[];
  /** Answers for a sequence already answered. */
  duplicates: number;
  /** Answers that came after the timeout (counted as lost, listed here too). */
  late: number[];
  rttMs: { min: number; median: number; p99: number; max: number } | null;
  /** Longest time between two consecutive answers (or start -> first answer), ms. */
  longestGapMs: number;
  durationMs: number;
}

export class EchoLedger {
  private readonly sentAt = new Map<number, number>();
  private readonly answeredAt = new Map<number, number>();
  private readonly lateSeqs: number[] = [];
  private duplicates = 0;
  private firstSendMs: number | undefined;
  private lastEventMs = 0;

  constructor(
    readonly target: string,
    private readonly timeoutMs: number,
  ) {}

  sent(sequence: number, atMs: number): void {
    this.sentAt.set(sequence, atMs);
    this.firstSendMs ??= atMs;
    this.lastEventMs = Math.max(this.lastEventMs, atMs);
  }

  /** Records an answer; returns false when it is not for a sequence this run sent. */
  answered(sequence: number, atMs: number): boolean {
    const sentAt = this.sentAt.get(sequence);
    if (sentAt === undefined) return false;
    this.lastEventMs = Math.max(this.lastEventMs, atMs);
    if (this.answeredAt.has(sequence) || this.lateSeqs.includes(sequence)) {
      this.duplicates++;
      return true;
    }
    if (atMs - sentAt > this.timeoutMs) this.lateSeqs.push(sequence);
    else this.answeredAt.set(sequence, atMs);
    return true;
  }

  /** Every sequence sent and not yet answered (nor timed out) at `nowMs`. */
  outstanding(nowMs: number): number[] {
    const out: number[] = [];
    for (const [seq, at] of this.sentAt) if (!this.answeredAt.has(seq) && !this.lateSeqs.includes(seq) && nowMs - at <= this.timeoutMs) out.push(seq);
    return out;
  }

  summary(): EchoSummary {
    const rtts: number[] = [];
    for (const [seq, at] of this.answeredAt) rtts.push(at - this.sentAt.get(seq)!);
    rtts.sort((a, b) => a - b);
    const pick = (q: number) => rtts[Math.min(rtts.length - 1, Math.ceil(q * rtts.length) - 1)]!;
    const answers = [...this.answeredAt.values()].sort((a, b) => a - b);
    let gap = 0;
    let prev = this.firstSendMs ?? 0;
    for (const a of answers) {
      gap = Math.max(gap, a - prev);
      prev = a;
    }
    const lost = [...this.sentAt.keys()].filter((s) => !this.answeredAt.has(s)).sort((a, b) => a - b);
    return {
      target: this.target,
      sent: this.sentAt.size,
      received: this.answeredAt.size,
      lost,
      duplicates: this.duplicates,
      late: [...this.lateSeqs].sort((a, b) => a - b),
      rttMs: rtts.length ? { min: rtts[0]!, median: pick(0.5), p99: pick(0.99), max: rtts[rtts.length - 1]! } : null,
      longestGapMs: gap,
      durationMs: this.firstSendMs === undefined ? 0 : this.lastEventMs - this.firstSendMs,
    };
  }
}
