/**
 * TCP header (RFC 9293 §3.1). Options are kept verbatim. The checksum covers an IPv4
 * pseudo-header, so it is computed by `encodeTcpSegment`, which knows the addresses and the
 * payload, never taken from the caller.
 */
import type { Ipv4Address } from './address.js';
import { finishChecksum, pseudoHeaderSum, sumWords } from './checksum.js';
import { checkUint, need, PacketError } from './errors.js';
import type { Decoded } from './ethernet.js';
import { IpProtocol } from './ipv4.js';

export interface TcpFlags {
  fin: boolean;
  syn: boolean;
  rst: boolean;
  psh: boolean;
  ack: boolean;
  urg: boolean;
  ece: boolean;
  cwr: boolean;
}

export interface TcpHeader {
  srcPort: number;
  dstPort: number;
  /** Sequence number, unsigned 32-bit. */
  seq: number;
  /** Acknowledgment number, unsigned 32-bit. */
  ack: number;
  flags: TcpFlags;
  window: number;
  /** As found on decode; ignored on encode. */
  checksum?: number;
  urgentPointer: number;
  /** Options, padded by the encoder to a multiple of 4 bytes with EOL (0). */
  options?: Buffer;
}

export const TCP_MIN_HEADER_LENGTH = 20;
const FLAG_BITS: [keyof TcpFlags, number][] = [
  ['fin', 0x01], ['syn', 0x02], ['rst', 0x04], ['psh', 0x08], ['ack', 0x10], ['urg', 0x20], ['ece', 0x40], ['cwr', 0x80],
];

export function tcpFlags(partial: Partial<TcpFlags>): TcpFlags {
  return { fin: false, syn: false, rst: false, psh: false, ack: false, urg: false, ece: false, cwr: false, ...partial };
}

export function tcpEncodingLength(h: Pick<TcpHeader, 'options'>): number {
  return TCP_MIN_HEADER_LENGTH + Math.ceil((h.options?.length ?? 0) / 4) * 4;
}

/** Writes the header with a zero checksum; `encodeTcpSegment` fills it in. */
export function encodeTcp(h: TcpHeader, buf?: Buffer, offset = 0): Buffer {
  const len = tcpEncodingLength(h);
  if (len > 60) throw new PacketError('PKT_BAD_VALUE', `tcp options of ${h.options?.length} bytes exceed 40`);
  checkUint(h.srcPort, 0xffff, 'tcp.srcPort');
  checkUint(h.dstPort, 0xffff, 'tcp.dstPort');
  checkUint(h.seq, 0xffffffff, 'tcp.seq');
  checkUint(h.ack, 0xffffffff, 'tcp.ack');
  checkUint(h.window, 0xffff, 'tcp.window');
  checkUint(h.urgentPointer, 0xffff, 'tcp.urgentPointer');
  const out = buf ?? Buffer.alloc(offset + len);
  need(out, offset, len, 'tcp header');
  out.writeUInt16BE(h.srcPort, offset);
  out.writeUInt16BE(h.dstPort, offset + 2);
  out.writeUInt32BE(h.seq, offset + 4);
  out.writeUInt32BE(h.ack, offset + 8);
  let flags = 0;
  for (const [name, bit] of FLAG_BITS) if (h.flags[name]) flags |= bit;
  out[offset + 12] = (len / 4) << 4;
  out[offset + 13] = flags;
  out.writeUInt16BE(h.window, offset + 14);
  out.writeUInt16BE(0, offset + 16);
  out.writeUInt16BE(h.urgentPointer, offset + 18);
  out.fill(0, offset + 20, offset + len);
  h.options?.copy(out, offset + 20);
  return out;
}

/** Header + payload with the checksum over the IPv4 pseudo-header (RFC 9293 §3.1). */
export function encodeTcpSegment(h: TcpHeader, payload: Buffer, src: Ipv4Address, dst: Ipv4Address): Buffer {
  const hlen = tcpEncodingLength(h);
  const seg = Buffer.alloc(hlen + payload.length);
  encodeTcp(h, seg, 0);
  payload.copy(seg, hlen);
  seg.writeUInt16BE(tcpChecksum(seg, 0, seg.length, src, dst), 16);
  return seg;
}

/** The checksum of `buf[offset, offset+length)` as a TCP segment (its checksum field taken as 0). */
export function tcpChecksum(buf: Buffer, offset: number, length: number, src: Ipv4Address, dst: Ipv4Address): number {
  let sum = pseudoHeaderSum(src, dst, IpProtocol.TCP, length);
  sum = sumWords(buf, offset, offset + 16, sum);
  sum = sumWords(buf, offset + 18, offset + length, sum);
  return finishChecksum(sum);
}

export function decodeTcp(buf: Buffer, offset = 0): Decoded<TcpHeader> {
  need(buf, offset, TCP_MIN_HEADER_LENGTH, 'tcp header');
  const dataOffset = buf[offset + 12]! >>> 4;
  if (dataOffset < 5) throw new PacketError('PKT_BAD_FIELD', `tcp data offset ${dataOffset} at offset ${offset + 12} is below 5`, offset + 12);
  const len = dataOffset * 4;
  need(buf, offset, len, 'tcp header with options');
  const fbyte = buf[offset + 13]!;
  const flags = tcpFlags({});
  for (const [name, bit] of FLAG_BITS) flags[name] = (fbyte & bit) !== 0;
  return {
    header: {
      srcPort: buf.readUInt16BE(offset),
      dstPort: buf.readUInt16BE(offset + 2),
      seq: buf.readUInt32BE(offset + 4),
      ack: buf.readUInt32BE(offset + 8),
      flags,
      window: buf.readUInt16BE(offset + 14),
      checksum: buf.readUInt16BE(offset + 16),
      urgentPointer: buf.readUInt16BE(offset + 18),
      ...(len > 20 ? { options: Buffer.from(buf.subarray(offset + 20, offset + len)) } : {}),
    },
    length: len,
  };
}
