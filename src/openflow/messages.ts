/**
 * OpenFlow 1.3.5 messages (§7): the `OfpMessage` discriminated union, one codec per message type
 * registered in a table keyed by `ofp_header.type` (Ryu's `_register_parser` idea, no giant
 * switch), and the top-level `decodeMessage` / `encodeMessage` / `encodingLength`.
 *
 * Decoded `Buffer` fields (`data`, opaque payloads) are views into the input, not copies: copy
 * them if the input memory will be reused. Lengths and padding are never stored in the decoded
 * objects; the encoder always computes them.
 */
import { ONF_ET, ONF_EXPERIMENTER_ID, OFPMP as OFPMP_CODE, OFPT, OFP_HEADER_LEN, OFP_MAX_MESSAGE_LEN, OFP_VERSION, type OfptName, type BundleCtrlType, OFPBCT } from './constants.js';
import { OfpError } from './errors.js';
import { actionsLength, decodeActions, decodeInstructions, encodeActions, encodeInstructions, instructionsLength, type Action, type Instruction } from './actions.js';
import { decodeMatch as oxm_decodeMatch, encodeMatch as oxm_encodeMatch, matchLength as oxm_matchLength, matchWireLength as oxm_matchWireLength, type Match } from './oxm.js';
import { MULTIPART_REPLIES, MULTIPART_REQUESTS, OFPMP_BY_CODE, type BodyCodec, type MultipartReplyBody, type MultipartRequestBody } from './multipart.js';
import {
  bucketsLength, decodeBuckets, decodeHelloElements, decodeMeterBands, decodePacketQueue, decodePort, encodeBuckets,
  encodeHelloElements, encodeMeterBands, encodePacketQueue, encodePort, helloElementsLength, meterBandsLength,
  packetQueueLength, PORT_LEN, type Bucket, type HelloElement, type MeterBand, type PacketQueue, type Port,
} from './structs.js';
import { asBuffer as wire_asBuffer, need as wire_need, readMac, writeMac, zero as wire_zero, readU64 as wire_readU64, writeU64 as wire_writeU64 } from './wire.js';

// Hot-path helpers bound once: under a CommonJS-style loader (tsx in tests and benches) every
// access to an imported binding is a getter call, which costs more than the bounds check itself.
const need = wire_need;
const decodeMatch = oxm_decodeMatch;
const encodeMatch = oxm_encodeMatch;
const matchLength = oxm_matchLength;
const matchWireLength = oxm_matchWireLength;
const HEADER_LEN = OFP_HEADER_LEN;
const VERSION = OFP_VERSION;
const TYPE_HELLO = OFPT.hello;
const zero = wire_zero;
const readU64 = wire_readU64;
const writeU64 = wire_writeU64;
const asBuffer = wire_asBuffer;

/** `[master/equal mask, slave mask]`, as in `ofp_async_config` (§7.3.10). */
export type AsyncMaskPair = [number, number];

interface Base<T extends string> {
  type: T;
  xid: number;
}
/** One object type per message name, even when several names share a layout (distributes over T). */
type Msg<T extends string, B> = T extends string ? Base<T> & B : never;

export type HelloMessage = Base<'hello'> & {
  /** Only hello may carry a version other than 1.3 (version negotiation, §6.3.1); default 4. */
  version?: number;
  elements: HelloElement[];
};
/** §7.4.4 `ofp_error_msg`; `data` usually holds the start of the offending request. */
export type StandardErrorMessage = Base<'error'> & { errorType: number; code: number; data: Buffer };
/** §7.4.4 `ofp_error_experimenter_msg` (type OFPET_EXPERIMENTER = 0xffff). */
export type ExperimenterErrorMessage = Base<'error'> & { errorType: 0xffff; expType: number; experimenter: number; data: Buffer };
export type ErrorMessage = StandardErrorMessage | ExperimenterErrorMessage;

export type EchoMessage = Msg<'echo_request' | 'echo_reply', { data: Buffer }>;
export type ExperimenterMessage = Base<'experimenter'> & { experimenter: number; expType: number; data: Buffer };
export type EmptyMessage = Msg<
  'features_request' | 'get_config_request' | 'barrier_request' | 'barrier_reply' | 'get_async_request',
  unknown
>;
export type FeaturesReply = Base<'features_reply'> & {
  datapathId: bigint;
  nBuffers: number;
  nTables: number;
  auxiliaryId: number;
  capabilities: number;
  reserved: number;
};
export type SwitchConfig = Msg<'get_config_reply' | 'set_config', { flags: number; missSendLen: number }>;
export type PacketIn = Base<'packet_in'> & {
  bufferId: number;
  totalLen: number;
  reason: number;
  tableId: number;
  cookie: bigint;
  match: Match;
  data: Buffer;
};
export type FlowRemoved = Base<'flow_removed'> & {
  cookie: bigint;
  priority: number;
  reason: number;
  tableId: number;
  durationSec: number;
  durationNsec: number;
  idleTimeout: number;
  hardTimeout: number;
  packetCount: bigint;
  byteCount: bigint;
  match: Match;
};
export type PortStatus = Base<'port_status'> & { reason: number; port: Port };
export type PacketOut = Base<'packet_out'> & { bufferId: number; inPort: number; actions: Action[]; data: Buffer };
export type FlowMod = Base<'flow_mod'> & {
  cookie: bigint;
  cookieMask: bigint;
  tableId: number;
  command: number;
  idleTimeout: number;
  hardTimeout: number;
  priority: number;
  bufferId: number;
  outPort: number;
  outGroup: number;
  flags: number;
  match: Match;
  instructions: Instruction[];
};
export type GroupMod = Base<'group_mod'> & { command: number; groupType: number; groupId: number; buckets: Bucket[] };
export type PortMod = Base<'port_mod'> & { portNo: number; hwAddr: string; config: number; mask: number; advertise: number };
export type TableMod = Base<'table_mod'> & { tableId: number; config: number };
export type MultipartRequest = Base<'multipart_request'> & { flags: number; body: MultipartRequestBody };
export type MultipartReply = Base<'multipart_reply'> & { flags: number; body: MultipartReplyBody };
export type QueueGetConfigRequest = Base<'queue_get_config_request'> & { port: number };
export type QueueGetConfigReply = Base<'queue_get_config_reply'> & { port: number; queues: PacketQueue[] };
export type RoleMessage = Msg<'role_request' | 'role_reply', { role: number; generationId: bigint }>;
export type AsyncConfig = Msg<
  'get_async_reply' | 'set_async',
  { packetInMask: AsyncMaskPair; portStatusMask: AsyncMaskPair; flowRemovedMask: AsyncMaskPair }
>;
export type MeterMod = Base<'meter_mod'> & { command: number; flags: number; meterId: number; bands: MeterBand[] };
/** ONF EXT-230 bundle control (OpenFlow 1.4 §7.3.9 carried as an ONF experimenter message in 1.3). */
export type BundleControl = Base<'bundle_control'> & {
  bundleId: number;
  controlType: BundleCtrlType;
  flags: number;
  /** Bundle properties (`ofp_bundle_prop_*`), kept verbatim. */
  properties: Buffer;
};
/** ONF EXT-230 bundle add: `message` is a whole inner OpenFlow message, encoded with this codec. */
export type BundleAdd = Base<'bundle_add'> & {
  bundleId: number;
  flags: number;
  message: OfpMessage;
  /** Bytes after the inner message (padding and properties), kept verbatim. */
  properties: Buffer;
};

export type OfpMessage =
  | HelloMessage
  | ErrorMessage
  | EchoMessage
  | ExperimenterMessage
  | EmptyMessage
  | FeaturesReply
  | SwitchConfig
  | PacketIn
  | FlowRemoved
  | PortStatus
  | PacketOut
  | FlowMod
  | GroupMod
  | PortMod
  | TableMod
  | MultipartRequest
  | MultipartReply
  | QueueGetConfigRequest
  | QueueGetConfigReply
  | RoleMessage
  | AsyncConfig
  | MeterMod
  | BundleControl
  | BundleAdd;
export type OfpMessageType = OfpMessage['type'];
export type MessageOf<T extends OfpMessageType> = Extract<OfpMessage, { type: T }>;

/** A body codec: `off` is the first byte after the 8-byte header, `end` the message end. */
interface MessageCodec<M> {
  decode(buf: Buffer, off: number, end: number, xid: number): M;
  encode(m: M, buf: Buffer, off: number): number;
  length(m: M): number;
}

function exactly(off: number, end: number, n: number, what: string): void {
  if (end - off < n) throw new OfpError('OFP_TRUNCATED', off, `${what} body fits in ${end - off} bytes`, `needs ${n}`);
  if (end - off > n) throw new OfpError('OFP_TRAILING_BYTES', off + n, `${what} body is ${n} bytes`, `got ${end - off}`);
}

function emptyMessage<T extends EmptyMessage['type']>(type: T): MessageCodec<MessageOf<T>> {
  return {
    decode: (_b, off, end, xid) => (exactly(off, end, 0, type), { type, xid }) as MessageOf<T>,
    encode: (_m, _b, off) => off,
    length: () => 0,
  };
}

function opaqueData<T extends 'echo_request' | 'echo_reply'>(type: T): MessageCodec<EchoMessage> {
  return {
    decode: (buf, off, end, xid) => ({ type, xid, data: buf.subarray(off, end) }),
    encode: (m, buf, off) => off + m.data.copy(buf, off),
    length: (m) => m.data.length,
  };
}

const switchConfig = <T extends SwitchConfig['type']>(type: T): MessageCodec<SwitchConfig> => ({
  decode: (buf, off, end, xid) => (exactly(off, end, 4, type), { type, xid, flags: buf.readUInt16BE(off), missSendLen: buf.readUInt16BE(off + 2) }),
  encode: (m, buf, off) => buf.writeUInt16BE(m.missSendLen, buf.writeUInt16BE(m.flags, off)),
  length: () => 4,
});

const roleMessage = <T extends RoleMessage['type']>(type: T): MessageCodec<RoleMessage> => ({
  decode: (buf, off, end, xid) => (exactly(off, end, 16, type), { type, xid, role: buf.readUInt32BE(off), generationId: readU64(buf, off + 8) }),
  encode: (m, buf, off) => (buf.writeUInt32BE(m.role, off), zero(buf, off + 4, 4), writeU64(buf, m.generationId, off + 8)),
  length: () => 16,
});

const asyncConfig = <T extends AsyncConfig['type']>(type: T): MessageCodec<AsyncConfig> => ({
  decode: (buf, off, end, xid) => {
    exactly(off, end, 24, type);
    const pair = (p: number): AsyncMaskPair => [buf.readUInt32BE(p), buf.readUInt32BE(p + 4)];
    return { type, xid, packetInMask: pair(off), portStatusMask: pair(off + 8), flowRemovedMask: pair(off + 16) };
  },
  encode: (m, buf, off) => {
    for (const pair of [m.packetInMask, m.portStatusMask, m.flowRemovedMask]) {
      if (pair.length !== 2) throw new OfpError('OFP_ENCODE_INVALID', off, 'async mask is a [master/equal, slave] pair');
      off = buf.writeUInt32BE(pair[1], buf.writeUInt32BE(pair[0], off));
    }
    return off;
  },
  length: () => 24,
});

function multipart<T extends 'multipart_request' | 'multipart_reply'>(
  type: T,
  table: Record<string, BodyCodec<never>>,
): MessageCodec<MessageOf<T>> {
  const codecs = table as unknown as Record<string, BodyCodec<MultipartRequestBody | MultipartReplyBody>>;
  type M = MultipartRequest | MultipartReply;
  return {
    decode: (buf, off, end, xid) => {
      need(off, 8, end, `ofp_${type}`);
      const code = buf.readUInt16BE(off);
      const name = OFPMP_BY_CODE.get(code);
      if (name === undefined) throw new OfpError('OFP_BAD_MULTIPART', off, `ofp_${type}.type is an OFPMP_* value`, `got ${code}`);
      return { type, xid, flags: buf.readUInt16BE(off + 2), body: codecs[name]!.decode(buf, off + 8, end) } as MessageOf<T>;
    },
    encode: (msg, buf, off) => {
      const m = msg as M;
      const c = codecs[m.body.type];
      if (c === undefined) throw new OfpError('OFP_ENCODE_INVALID', off, 'multipart body.type is an OFPMP_* name', `got ${String(m.body.type)}`);
      buf.writeUInt16BE(OFPMP_CODE[m.body.type], off);
      buf.writeUInt16BE(m.flags, off + 2);
      zero(buf, off + 4, 4);
      return c.encode(m.body, buf, off + 8);
    },
    length: (msg) => {
      const m = msg as M;
      const c = codecs[m.body.type];
      if (c === undefined) throw new OfpError('OFP_ENCODE_INVALID', 0, 'multipart body.type is an OFPMP_* name', `got ${String(m.body.type)}`);
      return 8 + c.length(m.body);
    },
  };
}

const BCT_BY_CODE = new Map<number, BundleCtrlType>((Object.keys(OFPBCT) as BundleCtrlType[]).map((k) => [OFPBCT[k], k]));

/** The ONF experimenter messages we model, keyed by exp_type; their bodies start after exp_type. */
const ONF_MESSAGES: Record<number, MessageCodec<BundleControl | BundleAdd>> = {
  [ONF_ET.bundle_control]: {
    decode: (buf, off, end, xid) => {
      need(off, 8, end, 'ofp_bundle_ctrl_msg');
      const code = buf.readUInt16BE(off + 4);
      const controlType = BCT_BY_CODE.get(code);
      if (controlType === undefined) throw new OfpError('OFP_BAD_TYPE', off + 4, 'ofp_bundle_ctrl_msg.type is an OFPBCT_* value', `got ${code}`);
      return { type: 'bundle_control', xid, bundleId: buf.readUInt32BE(off), controlType, flags: buf.readUInt16BE(off + 6), properties: buf.subarray(off + 8, end) };
    },
    encode: (m, buf, off) => {
      const b = m as BundleControl;
      const code = OFPBCT[b.controlType];
      if (code === undefined) throw new OfpError('OFP_ENCODE_INVALID', off, 'bundle controlType is an OFPBCT_* name', `got ${String(b.controlType)}`);
      buf.writeUInt32BE(b.bundleId, off);
      buf.writeUInt16BE(code, off + 4);
      buf.writeUInt16BE(b.flags, off + 6);
      return off + 8 + b.properties.copy(buf, off + 8);
    },
    length: (m) => 8 + (m as BundleControl).properties.length,
  },
  [ONF_ET.bundle_add]: {
    decode: (buf, off, end, xid) => {
      need(off, 8 + OFP_HEADER_LEN, end, 'ofp_bundle_add_msg');
      const innerLen = buf.readUInt16BE(off + 8 + 2);
      if (innerLen < HEADER_LEN) throw new OfpError('OFP_BAD_LENGTH', off + 10, 'bundle_add inner ofp_header.length >= 8', `got ${innerLen}`);
      need(off + 8, innerLen, end, 'bundle_add inner message');
      // OpenFlow 1.4 §7.3.9.6: a bundle cannot carry bundle messages (this also bounds recursion).
      if (buf[off + 9] === OFPT.experimenter && innerLen >= 16 && buf.readUInt32BE(off + 16) === ONF_EXPERIMENTER_ID) {
        throw new OfpError('OFP_BAD_TYPE', off + 8, 'bundle_add inner message is not an ONF experimenter (bundle) message');
      }
      const message = decodeOne(buf, off + 8, off + 8 + innerLen);
      return { type: 'bundle_add', xid, bundleId: buf.readUInt32BE(off), flags: buf.readUInt16BE(off + 6), message, properties: buf.subarray(off + 8 + innerLen, end) };
    },
    encode: (m, buf, off) => {
      const b = m as BundleAdd;
      if (b.message.type === 'bundle_add' || b.message.type === 'bundle_control') {
        throw new OfpError('OFP_ENCODE_INVALID', off, 'bundle_add inner message is not a bundle message');
      }
      buf.writeUInt32BE(b.bundleId, off);
      zero(buf, off + 4, 2);
      buf.writeUInt16BE(b.flags, off + 6);
      const p = encodeOne(b.message, buf, off + 8);
      return p + b.properties.copy(buf, p);
    },
    length: (m) => 8 + encodingLength((m as BundleAdd).message) + (m as BundleAdd).properties.length,
  },
};

/** `ofp_experimenter_header` (§7.5.4): ONF bundle messages are decoded, anything else kept opaque. */
const experimenterMessage: MessageCodec<ExperimenterMessage | BundleControl | BundleAdd> = {
  decode: (buf, off, end, xid) => {
    need(off, 8, end, 'ofp_experimenter_header');
    const experimenter = buf.readUInt32BE(off);
    const expType = buf.readUInt32BE(off + 4);
    const onf = experimenter === ONF_EXPERIMENTER_ID ? ONF_MESSAGES[expType] : undefined;
    if (onf) return onf.decode(buf, off + 8, end, xid);
    return { type: 'experimenter', xid, experimenter, expType, data: buf.subarray(off + 8, end) };
  },
  encode: (m, buf, off) => {
    if (m.type === 'experimenter') {
      buf.writeUInt32BE(m.experimenter, off);
      buf.writeUInt32BE(m.expType, off + 4);
      return off + 8 + m.data.copy(buf, off + 8);
    }
    buf.writeUInt32BE(ONF_EXPERIMENTER_ID, off);
    buf.writeUInt32BE(ONF_ET[m.type], off + 4);
    return ONF_MESSAGES[ONF_ET[m.type]]!.encode(m, buf, off + 8);
  },
  length: (m) => 8 + (m.type === 'experimenter' ? m.data.length : ONF_MESSAGES[ONF_ET[m.type]]!.length(m)),
};

/** One codec per message type, keyed by our type name. */
const MESSAGES: { [T in OfpMessageType]: MessageCodec<MessageOf<T>> } = {
  hello: {
    decode: (buf, off, end, xid) => ({ type: 'hello', xid, elements: decodeHelloElements(buf, off, end) }),
    encode: (m, buf, off) => encodeHelloElements(m.elements, buf, off),
    length: (m) => helloElementsLength(m.elements),
  },
  error: {
    decode: (buf, off, end, xid) => {
      need(off, 4, end, 'ofp_error_msg');
      const errorType = buf.readUInt16BE(off);
      if (errorType === 0xffff) {
        need(off, 8, end, 'ofp_error_experimenter_msg');
        return { type: 'error', xid, errorType, expType: buf.readUInt16BE(off + 2), experimenter: buf.readUInt32BE(off + 4), data: buf.subarray(off + 8, end) };
      }
      return { type: 'error', xid, errorType, code: buf.readUInt16BE(off + 2), data: buf.subarray(off + 4, end) };
    },
    encode: (m, buf, off) => {
      buf.writeUInt16BE(m.errorType, off);
      if ('experimenter' in m) {
        buf.writeUInt16BE(m.expType, off + 2);
        buf.writeUInt32BE(m.experimenter, off + 4);
        return off + 8 + m.data.copy(buf, off + 8);
      }
      buf.writeUInt16BE(m.code, off + 2);
      return off + 4 + m.data.copy(buf, off + 4);
    },
    length: (m) => ('experimenter' in m ? 8 : 4) + m.data.length,
  },
  echo_request: opaqueData('echo_request') as MessageCodec<MessageOf<'echo_request'>>,
  echo_reply: opaqueData('echo_reply') as MessageCodec<MessageOf<'echo_reply'>>,
  experimenter: experimenterMessage as MessageCodec<ExperimenterMessage>,
  bundle_control: experimenterMessage as MessageCodec<BundleControl>,
  bundle_add: experimenterMessage as MessageCodec<BundleAdd>,
  features_request: emptyMessage('features_request'),
  features_reply: {
    decode: (buf, off, end, xid) => (
      exactly(off, end, 24, 'features_reply'),
      {
        type: 'features_reply',
        xid,
        datapathId: readU64(buf, off),
        nBuffers: buf.readUInt32BE(off + 8),
        nTables: buf[off + 12]!,
        auxiliaryId: buf[off + 13]!,
        capabilities: buf.readUInt32BE(off + 16),
        reserved: buf.readUInt32BE(off + 20),
      }
    ),
    encode: (m, buf, off) => {
      writeU64(buf, m.datapathId, off);
      buf.writeUInt32BE(m.nBuffers, off + 8);
      buf.writeUInt8(m.nTables, off + 12);
      buf.writeUInt8(m.auxiliaryId, off + 13);
      zero(buf, off + 14, 2);
      buf.writeUInt32BE(m.capabilities, off + 16);
      return buf.writeUInt32BE(m.reserved, off + 20);
    },
    length: () => 24,
  },
  get_config_request: emptyMessage('get_config_request'),
  get_config_reply: switchConfig('get_config_reply') as MessageCodec<MessageOf<'get_config_reply'>>,
  set_config: switchConfig('set_config') as MessageCodec<MessageOf<'set_config'>>,
  packet_in: {
    // §7.4.1: fixed part (16), match (padded), 2 bytes pad, then the frame.
    decode: (buf, off, end, xid) => {
      need(off, 16, end, 'ofp_packet_in');
      const match = decodeMatch(buf, off + 16, end);
      const dataOff = off + 16 + matchWireLength(buf, off + 16) + 2;
      need(dataOff - 2, 2, end, 'ofp_packet_in pad');
      return {
        type: 'packet_in',
        xid,
        bufferId: buf.readUInt32BE(off),
        totalLen: buf.readUInt16BE(off + 4),
        reason: buf[off + 6]!,
        tableId: buf[off + 7]!,
        cookie: readU64(buf, off + 8),
        match,
        data: buf.subarray(dataOff, end),
      };
    },
    encode: (m, buf, off) => {
      buf.writeUInt32BE(m.bufferId, off);
      buf.writeUInt16BE(m.totalLen, off + 4);
      buf.writeUInt8(m.reason, off + 6);
      buf.writeUInt8(m.tableId, off + 7);
      writeU64(buf, m.cookie, off + 8);
      const p = zero(buf, encodeMatch(m.match, buf, off + 16), 2);
      return p + m.data.copy(buf, p);
    },
    length: (m) => 16 + matchLength(m.match) + 2 + m.data.length,
  },
  flow_removed: {
    decode: (buf, off, end, xid) => {
      need(off, 40, end, 'ofp_flow_removed');
      const match = decodeMatch(buf, off + 40, end);
      exactly(off, end, 40 + matchWireLength(buf, off + 40), 'flow_removed');
      return {
        type: 'flow_removed',
        xid,
        cookie: readU64(buf, off),
        priority: buf.readUInt16BE(off + 8),
        reason: buf[off + 10]!,
        tableId: buf[off + 11]!,
        durationSec: buf.readUInt32BE(off + 12),
        durationNsec: buf.readUInt32BE(off + 16),
        idleTimeout: buf.readUInt16BE(off + 20),
        hardTimeout: buf.readUInt16BE(off + 22),
        packetCount: readU64(buf, off + 24),
        byteCount: readU64(buf, off + 32),
        match,
      };
    },
    encode: (m, buf, off) => {
      writeU64(buf, m.cookie, off);
      buf.writeUInt16BE(m.priority, off + 8);
      buf.writeUInt8(m.reason, off + 10);
      buf.writeUInt8(m.tableId, off + 11);
      buf.writeUInt32BE(m.durationSec, off + 12);
      buf.writeUInt32BE(m.durationNsec, off + 16);
      buf.writeUInt16BE(m.idleTimeout, off + 20);
      buf.writeUInt16BE(m.hardTimeout, off + 22);
      writeU64(buf, m.packetCount, off + 24);
      writeU64(buf, m.byteCount, off + 32);
      return encodeMatch(m.match, buf, off + 40);
    },
    length: (m) => 40 + matchLength(m.match),
  },
  port_status: {
    decode: (buf, off, end, xid) => (exactly(off, end, 8 + PORT_LEN, 'port_status'), { type: 'port_status', xid, reason: buf[off]!, port: decodePort(buf, off + 8, end) }),
    encode: (m, buf, off) => (buf.writeUInt8(m.reason, off), zero(buf, off + 1, 7), encodePort(m.port, buf, off + 8)),
    length: () => 8 + PORT_LEN,
  },
  packet_out: {
    // §7.3.7: buffer_id, in_port, actions_len, pad[6], actions, then the frame.
    decode: (buf, off, end, xid) => {
      need(off, 16, end, 'ofp_packet_out');
      const actionsLen = buf.readUInt16BE(off + 8);
      need(off + 16, actionsLen, end, 'ofp_packet_out.actions_len');
      return {
        type: 'packet_out',
        xid,
        bufferId: buf.readUInt32BE(off),
        inPort: buf.readUInt32BE(off + 4),
        actions: decodeActions(buf, off + 16, off + 16 + actionsLen),
        data: buf.subarray(off + 16 + actionsLen, end),
      };
    },
    encode: (m, buf, off) => {
      buf.writeUInt32BE(m.bufferId, off);
      buf.writeUInt32BE(m.inPort, off + 4);
      zero(buf, off + 10, 6);
      const p = encodeActions(m.actions, buf, off + 16);
      buf.writeUInt16BE(p - off - 16, off + 8);
      return p + m.data.copy(buf, p);
    },
    length: (m) => 16 + actionsLength(m.actions) + m.data.length,
  },
  flow_mod: {
    decode: (buf, off, end, xid) => {
      need(off, 40, end, 'ofp_flow_mod');
      const match = decodeMatch(buf, off + 40, end);
      return {
        type: 'flow_mod',
        xid,
        cookie: readU64(buf, off),
        cookieMask: readU64(buf, off + 8),
        tableId: buf[off + 16]!,
        command: buf[off + 17]!,
        idleTimeout: buf.readUInt16BE(off + 18),
        hardTimeout: buf.readUInt16BE(off + 20),
        priority: buf.readUInt16BE(off + 22),
        bufferId: buf.readUInt32BE(off + 24),
        outPort: buf.readUInt32BE(off + 28),
        outGroup: buf.readUInt32BE(off + 32),
        flags: buf.readUInt16BE(off + 36),
        match,
        instructions: decodeInstructions(buf, off + 40 + matchWireLength(buf, off + 40), end),
      };
    },
    encode: (m, buf, off) => {
      writeU64(buf, m.cookie, off);
      writeU64(buf, m.cookieMask, off + 8);
      buf.writeUInt8(m.tableId, off + 16);
      buf.writeUInt8(m.command, off + 17);
      buf.writeUInt16BE(m.idleTimeout, off + 18);
      buf.writeUInt16BE(m.hardTimeout, off + 20);
      buf.writeUInt16BE(m.priority, off + 22);
      buf.writeUInt32BE(m.bufferId, off + 24);
      buf.writeUInt32BE(m.outPort, off + 28);
      buf.writeUInt32BE(m.outGroup, off + 32);
      buf.writeUInt16BE(m.flags, off + 36);
      zero(buf, off + 38, 2);
      return encodeInstructions(m.instructions, buf, encodeMatch(m.match, buf, off + 40));
    },
    length: (m) => 40 + matchLength(m.match) + instructionsLength(m.instructions),
  },
  group_mod: {
    decode: (buf, off, end, xid) => (
      need(off, 8, end, 'ofp_group_mod'),
      { type: 'group_mod', xid, command: buf.readUInt16BE(off), groupType: buf[off + 2]!, groupId: buf.readUInt32BE(off + 4), buckets: decodeBuckets(buf, off + 8, end) }
    ),
    encode: (m, buf, off) => {
      buf.writeUInt16BE(m.command, off);
      buf.writeUInt8(m.groupType, off + 2);
      buf.writeUInt8(0, off + 3);
      buf.writeUInt32BE(m.groupId, off + 4);
      return encodeBuckets(m.buckets, buf, off + 8);
    },
    length: (m) => 8 + bucketsLength(m.buckets),
  },
  port_mod: {
    decode: (buf, off, end, xid) => (
      exactly(off, end, 32, 'port_mod'),
      {
        type: 'port_mod',
        xid,
        portNo: buf.readUInt32BE(off),
        hwAddr: readMac(buf, off + 8),
        config: buf.readUInt32BE(off + 16),
        mask: buf.readUInt32BE(off + 20),
        advertise: buf.readUInt32BE(off + 24),
      }
    ),
    encode: (m, buf, off) => {
      buf.writeUInt32BE(m.portNo, off);
      zero(buf, off + 4, 4);
      writeMac(buf, off + 8, m.hwAddr, 'ofp_port_mod.hw_addr');
      zero(buf, off + 14, 2);
      buf.writeUInt32BE(m.config, off + 16);
      buf.writeUInt32BE(m.mask, off + 20);
      buf.writeUInt32BE(m.advertise, off + 24);
      return zero(buf, off + 28, 4);
    },
    length: () => 32,
  },
  table_mod: {
    decode: (buf, off, end, xid) => (exactly(off, end, 8, 'table_mod'), { type: 'table_mod', xid, tableId: buf[off]!, config: buf.readUInt32BE(off + 4) }),
    encode: (m, buf, off) => (buf.writeUInt8(m.tableId, off), zero(buf, off + 1, 3), buf.writeUInt32BE(m.config, off + 4)),
    length: () => 8,
  },
  multipart_request: multipart('multipart_request', MULTIPART_REQUESTS as unknown as Record<string, BodyCodec<never>>),
  multipart_reply: multipart('multipart_reply', MULTIPART_REPLIES as unknown as Record<string, BodyCodec<never>>),
  barrier_request: emptyMessage('barrier_request'),
  barrier_reply: emptyMessage('barrier_reply'),
  queue_get_config_request: {
    decode: (buf, off, end, xid) => (exactly(off, end, 8, 'queue_get_config_request'), { type: 'queue_get_config_request', xid, port: buf.readUInt32BE(off) }),
    encode: (m, buf, off) => zero(buf, buf.writeUInt32BE(m.port, off), 4),
    length: () => 8,
  },
  queue_get_config_reply: {
    decode: (buf, off, end, xid) => {
      need(off, 8, end, 'ofp_queue_get_config_reply');
      const queues: PacketQueue[] = [];
      for (let p = off + 8; p < end; p += buf.readUInt16BE(p + 8)) queues.push(decodePacketQueue(buf, p, end));
      return { type: 'queue_get_config_reply', xid, port: buf.readUInt32BE(off), queues };
    },
    encode: (m, buf, off) => {
      let p = zero(buf, buf.writeUInt32BE(m.port, off), 4);
      for (const q of m.queues) p = encodePacketQueue(q, buf, p);
      return p;
    },
    length: (m) => m.queues.reduce((n, q) => n + packetQueueLength(q), 8),
  },
  role_request: roleMessage('role_request') as MessageCodec<MessageOf<'role_request'>>,
  role_reply: roleMessage('role_reply') as MessageCodec<MessageOf<'role_reply'>>,
  get_async_request: emptyMessage('get_async_request'),
  get_async_reply: asyncConfig('get_async_reply') as MessageCodec<MessageOf<'get_async_reply'>>,
  set_async: asyncConfig('set_async') as MessageCodec<MessageOf<'set_async'>>,
  meter_mod: {
    decode: (buf, off, end, xid) => (
      need(off, 8, end, 'ofp_meter_mod'),
      { type: 'meter_mod', xid, command: buf.readUInt16BE(off), flags: buf.readUInt16BE(off + 2), meterId: buf.readUInt32BE(off + 4), bands: decodeMeterBands(buf, off + 8, end) }
    ),
    encode: (m, buf, off) => {
      buf.writeUInt16BE(m.command, off);
      buf.writeUInt16BE(m.flags, off + 2);
      buf.writeUInt32BE(m.meterId, off + 4);
      return encodeMeterBands(m.bands, buf, off + 8);
    },
    length: (m) => 8 + meterBandsLength(m.bands),
  },
};

/** Wire type code per message name; bundle messages travel as OFPT_EXPERIMENTER. */
function wireType(type: OfpMessageType): number | undefined {
  return type === 'bundle_control' || type === 'bundle_add' ? OFPT.experimenter : (OFPT as Record<string, number>)[type];
}

/** Decoder table indexed by `ofp_header.type`. */
const DECODERS: (MessageCodec<OfpMessage> | undefined)[] = [];
for (const name of Object.keys(OFPT) as OfptName[]) DECODERS[OFPT[name]] = MESSAGES[name] as MessageCodec<OfpMessage>;

/** Decodes the message whose header is at `off`; `end` is where the enclosing input ends. */
function decodeOne(buf: Buffer, off: number, end: number): OfpMessage {
  need(off, HEADER_LEN, end, 'ofp_header');
  const version = buf[off]!;
  const type = buf[off + 1]!;
  const length = buf.readUInt16BE(off + 2);
  const xid = buf.readUInt32BE(off + 4);
  if (length < HEADER_LEN) throw new OfpError('OFP_BAD_LENGTH', off + 2, 'ofp_header.length >= 8', `got ${length}`);
  need(off, length, end, 'ofp_header.length');
  const msgEnd = off + length;
  if (version !== VERSION) {
    // Version negotiation (§6.3.1): a hello of any version must be readable.
    if (type === TYPE_HELLO) {
      const m = MESSAGES.hello.decode(buf, off + 8, msgEnd, xid);
      m.version = version;
      return m;
    }
    throw new OfpError('OFP_BAD_VERSION', off, 'ofp_header.version == 0x04', `got 0x${version.toString(16).padStart(2, '0')}`);
  }
  const codec = DECODERS[type];
  if (codec === undefined) throw new OfpError('OFP_BAD_TYPE', off + 1, 'ofp_header.type is an OFPT_* value of OpenFlow 1.3', `got ${type}`);
  return codec.decode(buf, off + HEADER_LEN, msgEnd, xid);
}

function codecOf(msg: OfpMessage): MessageCodec<OfpMessage> {
  const codec = (MESSAGES as Record<string, MessageCodec<OfpMessage> | undefined>)[msg?.type];
  if (codec === undefined) throw new OfpError('OFP_ENCODE_INVALID', 0, 'message.type is an OpenFlow 1.3 message name', `got ${String(msg?.type)}`);
  return codec;
}

function encodeOne(msg: OfpMessage, buf: Buffer, off: number): number {
  const end = codecOf(msg).encode(msg, buf, off + OFP_HEADER_LEN);
  const length = end - off;
  if (length > OFP_MAX_MESSAGE_LEN) throw new OfpError('OFP_ENCODE_TOO_LONG', off, 'ofp_header.length <= 65535', `got ${length}`);
  buf.writeUInt8(msg.type === 'hello' ? msg.version ?? OFP_VERSION : OFP_VERSION, off);
  buf.writeUInt8(wireType(msg.type)!, off + 1);
  buf.writeUInt16BE(length, off + 2);
  buf.writeUInt32BE(msg.xid, off + 4);
  return end;
}

/** Turns Node's range/type errors from Buffer writes (a value too large, a missing field) into OFP_ENCODE_INVALID. */
function encodeError(err: unknown, off: number): unknown {
  if (err instanceof OfpError) return err;
  if (err instanceof RangeError || err instanceof TypeError) {
    return new OfpError('OFP_ENCODE_INVALID', off, 'every field value fits its wire type', (err as Error).message, { cause: err });
  }
  return err;
}

// ---------------------------------------------------------------------------------------------
// Public API.

/** Decodes exactly one whole message starting at `offset`; the input may continue after it. */
export function decodeMessage(bytes: Uint8Array, offset = 0): OfpMessage {
  const buf = asBuffer(bytes);
  if (!Number.isInteger(offset) || offset < 0) throw new OfpError('OFP_TRUNCATED', 0, 'offset is a non-negative integer', `got ${offset}`);
  return decodeOne(buf, offset, buf.length);
}

/** Length in bytes of the header's `length` at `offset`, or undefined when fewer than 4 bytes are there. */
export function peekLength(bytes: Uint8Array, offset = 0): number | undefined {
  return offset + 4 <= bytes.length ? (bytes[offset + 2]! << 8) | bytes[offset + 3]! : undefined;
}

/** The exact number of bytes `encodeMessage(msg)` produces. */
export function encodingLength(msg: OfpMessage): number {
  try {
    return OFP_HEADER_LEN + codecOf(msg).length(msg);
  } catch (err) {
    throw encodeError(err, 0);
  }
}

/** Encodes `msg` into `buf` at `offset`; returns the number of bytes written. */
export function encodeMessageInto(msg: OfpMessage, buf: Uint8Array, offset = 0): number {
  return encodeChecked(msg, asBuffer(buf), offset, encodingLength(msg));
}

function encodeChecked(msg: OfpMessage, out: Buffer, offset: number, len: number): number {
  if (offset < 0 || offset + len > out.length) {
    throw new OfpError('OFP_ENCODE_INVALID', offset, `the target buffer has ${len} bytes free at the offset`, `has ${Math.max(0, out.length - offset)}`);
  }
  let end: number;
  try {
    end = encodeOne(msg, out, offset);
  } catch (err) {
    throw encodeError(err, offset);
  }
  if (end - offset !== len) throw new OfpError('OFP_ENCODE_INVALID', offset, 'encoded length equals encodingLength()', `wrote ${end - offset}, expected ${len}`);
  return len;
}

/** Encodes `msg` into a new Buffer, lengths and padding computed. */
export function encodeMessage(msg: OfpMessage): Buffer {
  const len = encodingLength(msg);
  // Every byte is written (padding explicitly zeroed), so the buffer need not be pre-zeroed.
  const buf = Buffer.allocUnsafe(len);
  encodeChecked(msg, buf, 0, len);
  return buf;
}

/** Decodes every message in a buffer of concatenated whole messages (a capture file). */
export function decodeAll(bytes: Uint8Array): OfpMessage[] {
  const buf = asBuffer(bytes);
  const out: OfpMessage[] = [];
  let off = 0;
  while (off < buf.length) {
    out.push(decodeOne(buf, off, buf.length));
    off += buf.readUInt16BE(off + 2);
  }
  return out;
}
