/** Typed errors of packet capture and its analysis; codes documented in docs/migration.md. */
import { CoatError } from '../errors.js';

export type CaptureErrorCode =
  /** The pcap stream or file is malformed; `offset` says where, the message which check. */
  | 'CAPTURE_BAD_PCAP'
  /** The link type is not one the analyser decodes (Ethernet only). */
  | 'CAPTURE_LINKTYPE'
  /** The capture process did not start listening (bad interface, namespace, permission, time limit). */
  | 'CAPTURE_START_FAILED'
  /** The capture process died or did not stop in time. */
  | 'CAPTURE_FAILED';

export class CaptureError extends CoatError {
  constructor(
    code: CaptureErrorCode,
    message: string,
    readonly offset?: number,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}
