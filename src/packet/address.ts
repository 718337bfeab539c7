/**
 * MAC and IPv4 addresses as the codecs present them: lower-case `aa:bb:cc:dd:ee:ff` and dotted
 * quads. Strings compare with `===`, print in logs as they are, and are what topology files hold;
 * the codecs convert at the byte boundary only.
 */
import { PacketError } from './errors.js';

export type MacAddress = string;
export type Ipv4Address = string;

export const BROADCAST_MAC: MacAddress = 'ff:ff:ff:ff:ff:ff';
export const ZERO_MAC: MacAddress = '00:00:00:00:00:00';

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

export function isMac(s: string): boolean {
  return MAC_RE.test(s);
}

/** Normalises a MAC string (case), throwing PKT_BAD_ADDRESS when it is not one. */
export function normalizeMac(s: string): MacAddress {
  if (!MAC_RE.test(s)) throw new PacketError('PKT_BAD_ADDRESS', `not a MAC address: ${JSON.stringify(s)}`);
  return s.toLowerCase();
}

export function writeMac(mac: MacAddress, buf: Uint8Array, offset: number): void {
  const m = normalizeMac(mac);
  for (let i = 0; i < 6; i++) buf[offset + i] = parseInt(m.slice(i * 3, i * 3 + 2), 16);
}

export function readMac(buf: Uint8Array, offset: number): MacAddress {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(buf[offset + i]!.toString(16).padStart(2, '0'));
  return parts.join(':');
}

export function macToBytes(mac: MacAddress): Buffer {
  const b = Buffer.alloc(6);
  writeMac(mac, b, 0);
  return b;
}

/** A MAC as a 48-bit number (OXM eth_dst values). */
export function macToBigInt(mac: MacAddress): bigint {
  return BigInt('0x' + normalizeMac(mac).replaceAll(':', ''));
}

export function isIpv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

/** An IPv4 address as an unsigned 32-bit number. */
export function ipv4ToNumber(ip: Ipv4Address): number {
  if (!isIpv4(ip)) throw new PacketError('PKT_BAD_ADDRESS', `not an IPv4 address: ${JSON.stringify(ip)}`);
  return ip.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function numberToIpv4(n: number): Ipv4Address {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function writeIpv4(ip: Ipv4Address, buf: Uint8Array, offset: number): void {
  const n = ipv4ToNumber(ip);
  buf[offset] = (n >>> 24) & 255;
  buf[offset + 1] = (n >>> 16) & 255;
  buf[offset + 2] = (n >>> 8) & 255;
  buf[offset + 3] = n & 255;
}

export function readIpv4(buf: Uint8Array, offset: number): Ipv4Address {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

/** Parses `10.0.0.0/24`; the address part may have host bits set (they are kept in `address`). */
export interface Ipv4Cidr {
  address: Ipv4Address;
  prefixLength: number;
}

export function parseCidr(s: string): Ipv4Cidr {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(s);
  if (!m || !isIpv4(m[1]!) || Number(m[2]) > 32) throw new PacketError('PKT_BAD_ADDRESS', `not an IPv4 prefix: ${JSON.stringify(s)}`);
  return { address: m[1]!, prefixLength: Number(m[2]) };
}

/** True when `ip` lies inside `cidr`. */
export function cidrContains(cidr: Ipv4Cidr, ip: Ipv4Address): boolean {
  const mask = cidr.prefixLength === 0 ? 0 : (0xffffffff << (32 - cidr.prefixLength)) >>> 0;
  return ((ipv4ToNumber(cidr.address) & mask) >>> 0) === ((ipv4ToNumber(ip) & mask) >>> 0);
}
