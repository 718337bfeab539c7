/**
 * Byte-level helpers shared by every structure codec: bounds checks that raise `OfpError`,
 * fixed-size strings, padding, and the address formats OXM values use (MAC, IPv4, IPv6).
 * Decoders read through `Buffer` methods (no per-field allocation); bounds are checked against
 * the end of the enclosing structure, never just the end of the buffer, so a lying inner length
 * can never make a decoder read bytes of the next structure.
 */
import { OfpError } from './errors.js';

/** Throws OFP_TRUNCATED unless `n` bytes starting at `off` lie before `end`. */
export function need(off: number, n: number, end: number, what: string): void {
  if (off + n > end) throw new OfpError('OFP_TRUNCATED', off, `${what} fits in ${end - off} remaining bytes`, `needs ${n}`);
}

/** Checks a structure's own length field: at least `min`, within `end`. Returns the structure end. */
export function structEnd(off: number, len: number, min: number, end: number, what: string): number {
  if (len < min) throw new OfpError('OFP_BAD_LENGTH', off, `${what}.length >= ${min}`, `got ${len}`);
  if (off + len > end) throw new OfpError('OFP_TRUNCATED', off, `${what}.length (${len}) fits in ${end - off} remaining bytes`);
  return off + len;
}

export function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Writes `n` zero bytes (padding is always zero on the wire, and the target may be reused memory). */
export function zero(buf: Buffer, off: number, n: number): number {
  // Padding is at most 7 bytes; a loop beats fill()'s argument checks at that size.
  if (n <= 16) for (let i = 0; i < n; i++) buf[off + i] = 0;
  else buf.fill(0, off, off + n);
  return off + n;
}

const U64_MAX = 0xffffffffffffffffn;

/**
 * Reads a big-endian uint64 as bigint. Equivalent to Buffer#readBigUInt64BE but skips the shift
 * when the high word is zero (cookies and counters usually are small), the decoder's hot path.
 */
export function readU64(buf: Buffer, off: number): bigint {
  if (off < 0 || off + 8 > buf.length) throw new RangeError(`readU64 at ${off} is outside the buffer`);
  const hi = buf.readUInt32BE(off);
  const lo = buf.readUInt32BE(off + 4);
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

/** Writes a uint64 big-endian (argument order as Buffer#writeBigUInt64BE); returns the end offset. */
export function writeU64(buf: Buffer, value: bigint, off: number): number {
  if (typeof value !== 'bigint' || value < 0n || value > U64_MAX) {
    throw new RangeError(`The value of "value" is out of range. It must be a bigint >= 0n and <= 2n ** 64n - 1n. Received ${String(value)}`);
  }
  if (value <= 0xffffffffn) {
    buf.writeUInt32BE(0, off);
    buf.writeUInt32BE(Number(value), off + 4);
  } else {
    buf.writeUInt32BE(Number(value >> 32n), off);
    buf.writeUInt32BE(Number(value & 0xffffffffn), off + 4);
  }
  return off + 8;
}

/** Converts any Uint8Array to a Buffer view over the same memory (no copy). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A NUL-terminated string in a fixed field (`char name[N]`): bytes before the first NUL, UTF-8. */
export function readFixedString(buf: Buffer, off: number, size: number): string {
  let end = off;
  const stop = off + size;
  while (end < stop && buf[end] !== 0) end++;
  return buf.toString('utf8', off, end);
}

export function writeFixedString(buf: Buffer, off: number, size: number, value: string, what: string): number {
  const n = Buffer.byteLength(value, 'utf8');
  if (n > size) throw new OfpError('OFP_ENCODE_INVALID', off, `${what} fits in ${size} bytes`, `got ${n} bytes`);
  buf.write(value, off, n, 'utf8');
  return zero(buf, off + n, size - n);
}

const HEX2: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function readMac(buf: Buffer, off: number): string {
  return `${HEX2[buf[off]!]}:${HEX2[buf[off + 1]!]}:${HEX2[buf[off + 2]!]}:${HEX2[buf[off + 3]!]}:${HEX2[buf[off + 4]!]}:${HEX2[buf[off + 5]!]}`;
}

/** Hex digit value per char code, -1 for anything else (parsing without regex or allocation). */
const HEX_VALUE: Int8Array = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < 16; i++) {
    t['0123456789abcdef'.charCodeAt(i)] = i;
    t['0123456789ABCDEF'.charCodeAt(i)] = i;
  }
  return t;
})();

function hexPair(s: string, i: number): number {
  const hi = HEX_VALUE[s.charCodeAt(i)] ?? -1;
  const lo = HEX_VALUE[s.charCodeAt(i + 1)] ?? -1;
  return hi < 0 || lo < 0 ? -1 : (hi << 4) | lo;
}

/** Writes "xx:xx:xx:xx:xx:xx" (or with '-') as 6 bytes. */
export function writeMac(buf: Buffer, off: number, mac: string, what = 'MAC address'): number {
  let ok = typeof mac === 'string' && mac.length === 17;
  for (let i = 0; ok && i < 6; i++) {
    const v = hexPair(mac, 3 * i);
    const sep = i < 5 ? mac.charCodeAt(3 * i + 2) : 58;
    if (v < 0 || (sep !== 58 && sep !== 45)) ok = false;
    else buf[off + i] = v;
  }
  if (!ok) throw new OfpError('OFP_ENCODE_INVALID', off, `${what} is "xx:xx:xx:xx:xx:xx"`, `got ${String(mac)}`);
  return off + 6;
}

export function readIpv4(buf: Buffer, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

export function writeIpv4(buf: Buffer, off: number, ip: string, what = 'IPv4 address'): number {
  let part = 0;
  let digits = 0;
  let value = 0;
  let ok = typeof ip === 'string';
  for (let i = 0; ok && i <= ip.length; i++) {
    const c = i < ip.length ? ip.charCodeAt(i) : 46;
    if (c >= 48 && c <= 57 && digits < 3) {
      value = value * 10 + (c - 48);
      digits++;
    } else if (c === 46 && digits > 0 && value <= 255 && part < 4) {
      buf[off + part++] = value;
      value = 0;
      digits = 0;
    } else ok = false;
  }
  if (!ok || part !== 4) throw new OfpError('OFP_ENCODE_INVALID', off, `${what} is dotted-quad`, `got ${String(ip)}`);
  return off + 4;
}

/** RFC 5952 canonical text: lower case, no leading zeros, the longest run (>= 2) of zero groups as "::". */
export function readIpv6(buf: Buffer, off: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(off + 2 * i));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

export function writeIpv6(buf: Buffer, off: number, ip: string, what = 'IPv6 address'): number {
  const bad = () => new OfpError('OFP_ENCODE_INVALID', off, `${what} is RFC 4291 text`, `got ${String(ip)}`);
  if (typeof ip !== 'string') throw bad();
  let text = ip;
  const tail: number[] = [];
  // An embedded IPv4 suffix (::ffff:1.2.3.4) becomes the last two groups (RFC 4291 §2.2).
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = Buffer.alloc(4);
    writeIpv4(b, 0, v4[2]!, what);
    tail.push(b.readUInt16BE(0), b.readUInt16BE(2));
    text = v4[1]!.endsWith('::') ? v4[1]! : v4[1]!.slice(0, -1);
  }
  const halves = text.split('::');
  if (halves.length > 2) throw bad();
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((g) => (/^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : NaN)));
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  (halves.length === 2 ? rest : head).push(...tail);
  const fill = 8 - head.length - rest.length;
  if (head.some(Number.isNaN) || rest.some(Number.isNaN) || (halves.length === 2 ? fill < 1 : fill !== 0)) throw bad();
  const groups = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...rest];
  for (let i = 0; i < 8; i++) buf.writeUInt16BE(groups[i]!, off + 2 * i);
  return off + 16;
}
