/**
 * The sending end of an image stream: connects straight to the destination agent's stream
 * listener over the underlay (plain TCP; never through the controller, never SSH), sends HELLO and,
 * without waiting for its ACCEPT, every file as checksummed chunks, paced by a token bucket at the
 * planner's rate L, then the trailer with the image sha256, and reads the receiver's ACCEPT and
 * verdict.
 *
 * A failure is clean, never partial: the receiver writes into a temporary directory and renames it
 * into place only after the trailer checks out, so a stream cut anywhere leaves nothing behind. A
 * retry sends the whole step again (steps are pre-copy rounds or the final dump: each is small
 * compared with the service's memory, by design of pre-copy).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { compressChunk } from './compression.js';
import { TransferError, isTransferErrorCode } from './errors.js';
import { FrameSocket } from './frame-socket.js';
import { CHUNK_BYTES, encodeChunkHeader, encodeFrame, PROTOCOL_VERSION, type Compression, type Frame, type ImageFile } from './frames.js';
import { ImageDigest } from './image-digest.js';
import { listImage } from './image-dir.js';
import { TokenBucket } from './token-bucket.js';

export interface SendOptions {
  host: string;
  port: number;
  migrationId: string;
  /** Per-migration token the controller announced to the receiver. */
  token: string;
  /** Name of the directory the files land in under the receiver's image root. */
  stepName: string;
  compression?: Compression;
  /** Rate limit L in bits per second on the wire; absent = unlimited. */
  rateBitsPerSecond?: number;
  /** Max wait for any answer from the receiver (default 15 s). */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
  log?: Logger;
}

export interface SendResult {
  migrationId: string;
  stepName: string;
  files: number;
  /** File bytes sent. */
  bytes: number;
  /** Bytes written to the socket (frames, after compression). */
  wireBytes: number;
  imageSha256: string;
  /** From the HELLO written (the chunks follow it at once) to the receiver's DONE, ms. */
  elapsedMs: number;
  /** Measured wire rate over `elapsedMs`, bits/s. */
  bitsPerSecond: number;
  /** The receiver's own figure: ACCEPT to verified rename, ms. */
  receiverElapsedMs: number;
  /** Before the first chunk: listing the image, the connection (or the kept one), writing the HELLO, ms. */
  setupMs?: number;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new TransferError('TRANSFER_ABORTED', 'aborted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new TransferError('TRANSFER_ABORTED', 'aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function connectTo(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, noDelay: true });
    const t = setTimeout(() => {
      s.destroy();
      reject(new TransferError('TRANSFER_CONNECT', `no connection to ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(t);
      reject(new TransferError('TRANSFER_CONNECT', `cannot connect to ${host}:${port}: ${e.message}`, { cause: e }));
    });
  });
}

/** Turns a receiver's ERROR frame into the same typed error on this side. */
function remoteError(f: Frame, migrationId: string): TransferError {
  if (f.type !== 'ERROR') return new TransferError('TRANSFER_BAD_FRAME', `unexpected ${f.type} frame from the receiver`, { migrationId });
  const code = isTransferErrorCode(f.code) ? f.code : 'TRANSFER_BAD_FRAME';
  const details: { migrationId: string; remote: true; file?: string; offset?: number } = { migrationId, remote: true };
  if (f.file !== undefined) details.file = f.file;
  if (f.offset !== undefined) details.offset = f.offset;
  return new TransferError(code, `receiver: ${f.message}`, details);
}

/** A source of chunks (the protocol's fixed CHUNK_BYTES pieces): a directory's files, or probe bytes. */
interface ChunkSource {
  files: ImageFile[];
  chunks(): AsyncGenerator<{ fileIndex: number; offset: number; raw: Buffer }>;
}

/**
 * Files up to this size are read whole and synchronously: a final dump's image is a few small
 * files (sockets, page deltas, round.json) streamed inside the downtime, where open/read/close
 * through the thread pool cost three waits per file. Bigger files (pre-copy rounds) stay
 * asynchronous, read one chunk ahead.
 */
export const SYNC_READ_BYTES = 1024 * 1024;

function dirSource(dir: string, files: ImageFile[]): ChunkSource {
  return {
    files,
    async *chunks() {
      for (const [fileIndex, f] of files.entries()) {
        if (f.size <= SYNC_READ_BYTES) {
          let whole: Buffer;
          try {
            whole = readFileSync(join(dir, f.path));
          } catch (e) {
            throw new TransferError('TRANSFER_IO', `cannot read ${join(dir, f.path)}: ${(e as Error).message}`, { cause: e });
          }
          if (whole.length !== f.size) throw new TransferError('TRANSFER_IO', `${f.path} changed size while being sent (${whole.length} bytes, listed ${f.size})`, { file: f.path, offset: Math.min(whole.length, f.size) });
          for (let offset = 0; offset < f.size; offset += CHUNK_BYTES) yield { fileIndex, offset, raw: whole.subarray(offset, Math.min(f.size, offset + CHUNK_BYTES)) };
          continue;
        }
        const fh = await open(join(dir, f.path), 'r').catch((e: Error) => {
          throw new TransferError('TRANSFER_IO', `cannot open ${join(dir, f.path)}: ${e.message}`, { cause: e });
        });
        try {
          const read = async (offset: number) => {
            const want = Math.min(CHUNK_BYTES, f.size - offset);
            const raw = Buffer.allocUnsafe(want);
            const { bytesRead } = await fh.read(raw, 0, want, offset);
            if (bytesRead !== want) throw new TransferError('TRANSFER_IO', `${f.path} shrank while being sent (read ${bytesRead} of ${want} at ${offset})`, { file: f.path, offset });
            return raw;
          };
          // Read one chunk ahead, so the disk read overlaps hashing and sending the current one.
          let ahead = f.size > 0 ? read(0) : undefined;
          for (let offset = 0; ahead; offset += CHUNK_BYTES) {
            const raw = await ahead;
            ahead = offset + CHUNK_BYTES < f.size ? read(offset + CHUNK_BYTES) : undefined;
            ahead?.catch(() => {}); // surfaced when awaited
            yield { fileIndex, offset, raw };
          }
        } finally {
          await fh.close();
        }
      }
    },
  };
}

function probeSource(bytes: number): ChunkSource {
  // Random bytes, generated once: a probe measures the link, so it must not compress.
  const block = randomBytes(Math.min(bytes, CHUNK_BYTES));
  return {
    files: [{ path: 'probe', size: bytes, mode: 0o600 }],
    async *chunks() {
      for (let offset = 0; offset < bytes; offset += CHUNK_BYTES) {
        yield { fileIndex: 0, offset, raw: block.subarray(0, Math.min(CHUNK_BYTES, bytes - offset)) };
      }
    },
  };
}

/**
 * Connections whose last stream ended with DONE, one per receiver (`host:port`), kept for the next
 * step to the same peer: the final dump then goes out on the connection the last pre-copy round
 * used, without a connect (a round trip, and on an OVS user-space underlay a new flow's upcall)
 * inside the downtime. The receiver reads the next HELLO on the same connection (receiver.ts).
 * Unref'd while idle, so they never keep a process alive.
 */
const idleConnections = new Map<string, FrameSocket>();

function takeIdle(key: string): FrameSocket | undefined {
  const fs = idleConnections.get(key);
  idleConnections.delete(key);
  if (!fs) return undefined;
  if (fs.failed || fs.peerEnded || fs.socket.destroyed) {
    fs.socket.destroy();
    return undefined;
  }
  fs.socket.ref();
  return fs;
}

/** Connections that already drop out of the pool when they close (one listener each, not one per use). */
const watched = new WeakSet<FrameSocket>();

function keepIdle(key: string, fs: FrameSocket): void {
  const old = idleConnections.get(key);
  if (old && old !== fs) old.socket.end();
  idleConnections.set(key, fs);
  fs.socket.unref();
  if (!watched.has(fs)) {
    watched.add(fs);
    fs.socket.once('close', () => {
      if (idleConnections.get(key) === fs) idleConnections.delete(key);
    });
  }
}

/** Closes every kept connection (an agent that stops). */
export function closeIdleStreams(): void {
  for (const fs of idleConnections.values()) fs.socket.end();
  idleConnections.clear();
}

async function stream(opts: SendOptions, kind: 'image' | 'probe', source: ChunkSource, calledAt = performance.now()): Promise<SendResult> {
  const idle = opts.idleTimeoutMs ?? 15_000;
  const compression = kind === 'probe' ? 'none' : (opts.compression ?? 'none');
  const log = opts.log?.child({ migrationId: opts.migrationId, peer: `${opts.host}:${opts.port}`, stepName: opts.stepName });
  if (opts.signal?.aborted) throw new TransferError('TRANSFER_ABORTED', 'aborted before connecting', { migrationId: opts.migrationId });
  const key = `${opts.host}:${opts.port}`;
  const what = `stream to ${key}`;
  const kept = takeIdle(key);
  let fs = kept ?? new FrameSocket(await connectTo(opts.host, opts.port, idle), what);
  const onAbort = () => fs.socket.destroy(new TransferError('TRANSFER_ABORTED', 'aborted', { migrationId: opts.migrationId }));
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let ok = false;
  try {
    let result: SendResult;
    const answeredBefore = fs.bytesIn;
    try {
      result = await streamOn(fs, opts, kind, compression, source, idle, calledAt);
    } catch (e) {
      // A kept connection the receiver closed meanwhile (its keep-alive ran out, it restarted):
      // it answered nothing to this stream, so nothing of it was accepted; send it once more on a
      // fresh connection.
      if (!kept || opts.signal?.aborted || (e instanceof TransferError && e.remote) || fs.peerError() || fs.bytesIn > answeredBefore) throw e;
      log?.debug({ err: (e as Error).message }, 'kept connection gone; connecting again');
      fs.socket.destroy();
      fs = new FrameSocket(await connectTo(opts.host, opts.port, idle), what);
      result = await streamOn(fs, opts, kind, compression, source, idle, calledAt);
    }
    log?.info({ bytes: result.bytes, wireBytes: result.wireBytes, elapsedMs: Math.round(result.elapsedMs), mbitPerSecond: +(result.bitsPerSecond / 1e6).toFixed(2) }, 'stream sent');
    ok = true;
    return result;
  } catch (e) {
    const told = e instanceof TransferError && e.remote ? undefined : fs.peerError();
    const err = told ? remoteError(told, opts.migrationId) : e instanceof TransferError ? e : new TransferError('TRANSFER_IO', (e as Error).message, { migrationId: opts.migrationId, cause: e });
    if (opts.signal?.aborted && err.code !== 'TRANSFER_ABORTED') throw new TransferError('TRANSFER_ABORTED', 'aborted', { migrationId: opts.migrationId, cause: err });
    log?.warn({ err: err.toJSON() }, 'stream failed');
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    // After DONE the connection is kept for the next step to this peer; after a failure nothing
    // more is owed to the receiver.
    if (ok) keepIdle(key, fs);
    else fs.socket.destroy();
  }
}

/**
 * One stream on one connection. The HELLO is pipelined: the chunks follow it at once and its
 * ACCEPT is read after the TRAILER, so the receiver's answer costs no round trip before the first
 * byte (the final dump crosses inside the service's downtime). The receiver reads nothing of a
 * stream it refuses: it answers ERROR and discards the rest (FrameSocket.lingerClose), and the
 * sender sees that ERROR between chunks and stops.
 */
async function streamOn(fs: FrameSocket, opts: SendOptions, kind: 'image' | 'probe', compression: Compression, source: ChunkSource, idle: number, calledAt: number): Promise<SendResult> {
  let wireBytes = 0;
  const send = async (b: Buffer) => {
    wireBytes += b.length;
    await fs.write(b);
  };
  await send(encodeFrame({ type: 'HELLO', version: PROTOCOL_VERSION, kind, migrationId: opts.migrationId, token: opts.token, stepName: opts.stepName, compression, files: source.files }));
  const start = performance.now();
  // A paced stream goes out in slices of about 2 ms at its rate (at least 16 KiB): a whole
  // 256 KiB chunk written at once leaves at line rate and sits in the bottleneck's queue (21 ms at
  // 100 Mbit/s) in front of the service's own segments, which share the underlay link during
  // pre-copy; the queue then overflows and drops them.
  const slice = opts.rateBitsPerSecond ? Math.max(16 * 1024, Math.ceil((opts.rateBitsPerSecond / 8) * 0.002)) : Infinity;
  const bucket = opts.rateBitsPerSecond ? new TokenBucket(opts.rateBitsPerSecond, Math.min(slice, CHUNK_BYTES) + 64, start) : undefined;
  const digest = new ImageDigest();
  let next = 0; // next file whose header goes into the digest
  let bytes = 0;
  for await (const c of source.chunks()) {
    while (next <= c.fileIndex) digest.startFile(source.files[next++]!);
    const sha256 = createHash('sha256').update(c.raw).digest();
    digest.addChunk(sha256);
    const data = await compressChunk(compression, c.raw);
    const head = encodeChunkHeader({ fileIndex: c.fileIndex, offset: BigInt(c.offset), rawLength: c.raw.length, sha256 }, data.length);
    if (bucket) {
      await send(head);
      for (let at = 0; at < data.length; at += slice) {
        const piece = data.subarray(at, Math.min(data.length, at + slice));
        const wait = bucket.reserve(piece.length + (at === 0 ? head.length : 0), performance.now());
        if (wait > 0) await sleep(wait, opts.signal);
        await send(piece);
      }
    } else {
      await send(head);
      await send(data);
    }
    bytes += c.raw.length;
    // The receiver stops at the first failed check (or refuses the HELLO) and says why; stop
    // sending at once too.
    const early = fs.peerError();
    if (early) throw remoteError(early, opts.migrationId);
  }
  while (next < source.files.length) digest.startFile(source.files[next++]!);
  const imageSha256 = digest.digest();
  await send(encodeFrame({ type: 'TRAILER', totalBytes: BigInt(bytes), imageSha256 }));
  const answer = await fs.next(idle);
  if (answer.type !== 'ACCEPT') throw remoteError(answer, opts.migrationId);
  const verdict = await fs.next(idle);
  if (verdict.type !== 'DONE') throw remoteError(verdict, opts.migrationId);
  const elapsedMs = performance.now() - start;
  if (verdict.imageSha256 !== imageSha256.toString('hex')) {
    throw new TransferError('TRANSFER_IMAGE_CORRUPT', `receiver reports image sha256 ${verdict.imageSha256}, sent ${imageSha256.toString('hex')}`, { migrationId: opts.migrationId });
  }
  return {
    migrationId: opts.migrationId,
    stepName: opts.stepName,
    files: source.files.length,
    bytes,
    wireBytes,
    imageSha256: imageSha256.toString('hex'),
    elapsedMs,
    bitsPerSecond: elapsedMs > 0 ? (wireBytes * 8 * 1000) / elapsedMs : Infinity,
    receiverElapsedMs: verdict.elapsedMs,
    setupMs: start - calledAt,
  };
}

/** Streams every file under `dir` to the receiver; resolves once the receiver verified and renamed it. */
export async function sendImage(dir: string, opts: SendOptions): Promise<SendResult> {
  const calledAt = performance.now();
  const files = await listImage(dir);
  return stream(opts, 'image', dirSource(dir, files), calledAt);
}

/**
 * Measures the bandwidth L to a peer agent by a timed transfer of `bytes` incompressible bytes
 * (the receiver checks and drops them). Same path, same framing and same rate limit as an image.
 */
export async function probeBandwidth(bytes: number, opts: SendOptions): Promise<SendResult> {
  return stream(opts, 'probe', probeSource(bytes));
}
