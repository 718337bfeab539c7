/**
 * coat's OVSDB client (RFC 7047): the public surface, listed explicitly.
 *
 * Layers, each pointing down: codecs (framer, jsonrpc, schema, datum, operations, replica: pure)
 * -> channel (transport, session: sockets, framing, ids, echo, deadlines) -> client (methods,
 * monitors, locks, reconnect) -> VSwitch (the Open vSwitch configuration coat needs).
 */
export * from './errors.js';
export { JsonFramer, DEFAULT_MAX_MESSAGE_BYTES, firstInvalidUtf8, type FramerOptions } from './framer.js';
export {
  decodeMessage,
  encodeRequest,
  encodeResponse,
  encodeNotification,
  asErrorObject,
  type JsonValue,
  type RpcId,
  type RpcMessage,
  type RpcRequest,
  type RpcResponse,
  type RpcNotification,
} from './jsonrpc.js';
export {
  parseSchema,
  parseColumnType,
  parseBaseType,
  columnShape,
  tableSchema,
  columnSchema,
  ATOMIC_TYPES,
  type AtomicType,
  type BaseType,
  type ColumnType,
  type ColumnSchema,
  type ColumnShape,
  type TableSchema,
  type DatabaseSchema,
} from './schema.js';
export {
  NamedUuid,
  encodeAtom,
  decodeAtom,
  encodeDatum,
  decodeDatum,
  decodeDiff,
  applyDiff,
  defaultDatum,
  datumEquals,
  encodeRow,
  decodeRow,
  UUID,
  ZERO_UUID,
  type Atom,
  type AtomInput,
  type Datum,
  type DatumInput,
  type Row,
  type WireAtom,
  type WireDatum,
  type WireRow,
  type WireSet,
  type WireMap,
  type EncodeOptions,
} from './datum.js';
export {
  Transaction,
  decodeTransactResult,
  encodeCondition,
  encodeMutation,
  checkLockName,
  type Condition,
  type ConditionFunction,
  type Mutation,
  type Mutator,
  type OperationResult,
  type WireOperation,
  type WireCondition,
  type WireMutation,
  type InsertOptions,
} from './operations.js';
export { Replica, type RowChange } from './replica.js';
export { parseRemote, openSocket, OVSDB_PORT, type Remote, type ConnectOptions } from './transport.js';
export { JsonRpcSession, type SessionOptions, type SessionHandlers } from './session.js';
export {
  OvsdbClient,
  Monitor,
  type OvsdbClientOptions,
  type ReconnectOptions,
  type MonitorMethod,
  type MonitorTable,
  type MonitorOptions,
} from './client.js';
export {
  checkTypedRows,
  TYPED_COLUMNS,
  type OpenVSwitchRow,
  type BridgeRow,
  type PortRow,
  type InterfaceRow,
  type ControllerRow,
  type VSwitchRows,
  type VSwitchTable,
} from './rows.js';
export {
  VSwitch,
  VSWITCH_DB,
  DEFAULT_DATAPATH_TYPE,
  vxlanOptions,
  type BridgeOptions,
  type PortOptions,
  type PortType,
  type VxlanPortOptions,
  type ControllerOptions,
  type InterfaceState,
  type VSwitchConnectOptions,
} from './vswitch.js';
