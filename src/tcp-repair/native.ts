/**
 * Loads the N-API addon (`build/Release/coat_tcp_repair.node`, built by node-gyp from
 * `binding.gyp` during `npm install`) and types its surface. Found by walking up from this file to
 * the package root, so it loads the same from `src/` (tsx) and from `dist/src/` (compiled); the
 * environment variable `COAT_TCP_REPAIR_ADDON` names another path.
 *
 * Only src/tcp-repair/ and the service SDK call these functions; everybody else goes through the
 * typed wrappers in socket.ts.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TcpRepairError } from './errors.js';

/** What `save()` returns: soccr's `libsoccr_sk_data` plus the queues and the kernel's byte counters. */
export interface NativeSocketState {
  family: 4 | 6;
  /** tcpi_state (linux/tcp.h TCP_ESTABLISHED = 1). */
  state: number;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** TCP_QUEUE_SEQ of the send queue: write_seq, the sequence number after the last queued byte. */
  sendSeq: number;
  /** TCP_QUEUE_SEQ of the receive queue: rcv_nxt, the next sequence number expected. */
  recvSeq: number;
  /** SIOCOUTQNSD: bytes at the tail of the send queue never sent. */
  unsentLength: number;
  mss: number;
  /** tcpi_options: TCPI_OPT_TIMESTAMPS 1, SACK 2, WSCALE 4. */
  options: number;
  sndWscale: number;
  rcvWscale: number;
  timestamp: number;
  hasWindow: 0 | 1;
  sndWl1: number;
  sndWnd: number;
  maxWindow: number;
  rcvWnd: number;
  rcvWup: number;
  sndbuf: number;
  rcvbuf: number;
  /** tcpi_bytes_acked, tcpi_bytes_received (RFC 4898 counters). */
  bytesAcked: bigint;
  bytesReceived: bigint;
  sendQueue: Buffer;
  recvQueue: Buffer;
}

export interface NativeRestoreState extends Omit<NativeSocketState, 'state' | 'bytesAcked' | 'bytesReceived'> {
  freebind: 0 | 1;
}

export interface NativeAddon {
  abiVersion: number;
  pidfdOpen(pid: number): number;
  pidfdGetfd(pidfd: number, fd: number): number;
  close(fd: number): void;
  socketKind(fd: number): { domain: number; type: number; protocol: number };
  /** Kind, TCP state (0 when not TCP) and addresses (TCP only) of a socket this process holds. */
  describeSocket(fd: number): { domain: number; type: number; protocol: number; state: number; localAddress?: string; localPort?: number; remoteAddress?: string; remotePort?: number };
  tcpSocket(netnsPath: string | null, family: 4 | 6): number;
  repairOn(fd: number): void;
  repairOff(fd: number, windowProbe?: boolean): void;
  /** TCP_REPAIR_WINDOW (repair mode only). */
  setWindow(fd: number, w: { sndWl1: number; sndWnd: number; maxWindow: number; rcvWnd: number; rcvWup: number }): void;
  save(fd: number): NativeSocketState;
  restore(fd: number, state: NativeRestoreState): void;
  /** Writes without waiting (grows SO_SNDBUF when refused); returns the bytes the kernel took. */
  sendUnsent(fd: number, bytes: Buffer): number;
  counters(fd: number): { bytesAcked: bigint; bytesReceived: bigint; inq: number; outq: number; state: number };
  listen(fd: number, opts: { family: 4 | 6; address: string; port: number; freebind: 0 | 1; backlog: number }): void;
  clearCloexec(fd: number): void;
  mmapShared(fd: number, length: number): ArrayBuffer;
  /** Pages of file `fd` that differ from `previous` (copied into it); null when the sizes differ. */
  comparePages(fd: number, previous: Buffer, pageSize: number): Uint32Array | null;
}

const ADDON_FILE = join('build', 'Release', 'coat_tcp_repair.node');

/** The addon's path: $COAT_TCP_REPAIR_ADDON, else the first `build/Release/...` walking up. */
export function addonPath(): string | undefined {
  const override = process.env.COAT_TCP_REPAIR_ADDON;
  if (override) return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, ADDON_FILE);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

let cached: NativeAddon | undefined;

export function native(): NativeAddon {
  if (cached) return cached;
  const path = addonPath();
  if (!path) {
    throw new TcpRepairError('TCPR_ADDON_MISSING', `${ADDON_FILE} not found above ${dirname(fileURLToPath(import.meta.url))}: run \`npm rebuild\` (node-gyp)`);
  }
  try {
    cached = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    throw new TcpRepairError('TCPR_ADDON_MISSING', `cannot load ${path}: ${(err as Error).message}`, { cause: err });
  }
  return cached;
}
