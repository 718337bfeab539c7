/**
 * The demo workload's wire protocol (pure: no I/O). PAM's synthetic service, made checkable byte
 * by byte: every byte the server sends is a function of its offset in the connection's stream, so
 * the client can verify all of it, and a service restored from a socket image can go on from the
 * exact stream offsets the executor read from the kernel (src/tcp-repair/socket.ts,
 * `streamOffsets`), even if the old process was frozen between a write() and its bookkeeping.
 *
 * Two kinds of connection, told apart by the server port they reach:
 * - stream: the server sends records forever; the client sends nothing.
 *     record (recordSize bytes, >= 32): "CREC" | u32 recordSize | u64 seq | payload(seq) | u32 crc32
 * - ping: the client sends requests, the server answers each with a response.
 *     request  (32 bytes): "CPNG" | u64 id | 16 bytes filler(id) | u32 crc32
 *     response (32 bytes): "CPON" | u64 id | 16 bytes filler(~id) | u32 crc32
 * All integers big-endian; crc32 is zlib's (ISO-HDLC) over the bytes before it.
 */
import { crc32 } from 'node:zlib';

export const RECORD_MAGIC = 0x43524543; // "CREC"
export const REQUEST_MAGIC = 0x43504e47; // "CPNG"
export const RESPONSE_MAGIC = 0x43504f4e; // "CPON"
export const MIN_RECORD_SIZE = 32;
export const PING_SIZE = 32;

/** xorshift32 filler: cheap, deterministic, never constant. */
function fill(out: Uint8Array, start: number, end: number, seed: number): void {
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = start; i < end; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
}

function seedOf(n: bigint, salt: number): number {
  return (Number(n & 0xffffffffn) ^ Number((n >> 32n) & 0xffffffffn) ^ salt) >>> 0;
}

/** Record `seq` of a stream with records of `size` bytes. */
export function record(seq: bigint, size: number): Buffer {
  if (!Number.isInteger(size) || size < MIN_RECORD_SIZE) throw new RangeError(`record size ${size} is below ${MIN_RECORD_SIZE}`);
  const b = Buffer.allocUnsafe(size);
  b.writeUInt32BE(RECORD_MAGIC, 0);
  b.writeUInt32BE(size, 4);
  b.writeBigUInt64BE(seq, 8);
  fill(b, 16, size - 4, seedOf(seq, 0x5eed));
  b.writeUInt32BE(crc32(b.subarray(0, size - 4)), size - 4);
  return b;
}

/** The stream's bytes [offset, offset + length). */
export function streamBytes(offset: bigint, length: number, recordSize: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  const rs = BigInt(recordSize);
  let seq = offset / rs;
  let within = Number(offset % rs);
  let pos = 0;
  while (pos < length) {
    const r = record(seq, recordSize);
    const n = Math.min(recordSize - within, length - pos);
    r.copy(out, pos, within, within + n);
    pos += n;
    within = 0;
    seq++;
  }
  return out;
}

/**
 * Verifies a stream chunk by chunk. `push` returns the offset of the first wrong byte, or -1.
 * Checks every byte against the regenerated record, and each completed record's CRC.
 */
export class StreamVerifier {
  offset = 0n;
  private current: Buffer | undefined;
  private currentSeq = -1n;
  constructor(readonly recordSize: number) {}

  push(chunk: Uint8Array): bigint {
    const rs = BigInt(this.recordSize);
    for (let i = 0; i < chunk.length; ) {
      const seq = this.offset / rs;
      if (seq !== this.currentSeq) {
        this.current = record(seq, this.recordSize);
        this.currentSeq = seq;
        if (crc32(this.current.subarray(0, this.recordSize - 4)) !== this.current.readUInt32BE(this.recordSize - 4)) return this.offset;
      }
      const within = Number(this.offset % rs);
      const n = Math.min(this.recordSize - within, chunk.length - i);
      const want = this.current!;
      for (let k = 0; k < n; k++) {
        if (chunk[i + k] !== want[within + k]) return this.offset + BigInt(k);
      }
      i += n;
      this.offset += BigInt(n);
    }
    return -1n;
  }
}

export function request(id: bigint): Buffer {
  const b = Buffer.allocUnsafe(PING_SIZE);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeBigUInt64BE(id, 4);
  fill(b, 12, 28, seedOf(id, 0x9146));
  b.writeUInt32BE(crc32(b.subarray(0, 28)), 28);
  return b;
}

export function response(id: bigint): Buffer {
  const b = Buffer.allocUnsafe(PING_SIZE);
  b.writeUInt32BE(RESPONSE_MAGIC, 0);
  b.writeBigUInt64BE(id, 4);
  fill(b, 12, 28, seedOf(~id & 0xffffffffffffffffn, 0x9047));
  b.writeUInt32BE(crc32(b.subarray(0, 28)), 28);
  return b;
}

/** The bytes [offset, offset + length) of the response stream (responses to ids 0, 1, 2, ...). */
export function responseBytes(offset: bigint, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let pos = 0;
  let off = offset;
  while (pos < length) {
    const id = off / BigInt(PING_SIZE);
    const within = Number(off % BigInt(PING_SIZE));
    const n = Math.min(PING_SIZE - within, length - pos);
    response(id).copy(out, pos, within, within + n);
    pos += n;
    off += BigInt(n);
  }
  return out;
}

/** Checks one whole request; returns its id or a reason it is wrong. */
export function checkRequest(b: Uint8Array, expectedId: bigint): { ok: true } | { ok: false; reason: string } {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.length !== PING_SIZE) return { ok: false, reason: `length ${buf.length}` };
  if (buf.readUInt32BE(0) !== REQUEST_MAGIC) return { ok: false, reason: 'magic' };
  const id = buf.readBigUInt64BE(4);
  if (id !== expectedId) return { ok: false, reason: `id ${id}, expected ${expectedId}` };
  if (!request(id).equals(buf)) return { ok: false, reason: 'content or crc' };
  return { ok: true };
}

/**
 * The server side of a ping connection as a pure state machine over stream offsets. `read` and
 * `written` are the offsets the connection starts from (0 for a new connection; the image's for a
 * restored one). Bytes of a request the old process had consumed are gone with it, so a partly
 * consumed request is skipped (not checked) and answered; requests it consumed but did not answer
 * are answered first.
 */
export class PingServerState {
  private pending = Buffer.alloc(0);
  private readOffset: bigint;
  private writeOffset: bigint;
  /** Bytes of the request in progress that the previous process consumed: not checked. */
  private skip: number;
  errors = 0;
  lastError = '';

  constructor(start: { read: bigint; written: bigint }) {
    const q = BigInt(PING_SIZE);
    this.readOffset = start.read;
    this.writeOffset = start.written;
    this.skip = Number(start.read % q);
  }

  /** What to send right away: the rest of a half-written response and responses owed. */
  start(): Buffer {
    const q = BigInt(PING_SIZE);
    const answeredUpTo = (this.readOffset / q) * q; // responses owed for every whole request consumed
    if (this.writeOffset >= answeredUpTo) {
      // Only the tail of a response that was partly written (the request was whole and answered).
      const rest = this.writeOffset % q === 0n ? 0n : q - (this.writeOffset % q);
      return this.emit(Number(rest));
    }
    return this.emit(Number(answeredUpTo - this.writeOffset));
  }

  /** Feeds bytes read from the socket; returns the bytes to write back. */
  push(chunk: Uint8Array): Buffer {
    const out: Buffer[] = [];
    let data = Buffer.concat([this.pending, chunk]);
    while (data.length > 0) {
      const within = Number(this.readOffset % BigInt(PING_SIZE));
      if (this.skip > 0) {
        // The rest of a request whose start the previous process consumed.
        const need = PING_SIZE - within;
        if (data.length < need) break;
        data = data.subarray(need);
        this.readOffset += BigInt(need);
        this.skip = 0;
        out.push(this.emitUpToRead());
        continue;
      }
      if (data.length < PING_SIZE) break;
      const id = this.readOffset / BigInt(PING_SIZE);
      const check = checkRequest(data.subarray(0, PING_SIZE), id);
      if (!check.ok) {
        this.errors++;
        this.lastError = `request at offset ${this.readOffset}: ${check.reason}`;
      }
      data = data.subarray(PING_SIZE);
      this.readOffset += BigInt(PING_SIZE);
      out.push(this.emitUpToRead());
    }
    this.pending = Buffer.from(data);
    return Buffer.concat(out);
  }

  private emitUpToRead(): Buffer {
    return this.emit(Number(this.readOffset - this.writeOffset > 0n ? this.readOffset - this.writeOffset : 0n));
  }

  private emit(n: number): Buffer {
    if (n <= 0) return Buffer.alloc(0);
    const b = responseBytes(this.writeOffset, n);
    this.writeOffset += BigInt(n);
    return b;
  }
}
