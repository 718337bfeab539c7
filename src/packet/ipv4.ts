/**
 * IPv4 header (RFC 791 §3.1). Options are kept verbatim as bytes; the header checksum is computed
 * on encode (never taken from the caller) and checked on decode only when asked, because packets
 * handed up by a switch whose TX checksum offload is on may carry a partial checksum.
 */
import { readIpv4, writeIpv4, type Ipv4Address } from './address.js';
import { internetChecksum } from './checksum.js';
import { checkUint, need, PacketError } from './errors.js';
import type { Decoded } from './ethernet.js';

export const IpProtocol = { ICMP: 1, TCP: 6, UDP: 17 } as const;

export interface Ipv4Header {
  dscp: number;
  ecn: number;
  /** Header plus payload, bytes. */
  totalLength: number;
  identification: number;
  /** Don't fragment. */
  df: boolean;
  /** More fragments. */
  mf: boolean;
  fragmentOffset: number;
  ttl: number;
  protocol: number;
  /** As found on decode; ignored on encode (computed). */
  checksum?: number;
  src: Ipv4Address;
  dst: Ipv4Address;
  /** Options, a multiple of 4 bytes. */
  options?: Buffer;
}

export const IPV4_MIN_HEADER_LENGTH = 20;

export function ipv4EncodingLength(h: Pick<Ipv4Header, 'options'>): number {
  return IPV4_MIN_HEADER_LENGTH + (h.options?.length ?? 0);
}

export function encodeIpv4(h: Ipv4Header, buf?: Buffer, offset = 0): Buffer {
  const len = ipv4EncodingLength(h);
  const opt = h.options ?? Buffer.alloc(0);
  if (opt.length % 4 !== 0 || len > 60) throw new PacketError('PKT_BAD_VALUE', `ipv4 options length ${opt.length} is not a multiple of 4 up to 40`);
  checkUint(h.dscp, 63, 'ipv4.dscp');
  checkUint(h.ecn, 3, 'ipv4.ecn');
  checkUint(h.totalLength, 0xffff, 'ipv4.totalLength');
  checkUint(h.identification, 0xffff, 'ipv4.identification');
  checkUint(h.fragmentOffset, 0x1fff, 'ipv4.fragmentOffset');
  checkUint(h.ttl, 255, 'ipv4.ttl');
  checkUint(h.protocol, 255, 'ipv4.protocol');
  const out = buf ?? Buffer.alloc(offset + len);
  need(out, offset, len, 'ipv4 header');
  out[offset] = 0x40 | (len / 4);
  out[offset + 1] = (h.dscp << 2) | h.ecn;
  out.writeUInt16BE(h.totalLength, offset + 2);
  out.writeUInt16BE(h.identification, offset + 4);
  out.writeUInt16BE((h.df ? 0x4000 : 0) | (h.mf ? 0x2000 : 0) | h.fragmentOffset, offset + 6);
  out[offset + 8] = h.ttl;
  out[offset + 9] = h.protocol;
  out.writeUInt16BE(0, offset + 10);
  writeIpv4(h.src, out, offset + 12);
  writeIpv4(h.dst, out, offset + 16);
  opt.copy(out, offset + 20);
  out.writeUInt16BE(internetChecksum(out, offset, offset + len), offset + 10);
  return out;
}

export interface Ipv4DecodeOptions {
  /** Reject a header whose checksum does not verify (default false). */
  verifyChecksum?: boolean;
}

export function decodeIpv4(buf: Buffer, offset = 0, opts: Ipv4DecodeOptions = {}): Decoded<Ipv4Header> {
  need(buf, offset, IPV4_MIN_HEADER_LENGTH, 'ipv4 header');
  const version = buf[offset]! >>> 4;
  if (version !== 4) throw new PacketError('PKT_BAD_FIELD', `ip version ${version} at offset ${offset} is not 4`, offset);
  const ihl = buf[offset]! & 0x0f;
  if (ihl < 5) throw new PacketError('PKT_BAD_FIELD', `ipv4 IHL ${ihl} at offset ${offset} is below 5`, offset);
  const len = ihl * 4;
  need(buf, offset, len, 'ipv4 header with options');
  const totalLength = buf.readUInt16BE(offset + 2);
  if (totalLength < len) throw new PacketError('PKT_BAD_FIELD', `ipv4 total length ${totalLength} at offset ${offset + 2} is below the header length ${len}`, offset + 2);
  if (opts.verifyChecksum && internetChecksum(buf, offset, offset + len) !== 0) {
    throw new PacketError('PKT_BAD_FIELD', `ipv4 header checksum at offset ${offset + 10} does not verify`, offset + 10);
  }
  const frag = buf.readUInt16BE(offset + 6);
  return {
    header: {
      dscp: buf[offset + 1]! >>> 2,
      ecn: buf[offset + 1]! & 3,
      totalLength,
      identification: buf.readUInt16BE(offset + 4),
      df: (frag & 0x4000) !== 0,
      mf: (frag & 0x2000) !== 0,
      fragmentOffset: frag & 0x1fff,
      ttl: buf[offset + 8]!,
      protocol: buf[offset + 9]!,
      checksum: buf.readUInt16BE(offset + 10),
      src: readIpv4(buf, offset + 12),
      dst: readIpv4(buf, offset + 16),
      ...(len > 20 ? { options: Buffer.from(buf.subarray(offset + 20, offset + len)) } : {}),
    },
    length: len,
  };
}
