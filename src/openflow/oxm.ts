/**
 * OXM TLVs and `ofp_match` (OpenFlow 1.3.5 §7.2.3). OpenFlow-basic fields are decoded into typed
 * values (numbers, bigint for 64-bit fields, text for MAC and IP addresses); entries of every other
 * class (Nicira NXM_0/NXM_1 such as reg0..reg15, the experimenter class, basic field numbers newer
 * than 1.3) are kept as opaque payloads and re-encoded byte-identical.
 */
import { ONF_EXPERIMENTER_ID, OFPMT, OFPXMC, OXM_BASIC_FIELDS, OXM_FIELD_NUMBER, NXM_FIELD_NAMES, type OxmBasicName, type OxmKind, type OxmKindOf } from './constants.js';
import { OfpError } from './errors.js';
import { align8 as wire_align8, need as wire_need, readIpv4, readIpv6, readMac, structEnd as wire_structEnd, writeIpv4, writeIpv6, writeMac, zero as wire_zero, readU64 as wire_readU64, writeU64 as wire_writeU64 } from './wire.js';

// Hot-path helpers bound once: under a CommonJS-style loader (tsx in tests and benches) every
// access to an imported binding is a getter call, which costs more than the bounds check itself.
const align8 = wire_align8;
const need = wire_need;
const structEnd = wire_structEnd;
const zero = wire_zero;
const readU64 = wire_readU64;
const writeU64 = wire_writeU64;

/** The TypeScript type of an OXM value of a given kind. */
export type OxmValue<K extends OxmKind> = K extends 'u64' ? bigint : K extends 'mac' | 'ipv4' | 'ipv6' ? string : number;

/** One OpenFlow-basic OXM entry; `mask` present means OXM_HASMASK is set. */
export type OxmBasicField = {
  [N in OxmBasicName]: { field: N; value: OxmValue<OxmKindOf<N>>; mask?: OxmValue<OxmKindOf<N>> };
}[OxmBasicName];

/**
 * An OXM entry the codec does not model: the 4-byte header split into its parts, and the payload
 * verbatim (for the experimenter class it starts with the experimenter id).
 */
export interface OxmOpaque {
  field: 'opaque';
  oxmClass: number;
  oxmField: number;
  hasMask: boolean;
  payload: Buffer;
}

export type OxmField = OxmBasicField | OxmOpaque;
/** `ofp_match` of type OFPMT_OXM: the list of its OXM entries, in wire order. */
export type Match = OxmField[];

type Reader = (buf: Buffer, off: number) => number | bigint | string;
type Writer = (buf: Buffer, off: number, v: unknown, what: string) => number;

const READERS: Record<OxmKind, Reader> = {
  u8: (b, o) => b[o]!,
  u16: (b, o) => b.readUInt16BE(o),
  u24: (b, o) => b.readUIntBE(o, 3),
  u32: (b, o) => b.readUInt32BE(o),
  u64: (b, o) => readU64(b, o),
  mac: readMac,
  ipv4: readIpv4,
  ipv6: readIpv6,
};

function uint(bytes: 1 | 2 | 3 | 4): Writer {
  const limit = 2 ** (8 * bytes);
  const put: (b: Buffer, o: number, v: number) => number =
    bytes === 1 ? (b, o, v) => ((b[o] = v), o + 1)
    : bytes === 2 ? (b, o, v) => b.writeUInt16BE(v, o)
    : bytes === 3 ? (b, o, v) => ((b[o] = v >>> 16), b.writeUInt16BE(v & 0xffff, o + 1))
    : (b, o, v) => b.writeUInt32BE(v, o);
  return (b, o, v, what) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= limit) {
      throw new OfpError('OFP_ENCODE_INVALID', o, `${what} is an integer in [0, 2^${8 * bytes})`, `got ${String(v)}`);
    }
    return put(b, o, v);
  };
}

const putMac = writeMac;
const putIpv4 = writeIpv4;
const putIpv6 = writeIpv6;

const WRITERS: Record<OxmKind, Writer> = {
  u8: uint(1),
  u16: uint(2),
  u24: uint(3),
  u32: uint(4),
  u64: (b, o, v, what) => {
    if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) {
      throw new OfpError('OFP_ENCODE_INVALID', o, `${what} is a bigint in [0, 2^64)`, `got ${String(v)}`);
    }
    return writeU64(b, v, o);
  },
  mac: (b, o, v, what) => putMac(b, o, v as string, what),
  ipv4: (b, o, v, what) => putIpv4(b, o, v as string, what),
  ipv6: (b, o, v, what) => putIpv6(b, o, v as string, what),
};

// Module-local copies of the tables the hot paths consult on every TLV.
const CLASS_BASIC: number = OFPXMC.openflow_basic;
const MATCH_TYPE_OXM: number = OFPMT.oxm;
const FIELD_NUMBER: Readonly<Record<string, number>> = { ...OXM_FIELD_NUMBER };

/** Per field number: name, size, reader, writer (the decoder's lookup table, no switch). */
const BASIC = OXM_BASIC_FIELDS.map((f) => ({ name: f.name, bytes: f.bytes, read: READERS[f.kind], write: WRITERS[f.kind] }));

/** Wire length of one OXM TLV, header included. */
export function oxmLength(f: OxmField): number {
  if (f.field === 'opaque') return 4 + f.payload.length;
  const def = BASIC[FIELD_NUMBER[f.field]!];
  if (def === undefined) throw new OfpError('OFP_ENCODE_INVALID', 0, 'OXM field name is an OpenFlow-basic field', `got ${String(f.field)}`);
  return 4 + (f.mask === undefined ? def.bytes : 2 * def.bytes);
}

/** Decodes the OXM TLV at `off` (its header says its length; the caller advances by 4 + length). */
export function decodeOxm(buf: Buffer, off: number, end: number): OxmField {
  need(off, 4, end, 'oxm_header');
  const header = buf.readUInt32BE(off);
  const len = header & 0xff;
  need(off + 4, len, end, 'OXM payload');
  const oxmClass = header >>> 16;
  const fieldNo = (header >>> 9) & 0x7f;
  const hasMask = (header & 0x100) !== 0;
  const def = oxmClass === CLASS_BASIC ? BASIC[fieldNo] : undefined;
  if (def === undefined) {
    return { field: 'opaque', oxmClass, oxmField: fieldNo, hasMask, payload: buf.subarray(off + 4, off + 4 + len) };
  }
  if (len !== (hasMask ? 2 * def.bytes : def.bytes)) {
    throw new OfpError('OFP_BAD_OXM', off, `OXM ${def.name} length is ${hasMask ? 2 * def.bytes : def.bytes}`, `got ${len}`);
  }
  const value = def.read(buf, off + 4);
  if (!hasMask) return { field: def.name, value } as OxmBasicField;
  return { field: def.name, value, mask: def.read(buf, off + 4 + def.bytes) } as OxmBasicField;
}

export function encodeOxm(f: OxmField, buf: Buffer, off: number): number {
  if (f.field === 'opaque') {
    if (f.payload.length > 0xff) throw new OfpError('OFP_ENCODE_TOO_LONG', off, 'opaque OXM payload <= 255 bytes');
    buf.writeUInt32BE(((f.oxmClass & 0xffff) << 16 | (f.oxmField & 0x7f) << 9 | (f.hasMask ? 0x100 : 0) | f.payload.length) >>> 0, off);
    f.payload.copy(buf, off + 4);
    return off + 4 + f.payload.length;
  }
  const fieldNo = FIELD_NUMBER[f.field];
  const def = fieldNo === undefined ? undefined : BASIC[fieldNo];
  if (def === undefined) throw new OfpError('OFP_ENCODE_INVALID', off, 'OXM field name is an OpenFlow-basic field', `got ${String(f.field)}`);
  const hasMask = f.mask !== undefined;
  const len = hasMask ? 2 * def.bytes : def.bytes;
  buf.writeUInt32BE((CLASS_BASIC << 16 | fieldNo! << 9 | (hasMask ? 0x100 : 0) | len) >>> 0, off);
  let p = def.write(buf, off + 4, f.value, `OXM ${f.field} value`);
  if (hasMask) p = def.write(buf, p, f.mask, `OXM ${f.field} mask`);
  return p;
}

/** Wire length of an `ofp_match`, padding included (§7.2.3.1: padded to a multiple of 8). */
export function matchLength(m: Match): number {
  let n = 4;
  for (const f of m) n += oxmLength(f);
  return align8(n);
}

/** Length, padding included, of the `ofp_match` at `off` (call after decodeMatch succeeded). */
export function matchWireLength(buf: Buffer, off: number): number {
  return align8(buf.readUInt16BE(off + 2));
}

export function decodeMatch(buf: Buffer, off: number, end: number): Match {
  need(off, 4, end, 'ofp_match');
  const type = buf.readUInt16BE(off);
  if (type !== MATCH_TYPE_OXM) throw new OfpError('OFP_BAD_MATCH', off, 'ofp_match.type == OFPMT_OXM', `got ${type}`);
  const length = buf.readUInt16BE(off + 2);
  const oxmEnd = structEnd(off, length, 4, end, 'ofp_match');
  need(off, align8(length), end, 'ofp_match padding');
  const fields: Match = [];
  let p = off + 4;
  while (p < oxmEnd) {
    fields.push(decodeOxm(buf, p, oxmEnd));
    p += 4 + buf[p + 3]!;
  }
  return fields;
}

export function encodeMatch(m: Match, buf: Buffer, off: number): number {
  let p = off + 4;
  for (const f of m) p = encodeOxm(f, buf, p);
  buf.writeUInt16BE(MATCH_TYPE_OXM, off);
  buf.writeUInt16BE(p - off, off + 2);
  return zero(buf, p, align8(p - off) - (p - off));
}

/** A readable name for any OXM entry: the basic field name, a known Nicira name, or class:field. */
export function oxmName(f: OxmField): string {
  if (f.field !== 'opaque') return f.field;
  if (f.oxmClass === OFPXMC.experimenter && f.payload.length >= 6 && f.payload.readUInt32BE(0) === ONF_EXPERIMENTER_ID) {
    return NXM_FIELD_NAMES[`onf:${f.payload.readUInt16BE(4)}`] ?? `onf:${f.payload.readUInt16BE(4)}`;
  }
  const cls = f.oxmClass === OFPXMC.nxm_0 ? '0' : f.oxmClass === OFPXMC.nxm_1 ? '1' : f.oxmClass === OFPXMC.openflow_basic ? 'basic' : '-';
  return NXM_FIELD_NAMES[`${cls}:${f.oxmField}`] ?? `0x${f.oxmClass.toString(16)}:${f.oxmField}`;
}
