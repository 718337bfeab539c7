/**
 * Incremental JSON-RPC framer: bytes in, complete message texts out. No I/O.
 *
 * OVSDB runs JSON-RPC 1.0 over a plain byte stream with no length prefix and no delimiter between
 * messages (RFC 7047 §4: "JSON-RPC ... over TCP"; ovsdb-server writes objects back to back), so a
 * message ends where its top-level object closes. The scanner is a byte-driven state machine (the
 * shape of nats.js's parser): it tracks nesting depth, whether it is inside a string, and whether
 * the previous byte was a backslash, so braces and escaped quotes inside strings do not end a
 * message. It works on bytes, not characters: every byte of a multi-byte UTF-8 sequence is >= 0x80,
 * so none can be mistaken for `{`, `}`, `"` or `\`, and a sequence split across chunks is simply
 * carried over with the rest of the partial message. A complete message is then checked to be
 * valid UTF-8 (RFC 7159 §8.1) before it is handed on.
 *
 * After an error the stream has lost its framing; every later `push` throws the same error
 * (the channel closes the connection).
 */
import { OvsdbProtocolError } from './errors.js';

export interface FramerOptions {
  /** Largest message accepted, in bytes (default 64 MiB). Checked while the message is still partial. */
  maxMessageBytes?: number;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isWhitespace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Offset of the first byte that does not belong to a well-formed UTF-8 sequence (RFC 3629 §4:
 * no overlongs, no surrogates, nothing above U+10FFFF), or -1. Only run after the native decoder
 * has already refused the bytes, to say where.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined) return i;
      const min = k === 1 ? lo : 0x80;
      const max = k === 1 ? hi : 0xbf;
      if (c < min || c > max) return i;
    }
    i += need + 1;
  }
  return -1;
}

export class JsonFramer {
  private readonly maxBytes: number;
  /** Bytes of the message in progress from earlier chunks. */
  private partial: Buffer[] = [];
  private partialLength = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Stream offset of the first byte of the current chunk, for error offsets. */
  private consumed = 0;
  /** Stream offset where the message in progress starts. */
  private messageStart = 0;
  private failure: OvsdbProtocolError | undefined;

  constructor(opts: FramerOptions = {}) {
    this.maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  }

  /** True when bytes of an unfinished message are buffered (a peer closing now truncated it). */
  get hasPartial(): boolean {
    return this.depth > 0;
  }

  /** Bytes buffered for the unfinished message. */
  get bufferedBytes(): number {
    return this.partialLength;
  }

  /** Feeds one chunk; returns the texts of the messages it completed. Throws OvsdbProtocolError. */
  push(chunk: Uint8Array): string[] {
    if (this.failure) throw this.failure;
    try {
      return this.scan(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    } catch (err) {
      if (err instanceof OvsdbProtocolError) {
        this.failure = err;
        this.partial = [];
        this.partialLength = 0;
      }
      throw err;
    }
  }

  private scan(chunk: Buffer): string[] {
    const out: string[] = [];
    let start = this.depth > 0 ? 0 : -1; // where the message in progress starts within this chunk
    let { depth, inString, escaped } = this;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (depth === 0) {
        if (isWhitespace(b)) continue;
        if (b !== OPEN_BRACE) {
          throw new OvsdbProtocolError(
            'OVSDB_FRAMING',
            `expected '{' to start a JSON-RPC message, got byte 0x${b.toString(16).padStart(2, '0')}`,
            this.consumed + i,
          );
        }
        depth = 1;
        start = i;
        this.messageStart = this.consumed + i;
        continue;
      }
      if (inString) {
        if (escaped) escaped = false;
        else if (b === BACKSLASH) escaped = true;
        else if (b === QUOTE) inString = false;
        continue;
      }
      if (b === QUOTE) inString = true;
      else if (b === OPEN_BRACE || b === OPEN_BRACKET) depth++;
      else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        depth--;
        if (depth === 0) {
          const tail = chunk.subarray(start, i + 1);
          const whole = this.partialLength > 0 ? Buffer.concat([...this.partial, tail]) : tail;
          this.partial = [];
          this.partialLength = 0;
          this.checkSize(whole.length);
          out.push(this.decode(whole));
          start = -1;
        }
      }
    }
    this.depth = depth;
    this.inString = inString;
    this.escaped = escaped;
    if (depth > 0 && start >= 0) {
      const rest = chunk.subarray(start);
      this.checkSize(this.partialLength + rest.length);
      // Copy: the socket may reuse the chunk's memory.
      this.partial.push(Buffer.from(rest));
      this.partialLength += rest.length;
    }
    this.consumed += chunk.length;
    return out;
  }

  private checkSize(n: number): void {
    if (n > this.maxBytes) {
      throw new OvsdbProtocolError(
        'OVSDB_MESSAGE_TOO_LARGE',
        `message starting at stream offset ${this.messageStart} exceeds ${this.maxBytes} bytes`,
        this.messageStart,
      );
    }
  }

  private decode(bytes: Buffer): string {
    try {
      return utf8.decode(bytes);
    } catch {
      const at = firstInvalidUtf8(bytes);
      throw new OvsdbProtocolError(
        'OVSDB_BAD_UTF8',
        `message is not valid UTF-8: bad byte 0x${(bytes[at] ?? 0).toString(16).padStart(2, '0')} at stream offset ${this.messageStart + at}`,
        this.messageStart + at,
      );
    }
  }
}
