/**
 * The socket image: one TCP connection's repair state, serialised. Pure codec (dns-packet's shape:
 * `encode`, `decode`, `encodingLength`), no I/O. Binary, big-endian, versioned, with an explicit
 * total length and a SHA-256 trailer, so a truncated, corrupted or foreign file is refused with the
 * offset and the check that failed before any field reaches the kernel.
 *
 * Layout, version 1 (offsets in bytes):
 *
 *   0   8  magic "COATSKIM"
 *   8   2  version (1)
 *  10   2  fixed header length (132)
 *  12   4  total length of the image, trailer included
 *  16   1  address family (4 | 6)
 *  17   1  TCP state (linux/tcp.h; 1 = ESTABLISHED)
 *  18   1  flags: tcpi_options bits (1 timestamps, 2 SACK, 4 window scale) | 0x80 window present
 *  19   1  reserved, 0
 *  20  16  local address (IPv4 in the first 4 bytes, rest 0)
 *  36   2  local port
 *  38  16  remote address
 *  54   2  remote port
 *  56   4  send queue sequence (write_seq: after the last queued byte)
 *  60   4  receive queue sequence (rcv_nxt)
 *  64   4  MSS clamp
 *  68   1  send window scale       69  1  receive window scale       70  2  reserved, 0
 *  72   4  TCP timestamp (tcp_time_stamp + tsoffset)
 *  76  20  TCP_REPAIR_WINDOW: snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup
 *  96   4  SO_SNDBUF             100  4  SO_RCVBUF (as getsockopt reports them)
 * 104   8  stream offset written: bytes the application ever wrote into this connection
 * 112   8  stream offset read: bytes the application ever read from it
 * 120   4  send queue length (sent-unacked + never-sent)
 * 124   4  never-sent length (tail of the send queue)
 * 128   4  receive queue length
 * 132   .  send queue bytes, then receive queue bytes
 * end-32 32 SHA-256 of every byte before it
 */
import { createHash } from 'node:crypto';
import { CoatError } from '../errors.js';

export const IMAGE_MAGIC = Buffer.from('COATSKIM', 'ascii');
export const IMAGE_VERSION = 1;
export const IMAGE_FIXED_LENGTH = 132;
export const IMAGE_CHECKSUM_LENGTH = 32;
/** linux/tcp.h TCPI_OPT_* */
export const TCPI_OPT = { TIMESTAMPS: 1, SACK: 2, WSCALE: 4 } as const;
const FLAG_WINDOW = 0x80;
/** linux/tcp.h enum: TCP_ESTABLISHED */
export const TCP_ESTABLISHED = 1;

export const IMAGE_CODES = {
  SKIMG_TRUNCATED: 'the image ends before a field or the length it declares',
  SKIMG_BAD_MAGIC: 'the first 8 bytes are not "COATSKIM"',
  SKIMG_VERSION: 'the image version is not one this build reads',
  SKIMG_LENGTH: 'a length field disagrees with the bytes present or with the other lengths',
  SKIMG_CHECKSUM: 'the SHA-256 trailer does not match the content',
  SKIMG_INVALID: 'a field holds a value no kernel produces (family, flags, address, reserved bits)',
} as const;
export type ImageCode = keyof typeof IMAGE_CODES;

export class SocketImageError extends CoatError {
  declare readonly code: ImageCode;
  constructor(code: ImageCode, readonly offset: number, message: string) {
    super(code, `socket image: ${message} (offset ${offset})`);
  }
}

export interface Endpoint {
  address: string;
  port: number;
}

export interface RepairWindow {
  sndWl1: number;
  sndWnd: number;
  maxWindow: number;
  rcvWnd: number;
  rcvWup: number;
}

/** One established TCP connection, as saved at the dump and restored at the destination. */
export interface SocketImage {
  family: 4 | 6;
  state: number;
  local: Endpoint;
  remote: Endpoint;
  sendSeq: number;
  recvSeq: number;
  mss: number;
  /** tcpi_options bits (TCPI_OPT). */
  options: number;
  sndWscale: number;
  rcvWscale: number;
  timestamp: number;
  window: RepairWindow | null;
  sndbuf: number;
  rcvbuf: number;
  /** Application stream offsets at the dump (see socket.ts, `streamOffsets`). */
  streamWritten: bigint;
  streamRead: bigint;
  /** Whole send queue: sent-but-unacked bytes followed by `unsentLength` never-sent bytes. */
  sendQueue: Uint8Array;
  unsentLength: number;
  recvQueue: Uint8Array;
}

export function encodingLength(img: SocketImage): number {
  return IMAGE_FIXED_LENGTH + img.sendQueue.length + img.recvQueue.length + IMAGE_CHECKSUM_LENGTH;
}

export function encode(img: SocketImage): Buffer {
  validate(img);
  const total = encodingLength(img);
  const b = Buffer.alloc(total);
  IMAGE_MAGIC.copy(b, 0);
  b.writeUInt16BE(IMAGE_VERSION, 8);
  b.writeUInt16BE(IMAGE_FIXED_LENGTH, 10);
  b.writeUInt32BE(total, 12);
  b.writeUInt8(img.family, 16);
  b.writeUInt8(img.state, 17);
  b.writeUInt8((img.options & 0x07) | (img.window ? FLAG_WINDOW : 0), 18);
  addressBytes(img.local.address, img.family, 20).copy(b, 20);
  b.writeUInt16BE(img.local.port, 36);
  addressBytes(img.remote.address, img.family, 38).copy(b, 38);
  b.writeUInt16BE(img.remote.port, 54);
  b.writeUInt32BE(img.sendSeq >>> 0, 56);
  b.writeUInt32BE(img.recvSeq >>> 0, 60);
  b.writeUInt32BE(img.mss, 64);
  b.writeUInt8(img.sndWscale, 68);
  b.writeUInt8(img.rcvWscale, 69);
  b.writeUInt32BE(img.timestamp >>> 0, 72);
  const w = img.window ?? { sndWl1: 0, sndWnd: 0, maxWindow: 0, rcvWnd: 0, rcvWup: 0 };
  b.writeUInt32BE(w.sndWl1 >>> 0, 76);
  b.writeUInt32BE(w.sndWnd >>> 0, 80);
  b.writeUInt32BE(w.maxWindow >>> 0, 84);
  b.writeUInt32BE(w.rcvWnd >>> 0, 88);
  b.writeUInt32BE(w.rcvWup >>> 0, 92);
  b.writeUInt32BE(img.sndbuf, 96);
  b.writeUInt32BE(img.rcvbuf, 100);
  b.writeBigUInt64BE(img.streamWritten, 104);
  b.writeBigUInt64BE(img.streamRead, 112);
  b.writeUInt32BE(img.sendQueue.length, 120);
  b.writeUInt32BE(img.unsentLength, 124);
  b.writeUInt32BE(img.recvQueue.length, 128);
  b.set(img.sendQueue, IMAGE_FIXED_LENGTH);
  b.set(img.recvQueue, IMAGE_FIXED_LENGTH + img.sendQueue.length);
  const body = total - IMAGE_CHECKSUM_LENGTH;
  createHash('sha256').update(b.subarray(0, body)).digest().copy(b, body);
  return b;
}

export function decode(buf: Uint8Array): SocketImage {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  need(b, 16, 0, 'the fixed header start');
  if (!b.subarray(0, 8).equals(IMAGE_MAGIC)) throw new SocketImageError('SKIMG_BAD_MAGIC', 0, `magic is ${JSON.stringify(b.subarray(0, 8).toString('latin1'))}, want "COATSKIM"`);
  const version = b.readUInt16BE(8);
  if (version !== IMAGE_VERSION) throw new SocketImageError('SKIMG_VERSION', 8, `version ${version}, this build reads ${IMAGE_VERSION}`);
  const fixed = b.readUInt16BE(10);
  if (fixed !== IMAGE_FIXED_LENGTH) throw new SocketImageError('SKIMG_LENGTH', 10, `fixed header length ${fixed}, version 1 has ${IMAGE_FIXED_LENGTH}`);
  const total = b.readUInt32BE(12);
  if (total < IMAGE_FIXED_LENGTH + IMAGE_CHECKSUM_LENGTH) throw new SocketImageError('SKIMG_LENGTH', 12, `total length ${total} is below the minimum ${IMAGE_FIXED_LENGTH + IMAGE_CHECKSUM_LENGTH}`);
  need(b, total, 12, `the declared total length ${total}`);
  if (b.length > total) throw new SocketImageError('SKIMG_LENGTH', total, `${b.length - total} bytes follow the declared end of the image`);
  const sendLen = b.readUInt32BE(120);
  const unsent = b.readUInt32BE(124);
  const recvLen = b.readUInt32BE(128);
  if (IMAGE_FIXED_LENGTH + sendLen + recvLen + IMAGE_CHECKSUM_LENGTH !== total) {
    throw new SocketImageError('SKIMG_LENGTH', 120, `queue lengths ${sendLen} + ${recvLen} do not add up to the total length ${total}`);
  }
  const body = total - IMAGE_CHECKSUM_LENGTH;
  const want = createHash('sha256').update(b.subarray(0, body)).digest();
  if (!want.equals(b.subarray(body, total))) throw new SocketImageError('SKIMG_CHECKSUM', body, 'SHA-256 mismatch: the image is corrupted');
  const family = b.readUInt8(16);
  if (family !== 4 && family !== 6) throw new SocketImageError('SKIMG_INVALID', 16, `family ${family}, want 4 or 6`);
  const flags = b.readUInt8(18);
  if (flags & 0x78) throw new SocketImageError('SKIMG_INVALID', 18, `unknown flag bits 0x${(flags & 0x78).toString(16)}`);
  if (b.readUInt8(19) !== 0 || b.readUInt16BE(70) !== 0) throw new SocketImageError('SKIMG_INVALID', b.readUInt8(19) !== 0 ? 19 : 70, 'reserved bytes are not zero');
  if (unsent > sendLen) throw new SocketImageError('SKIMG_LENGTH', 124, `never-sent length ${unsent} exceeds the send queue length ${sendLen}`);
  const sndWscale = b.readUInt8(68);
  const rcvWscale = b.readUInt8(69);
  // RFC 7323 §2.3: the shift count is at most 14.
  if (sndWscale > 14 || rcvWscale > 14) throw new SocketImageError('SKIMG_INVALID', sndWscale > 14 ? 68 : 69, 'window scale above 14 (RFC 7323 §2.3)');
  return {
    family,
    state: b.readUInt8(17),
    local: { address: addressText(b.subarray(20, 36), family, 20), port: b.readUInt16BE(36) },
    remote: { address: addressText(b.subarray(38, 54), family, 38), port: b.readUInt16BE(54) },
    sendSeq: b.readUInt32BE(56),
    recvSeq: b.readUInt32BE(60),
    mss: b.readUInt32BE(64),
    options: flags & 0x07,
    sndWscale,
    rcvWscale,
    timestamp: b.readUInt32BE(72),
    window:
      flags & FLAG_WINDOW
        ? { sndWl1: b.readUInt32BE(76), sndWnd: b.readUInt32BE(80), maxWindow: b.readUInt32BE(84), rcvWnd: b.readUInt32BE(88), rcvWup: b.readUInt32BE(92) }
        : null,
    sndbuf: b.readUInt32BE(96),
    rcvbuf: b.readUInt32BE(100),
    streamWritten: b.readBigUInt64BE(104),
    streamRead: b.readBigUInt64BE(112),
    sendQueue: Uint8Array.prototype.slice.call(b, IMAGE_FIXED_LENGTH, IMAGE_FIXED_LENGTH + sendLen),
    unsentLength: unsent,
    recvQueue: Uint8Array.prototype.slice.call(b, IMAGE_FIXED_LENGTH + sendLen, IMAGE_FIXED_LENGTH + sendLen + recvLen),
  };
}

/** Bytes of the send queue that were sent but not yet acknowledged (restored in repair mode). */
export function sentUnacked(img: SocketImage): Uint8Array {
  return img.sendQueue.subarray(0, img.sendQueue.length - img.unsentLength);
}

/** The never-sent tail of the send queue (written after repair mode is off). */
export function neverSent(img: SocketImage): Uint8Array {
  return img.sendQueue.subarray(img.sendQueue.length - img.unsentLength);
}

function need(b: Buffer, end: number, offset: number, what: string): void {
  if (b.length < end) throw new SocketImageError('SKIMG_TRUNCATED', offset, `${what} needs ${end} bytes, the image has ${b.length}`);
}

function validate(img: SocketImage): void {
  const u32 = (v: number, name: string) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new TypeError(`socket image: ${name} ${v} is not a u32`);
  };
  if (img.family !== 4 && img.family !== 6) throw new TypeError(`socket image: family ${String(img.family)}`);
  for (const [name, v] of [['local port', img.local.port], ['remote port', img.remote.port]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new TypeError(`socket image: ${name} ${v} is not a u16`);
  }
  for (const [name, v] of Object.entries({ sendSeq: img.sendSeq, recvSeq: img.recvSeq, mss: img.mss, timestamp: img.timestamp, sndbuf: img.sndbuf, rcvbuf: img.rcvbuf, unsentLength: img.unsentLength })) u32(v, name);
  if (img.unsentLength > img.sendQueue.length) throw new TypeError('socket image: unsentLength exceeds the send queue');
  if (img.sndWscale > 14 || img.rcvWscale > 14) throw new TypeError('socket image: window scale above 14');
  if (img.streamWritten < 0n || img.streamWritten >= 1n << 64n || img.streamRead < 0n || img.streamRead >= 1n << 64n) throw new TypeError('socket image: stream offsets are not u64');
}

/** Text address -> 16 bytes (IPv4 in the first 4). */
export function addressBytes(text: string, family: 4 | 6, offsetForErrors = 0): Buffer {
  const out = Buffer.alloc(16);
  if (family === 4) {
    const parts = text.split('.');
    if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw new TypeError(`socket image: bad IPv4 address ${JSON.stringify(text)} (offset ${offsetForErrors})`);
    parts.forEach((p, i) => out.writeUInt8(Number(p), i));
    return out;
  }
  // RFC 4291 §2.2 text forms, including "::" and a trailing dotted IPv4.
  let t = text;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  if (v4) {
    const b4 = addressBytes(v4[1]!, 4);
    t = t.slice(0, -v4[1]!.length) + b4.readUInt16BE(0).toString(16) + ':' + b4.readUInt16BE(2).toString(16);
  }
  const halves = t.split('::');
  if (halves.length > 2) throw new TypeError(`socket image: bad IPv6 address ${JSON.stringify(text)}`);
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const groups = halves.length === 2 ? [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail] : head;
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) throw new TypeError(`socket image: bad IPv6 address ${JSON.stringify(text)}`);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** 16 bytes -> text; IPv4 must have zero padding, IPv6 is printed in full lower-case groups compressed per RFC 5952 §4. */
export function addressText(bytes: Buffer, family: 4 | 6, offset: number): string {
  if (family === 4) {
    if (bytes.subarray(4).some((x) => x !== 0)) throw new SocketImageError('SKIMG_INVALID', offset + 4, 'IPv4 address padding is not zero');
    return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  }
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  // RFC 5952 §4.2: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return hex.slice(0, best).join(':') + '::' + hex.slice(best + bestLen).join(':');
}
