/**
 * Typed errors of the OpenFlow channel (layer 2) and flow programming (layer 3). Every one carries
 * a stable `code` (documented in docs/controller.md); callers branch on `code`, never on text.
 */
import { CoatError } from '../errors.js';

/** Codes of the controller subsystem. */
export const ControllerErrorCode = {
  /** The switch answered a request with OFPT_ERROR (OpenFlow 1.3.5 §7.4.4). */
  ErrorReply: 'OFC_ERROR_REPLY',
  /** No reply arrived before the request's deadline. */
  Timeout: 'OFC_TIMEOUT',
  /** The connection closed (or was closed) while the request was outstanding. */
  Closed: 'OFC_CLOSED',
  /** Version negotiation or the FEATURES exchange failed (OpenFlow 1.3.5 §6.3.1). */
  Handshake: 'OFC_HANDSHAKE',
  /** The peer broke the protocol: bad framing, unknown type, unsolicited reply. */
  Protocol: 'OFC_PROTOCOL',
  /** The peer stopped answering echo requests (dead-peer timeout). */
  Keepalive: 'OFC_KEEPALIVE',
  /** The switch refused an ONF EXT-230 bundle operation. */
  Bundle: 'OFC_BUNDLE',
  /** A batch of flow-mods confirmed by barrier had at least one OFPT_ERROR. */
  FlowMods: 'OFC_FLOW_MODS',
  /** Two different desired flows hash to the same coat cookie. */
  CookieCollision: 'OFC_COOKIE_COLLISION',
  /** A flow names a priority band that does not exist, or a priority outside its band. */
  Band: 'OFC_BAND',
  /** A connection method string (`tcp:`, `ptcp:`, `unix:`, ...) could not be understood. */
  Endpoint: 'OFC_ENDPOINT',
  /** No switch with that dpid is connected. */
  NoSwitch: 'OFC_NO_SWITCH',
} as const;
export type ControllerErrorCode = (typeof ControllerErrorCode)[keyof typeof ControllerErrorCode];

export class ControllerError extends CoatError {
  declare readonly code: ControllerErrorCode;
  constructor(code: ControllerErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Why a connection ended: a code a program can branch on and a sentence a person can read. */
export interface CloseReason {
  code: ControllerErrorCode | 'OFC_EOF' | 'OFC_LOCAL' | 'OFC_SOCKET' | 'OFC_REPLACED';
  message: string;
}
