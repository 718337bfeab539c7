/**
 * The demo workload's client: opens one stream connection and one ping connection to the server,
 * verifies every byte it receives (protocol.ts), and records the largest gap in the stream and the
 * round-trip time of every ping. Its statistics (JSON) feed the verification report's `client`.
 */
import net from 'node:net';
import { writeFileSync, renameSync } from 'node:fs';
import { PING_SIZE, request, response, StreamVerifier } from './protocol.js';

export interface ClientOptions {
  host: string;
  streamPort: number;
  pingPort: number;
  recordSize: number;
  /** Pings per second (0: no ping connection). */
  pingRate: number;
  /** Read at most this many stream bytes per second (0: as fast as they come). */
  readRate: number;
  /** Stop after this long; 0: until stop() (SIGTERM/SIGINT from the CLI). */
  durationMs: number;
  /** Written (atomically) every 200 ms while running, and at the end. */
  statsFile?: string;
}

export interface ClientStats {
  /** Bytes the client sent (ping requests). */
  bytesSent: number;
  /** Bytes received on both connections. */
  bytesReceived: number;
  /** Bytes received and checked equal to what the protocol says the server sent. */
  bytesVerified: number;
  stream: { bytesReceived: number; bytesVerified: number; firstBadOffset: string | null; maxGapMs: number };
  ping: { sent: number; answered: number; errors: number; firstError: string | null; rttMs: number[]; rtt: { p50: number | null; p99: number | null; max: number | null }; maxGapMs: number };
  /** Largest time between two arrivals on the stream connection (the service's downtime as seen). */
  maxGapMs: number;
  resets: number;
  closed: { stream: boolean; ping: boolean };
  errors: string[];
  durationMs: number;
}

export interface RunningClient {
  stats(): ClientStats;
  stop(): Promise<ClientStats>;
  done: Promise<ClientStats>;
}

function quantile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

export async function runClient(opts: ClientOptions): Promise<RunningClient> {
  const started = performance.now();
  const verifier = new StreamVerifier(opts.recordSize);
  const s = {
    bytesSent: 0,
    streamReceived: 0,
    streamVerified: 0,
    firstBad: null as bigint | null,
    streamGap: 0,
    lastStreamAt: 0,
    pingSent: 0,
    answered: 0,
    pingErrors: 0,
    firstPingError: null as string | null,
    rtts: [] as number[],
    pingGap: 0,
    lastPongAt: 0,
    resets: 0,
    closed: { stream: false, ping: false },
    errors: [] as string[],
  };
  const onError = (which: string) => (e: NodeJS.ErrnoException) => {
    if (e.code === 'ECONNRESET') s.resets++;
    s.errors.push(`${which}: ${e.code ?? e.message}`);
  };
  const connect = (port: number) =>
    new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect({ host: opts.host, port });
      c.once('connect', () => {
        c.off('error', reject);
        resolve(c);
      });
      c.once('error', reject);
    });

  const stream = await connect(opts.streamPort);
  stream.setNoDelay(true);
  stream.on('error', onError('stream'));
  stream.on('close', () => (s.closed.stream = true));
  let readCredit = 0;
  let readTimer: NodeJS.Timeout | undefined;
  if (opts.readRate > 0) {
    readTimer = setInterval(() => {
      readCredit = Math.min(readCredit + opts.readRate / 100, opts.readRate / 10);
      if (readCredit > 0 && stream.isPaused()) stream.resume();
    }, 10);
  }
  stream.on('data', (d: Buffer) => {
    const now = performance.now();
    if (s.lastStreamAt) s.streamGap = Math.max(s.streamGap, now - s.lastStreamAt);
    s.lastStreamAt = now;
    s.streamReceived += d.length;
    if (s.firstBad === null) {
      const bad = verifier.push(d);
      if (bad >= 0n) s.firstBad = bad;
      else s.streamVerified += d.length;
    }
    if (opts.readRate > 0) {
      readCredit -= d.length;
      if (readCredit <= 0) stream.pause();
    }
  });

  let ping: net.Socket | undefined;
  let pingTimer: NodeJS.Timeout | undefined;
  const sentAt = new Map<bigint, number>();
  if (opts.pingRate > 0) {
    ping = await connect(opts.pingPort);
    ping.setNoDelay(true);
    ping.on('error', onError('ping'));
    ping.on('close', () => (s.closed.ping = true));
    let nextId = 0n;
    let expect = 0n;
    let pending = Buffer.alloc(0);
    pingTimer = setInterval(() => {
      if (!ping!.writable) return;
      sentAt.set(nextId, performance.now());
      ping!.write(request(nextId));
      nextId++;
      s.pingSent++;
      s.bytesSent += PING_SIZE;
    }, 1000 / opts.pingRate);
    ping.on('data', (d: Buffer) => {
      const now = performance.now();
      if (s.lastPongAt) s.pingGap = Math.max(s.pingGap, now - s.lastPongAt);
      s.lastPongAt = now;
      pending = Buffer.concat([pending, d]);
      while (pending.length >= PING_SIZE) {
        const got = pending.subarray(0, PING_SIZE);
        if (response(expect).equals(got)) {
          const t0 = sentAt.get(expect);
          if (t0 !== undefined) s.rtts.push(now - t0);
          sentAt.delete(expect);
          s.answered++;
        } else {
          s.pingErrors++;
          s.firstPingError ??= `response ${expect} wrong (got id ${got.readBigUInt64BE(4)})`;
        }
        expect++;
        pending = pending.subarray(PING_SIZE);
      }
    });
  }

  const stats = (): ClientStats => {
    const sorted = [...s.rtts].sort((a, b) => a - b);
    const pongBytes = s.answered * PING_SIZE;
    return {
      bytesSent: s.bytesSent,
      bytesReceived: s.streamReceived + (s.answered + s.pingErrors) * PING_SIZE,
      bytesVerified: s.streamVerified + pongBytes,
      stream: { bytesReceived: s.streamReceived, bytesVerified: s.streamVerified, firstBadOffset: s.firstBad === null ? null : s.firstBad.toString(), maxGapMs: round(s.streamGap) },
      ping: { sent: s.pingSent, answered: s.answered, errors: s.pingErrors, firstError: s.firstPingError, rttMs: s.rtts.map(round), rtt: { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) ?? null }, maxGapMs: round(s.pingGap) },
      maxGapMs: round(s.streamGap),
      resets: s.resets,
      closed: { ...s.closed },
      errors: [...s.errors],
      durationMs: round(performance.now() - started),
    };
  };
  const writeStats = () => {
    if (!opts.statsFile) return;
    const tmp = `${opts.statsFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(stats()));
    renameSync(tmp, opts.statsFile);
  };
  const statsTimer = setInterval(writeStats, 200);
  let finish!: (st: ClientStats) => void;
  const done = new Promise<ClientStats>((r) => (finish = r));
  let stopped = false;
  const stop = async () => {
    if (!stopped) {
      stopped = true;
      clearInterval(statsTimer);
      if (pingTimer) clearInterval(pingTimer);
      if (readTimer) clearInterval(readTimer);
      if (durationTimer) clearTimeout(durationTimer);
      const final = stats();
      writeStats();
      stream.destroy();
      ping?.destroy();
      finish(final);
    }
    return done;
  };
  const durationTimer = opts.durationMs > 0 ? setTimeout(() => void stop(), opts.durationMs) : undefined;
  return { stats, stop, done };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
