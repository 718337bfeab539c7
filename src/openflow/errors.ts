/**
 * Typed errors of the OpenFlow codec. Every failure names its stable `code`, the absolute byte
 * `offset` in the input where the failing check was made, and the `check` itself in words, so a
 * log line says exactly which rule a peer broke (Ryu's truncated-message error and undici's
 * error table are the models).
 */
import { CoatError } from '../errors.js';

/**
 * Stable error codes and what they mean. docs/openflow.md lists the same table; a test checks
 * that the two agree.
 */
export const OFP_ERROR_CODE_MEANINGS = {
  OFP_TRUNCATED: 'the input ends before the structure it announces (a length field points past the end)',
  OFP_BAD_VERSION: 'ofp_header.version is not 0x04 (OpenFlow 1.3); only hello may carry another version',
  OFP_BAD_LENGTH: 'a length field is smaller than its structure\'s minimum, not aligned as the spec requires, or disagrees with the bytes it covers',
  OFP_BAD_TYPE: 'ofp_header.type is not a message type of OpenFlow 1.3',
  OFP_BAD_MULTIPART: 'a multipart request/reply carries a type that OpenFlow 1.3 does not define',
  OFP_BAD_MATCH: 'ofp_match.type is not OFPMT_OXM or the match is malformed',
  OFP_BAD_OXM: 'an OXM TLV\'s payload length does not fit its field (value size, times two with a mask)',
  OFP_TRAILING_BYTES: 'bytes remain inside a structure after all of its fields were read',
  OFP_ENCODE_INVALID: 'a value handed to the encoder does not fit its wire field (range, format, unknown name)',
  OFP_ENCODE_TOO_LONG: 'an encoded structure would exceed what its 16-bit length field can describe',
} as const;
export type OfpErrorCode = keyof typeof OFP_ERROR_CODE_MEANINGS;

export class OfpError extends CoatError {
  declare readonly code: OfpErrorCode;
  /** Absolute byte offset in the decoded input (or in the output buffer when encoding). */
  readonly offset: number;
  /** The check that failed, e.g. `ofp_header.length >= 8`. */
  readonly check: string;
  /** For stream-parser framing errors: the bytes that were dropped when the parser reset. */
  leftover?: Uint8Array;
  /** For stream-parser errors: the whole messages decoded from the same push before the failure. */
  messages?: readonly object[];

  constructor(code: OfpErrorCode, offset: number, check: string, detail?: string, options?: { cause?: unknown }) {
    super(code, `${check} failed at offset ${offset}${detail ? `: ${detail}` : ''}`, options);
    this.offset = offset;
    this.check = check;
  }

  override toJSON(): Record<string, unknown> {
    const out = super.toJSON();
    if (this.leftover) out.leftover = this.leftover.length;
    delete out.messages;
    return out;
  }
}
