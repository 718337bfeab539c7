/**
 * Common structures shared by several messages: `ofp_port` (§7.2.1), `ofp_packet_queue` and its
 * properties (§7.2.2), `ofp_bucket` (§7.3.4.2), meter bands (§7.3.4.4) and hello elements (§7.5.1).
 */
import { OFPHET, OFPMBT, OFPQT, OFP_MAX_PORT_NAME_LEN } from './constants.js';
import { OfpError } from './errors.js';
import { actionsLength, decodeActions, encodeActions, type Action } from './actions.js';
import { align8, need, readFixedString, readMac, structEnd, writeFixedString, writeMac, zero } from './wire.js';

// ---------------------------------------------------------------------------------------------
// ofp_port (§7.2.1), 64 bytes.

export interface Port {
  portNo: number;
  hwAddr: string;
  name: string;
  config: number;
  state: number;
  curr: number;
  advertised: number;
  supported: number;
  peer: number;
  currSpeed: number;
  maxSpeed: number;
}
export const PORT_LEN = 64;

export function decodePort(buf: Buffer, off: number, end: number): Port {
  need(off, PORT_LEN, end, 'ofp_port');
  return {
    portNo: buf.readUInt32BE(off),
    hwAddr: readMac(buf, off + 8),
    name: readFixedString(buf, off + 16, OFP_MAX_PORT_NAME_LEN),
    config: buf.readUInt32BE(off + 32),
    state: buf.readUInt32BE(off + 36),
    curr: buf.readUInt32BE(off + 40),
    advertised: buf.readUInt32BE(off + 44),
    supported: buf.readUInt32BE(off + 48),
    peer: buf.readUInt32BE(off + 52),
    currSpeed: buf.readUInt32BE(off + 56),
    maxSpeed: buf.readUInt32BE(off + 60),
  };
}

export function encodePort(p: Port, buf: Buffer, off: number): number {
  buf.writeUInt32BE(p.portNo, off);
  zero(buf, off + 4, 4);
  writeMac(buf, off + 8, p.hwAddr, 'ofp_port.hw_addr');
  zero(buf, off + 14, 2);
  writeFixedString(buf, off + 16, OFP_MAX_PORT_NAME_LEN, p.name, 'ofp_port.name');
  let o = off + 32;
  for (const v of [p.config, p.state, p.curr, p.advertised, p.supported, p.peer, p.currSpeed, p.maxSpeed]) o = buf.writeUInt32BE(v, o);
  return o;
}

// ---------------------------------------------------------------------------------------------
// ofp_packet_queue and queue properties (§7.2.2).

export type QueueProperty =
  | { type: 'min_rate'; rate: number }
  | { type: 'max_rate'; rate: number }
  | { type: 'experimenter'; experimenter: number; data: Buffer }
  | { type: 'unknown'; property: number; data: Buffer };

export interface PacketQueue {
  queueId: number;
  port: number;
  properties: QueueProperty[];
}

function queuePropLength(p: QueueProperty): number {
  return p.type === 'min_rate' || p.type === 'max_rate' ? 16 : p.type === 'experimenter' ? 16 + p.data.length : 8 + p.data.length;
}

export function packetQueueLength(q: PacketQueue): number {
  let n = 16;
  for (const p of q.properties) n += queuePropLength(p);
  return n;
}

function decodeQueueProperty(buf: Buffer, off: number, end: number): QueueProperty {
  const property = buf.readUInt16BE(off);
  if (property === OFPQT.min_rate || property === OFPQT.max_rate) {
    if (end - off !== 16) throw new OfpError('OFP_BAD_LENGTH', off, 'ofp_queue_prop_rate.len == 16', `got ${end - off}`);
    return { type: property === OFPQT.min_rate ? 'min_rate' : 'max_rate', rate: buf.readUInt16BE(off + 8) };
  }
  if (property === OFPQT.experimenter) {
    need(off, 16, end, 'ofp_queue_prop_experimenter');
    return { type: 'experimenter', experimenter: buf.readUInt32BE(off + 8), data: buf.subarray(off + 16, end) };
  }
  return { type: 'unknown', property, data: buf.subarray(off + 8, end) };
}

export function decodePacketQueue(buf: Buffer, off: number, end: number): PacketQueue {
  need(off, 16, end, 'ofp_packet_queue');
  const qEnd = structEnd(off, buf.readUInt16BE(off + 8), 16, end, 'ofp_packet_queue');
  const properties: QueueProperty[] = [];
  for (let p = off + 16; p < qEnd; ) {
    need(p, 8, qEnd, 'ofp_queue_prop_header');
    const pEnd = structEnd(p, buf.readUInt16BE(p + 2), 8, qEnd, 'ofp_queue_prop_header');
    properties.push(decodeQueueProperty(buf, p, pEnd));
    p = pEnd;
  }
  return { queueId: buf.readUInt32BE(off), port: buf.readUInt32BE(off + 4), properties };
}

export function encodePacketQueue(q: PacketQueue, buf: Buffer, off: number): number {
  buf.writeUInt32BE(q.queueId, off);
  buf.writeUInt32BE(q.port, off + 4);
  let p = zero(buf, off + 10, 6);
  for (const prop of q.properties) {
    const start = p;
    zero(buf, p + 4, 4);
    if (prop.type === 'min_rate' || prop.type === 'max_rate') {
      buf.writeUInt16BE(prop.rate, p + 8);
      p = zero(buf, p + 10, 6);
    } else if (prop.type === 'experimenter') {
      buf.writeUInt32BE(prop.experimenter, p + 8);
      zero(buf, p + 12, 4);
      p = p + 16 + prop.data.copy(buf, p + 16);
    } else {
      p = p + 8 + prop.data.copy(buf, p + 8);
    }
    buf.writeUInt16BE(prop.type === 'unknown' ? prop.property : OFPQT[prop.type], start);
    buf.writeUInt16BE(p - start, start + 2);
  }
  buf.writeUInt16BE(p - off, off + 8);
  return p;
}

// ---------------------------------------------------------------------------------------------
// ofp_bucket (§7.3.4.2).

export interface Bucket {
  weight: number;
  watchPort: number;
  watchGroup: number;
  actions: Action[];
}

export function bucketsLength(list: readonly Bucket[]): number {
  let n = 0;
  for (const b of list) n += 16 + actionsLength(b.actions);
  return n;
}

export function decodeBuckets(buf: Buffer, off: number, end: number): Bucket[] {
  const out: Bucket[] = [];
  while (off < end) {
    need(off, 16, end, 'ofp_bucket');
    const bEnd = structEnd(off, buf.readUInt16BE(off), 16, end, 'ofp_bucket');
    out.push({
      weight: buf.readUInt16BE(off + 2),
      watchPort: buf.readUInt32BE(off + 4),
      watchGroup: buf.readUInt32BE(off + 8),
      actions: decodeActions(buf, off + 16, bEnd),
    });
    off = bEnd;
  }
  return out;
}

export function encodeBuckets(list: readonly Bucket[], buf: Buffer, off: number): number {
  for (const b of list) {
    buf.writeUInt16BE(b.weight, off + 2);
    buf.writeUInt32BE(b.watchPort, off + 4);
    buf.writeUInt32BE(b.watchGroup, off + 8);
    zero(buf, off + 12, 4);
    const p = encodeActions(b.actions, buf, off + 16);
    if (p - off > 0xffff) throw new OfpError('OFP_ENCODE_TOO_LONG', off, 'ofp_bucket.len <= 65535');
    buf.writeUInt16BE(p - off, off);
    off = p;
  }
  return off;
}

// ---------------------------------------------------------------------------------------------
// Meter bands (§7.3.4.4): 16 bytes each, experimenter bands may carry more.

export type MeterBand =
  | { type: 'drop'; rate: number; burstSize: number }
  | { type: 'dscp_remark'; rate: number; burstSize: number; precLevel: number }
  | { type: 'experimenter'; rate: number; burstSize: number; experimenter: number; data: Buffer }
  | { type: 'unknown'; bandType: number; rate: number; burstSize: number; data: Buffer };

export function meterBandsLength(list: readonly MeterBand[]): number {
  let n = 0;
  for (const b of list) n += b.type === 'experimenter' ? 16 + b.data.length : b.type === 'unknown' ? 12 + b.data.length : 16;
  return n;
}

export function decodeMeterBands(buf: Buffer, off: number, end: number): MeterBand[] {
  const out: MeterBand[] = [];
  while (off < end) {
    need(off, 12, end, 'ofp_meter_band_header');
    const type = buf.readUInt16BE(off);
    const bEnd = structEnd(off, buf.readUInt16BE(off + 2), 12, end, 'ofp_meter_band_header');
    const rate = buf.readUInt32BE(off + 4);
    const burstSize = buf.readUInt32BE(off + 8);
    if (type === OFPMBT.drop || type === OFPMBT.dscp_remark) {
      if (bEnd - off !== 16) throw new OfpError('OFP_BAD_LENGTH', off, 'ofp_meter_band.len == 16', `got ${bEnd - off}`);
      out.push(type === OFPMBT.drop ? { type: 'drop', rate, burstSize } : { type: 'dscp_remark', rate, burstSize, precLevel: buf[off + 12]! });
    } else if (type === OFPMBT.experimenter) {
      need(off, 16, bEnd, 'ofp_meter_band_experimenter');
      out.push({ type: 'experimenter', rate, burstSize, experimenter: buf.readUInt32BE(off + 12), data: buf.subarray(off + 16, bEnd) });
    } else {
      out.push({ type: 'unknown', bandType: type, rate, burstSize, data: buf.subarray(off + 12, bEnd) });
    }
    off = bEnd;
  }
  return out;
}

export function encodeMeterBands(list: readonly MeterBand[], buf: Buffer, off: number): number {
  for (const b of list) {
    buf.writeUInt32BE(b.rate, off + 4);
    buf.writeUInt32BE(b.burstSize, off + 8);
    let p: number;
    if (b.type === 'drop') p = zero(buf, off + 12, 4);
    else if (b.type === 'dscp_remark') p = zero(buf, buf.writeUInt8(b.precLevel, off + 12), 3);
    else if (b.type === 'experimenter') p = buf.writeUInt32BE(b.experimenter, off + 12) + b.data.copy(buf, off + 16);
    else p = off + 12 + b.data.copy(buf, off + 12);
    buf.writeUInt16BE(b.type === 'unknown' ? b.bandType : OFPMBT[b.type], off);
    buf.writeUInt16BE(p - off, off + 2);
    off = p;
  }
  return off;
}

// ---------------------------------------------------------------------------------------------
// Hello elements (§7.5.1): padded to 8, length excludes the padding.

export type HelloElement =
  | { type: 'versionbitmap'; versions: number[] }
  | { type: 'unknown'; elemType: number; data: Buffer };

function helloElementBodyLength(e: HelloElement): number {
  if (e.type === 'unknown') return e.data.length;
  const max = e.versions.length === 0 ? 0 : Math.max(...e.versions);
  return 4 * (Math.floor(max / 32) + 1);
}

export function helloElementsLength(list: readonly HelloElement[]): number {
  let n = 0;
  for (const e of list) n += align8(4 + helloElementBodyLength(e));
  return n;
}

export function decodeHelloElements(buf: Buffer, off: number, end: number): HelloElement[] {
  const out: HelloElement[] = [];
  while (off < end) {
    need(off, 4, end, 'ofp_hello_elem_header');
    const type = buf.readUInt16BE(off);
    const eEnd = structEnd(off, buf.readUInt16BE(off + 2), 4, end, 'ofp_hello_elem_header');
    need(off, align8(eEnd - off), end, 'ofp_hello_elem padding');
    if (type === OFPHET.versionbitmap) {
      if ((eEnd - off) % 4 !== 0) throw new OfpError('OFP_BAD_LENGTH', off, 'ofp_hello_elem_versionbitmap.length % 4 == 0', `got ${eEnd - off}`);
      const versions: number[] = [];
      for (let w = off + 4, base = 0; w < eEnd; w += 4, base += 32) {
        const bits = buf.readUInt32BE(w);
        for (let b = 0; b < 32; b++) if ((bits >>> b) & 1) versions.push(base + b);
      }
      out.push({ type: 'versionbitmap', versions });
    } else {
      out.push({ type: 'unknown', elemType: type, data: buf.subarray(off + 4, eEnd) });
    }
    off += align8(eEnd - off);
  }
  return out;
}

export function encodeHelloElements(list: readonly HelloElement[], buf: Buffer, off: number): number {
  for (const e of list) {
    let p: number;
    if (e.type === 'versionbitmap') {
      const words = helloElementBodyLength(e) / 4;
      zero(buf, off + 4, 4 * words);
      for (const v of e.versions) {
        if (!Number.isInteger(v) || v < 0) throw new OfpError('OFP_ENCODE_INVALID', off, 'hello version is a non-negative integer', `got ${v}`);
        const w = off + 4 + 4 * Math.floor(v / 32);
        buf.writeUInt32BE((buf.readUInt32BE(w) | (1 << v % 32)) >>> 0, w);
      }
      p = off + 4 + 4 * words;
    } else {
      p = off + 4 + e.data.copy(buf, off + 4);
    }
    buf.writeUInt16BE(e.type === 'unknown' ? e.elemType : OFPHET[e.type], off);
    buf.writeUInt16BE(p - off, off + 2);
    off = zero(buf, p, align8(p - off) - (p - off));
  }
  return off;
}
