/**
 * UDP header (RFC 768). As for TCP, the checksum covers an IPv4 pseudo-header and is computed by
 * `encodeUdpDatagram`; a computed 0 is sent as 0xffff (RFC 768: 0 means "no checksum").
 */
import type { Ipv4Address } from './address.js';
import { finishChecksum, pseudoHeaderSum, sumWords } from './checksum.js';
import { checkUint, need, PacketError } from './errors.js';
import type { Decoded } from './ethernet.js';
import { IpProtocol } from './ipv4.js';

export interface UdpHeader {
  srcPort: number;
  dstPort: number;
  /** Header plus payload, bytes; computed on encode. */
  length?: number;
  checksum?: number;
}

export const UDP_HEADER_LENGTH = 8;

export function encodeUdpDatagram(h: UdpHeader, payload: Buffer, src: Ipv4Address, dst: Ipv4Address): Buffer {
  checkUint(h.srcPort, 0xffff, 'udp.srcPort');
  checkUint(h.dstPort, 0xffff, 'udp.dstPort');
  const length = UDP_HEADER_LENGTH + payload.length;
  checkUint(length, 0xffff, 'udp length');
  const out = Buffer.alloc(length);
  out.writeUInt16BE(h.srcPort, 0);
  out.writeUInt16BE(h.dstPort, 2);
  out.writeUInt16BE(length, 4);
  payload.copy(out, 8);
  const sum = finishChecksum(sumWords(out, 0, length, pseudoHeaderSum(src, dst, IpProtocol.UDP, length)));
  out.writeUInt16BE(sum === 0 ? 0xffff : sum, 6);
  return out;
}

export function decodeUdp(buf: Buffer, offset = 0): Decoded<UdpHeader> {
  need(buf, offset, UDP_HEADER_LENGTH, 'udp header');
  const length = buf.readUInt16BE(offset + 4);
  if (length < UDP_HEADER_LENGTH) throw new PacketError('PKT_BAD_FIELD', `udp length ${length} at offset ${offset + 4} is below 8`, offset + 4);
  return {
    header: { srcPort: buf.readUInt16BE(offset), dstPort: buf.readUInt16BE(offset + 2), length, checksum: buf.readUInt16BE(offset + 6) },
    length: UDP_HEADER_LENGTH,
  };
}
