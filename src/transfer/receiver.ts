/**
 * The receiving end of image streams: a TCP listener on the agent's underlay address. It accepts a
 * stream only for a migration the controller announced (`expect`) and only with that migration's
 * token; it writes into a temporary directory beside the destination, checks every chunk's sha256,
 * the file sizes and the image sha256 in the trailer, and only then renames the directory into
 * place. Any failure (wrong token, corrupt chunk, truncated stream, silence) removes the temporary
 * directory, answers with an ERROR frame carrying the typed code, and is logged with the
 * migration id and the peer's address.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Logger } from '../log.js';
import { decompressChunk } from './compression.js';
import { TransferError } from './errors.js';
import { FrameSocket } from './frame-socket.js';
import { CHUNK_BYTES, encodeFrame, type ChunkFrame, type Frame, type HelloFrame, type TrailerFrame } from './frames.js';
import { ImageDigest } from './image-digest.js';
import { imageBytes } from './image-dir.js';

export interface ReceiverOptions {
  /** Where a migration's images live on this host; a step lands in `imageRoot(id)/stepName`. */
  imageRoot(migrationId: string): string;
  log: Logger;
  /** Max silence from a sender before the stream is failed (default 15 s). */
  idleTimeoutMs?: number;
  /** How long a connection may wait for its next stream after a DONE (default 60 s). */
  keepAliveMs?: number;
}

export interface ReceivedImage {
  migrationId: string;
  stepName: string;
  kind: 'image' | 'probe';
  /** Final directory (absent for a probe). */
  dir?: string;
  files: number;
  bytes: number;
  wireBytes: number;
  imageSha256: string;
  elapsedMs: number;
  peer: string;
}

const MAX_CONNECTIONS = 64;

interface Announcement {
  tokenHash: Buffer;
  expiresAt: number;
}

function tokenHash(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * Positional writes kept in flight (at most `depth`), so the disk works while the next chunk is
 * decoded and hashed. The first failure is raised at the next push or at `settle`.
 */
class WriteQueue {
  private readonly inflight: Promise<void>[] = [];
  private error: Error | undefined;

  constructor(private readonly depth = 4) {}

  async push(h: FileHandle, data: Buffer, position: number): Promise<void> {
    if (this.error) throw this.error;
    this.inflight.push(h.write(data, 0, data.length, position).then(() => {}, (e: Error) => void (this.error ??= e)));
    if (this.inflight.length >= this.depth) await this.inflight.shift();
    if (this.error) throw this.error;
  }

  async settle(): Promise<void> {
    await Promise.all(this.inflight.splice(0));
    if (this.error) throw this.error;
  }
}

export interface ImageReceiverEvents {
  received: [ReceivedImage];
  failed: [TransferError, { migrationId?: string; stepName?: string; peer: string }];
}

export class ImageReceiver extends EventEmitter<ImageReceiverEvents> {
  private server: Server | undefined;
  private readonly expected = new Map<string, Announcement>();
  private readonly sockets = new Set<Socket>();
  private readonly idle: number;
  private readonly keepAlive: number;

  constructor(private readonly opts: ReceiverOptions) {
    super();
    this.idle = opts.idleTimeoutMs ?? 15_000;
    this.keepAlive = opts.keepAliveMs ?? 60_000;
  }

  /** Starts listening; resolves with the bound address (port 0 = any free port). */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const server = createServer((s) => void this.handle(s));
      // Streams per host are few (one per step in flight); this bounds what strangers can hold open.
      server.maxConnections = MAX_CONNECTIONS;
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        this.server = server;
        resolve(server.address() as AddressInfo);
      });
    });
  }

  get address(): AddressInfo | undefined {
    return (this.server?.address() as AddressInfo | null) ?? undefined;
  }

  /** The controller announced a migration: accept streams for it with this token until `ttlMs`. */
  expect(migrationId: string, token: string, ttlMs = 10 * 60_000): void {
    this.expected.set(migrationId, { tokenHash: tokenHash(token), expiresAt: Date.now() + ttlMs });
  }

  /** No more streams for this migration. */
  forget(migrationId: string): void {
    this.expected.delete(migrationId);
  }

  isExpected(migrationId: string): boolean {
    const a = this.expected.get(migrationId);
    return a !== undefined && a.expiresAt > Date.now();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = undefined;
  }

  private checkAnnounced(hello: HelloFrame): void {
    const a = this.expected.get(hello.migrationId);
    // One answer for every refusal: a prober learns nothing about which migrations exist.
    const refuse = (why: string) => new TransferError('TRANSFER_REFUSED', `stream for migration ${hello.migrationId} refused: ${why}`, { migrationId: hello.migrationId });
    if (!a) throw refuse('not announced by the controller');
    if (a.expiresAt <= Date.now()) throw refuse('announcement expired');
    if (!timingSafeEqual(a.tokenHash, tokenHash(hello.token))) throw refuse('wrong token');
  }

  /**
   * One connection: one stream per HELLO. After a DONE the sender may send the next step's HELLO
   * on the same connection (sender.ts keeps it), so the final dump needs no connect inside the
   * downtime; a connection idle for `keepAliveMs` between streams, or ended by the sender, is
   * closed quietly. A failed stream closes it.
   */
  private async handle(socket: Socket): Promise<void> {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    const fs = new FrameSocket(socket, `stream from ${peer}`);
    let bytesBefore = 0; // read on this connection by earlier streams
    try {
      for (let n = 0; ; n++) {
        let first: Frame | undefined;
        let readError: unknown;
        try {
          first = await fs.next(n === 0 ? this.idle : this.keepAlive);
        } catch (e) {
          if (n > 0) return; // between streams: the sender went away or stayed idle
          readError = e;
        }
        if (!(await this.handleStream(fs, socket, peer, n, bytesBefore, first, readError))) return;
        bytesBefore = fs.bytesIn;
      }
    } finally {
      if (!socket.writableEnded) socket.end();
      socket.once('close', () => this.sockets.delete(socket));
      if (socket.destroyed) this.sockets.delete(socket);
    }
  }

  /** One stream, from its first frame; true when it ended with DONE. */
  private async handleStream(fs: FrameSocket, socket: Socket, peer: string, streamsBefore: number, bytesBefore: number, first: Frame | undefined, readError: unknown): Promise<boolean> {
    let hello: HelloFrame | undefined;
    let tmp: string | undefined;
    const handles: FileHandle[] = [];
    let log = this.opts.log.child({ peer });
    try {
      if (!first) throw readError;
      if (first.type !== 'HELLO') throw new TransferError('TRANSFER_BAD_FRAME', `first frame is ${first.type}, expected HELLO (${streamsBefore === 0 ? 'stream offset 0' : `stream ${streamsBefore + 1} on this connection`})`, { offset: 0 });
      hello = first;
      log = log.child({ migrationId: hello.migrationId, stepName: hello.stepName, kind: hello.kind });
      this.checkAnnounced(hello);

      let finalDir: string | undefined;
      if (hello.kind === 'image') {
        const root = this.opts.imageRoot(hello.migrationId);
        finalDir = join(root, hello.stepName);
        tmp = join(root, `.incoming-${hello.stepName}-${randomBytes(4).toString('hex')}`);
        if (isSmall(hello)) {
          mkdirSync(tmp, { recursive: true });
          for (const f of hello.files) mkdirSync(dirname(join(tmp, f.path)), { recursive: true });
        } else {
          await mkdir(tmp, { recursive: true });
          for (const f of hello.files) await mkdir(dirname(join(tmp, f.path)), { recursive: true });
        }
      }
      await fs.write(encodeFrame({ type: 'ACCEPT' }));
      const start = performance.now();
      const result = await this.receiveBody(fs, hello, tmp, handles);
      if (tmp !== undefined && finalDir !== undefined) {
        if (result.held) writeHeld(tmp, hello.files, result.held);
        await this.replaceDir(tmp, finalDir);
        tmp = undefined;
      }
      const received: ReceivedImage = {
        migrationId: hello.migrationId,
        stepName: hello.stepName,
        kind: hello.kind,
        ...(finalDir !== undefined ? { dir: finalDir } : {}),
        files: hello.files.length,
        bytes: result.bytes,
        wireBytes: fs.bytesIn - bytesBefore,
        imageSha256: result.imageSha256,
        elapsedMs: performance.now() - start,
        peer,
      };
      await fs.write(encodeFrame({ type: 'DONE', bytes: received.bytes, imageSha256: received.imageSha256, elapsedMs: received.elapsedMs }));
      log.info({ bytes: received.bytes, elapsedMs: Math.round(received.elapsedMs), dir: finalDir }, 'stream received');
      this.emit('received', received);
      return true;
    } catch (e) {
      let err = e instanceof TransferError ? e : new TransferError('TRANSFER_IO', (e as Error).message, { cause: e });
      // Socket-level failures are raised before anyone knows the migration: name it for the logs.
      if (err.migrationId === undefined && hello) {
        err = new TransferError(err.code, err.message, { migrationId: hello.migrationId, ...(err.file !== undefined ? { file: err.file } : {}), ...(err.offset !== undefined ? { offset: err.offset } : {}), cause: err.cause });
      }
      for (const h of handles) await h.close().catch(() => {});
      handles.length = 0;
      if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
      log.warn({ err: err.toJSON() }, err.code === 'TRANSFER_REFUSED' ? 'stream refused' : 'stream failed; partial image removed');
      if (!socket.destroyed) {
        const ef: { type: 'ERROR'; code: string; message: string; file?: string; offset?: number } = { type: 'ERROR', code: err.code, message: err.message };
        if (err.file !== undefined) ef.file = err.file;
        if (err.offset !== undefined) ef.offset = err.offset;
        await fs.write(encodeFrame(ef)).catch(() => {});
        fs.lingerClose();
      }
      this.emit('failed', err, { ...(hello ? { migrationId: hello.migrationId, stepName: hello.stepName } : {}), peer });
      return false;
    } finally {
      for (const h of handles) await h.close().catch(() => {});
    }
  }


  /**
   * Puts a verified image in place. A step that is already there is replaced: a sender whose DONE
   * was lost (connection cut after the rename) sends the step again, and that retry must succeed.
   * The old copy is moved aside first, so the step directory always holds one whole image.
   */
  private async replaceDir(tmp: string, finalDir: string): Promise<void> {
    try {
      renameSync(tmp, finalDir); // one syscall; the common case, inside the downtime for a dump
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
    }
    const aside = `${tmp}.old`;
    await rename(finalDir, aside);
    await rename(tmp, finalDir);
    await rm(aside, { recursive: true, force: true });
  }

  /**
   * Chunks arrive file after file, each file's chunks in offset order (the sender's only order), so
   * the image digest is computed on the fly and a file is complete when the next one starts.
   */
  private async receiveBody(fs: FrameSocket, hello: HelloFrame, tmp: string | undefined, handles: FileHandle[]): Promise<{ bytes: number; imageSha256: string; held?: Buffer[][] }> {
    const mid = hello.migrationId;
    const files = hello.files;
    // A small image is held in memory and written at the trailer (writeHeld), not file by file.
    const held = tmp !== undefined && isSmall(hello) ? files.map((): Buffer[] => []) : undefined;
    const digest = new ImageDigest();
    let current = -1; // file being written
    let expectedOffset = 0;
    let handle: FileHandle | undefined;
    let bytes = 0;
    const writes = new WriteQueue();

    const finishCurrent = async () => {
      if (current < 0) return;
      const f = files[current]!;
      if (expectedOffset !== f.size) throw new TransferError('TRANSFER_TRUNCATED', `file ${f.path} ended at ${expectedOffset} of ${f.size} bytes`, { migrationId: mid, file: f.path, offset: expectedOffset });
      if (handle) {
        await writes.settle();
        await handle.close();
        handles.splice(handles.indexOf(handle), 1);
        handle = undefined;
        await chmod(join(tmp!, f.path), f.mode);
      }
    };
    /** Moves to file `idx`; files skipped on the way must be empty (they have no chunks). */
    const advanceTo = async (idx: number) => {
      await finishCurrent();
      for (let i = current + 1; i <= idx; i++) {
        const f = files[i]!;
        digest.startFile(f);
        current = i;
        expectedOffset = 0;
        if (tmp !== undefined && !held) {
          handle = await open(join(tmp, f.path), 'w', 0o600);
          handles.push(handle);
        }
        if (i < idx) await finishCurrent();
      }
    };

    for (;;) {
      const frame = await fs.next(this.idle);
      if (frame.type === 'CHUNK') {
        const c: ChunkFrame = frame;
        if (c.fileIndex >= files.length) throw new TransferError('TRANSFER_BAD_FRAME', `chunk for file index ${c.fileIndex}, image has ${files.length} files`, { migrationId: mid });
        if (c.fileIndex < current) throw new TransferError('TRANSFER_BAD_FRAME', `chunk for file index ${c.fileIndex} after file ${current} started`, { migrationId: mid });
        if (c.fileIndex > current) await advanceTo(c.fileIndex);
        const f = files[current]!;
        const offset = Number(c.offset);
        if (offset !== expectedOffset) throw new TransferError('TRANSFER_BAD_FRAME', `chunk of ${f.path} at offset ${c.offset}, expected ${expectedOffset}`, { migrationId: mid, file: f.path, offset });
        const want = Math.min(CHUNK_BYTES, f.size - offset);
        if (c.rawLength !== want) throw new TransferError('TRANSFER_BAD_FRAME', `chunk of ${f.path} at offset ${offset} holds ${c.rawLength} bytes, expected ${want} (every chunk is ${CHUNK_BYTES} bytes but a file's last)`, { migrationId: mid, file: f.path, offset });
        let raw: Buffer;
        try {
          raw = await decompressChunk(hello.compression, c.data, c.rawLength);
        } catch (e) {
          throw new TransferError('TRANSFER_CHUNK_CORRUPT', `chunk of ${f.path} at offset ${offset} does not decompress (${hello.compression}): ${(e as Error).message}`, { migrationId: mid, file: f.path, offset, cause: e });
        }
        if (raw.length !== c.rawLength) throw new TransferError('TRANSFER_CHUNK_CORRUPT', `chunk of ${f.path} at offset ${offset} is ${raw.length} bytes, header says ${c.rawLength}`, { migrationId: mid, file: f.path, offset });
        const sha = createHash('sha256').update(raw).digest();
        if (!sha.equals(c.sha256)) {
          throw new TransferError('TRANSFER_CHUNK_CORRUPT', `chunk of ${f.path} at offset ${offset} (${c.rawLength} bytes): sha256 ${sha.toString('hex')} != ${c.sha256.toString('hex')}`, { migrationId: mid, file: f.path, offset });
        }
        digest.addChunk(sha);
        if (held) held[current]!.push(raw);
        else if (handle) await writes.push(handle, raw, offset);
        expectedOffset += raw.length;
        bytes += raw.length;
      } else if (frame.type === 'TRAILER') {
        const t: TrailerFrame = frame;
        await advanceTo(files.length - 1);
        await finishCurrent();
        current = files.length;
        const total = imageBytes(files);
        if (t.totalBytes !== BigInt(bytes) || bytes !== total) {
          throw new TransferError('TRANSFER_IMAGE_CORRUPT', `trailer says ${t.totalBytes} bytes, received ${bytes}, header listed ${total}`, { migrationId: mid });
        }
        const got = digest.digest();
        if (!got.equals(t.imageSha256)) {
          throw new TransferError('TRANSFER_IMAGE_CORRUPT', `image sha256 ${got.toString('hex')} != trailer's ${t.imageSha256.toString('hex')}`, { migrationId: mid });
        }
        return { bytes, imageSha256: got.toString('hex'), ...(held ? { held } : {}) };
      } else {
        throw new TransferError('TRANSFER_BAD_FRAME', `unexpected ${frame.type} frame in the image body`, { migrationId: mid });
      }
    }
  }
}

/**
 * Images up to this size (the final dump after pre-copy: sockets, page deltas, a manifest; tens of
 * KB) are held in memory and written synchronously once verified. They arrive inside the
 * service's downtime, where open/write/close/chmod through the thread pool cost four waits per
 * file behind whatever else the agent does. Bigger images (pre-copy rounds, cold dumps) are
 * written as they arrive, asynchronously.
 */
export const SMALL_IMAGE_BYTES = 4 * 1024 * 1024;

function isSmall(hello: HelloFrame): boolean {
  return hello.kind === 'image' && imageBytes(hello.files) <= SMALL_IMAGE_BYTES;
}

/** Writes a verified small image into the temporary directory (before its rename into place). */
function writeHeld(tmp: string, files: HelloFrame['files'], held: Buffer[][]): void {
  for (const [i, f] of files.entries()) {
    const path = join(tmp, f.path);
    try {
      writeFileSync(path, Buffer.concat(held[i] ?? []), { mode: 0o600 });
      chmodSync(path, f.mode);
    } catch (e) {
      throw new TransferError('TRANSFER_IO', `cannot write ${path}: ${(e as Error).message}`, { file: f.path, cause: e });
    }
  }
}
