/**
 * The demo workload's server: a coat-aware TCP service (PAM's synthetic service). It holds
 * `stateBytes` of state in a StateFile and dirties `dirtyRate` pages per second, in a rotating
 * order so that the number of distinct pages dirtied in an interval is predictable; it serves
 * record streams on `streamPort` and ping-pong on `pingPort` (protocol.ts). Started by the
 * tcp-repair executor after a migration, it adopts the restored connections (sdk.ts) and goes on
 * from their stream offsets.
 */
import type net from 'node:net';
import { PingServerState, streamBytes } from './protocol.js';
import { listenOrRestore, StateFile, PAGE_SIZE } from './sdk.js';

export interface ServerOptions {
  host: string;
  streamPort: number;
  pingPort: number;
  stateDir: string;
  /** State size M in bytes (rounded up to pages). */
  stateBytes: number;
  /** Dirty-page rate R, pages per second. */
  dirtyRate: number;
  /** Stream rate per connection, bytes per second; 0: as fast as the socket takes it. */
  streamRate: number;
  /**
   * How often the stream writes, ms (default 1). The client's largest gap between data segments
   * is the report's downtime, and the tick puts its own floor under it: at 10 ms a stream with no
   * migration already shows 10 ms gaps.
   */
  streamTickMs?: number;
  recordSize: number;
  /** Event lines (JSON) go here; stdout by default. */
  events?: (e: Record<string, unknown>) => void;
}

/** How often the state is dirtied (R pages/s spread over the ticks). */
const DIRTY_TICK_MS = 10;
/** Userspace backlog per stream connection before the writer waits for 'drain'. */
const STREAM_HIGH_WATER = 256 * 1024;

export interface RunningServer {
  close(): Promise<void>;
  state: StateFile;
}

export async function runServer(opts: ServerOptions): Promise<RunningServer> {
  const emit = opts.events ?? ((e) => process.stdout.write(JSON.stringify(e) + '\n'));
  // Compiled now, not at the first write: V8 compiles a function at its first call, and a restored
  // server's first write ends the client's gap (measured: ~1 ms of the downtime).
  streamBytes(0n, 2 * opts.recordSize, opts.recordSize);
  // Sockets first: a restored server must not touch its state before the executor says resume.
  const sockets = await listenOrRestore({ host: opts.host, ports: [opts.streamPort, opts.pingPort] });
  const state = StateFile.open(opts.stateDir, 'state.bin', opts.stateBytes);
  const view = new DataView(state.bytes.buffer, state.bytes.byteOffset, state.bytes.byteLength);
  // Where the mutator stands is kept in the state itself (page 0), so a restored server continues
  // the rotation instead of starting over.
  let cursor = Number(view.getBigUint64(0) % BigInt(Math.max(1, state.pages)));
  let debt = 0;
  let last = performance.now();
  const mutator = setInterval(() => {
    // Owed pages follow the clock, not the tick count: timers drift late under load.
    const nowMs = performance.now();
    debt += (opts.dirtyRate * (nowMs - last)) / 1000;
    last = nowMs;
    const now = BigInt(Date.now());
    while (debt >= 1) {
      debt -= 1;
      const page = cursor % state.pages;
      cursor++;
      const off = page * PAGE_SIZE;
      view.setBigUint64(off + 8, view.getBigUint64(off + 8) + 1n); // per-page write count
      view.setBigUint64(off + 16, now);
      view.setBigUint64(0, BigInt(cursor));
    }
  }, DIRTY_TICK_MS);

  const live = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const serveStream = (sock: net.Socket, written: bigint, restored = false) => {
    live.add(sock);
    let offset = written;
    let blocked = false;
    let credit = 0;
    let lastTick = performance.now();
    const tick = () => {
      // Credit follows the clock (intervals fire late), capped at 10 ms worth so a stall (the
      // freeze of a migration) is not followed by a burst.
      const now = performance.now();
      credit = opts.streamRate > 0 ? Math.min(credit + (opts.streamRate * (now - lastTick)) / 1000, opts.streamRate / 100) : 64 * 1024;
      lastTick = now;
      while (!blocked && credit >= 1 && sock.writable) {
        const n = Math.min(Math.floor(credit), 64 * 1024);
        const chunk = streamBytes(offset, n, opts.recordSize);
        offset += BigInt(n);
        credit -= n;
        if (!sock.write(chunk) || sock.writableLength > STREAM_HIGH_WATER) {
          blocked = true;
          sock.once('drain', () => (blocked = false));
        }
      }
    };
    const tickMs = opts.streamTickMs ?? 1;
    const timer = setInterval(tick, tickMs);
    timers.add(timer);
    // A restored stream goes on at once with one tick's worth, not a tick later: the client's gap
    // (the migration's downtime) ends with this write.
    if (restored) {
      credit = opts.streamRate > 0 ? (opts.streamRate * tickMs) / 1000 : 0;
      tick();
    }
    sock.on('data', () => {}); // the client sends nothing on a stream connection
    sock.on('error', (e) => emit({ event: 'connection-error', kind: 'stream', code: (e as NodeJS.ErrnoException).code }));
    sock.on('close', () => {
      clearInterval(timer);
      timers.delete(timer);
      live.delete(sock);
    });
  };

  const servePing = (sock: net.Socket, start: { read: bigint; written: bigint }) => {
    live.add(sock);
    const st = new PingServerState(start);
    const first = st.start();
    if (first.length) sock.write(first);
    sock.on('data', (d: Buffer) => {
      const out = st.push(d);
      if (out.length) sock.write(out);
      if (st.errors) emit({ event: 'ping-error', error: st.lastError });
    });
    sock.on('error', (e) => emit({ event: 'connection-error', kind: 'ping', code: (e as NodeJS.ErrnoException).code }));
    sock.on('close', () => live.delete(sock));
  };

  for (const r of sockets.restored) {
    if (r.local.port === opts.streamPort) serveStream(r.socket, r.written, true);
    else if (r.local.port === opts.pingPort) servePing(r.socket, { read: r.read, written: r.written });
    else r.socket.destroy();
  }
  sockets.servers.get(opts.streamPort)!.on('connection', (s: net.Socket) => serveStream(s, 0n));
  sockets.servers.get(opts.pingPort)!.on('connection', (s: net.Socket) => servePing(s, { read: 0n, written: 0n }));
  emit({ event: 'listening', pid: process.pid, host: opts.host, streamPort: opts.streamPort, pingPort: opts.pingPort, restored: sockets.restored.length, migrationId: sockets.migrationId ?? null, stateFile: state.path, statePages: state.pages });

  return {
    state,
    async close() {
      clearInterval(mutator);
      for (const t of timers) clearInterval(t);
      for (const s of live) s.destroy();
      await Promise.all([...sockets.servers.values()].map((s) => new Promise((r) => s.close(r))));
      state.close();
    },
  };
}
