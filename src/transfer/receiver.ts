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
import { chmod, mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Logger } from '../log.js';
import { decompressChunk } from './compression.js';
import { TransferError } from './errors.js';
import { FrameSocket } from './frame-socket.js';
import { CHUNK_BYTES, encodeFrame, type ChunkFrame, type HelloFrame, type TrailerFrame } from './frames.js';
import { ImageDigest } from './image-digest.js';
import { imageBytes } from './image-dir.js';

export interface ReceiverOptions {
  /** Where a migration's images live on this host; a step lands in `imageRoot(id)/stepName`. */
  imageRoot(migrationId: string): string;
  log: Logger;
  /** Max silence from a sender before the stream is failed (default 15 s). */
  idleTimeoutMs?: number;
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
  failed: [TransferError, { migrationId?: string; peer: string }];
}

export class ImageReceiver extends EventEmitter<ImageReceiverEvents> {
  private server: Server | undefined;
  private readonly expected = new Map<string, Announcement>();
  private readonly sockets = new Set<Socket>();
  private readonly idle: number;

  constructor(private readonly opts: ReceiverOptions) {
    super();
    this.idle = opts.idleTimeoutMs ?? 15_000;
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

  private async handle(socket: Socket): Promise<void> {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    const fs = new FrameSocket(socket, `stream from ${peer}`);
    let hello: HelloFrame | undefined;
    let tmp: string | undefined;
    const handles: FileHandle[] = [];
    let log = this.opts.log.child({ peer });
    try {
      const first = await fs.next(this.idle);
      if (first.type !== 'HELLO') throw new TransferError('TRANSFER_BAD_FRAME', `first frame is ${first.type}, expected HELLO (stream offset 0)`, { offset: 0 });
      hello = first;
      log = log.child({ migrationId: hello.migrationId, stepName: hello.stepName, kind: hello.kind });
      this.checkAnnounced(hello);

      let finalDir: string | undefined;
      if (hello.kind === 'image') {
        const root = this.opts.imageRoot(hello.migrationId);
        finalDir = join(root, hello.stepName);
        tmp = join(root, `.incoming-${hello.stepName}-${randomBytes(4).toString('hex')}`);
        await mkdir(tmp, { recursive: true });
        for (const f of hello.files) await mkdir(dirname(join(tmp, f.path)), { recursive: true });
      }
      await fs.write(encodeFrame({ type: 'ACCEPT' }));
      const start = performance.now();
      const result = await this.receiveBody(fs, hello, tmp, handles);
      if (tmp !== undefined && finalDir !== undefined) {
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
        wireBytes: fs.bytesIn,
        imageSha256: result.imageSha256,
        elapsedMs: performance.now() - start,
        peer,
      };
      await fs.write(encodeFrame({ type: 'DONE', bytes: received.bytes, imageSha256: received.imageSha256, elapsedMs: received.elapsedMs }));
      log.info({ bytes: received.bytes, elapsedMs: Math.round(received.elapsedMs), dir: finalDir }, 'stream received');
      this.emit('received', received);
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
      this.emit('failed', err, { ...(hello ? { migrationId: hello.migrationId } : {}), peer });
    } finally {
      for (const h of handles) await h.close().catch(() => {});
      if (!socket.writableEnded) socket.end();
      socket.once('close', () => this.sockets.delete(socket));
      if (socket.destroyed) this.sockets.delete(socket);
    }
  }

  /**
   * Puts a verified image in place. A step that is already there is replaced: a sender whose DONE
   * was lost (connection cut after the rename) sends the step again, and that retry must succeed.
   * The old copy is moved aside first, so the step directory always holds one whole image.
   */
  private async replaceDir(tmp: string, finalDir: string): Promise<void> {
    try {
      await rename(tmp, finalDir);
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
  private async receiveBody(fs: FrameSocket, hello: HelloFrame, tmp: string | undefined, handles: FileHandle[]): Promise<{ bytes: number; imageSha256: string }> {
    const mid = hello.migrationId;
    const files = hello.files;
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
        if (tmp !== undefined) {
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
        if (handle) await writes.push(handle, raw, offset);
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
        return { bytes, imageSha256: got.toString('hex') };
      } else {
        throw new TransferError('TRANSFER_BAD_FRAME', `unexpected ${frame.type} frame in the image body`, { migrationId: mid });
      }
    }
  }
}
