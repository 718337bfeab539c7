/**
 * The image stream's wire format: a pure codec (bytes <-> frames), no sockets.
 *
 * Every frame is `type (u8) | payload length (u32, big endian) | payload`. One connection carries
 * one image (or one bandwidth probe):
 *
 *   sender -> receiver: HELLO, then (after ACCEPT) CHUNK*, then TRAILER
 *   receiver -> sender: ACCEPT or ERROR after HELLO; DONE or ERROR after TRAILER (or ERROR at any
 *                       point a check fails)
 *
 * HELLO, ACCEPT, ERROR and DONE carry UTF-8 JSON (small, rare, self-describing). CHUNK and TRAILER
 * are binary, since they carry hashes and file data:
 *
 *   CHUNK:   file index (u32) | offset in file (u64) | raw length (u32) | sha256 of raw bytes (32) | data
 *   TRAILER: total raw bytes (u64) | image sha256 (32)
 *
 * `data` is the chunk compressed with the HELLO's `compression`, or the raw bytes; the sha256 is of
 * the raw bytes, so it checks decompression too. Chunks are fixed by the protocol: every chunk of a
 * file is CHUNK_BYTES long except its last, and chunks are sent in file order, then offset order.
 * Fixed boundaries let the image sha256 be computed from the chunk hashes (image-digest.ts), so
 * each byte is hashed once per side. Lengths are computed on encode, never taken from
 * the caller, and checked on decode (mqtt-packet's parser shape: push bytes, get whole frames, keep
 * the leftover).
 */
import { TransferError } from './errors.js';

export const FRAME_TYPES = {
  HELLO: 1,
  ACCEPT: 2,
  CHUNK: 3,
  TRAILER: 4,
  DONE: 5,
  ERROR: 6,
} as const;
export type FrameTypeName = keyof typeof FRAME_TYPES;

export const FRAME_HEADER_BYTES = 5;
export const CHUNK_HEADER_BYTES = 4 + 8 + 4 + 32;
export const TRAILER_BYTES = 8 + 32;
/**
 * The chunk size. 256 KiB: large enough that per-frame costs vanish next to hashing and copying,
 * small enough that a token bucket of one chunk keeps a 50 Mbit/s limit within 1 % on a 20 MB image.
 */
export const CHUNK_BYTES = 256 * 1024;
/** Largest payload accepted: a chunk whose compressed form grew a little, or a large HELLO. */
export const MAX_PAYLOAD_BYTES = 1024 * 1024;
export const PROTOCOL_VERSION = 1;

export const COMPRESSIONS = ['none', 'deflate', 'brotli'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export interface ImageFile {
  /** Relative path inside the step directory, `/`-separated, no `..`. */
  path: string;
  size: number;
  /** Permission bits (e.g. 0o644). */
  mode: number;
}

export interface HelloFrame {
  type: 'HELLO';
  version: number;
  /** `image`: files land in the destination's image dir; `probe`: bytes are counted and dropped. */
  kind: 'image' | 'probe';
  migrationId: string;
  /** The per-migration token the controller announced to both agents. */
  token: string;
  /** Directory name under the migration's image root where the files land, e.g. "dump". */
  stepName: string;
  compression: Compression;
  files: ImageFile[];
}

export interface AcceptFrame {
  type: 'ACCEPT';
}

export interface ChunkFrame {
  type: 'CHUNK';
  fileIndex: number;
  offset: bigint;
  rawLength: number;
  sha256: Buffer;
  data: Buffer;
}

export interface TrailerFrame {
  type: 'TRAILER';
  totalBytes: bigint;
  imageSha256: Buffer;
}

export interface DoneFrame {
  type: 'DONE';
  bytes: number;
  imageSha256: string;
  /** Receiver's time from ACCEPT to verified rename, ms. */
  elapsedMs: number;
}

export interface ErrorFrame {
  type: 'ERROR';
  code: string;
  message: string;
  file?: string;
  offset?: number;
}

export type Frame = HelloFrame | AcceptFrame | ChunkFrame | TrailerFrame | DoneFrame | ErrorFrame;

const TYPE_NAMES = new Map<number, FrameTypeName>(Object.entries(FRAME_TYPES).map(([k, v]) => [v, k as FrameTypeName]));

function frame(type: FrameTypeName, payload: Buffer): Buffer {
  const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  head.writeUInt8(FRAME_TYPES[type], 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** Encodes the frame header and chunk header only; `data` follows (saves copying a chunk). */
export function encodeChunkHeader(c: Omit<ChunkFrame, 'type' | 'data'>, dataLength: number): Buffer {
  if (c.sha256.length !== 32) throw new TypeError('chunk sha256 must be 32 bytes');
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + CHUNK_HEADER_BYTES);
  b.writeUInt8(FRAME_TYPES.CHUNK, 0);
  b.writeUInt32BE(CHUNK_HEADER_BYTES + dataLength, 1);
  b.writeUInt32BE(c.fileIndex, 5);
  b.writeBigUInt64BE(c.offset, 9);
  b.writeUInt32BE(c.rawLength, 17);
  c.sha256.copy(b, 21);
  return b;
}

export function encodeFrame(f: Frame): Buffer {
  switch (f.type) {
    case 'HELLO':
    case 'ACCEPT':
    case 'DONE':
    case 'ERROR': {
      const { type, ...rest } = f;
      return frame(type, Buffer.from(JSON.stringify(rest), 'utf8'));
    }
    case 'CHUNK':
      return Buffer.concat([encodeChunkHeader(f, f.data.length), f.data]);
    case 'TRAILER': {
      if (f.imageSha256.length !== 32) throw new TypeError('image sha256 must be 32 bytes');
      const p = Buffer.allocUnsafe(TRAILER_BYTES);
      p.writeBigUInt64BE(f.totalBytes, 0);
      f.imageSha256.copy(p, 8);
      return frame('TRAILER', p);
    }
  }
}

function bad(message: string, offset: number): TransferError {
  return new TransferError('TRANSFER_BAD_FRAME', `${message} (stream offset ${offset})`, { offset });
}

function parseJson(payload: Buffer, at: number): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    throw bad('frame payload is not JSON', at);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('frame payload is not a JSON object', at);
  return v as Record<string, unknown>;
}

/** Decodes one payload of a known type; `at` is the frame's offset in the stream, for errors. */
export function decodePayload(type: FrameTypeName, payload: Buffer, at: number): Frame {
  switch (type) {
    case 'HELLO': {
      const o = parseJson(payload, at);
      return validateHello(o, at);
    }
    case 'ACCEPT':
      return { type: 'ACCEPT' };
    case 'DONE': {
      const o = parseJson(payload, at);
      if (typeof o.bytes !== 'number' || typeof o.imageSha256 !== 'string' || typeof o.elapsedMs !== 'number') throw bad('DONE frame lacks bytes/imageSha256/elapsedMs', at);
      return { type: 'DONE', bytes: o.bytes, imageSha256: o.imageSha256, elapsedMs: o.elapsedMs };
    }
    case 'ERROR': {
      const o = parseJson(payload, at);
      if (typeof o.code !== 'string' || typeof o.message !== 'string') throw bad('ERROR frame lacks code/message', at);
      const e: ErrorFrame = { type: 'ERROR', code: o.code, message: o.message };
      if (typeof o.file === 'string') e.file = o.file;
      if (typeof o.offset === 'number') e.offset = o.offset;
      return e;
    }
    case 'CHUNK': {
      if (payload.length < CHUNK_HEADER_BYTES) throw bad(`CHUNK payload of ${payload.length} bytes is shorter than its ${CHUNK_HEADER_BYTES}-byte header`, at);
      const rawLength = payload.readUInt32BE(12);
      if (rawLength > CHUNK_BYTES) throw bad(`CHUNK raw length ${rawLength} exceeds ${CHUNK_BYTES}`, at);
      return {
        type: 'CHUNK',
        fileIndex: payload.readUInt32BE(0),
        offset: payload.readBigUInt64BE(4),
        rawLength,
        sha256: payload.subarray(16, 48),
        data: payload.subarray(CHUNK_HEADER_BYTES),
      };
    }
    case 'TRAILER': {
      if (payload.length !== TRAILER_BYTES) throw bad(`TRAILER payload is ${payload.length} bytes, expected ${TRAILER_BYTES}`, at);
      return { type: 'TRAILER', totalBytes: payload.readBigUInt64BE(0), imageSha256: payload.subarray(8, 40) };
    }
  }
}

const SAFE_SEGMENT = /^[^/\0]+$/;

/** A relative path that stays inside its directory: no absolute path, no `.`/`..` segment. */
export function isSafeRelativePath(p: string): boolean {
  if (p.length === 0 || p.length > 4096 || p.startsWith('/')) return false;
  return p.split('/').every((s) => SAFE_SEGMENT.test(s) && s !== '.' && s !== '..');
}

/** A step name is one path segment: it names a directory directly under the image root. */
export function isSafeStepName(s: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(s);
}

function validateHello(o: Record<string, unknown>, at: number): HelloFrame {
  const hdr = (m: string) => new TransferError('TRANSFER_BAD_HEADER', `HELLO: ${m} (stream offset ${at})`, { offset: at });
  if (o.version !== PROTOCOL_VERSION) throw hdr(`version ${String(o.version)} is not ${PROTOCOL_VERSION}`);
  if (o.kind !== 'image' && o.kind !== 'probe') throw hdr(`kind ${String(o.kind)} is not image|probe`);
  if (typeof o.migrationId !== 'string' || o.migrationId.length === 0 || o.migrationId.length > 128) throw hdr('migrationId missing');
  if (typeof o.token !== 'string') throw hdr('token missing');
  if (typeof o.stepName !== 'string' || !isSafeStepName(o.stepName)) throw hdr(`stepName ${JSON.stringify(o.stepName)} is not one safe path segment`);
  if (!(COMPRESSIONS as readonly unknown[]).includes(o.compression)) throw hdr(`compression ${String(o.compression)} unknown`);
  if (!Array.isArray(o.files)) throw hdr('files is not a list');
  const files: ImageFile[] = [];
  const seen = new Set<string>();
  for (const [i, f] of (o.files as unknown[]).entries()) {
    const r = f as Record<string, unknown>;
    if (typeof r !== 'object' || r === null) throw hdr(`files[${i}] is not an object`);
    if (typeof r.path !== 'string' || !isSafeRelativePath(r.path)) throw hdr(`files[${i}].path ${JSON.stringify(r.path)} escapes the image`);
    if (typeof r.size !== 'number' || !Number.isSafeInteger(r.size) || r.size < 0) throw hdr(`files[${i}].size is not a size`);
    if (typeof r.mode !== 'number' || !Number.isInteger(r.mode) || r.mode < 0 || r.mode > 0o7777) throw hdr(`files[${i}].mode is not a mode`);
    if (seen.has(r.path)) throw hdr(`files[${i}].path ${r.path} listed twice`);
    seen.add(r.path);
    files.push({ path: r.path, size: r.size, mode: r.mode });
  }
  return {
    type: 'HELLO',
    version: PROTOCOL_VERSION,
    kind: o.kind,
    migrationId: o.migrationId,
    token: o.token,
    stepName: o.stepName,
    compression: o.compression as Compression,
    files,
  };
}

/**
 * Byte-driven frame decoder: `push` bytes as they arrive, get every whole frame; a partial frame
 * stays buffered. After an error the decoder is unusable (the stream is out of sync).
 */
export class FrameDecoder {
  /** Received bytes not yet decoded, kept as a list: a large frame arriving in many reads is
   * concatenated once when complete, not once per read. */
  private parts: Buffer[] = [];
  private buffered = 0;
  /** Stream offset of the first buffered byte, for error messages. */
  private consumed = 0;
  private failed = false;

  constructor(private readonly maxPayload = MAX_PAYLOAD_BYTES) {}

  /** Bytes received but not yet part of a whole frame. */
  get pending(): number {
    return this.buffered;
  }

  get offset(): number {
    return this.consumed;
  }

  private flatten(): Buffer {
    if (this.parts.length > 1) this.parts = [Buffer.concat(this.parts, this.buffered)];
    return this.parts[0] ?? Buffer.alloc(0);
  }

  /** The first `n` buffered bytes, contiguous (concatenates only when they span parts). */
  private peek(n: number): Buffer {
    const first = this.parts[0]!;
    return first.length >= n ? first : this.flatten();
  }

  push(bytes: Buffer): Frame[] {
    if (this.failed) throw bad('decoder used after an error', this.consumed);
    if (bytes.length > 0) {
      this.parts.push(bytes);
      this.buffered += bytes.length;
    }
    const out: Frame[] = [];
    try {
      while (this.buffered >= FRAME_HEADER_BYTES) {
        const head = this.peek(FRAME_HEADER_BYTES);
        const typeByte = head.readUInt8(0);
        const type = TYPE_NAMES.get(typeByte);
        if (type === undefined) throw bad(`unknown frame type ${typeByte}`, this.consumed);
        const len = head.readUInt32BE(1);
        if (len > this.maxPayload) throw bad(`${type} payload length ${len} exceeds ${this.maxPayload}`, this.consumed);
        const total = FRAME_HEADER_BYTES + len;
        if (this.buffered < total) break;
        const buf = this.peek(total);
        out.push(decodePayload(type, buf.subarray(FRAME_HEADER_BYTES, total), this.consumed));
        const rest = buf.subarray(total);
        this.parts[0] = rest;
        if (rest.length === 0) this.parts.shift();
        this.buffered -= total;
        this.consumed += total;
      }
    } catch (e) {
      this.failed = true;
      throw e;
    }
    return out;
  }
}
