/**
 * Whole Ethernet frames: decode the layers a packet-in carries (Ethernet -> ARP | IPv4 -> TCP |
 * UDP) in one call, and build the few frames the controller sends (ARP replies, gratuitous ARP)
 * and tests inject (TCP/UDP over IPv4).
 *
 * Layers the codec does not know stay as `payload` bytes, never an error: a packet-in of IPv6 or
 * ICMP must be forwardable by its Ethernet header alone.
 */
import { BROADCAST_MAC, ZERO_MAC, type Ipv4Address, type MacAddress } from './address.js';
import { ArpOp, decodeArp, encodeArp, ARP_LENGTH, type ArpPacket } from './arp.js';
import { PacketError } from './errors.js';
import { decodeEthernet, encodeEthernet, ethernetEncodingLength, EtherType, type EthernetHeader } from './ethernet.js';
import { decodeIpv4, encodeIpv4, IpProtocol, type Ipv4DecodeOptions, type Ipv4Header } from './ipv4.js';
import { decodeTcp, encodeTcpSegment, tcpFlags, type TcpFlags, type TcpHeader } from './tcp.js';
import { decodeUdp, encodeUdpDatagram, type UdpHeader } from './udp.js';

export interface DecodedFrame {
  eth: EthernetHeader;
  arp?: ArpPacket;
  ipv4?: Ipv4Header;
  tcp?: TcpHeader;
  udp?: UdpHeader;
  /** The bytes after the last decoded header (bounded by the IPv4 total length when there is one). */
  payload: Buffer;
}

export function decodeFrame(buf: Buffer, opts: Ipv4DecodeOptions = {}): DecodedFrame {
  const eth = decodeEthernet(buf, 0);
  let off = eth.length;
  if (eth.header.ethertype === EtherType.ARP) {
    const arp = decodeArp(buf, off);
    return { eth: eth.header, arp: arp.header, payload: buf.subarray(off + ARP_LENGTH) };
  }
  if (eth.header.ethertype !== EtherType.IPV4) return { eth: eth.header, payload: buf.subarray(off) };
  const ip = decodeIpv4(buf, off, opts);
  const ipEnd = off + ip.header.totalLength;
  if (ipEnd > buf.length) {
    throw new PacketError('PKT_TRUNCATED', `ipv4 total length ${ip.header.totalLength} at offset ${off + 2} runs past the frame end (${buf.length - off} bytes)`, off + 2);
  }
  off += ip.length;
  // A non-first fragment carries no transport header (RFC 791 §3.2).
  if (ip.header.fragmentOffset !== 0) return { eth: eth.header, ipv4: ip.header, payload: buf.subarray(off, ipEnd) };
  if (ip.header.protocol === IpProtocol.TCP) {
    const tcp = decodeTcp(buf.subarray(0, ipEnd), off);
    return { eth: eth.header, ipv4: ip.header, tcp: tcp.header, payload: buf.subarray(off + tcp.length, ipEnd) };
  }
  if (ip.header.protocol === IpProtocol.UDP) {
    const udp = decodeUdp(buf.subarray(0, ipEnd), off);
    return { eth: eth.header, ipv4: ip.header, udp: udp.header, payload: buf.subarray(off + udp.length, ipEnd) };
  }
  return { eth: eth.header, ipv4: ip.header, payload: buf.subarray(off, ipEnd) };
}

/** An Ethernet frame carrying one ARP packet (RFC 826), padded to the 60-byte Ethernet minimum. */
export function encodeArpFrame(eth: Omit<EthernetHeader, 'ethertype'>, arp: ArpPacket): Buffer {
  const h: EthernetHeader = { ...eth, ethertype: EtherType.ARP };
  const elen = ethernetEncodingLength(h);
  const out = Buffer.alloc(Math.max(60, elen + ARP_LENGTH));
  encodeEthernet(h, out, 0);
  encodeArp(arp, out, elen);
  return out;
}

/**
 * The reply a responder sends for `request` when `ip` -> `mac` is known: unicast back to the
 * asker, sender fields from the answer, target fields from the request's sender (RFC 826,
 * "Packet Reception").
 */
export function arpReplyFor(request: ArpPacket, answerMac: MacAddress): ArpPacket {
  if (request.op !== ArpOp.REQUEST) throw new PacketError('PKT_BAD_VALUE', `arpReplyFor: op ${request.op} is not a request`);
  return { op: ArpOp.REPLY, senderMac: answerMac, senderIp: request.targetIp, targetMac: request.senderMac, targetIp: request.senderIp };
}

export function encodeArpReplyFrame(request: ArpPacket, answerMac: MacAddress): Buffer {
  return encodeArpFrame({ dst: request.senderMac, src: answerMac }, arpReplyFor(request, answerMac));
}

export function encodeArpRequestFrame(senderMac: MacAddress, senderIp: Ipv4Address, targetIp: Ipv4Address): Buffer {
  return encodeArpFrame({ dst: BROADCAST_MAC, src: senderMac }, { op: ArpOp.REQUEST, senderMac, senderIp, targetMac: ZERO_MAC, targetIp });
}

/**
 * Gratuitous ARP announcing `ip` at `mac` (RFC 5227 §3: an ARP request with sender and target IP
 * both set to the address, broadcast), the form Linux accepts to update existing entries.
 */
export function encodeGratuitousArpFrame(mac: MacAddress, ip: Ipv4Address): Buffer {
  return encodeArpFrame({ dst: BROADCAST_MAC, src: mac }, { op: ArpOp.REQUEST, senderMac: mac, senderIp: ip, targetMac: ZERO_MAC, targetIp: ip });
}

export interface Ipv4FrameBase {
  srcMac: MacAddress;
  dstMac: MacAddress;
  srcIp: Ipv4Address;
  dstIp: Ipv4Address;
  ttl?: number;
  identification?: number;
}

function ipv4Frame(base: Ipv4FrameBase, protocol: number, l4: Buffer): Buffer {
  const eth: EthernetHeader = { dst: base.dstMac, src: base.srcMac, ethertype: EtherType.IPV4 };
  const elen = ethernetEncodingLength(eth);
  const out = Buffer.alloc(Math.max(60, elen + 20 + l4.length));
  encodeEthernet(eth, out, 0);
  encodeIpv4(
    { dscp: 0, ecn: 0, totalLength: 20 + l4.length, identification: base.identification ?? 0, df: true, mf: false, fragmentOffset: 0, ttl: base.ttl ?? 64, protocol, src: base.srcIp, dst: base.dstIp },
    out,
    elen,
  );
  l4.copy(out, elen + 20);
  return out;
}

export interface TcpFrameSpec extends Ipv4FrameBase {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: Partial<TcpFlags>;
  window?: number;
  options?: Buffer;
  payload?: Buffer;
}

export function encodeTcpFrame(s: TcpFrameSpec): Buffer {
  const seg = encodeTcpSegment(
    { srcPort: s.srcPort, dstPort: s.dstPort, seq: s.seq, ack: s.ack, flags: tcpFlags(s.flags), window: s.window ?? 65535, urgentPointer: 0, ...(s.options ? { options: s.options } : {}) },
    s.payload ?? Buffer.alloc(0),
    s.srcIp,
    s.dstIp,
  );
  return ipv4Frame(s, IpProtocol.TCP, seg);
}

export interface UdpFrameSpec extends Ipv4FrameBase {
  srcPort: number;
  dstPort: number;
  payload?: Buffer;
}

export function encodeUdpFrame(s: UdpFrameSpec): Buffer {
  return ipv4Frame(s, IpProtocol.UDP, encodeUdpDatagram({ srcPort: s.srcPort, dstPort: s.dstPort }, s.payload ?? Buffer.alloc(0), s.srcIp, s.dstIp));
}
