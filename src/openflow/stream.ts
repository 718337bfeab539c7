/**
 * A stream parser for an OpenFlow channel (mqtt-packet's shape): `push(chunk)` returns every whole
 * message completed by the chunk and keeps the incomplete tail for the next call. Framing uses
 * only `ofp_header.length` (§7.1), so one malformed message is reported without losing the
 * framing of the ones after it; a framing error (length < 8) leaves no way to find the next
 * message, so the parser drops its buffered bytes, resets, and throws.
 */
import { OFP_HEADER_LEN } from './constants.js';
import { OfpError } from './errors.js';
import { decodeMessage, type OfpMessage } from './messages.js';
import { asBuffer } from './wire.js';

export interface OfpStreamParserOptions {
  /**
   * What to do with a message whose frame is sound but whose body does not decode:
   * 'throw' (default) resets the parser and throws after returning nothing from this call;
   * a function receives the error and the raw message and parsing continues.
   */
  onMessageError?: 'throw' | ((err: OfpError, raw: Buffer) => void);
}

export class OfpStreamParser {
  private pending: Buffer = Buffer.alloc(0);
  private readonly onMessageError: NonNullable<OfpStreamParserOptions['onMessageError']>;

  constructor(options: OfpStreamParserOptions = {}) {
    this.onMessageError = options.onMessageError ?? 'throw';
  }

  /** Bytes received but not yet part of a whole message. */
  get buffered(): number {
    return this.pending.length;
  }

  /** Discards buffered bytes (after a reconnect, say). */
  reset(): void {
    this.pending = Buffer.alloc(0);
  }

  /**
   * Feeds bytes; returns the messages they complete, in order. On an error the parser resets
   * (dropped bytes are in `err.leftover`) and the error is thrown; messages decoded earlier in
   * the same call are attached as `err.messages` so none is lost.
   */
  push(chunk: Uint8Array): OfpMessage[] {
    const input = asBuffer(chunk);
    // Concatenation makes new memory, so messages returned earlier never alias reused bytes.
    const buf = this.pending.length === 0 ? input : Buffer.concat([this.pending, input]);
    const out: OfpMessage[] = [];
    let off = 0;
    while (buf.length - off >= OFP_HEADER_LEN) {
      const length = buf.readUInt16BE(off + 2);
      if (length < OFP_HEADER_LEN) {
        throw this.fail(new OfpError('OFP_BAD_LENGTH', off + 2, 'ofp_header.length >= 8', `got ${length}; framing lost`), buf.subarray(off), out);
      }
      if (buf.length - off < length) break;
      const raw = buf.subarray(off, off + length);
      off += length;
      try {
        out.push(decodeMessage(raw));
      } catch (err) {
        if (!(err instanceof OfpError)) throw err;
        if (this.onMessageError === 'throw') throw this.fail(err, buf.subarray(off), out);
        this.onMessageError(err, raw);
      }
    }
    this.pending = off === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(off));
    return out;
  }

  private fail(err: OfpError, leftover: Buffer, decoded: OfpMessage[]): OfpError {
    this.reset();
    err.leftover = leftover;
    err.messages = decoded;
    return err;
  }
}
