/**
 * Typed errors of image streaming. Codes are stable; both ends raise them, and the receiver's code
 * travels back to the sender in an ERROR frame, so the sender throws the same code the receiver saw.
 *
 * | code                     | meaning                                                          |
 * |--------------------------|------------------------------------------------------------------|
 * | TRANSFER_REFUSED         | unknown migration, wrong or expired token: nothing was written   |
 * | TRANSFER_TRUNCATED       | the stream ended before the trailer                              |
 * | TRANSFER_CHUNK_CORRUPT   | a chunk's sha256 does not match its bytes (file, offset named)    |
 * | TRANSFER_IMAGE_CORRUPT   | the trailer's image sha256 or byte count does not match           |
 * | TRANSFER_BAD_FRAME       | a frame is malformed (type, length, order; offset named)          |
 * | TRANSFER_BAD_HEADER      | the HELLO header is invalid (path escapes the image, bad field)   |
 * | TRANSFER_TIMEOUT         | no progress within the idle time limit                            |
 * | TRANSFER_CONNECT         | the peer could not be reached                                     |
 * | TRANSFER_ABORTED         | the caller aborted (signal)                                       |
 * | TRANSFER_IO              | a local file could not be read or written                         |
 */
import { CoatError } from '../errors.js';

export const TRANSFER_ERROR_CODES = [
  'TRANSFER_REFUSED',
  'TRANSFER_TRUNCATED',
  'TRANSFER_CHUNK_CORRUPT',
  'TRANSFER_IMAGE_CORRUPT',
  'TRANSFER_BAD_FRAME',
  'TRANSFER_BAD_HEADER',
  'TRANSFER_TIMEOUT',
  'TRANSFER_CONNECT',
  'TRANSFER_ABORTED',
  'TRANSFER_IO',
] as const;
export type TransferErrorCode = (typeof TRANSFER_ERROR_CODES)[number];

export class TransferError extends CoatError {
  declare readonly code: TransferErrorCode;
  /** Which migration the stream belonged to, when known. */
  readonly migrationId: string | undefined;
  /** True when the error was reported by the peer (received in an ERROR frame). */
  readonly remote: boolean;
  /** File path inside the image and byte offset, for chunk-level failures. */
  readonly file: string | undefined;
  readonly offset: number | undefined;

  constructor(
    code: TransferErrorCode,
    message: string,
    details: { migrationId?: string; remote?: boolean; file?: string; offset?: number; cause?: unknown } = {},
  ) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.migrationId = details.migrationId;
    this.remote = details.remote ?? false;
    this.file = details.file;
    this.offset = details.offset;
  }
}

export function isTransferErrorCode(code: unknown): code is TransferErrorCode {
  return typeof code === 'string' && (TRANSFER_ERROR_CODES as readonly string[]).includes(code);
}
