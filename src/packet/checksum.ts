/**
 * The Internet checksum (RFC 1071): one's-complement sum of 16-bit words, folded, complemented.
 * Used by the IPv4 header (RFC 791 §3.1) and, over a pseudo-header, by TCP (RFC 9293 §3.1) and
 * UDP (RFC 768).
 */
import { writeIpv4, type Ipv4Address } from './address.js';

/** Adds `buf[start, end)` into a running 32-bit sum (not yet folded). */
export function sumWords(buf: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8; // odd length: pad with a zero byte (RFC 1071 §4.1)
  return sum;
}

/** Folds the carries and complements: the value to store in a checksum field. */
export function finishChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

export function internetChecksum(buf: Uint8Array, start = 0, end = buf.length): number {
  return finishChecksum(sumWords(buf, start, end));
}

/** Sum of the IPv4 pseudo-header (src, dst, zero, protocol, length) for TCP and UDP. */
export function pseudoHeaderSum(src: Ipv4Address, dst: Ipv4Address, protocol: number, length: number): number {
  const ph = new Uint8Array(12);
  writeIpv4(src, ph, 0);
  writeIpv4(dst, ph, 4);
  ph[9] = protocol;
  ph[10] = (length >>> 8) & 255;
  ph[11] = length & 255;
  return sumWords(ph, 0, 12);
}
