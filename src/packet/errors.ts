/**
 * Errors raised by the packet codecs. Every error names the check that failed and the byte offset
 * (from the start of the buffer handed to the decoder) where it failed.
 *
 * Codes:
 * - `PKT_TRUNCATED`: fewer bytes than the header (or a length field) needs.
 * - `PKT_BAD_FIELD`: a field holds a value this codec does not accept (e.g. IPv4 version 6,
 *   ARP hardware type not Ethernet, IHL < 5).
 * - `PKT_BAD_ADDRESS`: a MAC or IPv4 address string that does not parse.
 * - `PKT_BAD_VALUE`: a value given to an encoder is out of its field's range.
 */
import { CoatError } from '../errors.js';

export type PacketErrorCode = 'PKT_TRUNCATED' | 'PKT_BAD_FIELD' | 'PKT_BAD_ADDRESS' | 'PKT_BAD_VALUE';

export class PacketError extends CoatError {
  constructor(
    code: PacketErrorCode,
    message: string,
    /** Byte offset of the failed check, when it concerns bytes. */
    readonly offset?: number,
  ) {
    super(code, message);
  }
}

/** Throws PKT_TRUNCATED unless `buf` holds `need` bytes from `offset`. */
export function need(buf: Uint8Array, offset: number, need: number, what: string): void {
  if (offset < 0 || offset + need > buf.length) {
    throw new PacketError(
      'PKT_TRUNCATED',
      `${what}: need ${need} bytes at offset ${offset}, buffer has ${Math.max(0, buf.length - offset)}`,
      offset,
    );
  }
}

/** Throws PKT_BAD_VALUE unless `v` is an integer in [0, max]. */
export function checkUint(v: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new PacketError('PKT_BAD_VALUE', `${what}: ${v} is not an integer in 0..${max}`);
}
