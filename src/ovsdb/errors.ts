/**
 * Typed OVSDB errors, each with a stable `code` (undici's shape; libovsdb's `ovsdb/error.go` for the
 * mapping of RFC 7047 error strings to types).
 *
 * Four families:
 * - transport: the connection could not be made, was lost, or was closed by us;
 * - protocol: bytes or JSON that are not a valid JSON-RPC 1.0 message (framing, UTF-8, size,
 *   a reply to an id we never sent, a reply of the wrong shape);
 * - call: a JSON-RPC error object where a result was expected, or no reply before the deadline;
 * - operation: one operation of a `transact` failed (RFC 7047 §4.1.3 / §5.2); the error names the
 *   failing operation's index and kind.
 * Datum errors (a value that does not fit its column type) are raised before anything is sent.
 */
import { CoatError } from '../errors.js';

/** Base of every OVSDB error. */
export class OvsdbError extends CoatError {}

// ---- transport ---------------------------------------------------------------------------------

/** Could not connect (`OVSDB_CONNECT`), the connection dropped (`OVSDB_CONNECTION_LOST`), or the client was closed (`OVSDB_CLOSED`). */
export class OvsdbTransportError extends OvsdbError {
  constructor(
    code: 'OVSDB_CONNECT' | 'OVSDB_CONNECTION_LOST' | 'OVSDB_CLOSED',
    readonly remote: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

// ---- protocol ----------------------------------------------------------------------------------

export type ProtocolErrorCode =
  /** The stream holds something other than a JSON object at top level (RFC 7047 §4: every message is an object). */
  | 'OVSDB_FRAMING'
  /** A message grew past the configured maximum before it was complete. */
  | 'OVSDB_MESSAGE_TOO_LARGE'
  /** A message is not valid UTF-8 (RFC 7159 §8.1). */
  | 'OVSDB_BAD_UTF8'
  /** A complete message is not valid JSON. */
  | 'OVSDB_BAD_JSON'
  /** Valid JSON that is not a JSON-RPC 1.0 request, response or notification. */
  | 'OVSDB_BAD_MESSAGE'
  /** A response whose id matches no call in flight. */
  | 'OVSDB_UNKNOWN_REPLY_ID'
  /** A result whose shape does not match the method called (e.g. `transact` returning an object). */
  | 'OVSDB_MALFORMED_REPLY';

/** The peer broke JSON-RPC framing or shape. `offset` is the byte offset in the stream, when known. */
export class OvsdbProtocolError extends OvsdbError {
  constructor(
    code: ProtocolErrorCode,
    message: string,
    readonly offset?: number,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

// ---- call --------------------------------------------------------------------------------------

/** No reply to `method` within `timeoutMs` (`OVSDB_CALL_TIMEOUT`). */
export class OvsdbTimeoutError extends OvsdbError {
  constructor(
    readonly method: string,
    readonly timeoutMs: number,
  ) {
    super('OVSDB_CALL_TIMEOUT', `no reply to ${method} within ${timeoutMs} ms`);
  }
}

/**
 * The server answered with a JSON-RPC error object (RFC 7047 §4.1: `"error": <error>`), e.g.
 * "unknown database", "not supported", or an unknown method (`OVSDB_RPC_ERROR`).
 */
export class OvsdbRpcError extends OvsdbError {
  constructor(
    readonly method: string,
    readonly error: string,
    readonly details: string | undefined,
  ) {
    super('OVSDB_RPC_ERROR', `${method}: ${error}${details ? `: ${details}` : ''}`);
  }
}

// ---- operation (RFC 7047 §4.1.3, §5.2) ---------------------------------------------------------

/**
 * One operation of a transaction failed. `index` is its position in the transaction (equal to the
 * number of operations when the failure is the commit itself: RFC 7047 §4.1.3 "one more element
 * than params"), `op` its kind ("insert", "wait", ... or "commit").
 */
export class OvsdbOperationError extends OvsdbError {
  constructor(
    code: string,
    readonly index: number,
    readonly op: string,
    readonly error: string,
    readonly details: string | undefined,
  ) {
    super(code, `transaction operation ${index} (${op}) failed: ${error}${details ? `: ${details}` : ''}`);
  }
}

/** Declares one operation error class per RFC 7047 error string. */
function operationError(code: string) {
  return class extends OvsdbOperationError {
    constructor(index: number, op: string, error: string, details: string | undefined) {
      super(code, index, op, error, details);
    }
  };
}

/** RFC 7047 §4.1.3: a reference to a row that does not exist, or a root-less row left behind. */
export class ReferentialIntegrityError extends operationError('OVSDB_REFERENTIAL_INTEGRITY') {}
/** RFC 7047 §4.1.3: a column value violates its type's constraints (set size, enum, range, max rows). */
export class ConstraintViolationError extends operationError('OVSDB_CONSTRAINT_VIOLATION') {}
/** RFC 7047 §4.1.3: the server ran out of memory or another resource. */
export class ResourcesExhaustedError extends operationError('OVSDB_RESOURCES_EXHAUSTED') {}
/** RFC 7047 §4.1.3: the commit could not be written to disk. */
export class IoError extends operationError('OVSDB_IO_ERROR') {}
/** RFC 7047 §5.2.1: the same uuid-name used twice in one transaction. */
export class DuplicateUuidNameError extends operationError('OVSDB_DUPLICATE_UUID_NAME') {}
/** RFC 7047 §5.2.4: a mutation's result is outside the domain (e.g. division by zero). */
export class DomainError extends operationError('OVSDB_DOMAIN_ERROR') {}
/** RFC 7047 §5.2.4: a mutation's result does not fit the column's range. */
export class OutOfRangeError extends operationError('OVSDB_RANGE_ERROR') {}
/** RFC 7047 §5.2.6: a `wait` did not see its condition within its timeout. */
export class TimedOutError extends operationError('OVSDB_TIMED_OUT') {}
/** RFC 7047 §5.2.7: `commit` with durable=true on a server that cannot. */
export class NotSupportedError extends operationError('OVSDB_NOT_SUPPORTED') {}
/** RFC 7047 §5.2.8: the transaction contained `abort`. */
export class AbortedError extends operationError('OVSDB_ABORTED') {}
/** RFC 7047 §5.2.10: `assert` on a lock this client does not own. */
export class NotOwnerError extends operationError('OVSDB_NOT_OWNER') {}
/** ovsdb-server(7) §3.1 extension: "syntax error or unknown column" and other strings we do not know. */
export class UnknownOperationError extends operationError('OVSDB_OPERATION_FAILED') {}

type OperationErrorClass = new (index: number, op: string, error: string, details: string | undefined) => OvsdbOperationError;

/**
 * RFC 7047 error strings -> classes. Both spellings of the uuid-name error are listed: the RFC
 * writes "duplicate uuid-name", libovsdb "duplicate uuid name".
 */
export const OPERATION_ERRORS: Readonly<Record<string, OperationErrorClass>> = {
  'referential integrity violation': ReferentialIntegrityError,
  'constraint violation': ConstraintViolationError,
  'resources exhausted': ResourcesExhaustedError,
  'I/O error': IoError,
  'duplicate uuid-name': DuplicateUuidNameError,
  'duplicate uuid name': DuplicateUuidNameError,
  'domain error': DomainError,
  'range error': OutOfRangeError,
  'timed out': TimedOutError,
  'not supported': NotSupportedError,
  aborted: AbortedError,
  'not owner': NotOwnerError,
};

/** The typed error for one failed operation. */
export function operationErrorFor(index: number, op: string, error: string, details: string | undefined): OvsdbOperationError {
  const Cls = Object.hasOwn(OPERATION_ERRORS, error) ? OPERATION_ERRORS[error]! : UnknownOperationError;
  return new Cls(index, op, error, details);
}

// ---- datum / schema ----------------------------------------------------------------------------

/**
 * A value does not fit the schema (`OVSDB_DATUM`), or names a table/column the schema lacks
 * (`OVSDB_SCHEMA`). `path` says where: "Bridge.other_config[datapath-id]".
 */
export class OvsdbDatumError extends OvsdbError {
  constructor(
    code: 'OVSDB_DATUM' | 'OVSDB_SCHEMA',
    readonly path: string,
    message: string,
  ) {
    super(code, `${path}: ${message}`);
  }
}

/**
 * A high-level VSwitch operation found no such bridge/port, or an interface that ovs-vswitchd could
 * not create (`OVSDB_NOT_FOUND`), or waited in vain (`OVSDB_WAIT_TIMEOUT`).
 */
export class VSwitchError extends OvsdbError {
  constructor(code: 'OVSDB_NOT_FOUND' | 'OVSDB_WAIT_TIMEOUT', message: string) {
    super(code, message);
  }
}
