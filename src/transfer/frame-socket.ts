/**
 * A TCP socket seen as a sequence of frames: `next()` resolves with the next whole frame. Reading is
 * paused while unread frames pile up (backpressure reaches the peer through TCP's window), and
 * every wait has a time limit, so a silent or slow peer cannot hang either end.
 */
import type { Socket } from 'node:net';
import { TransferError } from './errors.js';
import { FrameDecoder, type ErrorFrame, type Frame } from './frames.js';

const HIGH_WATER_FRAMES = 8;
const WRITE_BUFFER_BYTES = 2 * 1024 * 1024;

export class FrameSocket {
  private readonly decoder = new FrameDecoder();
  private readonly queue: Frame[] = [];
  private waiter: { resolve(f: Frame): void; reject(e: Error): void } | undefined;
  private failure: Error | undefined;
  private ended = false;
  private discarding = false;
  /** Bytes read from the socket so far. */
  bytesIn = 0;

  constructor(readonly socket: Socket, private readonly what: string) {
    socket.on('data', (b: Buffer) => {
      this.bytesIn += b.length;
      if (this.discarding) return;
      let frames: Frame[];
      try {
        frames = this.decoder.push(b);
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      for (const f of frames) this.deliver(f);
      if (this.queue.length >= HIGH_WATER_FRAMES) socket.pause();
    });
    socket.on('end', () => {
      this.ended = true;
      this.fail(new TransferError('TRANSFER_TRUNCATED', `${what}: stream ended at offset ${this.decoder.offset + this.decoder.pending} with ${this.decoder.pending} bytes of an unfinished frame`, { offset: this.decoder.offset }));
    });
    socket.on('close', () => {
      this.fail(new TransferError('TRANSFER_TRUNCATED', `${what}: connection closed at offset ${this.decoder.offset + this.decoder.pending}`, { offset: this.decoder.offset }));
    });
    socket.on('error', (e) => {
      this.fail(new TransferError('TRANSFER_TRUNCATED', `${what}: connection failed: ${e.message}`, { cause: e }));
    });
  }

  private deliver(f: Frame): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(f);
    } else this.queue.push(f);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.reject(this.failure);
    }
  }

  /**
   * An ERROR frame the peer sent that nobody has read yet. A sender checks this between chunks
   * and after a failed write: the peer's reason (e.g. a corrupt chunk) beats "connection reset".
   */
  peerError(): ErrorFrame | undefined {
    return this.queue.find((f): f is ErrorFrame => f.type === 'ERROR');
  }

  /** True once the stream failed, ended or closed: no further frame can be read. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** True once the peer ended its side. */
  get peerEnded(): boolean {
    return this.ended;
  }

  /** The next frame; rejects with the stream's failure or TRANSFER_TIMEOUT after `timeoutMs`. */
  next(timeoutMs: number): Promise<Frame> {
    const queued = this.queue.shift();
    if (this.queue.length < HIGH_WATER_FRAMES && this.socket.isPaused()) this.socket.resume();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new TransferError('TRANSFER_TIMEOUT', `${this.what}: no frame within ${timeoutMs} ms (stream offset ${this.decoder.offset})`, { offset: this.decoder.offset }));
      }, timeoutMs);
      this.waiter = {
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /**
   * Writes bytes; resolves at once while less than `WRITE_BUFFER_BYTES` wait in user space, else
   * when the socket drained. Keeping a few chunks queued lets the kernel send while the caller
   * reads and hashes the next chunk (waiting for 'drain' after every 256 KiB chunk halved the
   * throughput on a veth). Rejects when the connection failed, or with TRANSFER_TIMEOUT when the
   * peer stopped reading for `timeoutMs`.
   */
  write(bytes: Buffer, timeoutMs = 15_000): Promise<void> {
    if (this.failure && this.socket.destroyed) return Promise.reject(this.failure);
    this.socket.write(bytes);
    if (this.socket.writableLength < WRITE_BUFFER_BYTES) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
      };
      const onDrain = () => {
        done();
        resolve();
      };
      const onClose = () => {
        done();
        reject(this.failure ?? new TransferError('TRANSFER_TRUNCATED', `${this.what}: connection closed while writing`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new TransferError('TRANSFER_TIMEOUT', `${this.what}: peer read nothing for ${timeoutMs} ms`));
      }, timeoutMs);
      this.socket.once('drain', onDrain);
      this.socket.once('close', onClose);
    });
  }

  /**
   * Closes after a failure without losing the ERROR frame just written: half-close, then read and
   * drop whatever the peer still sends until it closes (or `lingerMs`). Closing a socket with
   * unread input makes the kernel send a RST, and a RST can destroy the peer's copy of our ERROR
   * frame before it reads it (the lingering close of HTTP servers, RFC 9112 §9.6).
   */
  lingerClose(lingerMs = 2000): void {
    this.discarding = true;
    this.queue.length = 0;
    this.socket.end();
    this.socket.resume();
    const timer = setTimeout(() => this.socket.destroy(), lingerMs);
    this.socket.once('close', () => clearTimeout(timer));
  }
}
