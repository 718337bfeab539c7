/**
 * Pure codecs for the headers coat reads from packet-ins and writes into packet-outs: Ethernet
 * (with one 802.1Q tag), ARP, IPv4, TCP, UDP, and whole frames. No I/O. Each header has
 * `encodeX(h, buf?, offset?)`, `decodeX(buf, offset) -> { header, length }` and, where the length
 * depends on the value, `xEncodingLength(h)` (dns-packet's shape). Errors are `PacketError`s.
 */
export * from './address.js';
export * from './errors.js';
export * from './checksum.js';
export * from './ethernet.js';
export * from './arp.js';
export * from './ipv4.js';
export * from './tcp.js';
export * from './udp.js';
export * from './icmp.js';
export * from './frame.js';
