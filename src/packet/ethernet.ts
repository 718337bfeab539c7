/**
 * Ethernet II header (IEEE 802.3 §3.2.6 with Ethernet II type field), optionally with one 802.1Q
 * tag (IEEE 802.1Q §9.6). The frame check sequence is not part of what OpenFlow packet-in and
 * packet-out carry, so it is neither read nor written.
 */
import { readMac, writeMac, type MacAddress } from './address.js';
import { checkUint, need, PacketError } from './errors.js';

export const EtherType = {
  IPV4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  IPV6: 0x86dd,
} as const;

export interface VlanTag {
  /** Priority code point, 3 bits. */
  pcp: number;
  /** Drop eligible indicator, 1 bit. */
  dei: number;
  /** VLAN id, 12 bits. */
  vid: number;
}

export interface EthernetHeader {
  dst: MacAddress;
  src: MacAddress;
  vlan?: VlanTag;
  /** EtherType of the payload (after the 802.1Q tag when there is one). */
  ethertype: number;
}

export const ETHERNET_HEADER_LENGTH = 14;
export const VLAN_TAG_LENGTH = 4;

export function ethernetEncodingLength(h: EthernetHeader): number {
  return ETHERNET_HEADER_LENGTH + (h.vlan ? VLAN_TAG_LENGTH : 0);
}

/** Writes the header into `buf` at `offset` (allocating when no buffer is given); returns the buffer. */
export function encodeEthernet(h: EthernetHeader, buf?: Buffer, offset = 0): Buffer {
  const len = ethernetEncodingLength(h);
  const out = buf ?? Buffer.alloc(offset + len);
  need(out, offset, len, 'ethernet header');
  checkUint(h.ethertype, 0xffff, 'ethertype');
  writeMac(h.dst, out, offset);
  writeMac(h.src, out, offset + 6);
  let p = offset + 12;
  if (h.vlan) {
    checkUint(h.vlan.pcp, 7, 'vlan.pcp');
    checkUint(h.vlan.dei, 1, 'vlan.dei');
    checkUint(h.vlan.vid, 0xfff, 'vlan.vid');
    out.writeUInt16BE(EtherType.VLAN, p);
    out.writeUInt16BE((h.vlan.pcp << 13) | (h.vlan.dei << 12) | h.vlan.vid, p + 2);
    p += 4;
  }
  out.writeUInt16BE(h.ethertype, p);
  return out;
}

export interface Decoded<T> {
  header: T;
  /** Bytes the header took. */
  length: number;
}

export function decodeEthernet(buf: Buffer, offset = 0): Decoded<EthernetHeader> {
  need(buf, offset, ETHERNET_HEADER_LENGTH, 'ethernet header');
  const dst = readMac(buf, offset);
  const src = readMac(buf, offset + 6);
  let type = buf.readUInt16BE(offset + 12);
  if (type === EtherType.VLAN) {
    need(buf, offset, ETHERNET_HEADER_LENGTH + VLAN_TAG_LENGTH, 'ethernet header with 802.1Q tag');
    const tci = buf.readUInt16BE(offset + 14);
    type = buf.readUInt16BE(offset + 16);
    if (type === EtherType.VLAN) throw new PacketError('PKT_BAD_FIELD', `stacked 802.1Q tags (QinQ) at offset ${offset + 16} are not supported`, offset + 16);
    return { header: { dst, src, vlan: { pcp: tci >>> 13, dei: (tci >>> 12) & 1, vid: tci & 0xfff }, ethertype: type }, length: 18 };
  }
  if (type < 0x0600) throw new PacketError('PKT_BAD_FIELD', `length field ${type} at offset ${offset + 12}: 802.3 length frames are not Ethernet II`, offset + 12);
  return { header: { dst, src, ethertype: type }, length: ETHERNET_HEADER_LENGTH };
}
