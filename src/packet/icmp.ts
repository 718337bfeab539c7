/**
 * ICMP echo request and reply (RFC 792, "Echo or Echo Reply Message"): type, code, checksum over
 * the whole ICMP message, identifier, sequence number, data. Only the echo pair is modelled; other
 * ICMP types decode as `IcmpOther` so a prober can count and skip them.
 */
import { internetChecksum } from './checksum.js';
import { checkUint, need, PacketError } from './errors.js';
import type { Decoded } from './ethernet.js';

export const IcmpType = { ECHO_REPLY: 0, DESTINATION_UNREACHABLE: 3, ECHO_REQUEST: 8, TIME_EXCEEDED: 11 } as const;

export const ICMP_ECHO_HEADER_LENGTH = 8;

export interface IcmpEcho {
  type: typeof IcmpType.ECHO_REQUEST | typeof IcmpType.ECHO_REPLY;
  identifier: number;
  sequence: number;
  data: Buffer;
}

/** Any other ICMP message: its type and code, the rest kept as bytes. */
export interface IcmpOther {
  type: number;
  code: number;
  rest: Buffer;
}

export function encodeIcmpEcho(m: IcmpEcho): Buffer {
  checkUint(m.identifier, 0xffff, 'icmp.identifier');
  checkUint(m.sequence, 0xffff, 'icmp.sequence');
  const out = Buffer.alloc(ICMP_ECHO_HEADER_LENGTH + m.data.length);
  out[0] = m.type;
  out[1] = 0;
  out.writeUInt16BE(m.identifier, 4);
  out.writeUInt16BE(m.sequence, 6);
  m.data.copy(out, ICMP_ECHO_HEADER_LENGTH);
  out.writeUInt16BE(internetChecksum(out), 2);
  return out;
}

/**
 * Decodes the ICMP message that fills `buf` from `offset` to its end (ICMP has no length field: the
 * IP header's total length bounds it). The checksum is verified: a raw socket hands up what the
 * kernel received, and a corrupted echo must not count as an answer.
 */
export function decodeIcmp(buf: Buffer, offset = 0): Decoded<IcmpEcho | IcmpOther> {
  need(buf, offset, 4, 'icmp header');
  if (internetChecksum(buf, offset, buf.length) !== 0) {
    throw new PacketError('PKT_BAD_FIELD', `icmp checksum at offset ${offset + 2} does not verify`, offset + 2);
  }
  const type = buf[offset]!;
  const code = buf[offset + 1]!;
  const length = buf.length - offset;
  if ((type === IcmpType.ECHO_REQUEST || type === IcmpType.ECHO_REPLY) && code === 0) {
    need(buf, offset, ICMP_ECHO_HEADER_LENGTH, 'icmp echo header');
    return {
      header: { type, identifier: buf.readUInt16BE(offset + 4), sequence: buf.readUInt16BE(offset + 6), data: Buffer.from(buf.subarray(offset + ICMP_ECHO_HEADER_LENGTH)) },
      length,
    };
  }
  return { header: { type, code, rest: Buffer.from(buf.subarray(offset + 4)) }, length };
}

export function isIcmpEcho(m: IcmpEcho | IcmpOther): m is IcmpEcho {
  return (m.type === IcmpType.ECHO_REQUEST || m.type === IcmpType.ECHO_REPLY) && !('rest' in m);
}
