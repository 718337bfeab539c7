/**
 * ARP for IPv4 over Ethernet (RFC 826): the only combination an overlay of Ethernet endpoints
 * carries. Hardware type 1, protocol type 0x0800, lengths 6 and 4 are checked on decode.
 */
import { readIpv4, readMac, writeIpv4, writeMac, type Ipv4Address, type MacAddress } from './address.js';
import { need, PacketError } from './errors.js';
import { EtherType } from './ethernet.js';
import type { Decoded } from './ethernet.js';

export const ArpOp = { REQUEST: 1, REPLY: 2 } as const;
export type ArpOpcode = (typeof ArpOp)[keyof typeof ArpOp];

export interface ArpPacket {
  op: ArpOpcode;
  senderMac: MacAddress;
  senderIp: Ipv4Address;
  targetMac: MacAddress;
  targetIp: Ipv4Address;
}

export const ARP_LENGTH = 28;
const HTYPE_ETHERNET = 1;

export function arpEncodingLength(): number {
  return ARP_LENGTH;
}

export function encodeArp(a: ArpPacket, buf?: Buffer, offset = 0): Buffer {
  const out = buf ?? Buffer.alloc(offset + ARP_LENGTH);
  need(out, offset, ARP_LENGTH, 'arp packet');
  if (a.op !== ArpOp.REQUEST && a.op !== ArpOp.REPLY) throw new PacketError('PKT_BAD_VALUE', `arp op ${String(a.op)} is neither request (1) nor reply (2)`);
  out.writeUInt16BE(HTYPE_ETHERNET, offset);
  out.writeUInt16BE(EtherType.IPV4, offset + 2);
  out[offset + 4] = 6;
  out[offset + 5] = 4;
  out.writeUInt16BE(a.op, offset + 6);
  writeMac(a.senderMac, out, offset + 8);
  writeIpv4(a.senderIp, out, offset + 14);
  writeMac(a.targetMac, out, offset + 18);
  writeIpv4(a.targetIp, out, offset + 24);
  return out;
}

export function decodeArp(buf: Buffer, offset = 0): Decoded<ArpPacket> {
  need(buf, offset, ARP_LENGTH, 'arp packet');
  const htype = buf.readUInt16BE(offset);
  if (htype !== HTYPE_ETHERNET) throw new PacketError('PKT_BAD_FIELD', `arp hardware type ${htype} at offset ${offset} is not Ethernet (1)`, offset);
  const ptype = buf.readUInt16BE(offset + 2);
  if (ptype !== EtherType.IPV4) throw new PacketError('PKT_BAD_FIELD', `arp protocol type 0x${ptype.toString(16)} at offset ${offset + 2} is not IPv4`, offset + 2);
  if (buf[offset + 4] !== 6 || buf[offset + 5] !== 4) {
    throw new PacketError('PKT_BAD_FIELD', `arp address lengths ${buf[offset + 4]}/${buf[offset + 5]} at offset ${offset + 4} are not 6/4`, offset + 4);
  }
  const op = buf.readUInt16BE(offset + 6);
  if (op !== ArpOp.REQUEST && op !== ArpOp.REPLY) throw new PacketError('PKT_BAD_FIELD', `arp op ${op} at offset ${offset + 6} is neither request nor reply`, offset + 6);
  return {
    header: {
      op,
      senderMac: readMac(buf, offset + 8),
      senderIp: readIpv4(buf, offset + 14),
      targetMac: readMac(buf, offset + 18),
      targetIp: readIpv4(buf, offset + 24),
    },
    length: ARP_LENGTH,
  };
}
