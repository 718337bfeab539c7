/**
 * TCP analysis of a capture (pure): per connection, retransmissions, resets, bytes and the largest
 * gap between data segments; for the whole capture, a throughput timeline in fixed buckets and
 * round-trip samples. It is what the verification report's `client.retransmissions`/`resets` come
 * from, so its notion of a retransmission is Wireshark's (`tcp.analysis.retransmission`,
 * epan/dissectors/packet-tcp.c, tcp_analyze_sequence_number), reduced to what a capture on one
 * interface can see:
 *
 * - a segment that carries data, SYN or FIN, and is not a RST, whose sequence number is below the
 *   highest sequence end already seen in the same direction ("already seen": RFC 9293 §3.4's
 *   sequence space, compared modulo 2^32) is a retransmission, also when only part of it is old;
 * - except a keep-alive: at most one byte at exactly the highest end minus one (RFC 9293 §3.8.4).
 *
 * Wireshark further splits retransmissions into fast/spurious and calls a lower segment that comes
 * within ~3 ms of the highest one "out-of-order"; a capture at the sender's interface (the client's,
 * here) does not see reordering, so the counts agree there, and a test checks them against tshark
 * frame by frame on a real capture with forced losses.
 *
 * Each retransmission is also classed: `spurious` when the receiver already had the data, which
 * the capture proves in two ways: the receiver had acknowledged it before the retransmission was
 * seen (Wireshark's `tcp.analysis.spurious_retransmission`), or it reports it later in a D-SACK
 * (RFC 2883 §4: a first SACK block below the cumulative ACK, or inside the second block). Those are
 * tail-loss probes or RTOs that fired because an ACK came late: nothing was lost. The others are
 * retransmissions of lost segments.
 */
import { decodeEthernet, EtherType } from '../packet/ethernet.js';
import { decodeIpv4, IpProtocol } from '../packet/ipv4.js';
import { decodeTcp } from '../packet/tcp.js';
import type { PcapRecord } from './pcap-format.js';

export interface AnalysisOptions {
  /** Width of a timeline bucket, ms (default 100). */
  bucketMs?: number;
  /** Time zero of the timeline, µs since the epoch (default: the first packet). */
  originUs?: number;
  /**
   * The client's address: splits the timeline into received/sent bytes and takes round-trip
   * samples only for the client's own data (ACKs seen at the sender measure the path).
   */
  clientIp?: string;
  /** Most frame numbers kept in `retransmittedFrames`, and most retransmission events (default 10,000). */
  maxFrameList?: number;
  /** Gaps between data segments of at least this many ms are listed per direction (default 5). */
  gapListMinMs?: number;
}

export interface DirectionStats {
  /** "ip:port" of the sender and receiver. */
  src: string;
  dst: string;
  segments: number;
  dataSegments: number;
  /** Payload bytes, retransmissions included. */
  bytes: number;
  retransmissions: number;
  /** Of those, the ones the receiver already had (see the module comment). */
  spuriousRetransmissions: number;
  retransmittedBytes: number;
  resets: number;
  /** Largest time between two consecutive data segments, ms (0 with fewer than two). */
  maxGapMs: number;
  /** When that gap started, µs since the epoch. */
  maxGapAtUs?: number;
  /** Every gap of at least `gapListMinMs` between data segments, in order (at most 10,000). */
  gaps: { atUs: number; ms: number }[];
  /**
   * Stream bytes this side put on the wire: the highest sequence end minus the SYN's (and the FIN),
   * RFC 9293 §3.4. Only when the capture saw this side's SYN.
   */
  streamBytes?: number;
  firstUs?: number;
  lastUs?: number;
}

export interface ConnectionAnalysis {
  /** "ipA:portA-ipB:portB", A the side that sent the first SYN (or the first packet seen). */
  id: string;
  directions: [DirectionStats, DirectionStats];
  retransmissions: number;
  spuriousRetransmissions: number;
  resets: number;
  bytes: number;
  maxGapMs: number;
  /** Saw the SYN: the connection started inside the capture. */
  sawSyn: boolean;
}

export interface TimelineBucket {
  /** Bucket start, ms from the timeline's origin. */
  tMs: number;
  /** Payload bytes to the client (or all bytes, without clientIp). */
  rxBytes: number;
  /** Payload bytes from the client. */
  txBytes: number;
  retransmissions: number;
}

export interface RttSample {
  tMs: number;
  rttMs: number;
}

/** One retransmitted segment, and whether the receiver already had it. */
export interface RetransmissionEvent {
  /** 1-based frame number, as tshark numbers frames. */
  frame: number;
  tsUs: number;
  /** "ip:port" of the sender and receiver. */
  src: string;
  dst: string;
  seq: number;
  len: number;
  spurious: boolean;
}

export interface CaptureAnalysis {
  packets: number;
  tcpSegments: number;
  /** Frames that are not Ethernet/IPv4/TCP or were cut before the TCP header. */
  skipped: number;
  firstUs?: number;
  lastUs?: number;
  retransmissions: number;
  spuriousRetransmissions: number;
  resets: number;
  bytes: number;
  /** Largest gap between data segments over all connections and directions, ms. */
  maxGapMs: number;
  connections: ConnectionAnalysis[];
  /** 1-based frame numbers of the retransmissions, as tshark numbers frames. */
  retransmittedFrames: number[];
  /** Every retransmission (at most `maxFrameList`), in capture order. */
  retransmissionEvents: RetransmissionEvent[];
  timeline: { originUs: number; bucketMs: number; buckets: TimelineBucket[] };
  rtt: RttSample[];
}

/** Modulo-2^32 sequence comparison (RFC 9293 §3.4): a < b. */
function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

const TCPOPT_EOL = 0;
const TCPOPT_NOP = 1;
const TCPOPT_SACK = 5;

/** The SACK blocks of a TCP options field (RFC 2018 §3), [left, right) each; malformed options end the walk. */
export function sackBlocks(options: Buffer | undefined): [number, number][] {
  const out: [number, number][] = [];
  if (!options) return out;
  let i = 0;
  while (i < options.length) {
    const kind = options[i]!;
    if (kind === TCPOPT_EOL) break;
    if (kind === TCPOPT_NOP) {
      i++;
      continue;
    }
    const len = options[i + 1];
    if (len === undefined || len < 2 || i + len > options.length) break;
    if (kind === TCPOPT_SACK) for (let o = i + 2; o + 8 <= i + len; o += 8) out.push([options.readUInt32BE(o), options.readUInt32BE(o + 4)]);
    i += len;
  }
  return out;
}

interface DirState {
  stats: DirectionStats;
  /** Highest sequence end seen (seq + len + SYN + FIN), undefined until the first segment. */
  nextSeq: number | undefined;
  lastDataUs: number | undefined;
  /** Unacknowledged segments sent in this direction, oldest first, for RTT (Karn: skip retransmitted). */
  inflight: { end: number; tsUs: number; retransmitted: boolean }[];
  /** Highest ACK the other side sent for this direction's data. */
  ackedUpTo: number | undefined;
  /** The SYN's sequence number, and whether a FIN was seen (stream bytes). */
  isn: number | undefined;
  sawFin: boolean;
  /** This direction's retransmissions still open to a later D-SACK. */
  events: RetransmissionEvent[];
}

interface ConnState {
  conn: ConnectionAnalysis;
  dirs: Map<string, DirState>;
}

export class TcpAnalyser {
  private readonly bucketMs: number;
  private readonly maxFrames: number;
  private originUs: number | undefined;
  private frame = 0;
  private tcpSegments = 0;
  private skipped = 0;
  private firstUs: number | undefined;
  private lastUs: number | undefined;
  private readonly conns = new Map<string, ConnState>();
  private readonly buckets = new Map<number, TimelineBucket>();
  private readonly retransmittedFrames: number[] = [];
  private readonly events: RetransmissionEvent[] = [];
  private readonly gapMinMs: number;
  private readonly rtt: RttSample[] = [];

  constructor(private readonly opts: AnalysisOptions = {}) {
    this.bucketMs = opts.bucketMs ?? 100;
    this.maxFrames = opts.maxFrameList ?? 10_000;
    this.originUs = opts.originUs;
    this.gapMinMs = opts.gapListMinMs ?? 5;
    if (!(this.bucketMs > 0)) throw new RangeError(`bucketMs must be > 0 (got ${this.bucketMs})`);
  }

  /** One captured frame (Ethernet link type). Anything undecodable is counted and skipped. */
  add(rec: PcapRecord): void {
    this.frame++;
    this.firstUs ??= rec.tsUs;
    this.originUs ??= rec.tsUs;
    this.lastUs = rec.tsUs;
    let srcIp: string, dstIp: string, seglen: number;
    let tcp: ReturnType<typeof decodeTcp>['header'];
    try {
      const eth = decodeEthernet(rec.data, 0);
      if (eth.header.ethertype !== EtherType.IPV4) return void this.skipped++;
      const ip = decodeIpv4(rec.data, eth.length);
      if (ip.header.protocol !== IpProtocol.TCP || ip.header.fragmentOffset !== 0) return void this.skipped++;
      const t = decodeTcp(rec.data, eth.length + ip.length);
      tcp = t.header;
      srcIp = ip.header.src;
      dstIp = ip.header.dst;
      // From the IP total length, not the captured bytes: the snap length may cut the payload.
      seglen = ip.header.totalLength - ip.length - t.length;
      if (seglen < 0) return void this.skipped++;
    } catch {
      return void this.skipped++;
    }
    this.tcpSegments++;
    const src = `${srcIp}:${tcp.srcPort}`;
    const dst = `${dstIp}:${tcp.dstPort}`;
    const cs = this.connection(src, dst);
    const d = cs.dirs.get(src)!;
    const rev = cs.dirs.get(dst)!;
    const s = d.stats;
    s.segments++;
    s.firstUs ??= rec.tsUs;
    s.lastUs = rec.tsUs;
    if (tcp.flags.syn) cs.conn.sawSyn = true;

    // Acknowledgements for the reverse direction: round-trip samples, what the receiver has, and
    // D-SACKs naming data it received twice.
    if (tcp.flags.ack) {
      this.takeRtt(rev, tcp.ack, rec.tsUs, srcIp);
      if (rev.ackedUpTo === undefined || seqLt(rev.ackedUpTo, tcp.ack)) rev.ackedUpTo = tcp.ack;
      const sacks = sackBlocks(tcp.options);
      const first = sacks[0];
      const second = sacks[1];
      // RFC 2883 §4: the first block is a D-SACK when it lies below the cumulative ACK or inside the second block.
      const isDsack = first !== undefined && (seqLt(first[0], tcp.ack) || (second !== undefined && !seqLt(first[0], second[0]) && !seqLt(second[1], first[1])));
      if (first && isDsack) for (const e of rev.events) if (seqLt(e.seq, first[1]) && seqLt(first[0], (e.seq + Math.max(1, e.len)) >>> 0)) e.spurious = true;
    }

    if (tcp.flags.rst) {
      s.resets++;
      cs.conn.resets++;
      return;
    }
    const consumes = seglen + (tcp.flags.syn ? 1 : 0) + (tcp.flags.fin ? 1 : 0);
    let retransmission = false;
    if (consumes > 0 && d.nextSeq !== undefined) {
      const keepAlive = seglen <= 1 && !tcp.flags.syn && !tcp.flags.fin && tcp.seq === ((d.nextSeq - 1) >>> 0);
      if (!keepAlive && seqLt(tcp.seq, d.nextSeq)) retransmission = true;
    }
    const end = (tcp.seq + consumes) >>> 0;
    if (tcp.flags.syn) d.isn = tcp.seq;
    if (tcp.flags.fin) d.sawFin = true;
    if (consumes > 0 && (d.nextSeq === undefined || seqLt(d.nextSeq, end))) d.nextSeq = end;
    if (d.isn !== undefined && d.nextSeq !== undefined) s.streamBytes = Math.max(0, ((d.nextSeq - d.isn) >>> 0) - 1 - (d.sawFin ? 1 : 0));

    const bucket = this.bucket(rec.tsUs);
    if (seglen > 0) {
      s.dataSegments++;
      s.bytes += seglen;
      cs.conn.bytes += seglen;
      if (d.lastDataUs !== undefined) {
        const gap = (rec.tsUs - d.lastDataUs) / 1000;
        if (gap > s.maxGapMs) {
          s.maxGapMs = gap;
          s.maxGapAtUs = d.lastDataUs;
        }
        if (gap > cs.conn.maxGapMs) cs.conn.maxGapMs = gap;
        if (gap >= this.gapMinMs && s.gaps.length < 10_000) s.gaps.push({ atUs: d.lastDataUs, ms: gap });
      }
      d.lastDataUs = rec.tsUs;
      const toClient = this.opts.clientIp === undefined || dstIp === this.opts.clientIp;
      if (toClient) bucket.rxBytes += seglen;
      else bucket.txBytes += seglen;
    }
    if (retransmission) {
      s.retransmissions++;
      s.retransmittedBytes += seglen;
      cs.conn.retransmissions++;
      bucket.retransmissions++;
      if (this.retransmittedFrames.length < this.maxFrames) this.retransmittedFrames.push(this.frame);
      // Spurious now when the receiver had already acknowledged all of it; else maybe by a later D-SACK.
      const spurious = d.ackedUpTo !== undefined && !seqLt(d.ackedUpTo, (tcp.seq + consumes) >>> 0);
      const ev: RetransmissionEvent = { frame: this.frame, tsUs: rec.tsUs, src, dst, seq: tcp.seq, len: seglen, spurious };
      if (this.events.length < this.maxFrames) this.events.push(ev);
      d.events.push(ev);
      if (d.events.length > 256) d.events.shift();
      for (const f of d.inflight) if (!seqLt(f.end, tcp.seq)) f.retransmitted = true;
    } else if (consumes > 0) {
      d.inflight.push({ end, tsUs: rec.tsUs, retransmitted: false });
      if (d.inflight.length > 4096) d.inflight.shift();
    }
  }

  private takeRtt(d: DirState, ack: number, tsUs: number, ackSenderIp: string): void {
    if (d.inflight.length === 0) return;
    // Only the client's own data measures the path when the capture is at the client.
    const sampleThis = this.opts.clientIp === undefined || ackSenderIp !== this.opts.clientIp;
    let newest: { end: number; tsUs: number; retransmitted: boolean } | undefined;
    let anyRetransmitted = false;
    while (d.inflight.length > 0 && !seqLt(ack, d.inflight[0]!.end)) {
      newest = d.inflight.shift()!;
      anyRetransmitted ||= newest.retransmitted;
    }
    if (newest && sampleThis && !anyRetransmitted && this.rtt.length < 100_000) {
      this.rtt.push({ tMs: (tsUs - this.originUs!) / 1000, rttMs: (tsUs - newest.tsUs) / 1000 });
    }
  }

  private connection(src: string, dst: string): ConnState {
    const key = src < dst ? `${src}|${dst}` : `${dst}|${src}`;
    let cs = this.conns.get(key);
    if (!cs) {
      // The first packet seen names side A: the initiator when the capture saw the SYN.
      const dir = (a: string, b: string): DirState => ({
        stats: { src: a, dst: b, segments: 0, dataSegments: 0, bytes: 0, retransmissions: 0, spuriousRetransmissions: 0, retransmittedBytes: 0, resets: 0, maxGapMs: 0, gaps: [] },
        nextSeq: undefined,
        lastDataUs: undefined,
        inflight: [],
        ackedUpTo: undefined,
        isn: undefined,
        sawFin: false,
        events: [],
      });
      const a = dir(src, dst);
      const b = dir(dst, src);
      cs = {
        conn: { id: `${src}-${dst}`, directions: [a.stats, b.stats], retransmissions: 0, spuriousRetransmissions: 0, resets: 0, bytes: 0, maxGapMs: 0, sawSyn: false },
        dirs: new Map([
          [src, a],
          [dst, b],
        ]),
      };
      this.conns.set(key, cs);
    }
    return cs;
  }

  private bucket(tsUs: number): TimelineBucket {
    const i = Math.floor((tsUs - this.originUs!) / 1000 / this.bucketMs);
    let b = this.buckets.get(i);
    if (!b) {
      b = { tMs: i * this.bucketMs, rxBytes: 0, txBytes: 0, retransmissions: 0 };
      this.buckets.set(i, b);
    }
    return b;
  }

  result(): CaptureAnalysis {
    // Spurious counts as of now (a D-SACK may have reclassed an earlier retransmission).
    for (const cs of this.conns.values()) {
      cs.conn.spuriousRetransmissions = 0;
      for (const d of cs.dirs.values()) {
        d.stats.spuriousRetransmissions = 0;
        for (const e of d.events) if (e.spurious) d.stats.spuriousRetransmissions++;
        cs.conn.spuriousRetransmissions += d.stats.spuriousRetransmissions;
      }
    }
    const connections = [...this.conns.values()].map((c) => ({ ...c.conn, directions: c.conn.directions.map((d) => ({ ...d, gaps: [...d.gaps] })) as [DirectionStats, DirectionStats] }));
    const origin = this.originUs ?? 0;
    // Fill empty buckets between the first and last so a gap shows as zero throughput.
    const keys = [...this.buckets.keys()];
    const buckets: TimelineBucket[] = [];
    if (keys.length > 0) {
      const lo = Math.min(...keys);
      const hi = Math.max(...keys);
      for (let i = lo; i <= hi; i++) buckets.push(this.buckets.get(i) ?? { tMs: i * this.bucketMs, rxBytes: 0, txBytes: 0, retransmissions: 0 });
    }
    return {
      packets: this.frame,
      tcpSegments: this.tcpSegments,
      skipped: this.skipped,
      ...(this.firstUs !== undefined ? { firstUs: this.firstUs } : {}),
      ...(this.lastUs !== undefined ? { lastUs: this.lastUs } : {}),
      retransmissions: connections.reduce((n, c) => n + c.retransmissions, 0),
      spuriousRetransmissions: this.events.filter((e) => e.spurious).length,
      resets: connections.reduce((n, c) => n + c.resets, 0),
      bytes: connections.reduce((n, c) => n + c.bytes, 0),
      maxGapMs: connections.reduce((n, c) => Math.max(n, c.maxGapMs), 0),
      connections,
      retransmittedFrames: [...this.retransmittedFrames],
      retransmissionEvents: this.events.map((e) => ({ ...e })),
      timeline: { originUs: origin, bucketMs: this.bucketMs, buckets },
      rtt: [...this.rtt],
    };
  }
}

/** Analyses a list of records (e.g. a whole pcap file). */
export function analyseTcp(records: Iterable<PcapRecord>, opts: AnalysisOptions = {}): CaptureAnalysis {
  const a = new TcpAnalyser(opts);
  for (const r of records) a.add(r);
  return a.result();
}
