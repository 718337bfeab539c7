/**
 * Multipart request and reply bodies (OpenFlow 1.3.5 §7.3.5), one codec per `OFPMP_*` type,
 * registered in two tables (requests, replies) keyed by the wire type.
 */
import { DESC_STR_LEN, OFPMP, OFPTFPT, OFP_MAX_TABLE_NAME_LEN, SERIAL_NUM_LEN, type OfpmpName, type OfptfptName } from './constants.js';
import { OfpError } from './errors.js';
import { decodeInstructions, encodeInstructions, instructionsLength, type Instruction } from './actions.js';
import { decodeMatch, encodeMatch, matchLength, matchWireLength, type Match } from './oxm.js';
import {
  bucketsLength, decodeBuckets, decodeMeterBands, decodePort, encodeBuckets, encodeMeterBands, encodePort,
  meterBandsLength, PORT_LEN, type Bucket, type MeterBand, type Port,
} from './structs.js';
import { align8, need, readFixedString, structEnd, writeFixedString, zero, readU64, writeU64 } from './wire.js';

// ---------------------------------------------------------------------------------------------
// Entry types.

export interface FlowStatsRequest {
  tableId: number;
  outPort: number;
  outGroup: number;
  cookie: bigint;
  cookieMask: bigint;
  match: Match;
}

export interface FlowStats {
  tableId: number;
  durationSec: number;
  durationNsec: number;
  priority: number;
  idleTimeout: number;
  hardTimeout: number;
  flags: number;
  cookie: bigint;
  packetCount: bigint;
  byteCount: bigint;
  match: Match;
  instructions: Instruction[];
}

export interface TableStats {
  tableId: number;
  activeCount: number;
  lookupCount: bigint;
  matchedCount: bigint;
}

export interface PortStats {
  portNo: number;
  rxPackets: bigint;
  txPackets: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  rxDropped: bigint;
  txDropped: bigint;
  rxErrors: bigint;
  txErrors: bigint;
  rxFrameErr: bigint;
  rxOverErr: bigint;
  rxCrcErr: bigint;
  collisions: bigint;
  durationSec: number;
  durationNsec: number;
}

export interface QueueStats {
  portNo: number;
  queueId: number;
  txBytes: bigint;
  txPackets: bigint;
  txErrors: bigint;
  durationSec: number;
  durationNsec: number;
}

export interface BucketCounter {
  packetCount: bigint;
  byteCount: bigint;
}

export interface GroupStats {
  groupId: number;
  refCount: number;
  packetCount: bigint;
  byteCount: bigint;
  durationSec: number;
  durationNsec: number;
  bucketStats: BucketCounter[];
}

export interface GroupDesc {
  groupType: number;
  groupId: number;
  buckets: Bucket[];
}

export interface MeterBandStats {
  packetBandCount: bigint;
  byteBandCount: bigint;
}

export interface MeterStats {
  meterId: number;
  flowCount: number;
  packetInCount: bigint;
  byteInCount: bigint;
  durationSec: number;
  durationNsec: number;
  bandStats: MeterBandStats[];
}

export interface MeterConfig {
  flags: number;
  meterId: number;
  bands: MeterBand[];
}

/** An action or instruction id in a table-features property (§7.3.5.5.2): the type, plus experimenter bytes. */
export interface FeatureId {
  id: number;
  /** Bytes after the 4-byte type/len header (the experimenter id and more); empty for standard ids. */
  data: Buffer;
}

/** An OXM id (§7.3.5.5.2): the OXM header alone, plus the experimenter id for the experimenter class. */
export interface OxmId {
  oxmClass: number;
  oxmField: number;
  hasMask: boolean;
  /** The payload length the OXM header announces (not a length of this structure). */
  payloadLength: number;
  experimenter?: number;
}

type PropOf<T extends string, B> = { type: T } & B;
export type TableFeatureProperty =
  | PropOf<'instructions' | 'instructions_miss', { instructionIds: FeatureId[] }>
  | PropOf<'next_tables' | 'next_tables_miss', { tableIds: number[] }>
  | PropOf<'write_actions' | 'write_actions_miss' | 'apply_actions' | 'apply_actions_miss', { actionIds: FeatureId[] }>
  | PropOf<'match' | 'wildcards' | 'write_setfield' | 'write_setfield_miss' | 'apply_setfield' | 'apply_setfield_miss', { oxmIds: OxmId[] }>
  | PropOf<'experimenter' | 'experimenter_miss', { experimenter: number; expType: number; data: Buffer }>
  | { type: 'unknown'; propType: number; data: Buffer };

export interface TableFeatures {
  tableId: number;
  name: string;
  metadataMatch: bigint;
  metadataWrite: bigint;
  config: number;
  maxEntries: number;
  properties: TableFeatureProperty[];
}

export interface ExperimenterBody {
  experimenter: number;
  expType: number;
  data: Buffer;
}

// ---------------------------------------------------------------------------------------------
// Bodies.

export type MultipartRequestBody =
  | { type: 'desc' }
  | ({ type: 'flow' } & FlowStatsRequest)
  | ({ type: 'aggregate' } & FlowStatsRequest)
  | { type: 'table' }
  | { type: 'port_stats'; portNo: number }
  | { type: 'queue'; portNo: number; queueId: number }
  | { type: 'group'; groupId: number }
  | { type: 'group_desc' }
  | { type: 'group_features' }
  | { type: 'meter'; meterId: number }
  | { type: 'meter_config'; meterId: number }
  | { type: 'meter_features' }
  | { type: 'table_features'; tables: TableFeatures[] }
  | { type: 'port_desc' }
  | ({ type: 'experimenter' } & ExperimenterBody);

export type MultipartReplyBody =
  | { type: 'desc'; mfrDesc: string; hwDesc: string; swDesc: string; serialNum: string; dpDesc: string }
  | { type: 'flow'; stats: FlowStats[] }
  | { type: 'aggregate'; packetCount: bigint; byteCount: bigint; flowCount: number }
  | { type: 'table'; stats: TableStats[] }
  | { type: 'port_stats'; stats: PortStats[] }
  | { type: 'queue'; stats: QueueStats[] }
  | { type: 'group'; stats: GroupStats[] }
  | { type: 'group_desc'; groups: GroupDesc[] }
  | { type: 'group_features'; types: number; capabilities: number; maxGroups: number[]; actions: number[] }
  | { type: 'meter'; stats: MeterStats[] }
  | { type: 'meter_config'; configs: MeterConfig[] }
  | { type: 'meter_features'; maxMeter: number; bandTypes: number; capabilities: number; maxBands: number; maxColor: number }
  | { type: 'table_features'; tables: TableFeatures[] }
  | { type: 'port_desc'; ports: Port[] }
  | ({ type: 'experimenter' } & ExperimenterBody);

export interface BodyCodec<T> {
  decode(buf: Buffer, off: number, end: number): T;
  encode(v: T, buf: Buffer, off: number): number;
  length(v: T): number;
}

type Req<N extends OfpmpName> = Extract<MultipartRequestBody, { type: N }>;
type Rep<N extends OfpmpName> = Extract<MultipartReplyBody, { type: N }>;

function exactly(off: number, end: number, n: number, what: string): void {
  if (end - off < n) throw new OfpError('OFP_TRUNCATED', off, `${what} fits in ${end - off} bytes`, `needs ${n}`);
  if (end - off > n) throw new OfpError('OFP_TRAILING_BYTES', off + n, `${what} is ${n} bytes`, `got ${end - off}`);
}

function empty<N extends OfpmpName>(type: N): BodyCodec<{ type: N }> {
  return {
    decode: (_b, off, end) => (exactly(off, end, 0, `multipart ${type} body`), { type }),
    encode: (_v, _b, off) => off,
    length: () => 0,
  };
}

/** A body that is a list of entries, each found by `entryEnd` and decoded between off and its end. */
function list<E>(
  entryEnd: (buf: Buffer, off: number, end: number) => number,
  decode: (buf: Buffer, off: number, end: number) => E,
  encode: (e: E, buf: Buffer, off: number) => number,
  length: (e: E) => number,
) {
  return {
    decode(buf: Buffer, off: number, end: number): E[] {
      const out: E[] = [];
      while (off < end) {
        const e = entryEnd(buf, off, end);
        out.push(decode(buf, off, e));
        off = e;
      }
      return out;
    },
    encode(entries: readonly E[], buf: Buffer, off: number): number {
      for (const e of entries) off = encode(e, buf, off);
      return off;
    },
    length(entries: readonly E[]): number {
      let n = 0;
      for (const e of entries) n += length(e);
      return n;
    },
  };
}

const fixedEntry = (size: number, what: string) => (_buf: Buffer, off: number, end: number) => (need(off, size, end, what), off + size);
const lengthAt = (lenOff: number, min: number, what: string) => (buf: Buffer, off: number, end: number) => {
  need(off, lenOff + 2, end, what);
  return structEnd(off, buf.readUInt16BE(off + lenOff), min, end, what);
};

/** Writes a 16-bit length field for a structure spanning [start, end). */
function backpatch16(buf: Buffer, start: number, at: number, end: number, what: string): number {
  if (end - start > 0xffff) throw new OfpError('OFP_ENCODE_TOO_LONG', start, `${what}.length <= 65535`);
  buf.writeUInt16BE(end - start, at);
  return end;
}

// flow / aggregate request (§7.3.5.2, §7.3.5.3)
function flowRequest<N extends 'flow' | 'aggregate'>(type: N): BodyCodec<Req<N>> {
  return {
    decode: (buf, off, end) => {
      need(off, 32, end, 'ofp_flow_stats_request');
      const match = decodeMatch(buf, off + 32, end);
      exactly(off, end, 32 + matchWireLength(buf, off + 32), 'ofp_flow_stats_request');
      return {
        type,
        tableId: buf[off]!,
        outPort: buf.readUInt32BE(off + 4),
        outGroup: buf.readUInt32BE(off + 8),
        cookie: readU64(buf, off + 16),
        cookieMask: readU64(buf, off + 24),
        match,
      } as Req<N>;
    },
    encode: (body, buf, off) => {
      const v = body as FlowStatsRequest;
      buf.writeUInt8(v.tableId, off);
      zero(buf, off + 1, 3);
      buf.writeUInt32BE(v.outPort, off + 4);
      buf.writeUInt32BE(v.outGroup, off + 8);
      zero(buf, off + 12, 4);
      writeU64(buf, v.cookie, off + 16);
      writeU64(buf, v.cookieMask, off + 24);
      return encodeMatch(v.match, buf, off + 32);
    },
    length: (v) => 32 + matchLength((v as FlowStatsRequest).match),
  };
}

const flowStats = list<FlowStats>(
  lengthAt(0, 56, 'ofp_flow_stats'),
  (buf, off, end) => {
    const match = decodeMatch(buf, off + 48, end);
    return {
      tableId: buf[off + 2]!,
      durationSec: buf.readUInt32BE(off + 4),
      durationNsec: buf.readUInt32BE(off + 8),
      priority: buf.readUInt16BE(off + 12),
      idleTimeout: buf.readUInt16BE(off + 14),
      hardTimeout: buf.readUInt16BE(off + 16),
      flags: buf.readUInt16BE(off + 18),
      cookie: readU64(buf, off + 24),
      packetCount: readU64(buf, off + 32),
      byteCount: readU64(buf, off + 40),
      match,
      instructions: decodeInstructions(buf, off + 48 + matchWireLength(buf, off + 48), end),
    };
  },
  (e, buf, off) => {
    buf.writeUInt8(e.tableId, off + 2);
    buf.writeUInt8(0, off + 3);
    buf.writeUInt32BE(e.durationSec, off + 4);
    buf.writeUInt32BE(e.durationNsec, off + 8);
    buf.writeUInt16BE(e.priority, off + 12);
    buf.writeUInt16BE(e.idleTimeout, off + 14);
    buf.writeUInt16BE(e.hardTimeout, off + 16);
    buf.writeUInt16BE(e.flags, off + 18);
    zero(buf, off + 20, 4);
    writeU64(buf, e.cookie, off + 24);
    writeU64(buf, e.packetCount, off + 32);
    writeU64(buf, e.byteCount, off + 40);
    const p = encodeInstructions(e.instructions, buf, encodeMatch(e.match, buf, off + 48));
    return backpatch16(buf, off, off, p, 'ofp_flow_stats');
  },
  (e) => 48 + matchLength(e.match) + instructionsLength(e.instructions),
);

const tableStats = list<TableStats>(
  fixedEntry(24, 'ofp_table_stats'),
  (buf, off) => ({
    tableId: buf[off]!,
    activeCount: buf.readUInt32BE(off + 4),
    lookupCount: readU64(buf, off + 8),
    matchedCount: readU64(buf, off + 16),
  }),
  (e, buf, off) => {
    buf.writeUInt8(e.tableId, off);
    zero(buf, off + 1, 3);
    buf.writeUInt32BE(e.activeCount, off + 4);
    writeU64(buf, e.lookupCount, off + 8);
    return writeU64(buf, e.matchedCount, off + 16);
  },
  () => 24,
);

const PORT_COUNTERS = [
  'rxPackets', 'txPackets', 'rxBytes', 'txBytes', 'rxDropped', 'txDropped', 'rxErrors', 'txErrors',
  'rxFrameErr', 'rxOverErr', 'rxCrcErr', 'collisions',
] as const;

const portStats = list<PortStats>(
  fixedEntry(112, 'ofp_port_stats'),
  (buf, off) => ({
    portNo: buf.readUInt32BE(off),
    rxPackets: readU64(buf, off + 8),
    txPackets: readU64(buf, off + 16),
    rxBytes: readU64(buf, off + 24),
    txBytes: readU64(buf, off + 32),
    rxDropped: readU64(buf, off + 40),
    txDropped: readU64(buf, off + 48),
    rxErrors: readU64(buf, off + 56),
    txErrors: readU64(buf, off + 64),
    rxFrameErr: readU64(buf, off + 72),
    rxOverErr: readU64(buf, off + 80),
    rxCrcErr: readU64(buf, off + 88),
    collisions: readU64(buf, off + 96),
    durationSec: buf.readUInt32BE(off + 104),
    durationNsec: buf.readUInt32BE(off + 108),
  }),
  (e, buf, off) => {
    buf.writeUInt32BE(e.portNo, off);
    let p = zero(buf, off + 4, 4);
    for (const k of PORT_COUNTERS) p = writeU64(buf, e[k], p);
    buf.writeUInt32BE(e.durationSec, p);
    return buf.writeUInt32BE(e.durationNsec, p + 4);
  },
  () => 112,
);

const queueStats = list<QueueStats>(
  fixedEntry(40, 'ofp_queue_stats'),
  (buf, off) => ({
    portNo: buf.readUInt32BE(off),
    queueId: buf.readUInt32BE(off + 4),
    txBytes: readU64(buf, off + 8),
    txPackets: readU64(buf, off + 16),
    txErrors: readU64(buf, off + 24),
    durationSec: buf.readUInt32BE(off + 32),
    durationNsec: buf.readUInt32BE(off + 36),
  }),
  (e, buf, off) => {
    buf.writeUInt32BE(e.portNo, off);
    buf.writeUInt32BE(e.queueId, off + 4);
    writeU64(buf, e.txBytes, off + 8);
    writeU64(buf, e.txPackets, off + 16);
    writeU64(buf, e.txErrors, off + 24);
    buf.writeUInt32BE(e.durationSec, off + 32);
    return buf.writeUInt32BE(e.durationNsec, off + 36);
  },
  () => 40,
);

const groupStats = list<GroupStats>(
  lengthAt(0, 40, 'ofp_group_stats'),
  (buf, off, end) => {
    if ((end - off - 40) % 16 !== 0) throw new OfpError('OFP_BAD_LENGTH', off, 'ofp_group_stats.length == 40 + 16 * n_buckets', `got ${end - off}`);
    const bucketStats: BucketCounter[] = [];
    for (let p = off + 40; p < end; p += 16) bucketStats.push({ packetCount: readU64(buf, p), byteCount: readU64(buf, p + 8) });
    return {
      groupId: buf.readUInt32BE(off + 4),
      refCount: buf.readUInt32BE(off + 8),
      packetCount: readU64(buf, off + 16),
      byteCount: readU64(buf, off + 24),
      durationSec: buf.readUInt32BE(off + 32),
      durationNsec: buf.readUInt32BE(off + 36),
      bucketStats,
    };
  },
  (e, buf, off) => {
    zero(buf, off + 2, 2);
    buf.writeUInt32BE(e.groupId, off + 4);
    buf.writeUInt32BE(e.refCount, off + 8);
    zero(buf, off + 12, 4);
    writeU64(buf, e.packetCount, off + 16);
    writeU64(buf, e.byteCount, off + 24);
    buf.writeUInt32BE(e.durationSec, off + 32);
    let p = buf.writeUInt32BE(e.durationNsec, off + 36);
    for (const b of e.bucketStats) p = writeU64(buf, b.byteCount, writeU64(buf, b.packetCount, p));
    return backpatch16(buf, off, off, p, 'ofp_group_stats');
  },
  (e) => 40 + 16 * e.bucketStats.length,
);

const groupDescs = list<GroupDesc>(
  lengthAt(0, 8, 'ofp_group_desc'),
  (buf, off, end) => ({ groupType: buf[off + 2]!, groupId: buf.readUInt32BE(off + 4), buckets: decodeBuckets(buf, off + 8, end) }),
  (e, buf, off) => {
    buf.writeUInt8(e.groupType, off + 2);
    buf.writeUInt8(0, off + 3);
    buf.writeUInt32BE(e.groupId, off + 4);
    return backpatch16(buf, off, off, encodeBuckets(e.buckets, buf, off + 8), 'ofp_group_desc');
  },
  (e) => 8 + bucketsLength(e.buckets),
);

const meterStats = list<MeterStats>(
  lengthAt(4, 40, 'ofp_meter_stats'),
  (buf, off, end) => {
    if ((end - off - 40) % 16 !== 0) throw new OfpError('OFP_BAD_LENGTH', off, 'ofp_meter_stats.len == 40 + 16 * n_bands', `got ${end - off}`);
    const bandStats: MeterBandStats[] = [];
    for (let p = off + 40; p < end; p += 16) bandStats.push({ packetBandCount: readU64(buf, p), byteBandCount: readU64(buf, p + 8) });
    return {
      meterId: buf.readUInt32BE(off),
      flowCount: buf.readUInt32BE(off + 12),
      packetInCount: readU64(buf, off + 16),
      byteInCount: readU64(buf, off + 24),
      durationSec: buf.readUInt32BE(off + 32),
      durationNsec: buf.readUInt32BE(off + 36),
      bandStats,
    };
  },
  (e, buf, off) => {
    buf.writeUInt32BE(e.meterId, off);
    zero(buf, off + 6, 6);
    buf.writeUInt32BE(e.flowCount, off + 12);
    writeU64(buf, e.packetInCount, off + 16);
    writeU64(buf, e.byteInCount, off + 24);
    buf.writeUInt32BE(e.durationSec, off + 32);
    let p = buf.writeUInt32BE(e.durationNsec, off + 36);
    for (const b of e.bandStats) p = writeU64(buf, b.byteBandCount, writeU64(buf, b.packetBandCount, p));
    return backpatch16(buf, off, off + 4, p, 'ofp_meter_stats');
  },
  (e) => 40 + 16 * e.bandStats.length,
);

const meterConfigs = list<MeterConfig>(
  lengthAt(0, 8, 'ofp_meter_config'),
  (buf, off, end) => ({ flags: buf.readUInt16BE(off + 2), meterId: buf.readUInt32BE(off + 4), bands: decodeMeterBands(buf, off + 8, end) }),
  (e, buf, off) => {
    buf.writeUInt16BE(e.flags, off + 2);
    buf.writeUInt32BE(e.meterId, off + 4);
    return backpatch16(buf, off, off, encodeMeterBands(e.bands, buf, off + 8), 'ofp_meter_config');
  },
  (e) => 8 + meterBandsLength(e.bands),
);

const ports = list<Port>(fixedEntry(PORT_LEN, 'ofp_port'), decodePort, encodePort, () => PORT_LEN);

// ---------------------------------------------------------------------------------------------
// Table features (§7.3.5.5).

const TFPT_BY_CODE = new Map<number, OfptfptName>((Object.keys(OFPTFPT) as OfptfptName[]).map((k) => [OFPTFPT[k], k]));

function decodeFeatureIds(buf: Buffer, off: number, end: number, what: string): FeatureId[] {
  const out: FeatureId[] = [];
  while (off < end) {
    need(off, 4, end, what);
    const idEnd = structEnd(off, buf.readUInt16BE(off + 2), 4, end, what);
    out.push({ id: buf.readUInt16BE(off), data: buf.subarray(off + 4, idEnd) });
    off = idEnd;
  }
  return out;
}

function encodeFeatureIds(ids: readonly FeatureId[], buf: Buffer, off: number): number {
  for (const i of ids) {
    buf.writeUInt16BE(i.id, off);
    buf.writeUInt16BE(4 + i.data.length, off + 2);
    off += 4 + i.data.copy(buf, off + 4);
  }
  return off;
}

function decodeOxmIds(buf: Buffer, off: number, end: number): OxmId[] {
  const out: OxmId[] = [];
  while (off < end) {
    need(off, 4, end, 'OXM id');
    const h = buf.readUInt32BE(off);
    const id: OxmId = { oxmClass: h >>> 16, oxmField: (h >>> 9) & 0x7f, hasMask: (h & 0x100) !== 0, payloadLength: h & 0xff };
    off += 4;
    if (id.oxmClass === 0xffff) {
      need(off, 4, end, 'experimenter OXM id');
      id.experimenter = buf.readUInt32BE(off);
      off += 4;
    }
    out.push(id);
  }
  return out;
}

function encodeOxmIds(ids: readonly OxmId[], buf: Buffer, off: number): number {
  for (const i of ids) {
    off = buf.writeUInt32BE(((i.oxmClass << 16) | ((i.oxmField & 0x7f) << 9) | (i.hasMask ? 0x100 : 0) | (i.payloadLength & 0xff)) >>> 0, off);
    if (i.oxmClass === 0xffff) off = buf.writeUInt32BE(i.experimenter ?? 0, off);
  }
  return off;
}

type PropBody<K extends string, V> = { [k in K]: V };

/** How a table-feature property body is laid out, per property type (§7.3.5.5.2). */
interface PropLayout {
  decode(buf: Buffer, off: number, end: number): object;
  encode(p: TableFeatureProperty, buf: Buffer, off: number): number;
  length(p: TableFeatureProperty): number;
}

const ids = (key: 'instructionIds' | 'actionIds', what: string): PropLayout => {
  const list = (p: TableFeatureProperty) => (p as unknown as PropBody<typeof key, FeatureId[]>)[key];
  return {
    decode: (buf, off, end) => ({ [key]: decodeFeatureIds(buf, off, end, what) }),
    encode: (p, buf, off) => encodeFeatureIds(list(p), buf, off),
    length: (p) => list(p).reduce((n, i) => n + 4 + i.data.length, 0),
  };
};

const TABLE_IDS: PropLayout = {
  decode: (buf, off, end) => ({ tableIds: Array.from(buf.subarray(off, end)) }),
  encode: (p, buf, off) => {
    for (const t of (p as PropBody<'tableIds', number[]>).tableIds) off = buf.writeUInt8(t, off);
    return off;
  },
  length: (p) => (p as PropBody<'tableIds', number[]>).tableIds.length,
};

const OXM_IDS: PropLayout = {
  decode: (buf, off, end) => ({ oxmIds: decodeOxmIds(buf, off, end) }),
  encode: (p, buf, off) => encodeOxmIds((p as PropBody<'oxmIds', OxmId[]>).oxmIds, buf, off),
  length: (p) => (p as PropBody<'oxmIds', OxmId[]>).oxmIds.reduce((n, i) => n + (i.oxmClass === 0xffff ? 8 : 4), 0),
};

const EXPERIMENTER_PROP: PropLayout = {
  decode: (buf, off, end) => {
    need(off, 8, end, 'ofp_table_feature_prop_experimenter');
    return { experimenter: buf.readUInt32BE(off), expType: buf.readUInt32BE(off + 4), data: buf.subarray(off + 8, end) };
  },
  encode: (p, buf, off) => {
    const e = p as ExperimenterBody;
    buf.writeUInt32BE(e.experimenter, off);
    buf.writeUInt32BE(e.expType, off + 4);
    return off + 8 + e.data.copy(buf, off + 8);
  },
  length: (p) => 8 + (p as ExperimenterBody).data.length,
};

const UNKNOWN_PROP: PropLayout = {
  decode: (buf, off, end) => ({ data: buf.subarray(off, end) }),
  encode: (p, buf, off) => off + (p as { data: Buffer }).data.copy(buf, off),
  length: (p) => (p as { data: Buffer }).data.length,
};

/** One layout per OFPTFPT_* type; `_miss` twins share their base type's layout. */
const PROP_LAYOUTS: { readonly [N in OfptfptName]: PropLayout } = {
  instructions: ids('instructionIds', 'instruction id'),
  instructions_miss: ids('instructionIds', 'instruction id'),
  next_tables: TABLE_IDS,
  next_tables_miss: TABLE_IDS,
  write_actions: ids('actionIds', 'action id'),
  write_actions_miss: ids('actionIds', 'action id'),
  apply_actions: ids('actionIds', 'action id'),
  apply_actions_miss: ids('actionIds', 'action id'),
  match: OXM_IDS,
  wildcards: OXM_IDS,
  write_setfield: OXM_IDS,
  write_setfield_miss: OXM_IDS,
  apply_setfield: OXM_IDS,
  apply_setfield_miss: OXM_IDS,
  experimenter: EXPERIMENTER_PROP,
  experimenter_miss: EXPERIMENTER_PROP,
};

const layoutOf = (p: TableFeatureProperty): PropLayout => (p.type === 'unknown' ? UNKNOWN_PROP : PROP_LAYOUTS[p.type]);

function decodeTableFeatureProperty(buf: Buffer, off: number, end: number): TableFeatureProperty {
  const code = buf.readUInt16BE(off);
  const type = TFPT_BY_CODE.get(code);
  if (type === undefined) return { type: 'unknown', propType: code, data: buf.subarray(off + 4, end) };
  return { type, ...PROP_LAYOUTS[type].decode(buf, off + 4, end) } as TableFeatureProperty;
}

function encodeTableFeatureProperty(p: TableFeatureProperty, buf: Buffer, off: number): number {
  const e = layoutOf(p).encode(p, buf, off + 4);
  buf.writeUInt16BE(p.type === 'unknown' ? p.propType : OFPTFPT[p.type], off);
  backpatch16(buf, off, off + 2, e, 'ofp_table_feature_prop');
  // §7.3.5.5.2: each property is padded to 8; `length` excludes the padding.
  return zero(buf, e, align8(e - off) - (e - off));
}

const tableFeatures = list<TableFeatures>(
  lengthAt(0, 64, 'ofp_table_features'),
  (buf, off, end) => {
    const properties: TableFeatureProperty[] = [];
    for (let p = off + 64; p < end; ) {
      need(p, 4, end, 'ofp_table_feature_prop_header');
      const len = buf.readUInt16BE(p + 2);
      const pEnd = structEnd(p, len, 4, end, 'ofp_table_feature_prop_header');
      need(p, align8(len), end, 'ofp_table_feature_prop padding');
      properties.push(decodeTableFeatureProperty(buf, p, pEnd));
      p += align8(len);
    }
    return {
      tableId: buf[off + 2]!,
      name: readFixedString(buf, off + 8, OFP_MAX_TABLE_NAME_LEN),
      metadataMatch: readU64(buf, off + 40),
      metadataWrite: readU64(buf, off + 48),
      config: buf.readUInt32BE(off + 56),
      maxEntries: buf.readUInt32BE(off + 60),
      properties,
    };
  },
  (e, buf, off) => {
    buf.writeUInt8(e.tableId, off + 2);
    zero(buf, off + 3, 5);
    writeFixedString(buf, off + 8, OFP_MAX_TABLE_NAME_LEN, e.name, 'ofp_table_features.name');
    writeU64(buf, e.metadataMatch, off + 40);
    writeU64(buf, e.metadataWrite, off + 48);
    buf.writeUInt32BE(e.config, off + 56);
    let p = buf.writeUInt32BE(e.maxEntries, off + 60);
    for (const prop of e.properties) p = encodeTableFeatureProperty(prop, buf, p);
    return backpatch16(buf, off, off, p, 'ofp_table_features');
  },
  (e) => 64 + e.properties.reduce((n, p) => n + align8(4 + layoutOf(p).length(p)), 0),
);

// ---------------------------------------------------------------------------------------------
// Registries.

const experimenter: BodyCodec<ExperimenterBody & { type: 'experimenter' }> = {
  decode: (buf, off, end) => {
    need(off, 8, end, 'ofp_experimenter_multipart_header');
    return { type: 'experimenter', experimenter: buf.readUInt32BE(off), expType: buf.readUInt32BE(off + 4), data: buf.subarray(off + 8, end) };
  },
  encode: (v, buf, off) => {
    buf.writeUInt32BE(v.experimenter, off);
    buf.writeUInt32BE(v.expType, off + 4);
    return off + 8 + v.data.copy(buf, off + 8);
  },
  length: (v) => 8 + v.data.length,
};

const idOnly = <N extends 'port_stats' | 'group' | 'meter' | 'meter_config'>(type: N, key: 'portNo' | 'groupId' | 'meterId'): BodyCodec<Req<N>> => ({
  // A 4-byte id then 4 bytes of pad (ofp_port_stats_request, ofp_group_stats_request, ofp_meter_multipart_request).
  decode: (buf, off, end) => (exactly(off, end, 8, `multipart ${type} request`), { type, [key]: buf.readUInt32BE(off) }) as Req<N>,
  encode: (v, buf, off) => (buf.writeUInt32BE((v as Record<string, number>)[key]!, off), zero(buf, off + 4, 4)),
  length: () => 8,
});

function listBody<N extends OfpmpName, K extends string, E>(type: N, key: K, l: ReturnType<typeof list<E>>): BodyCodec<Rep<N>> {
  return {
    decode: (buf, off, end) => ({ type, [key]: l.decode(buf, off, end) }) as unknown as Rep<N>,
    encode: (v, buf, off) => l.encode((v as unknown as Record<K, E[]>)[key], buf, off),
    length: (v) => l.length((v as unknown as Record<K, E[]>)[key]),
  };
}

export const MULTIPART_REQUESTS: { [N in OfpmpName]: BodyCodec<Req<N>> } = {
  desc: empty('desc'),
  flow: flowRequest('flow'),
  aggregate: flowRequest('aggregate'),
  table: empty('table'),
  port_stats: idOnly('port_stats', 'portNo'),
  queue: {
    decode: (buf, off, end) => (exactly(off, end, 8, 'ofp_queue_stats_request'), { type: 'queue', portNo: buf.readUInt32BE(off), queueId: buf.readUInt32BE(off + 4) }),
    encode: (v, buf, off) => buf.writeUInt32BE(v.queueId, buf.writeUInt32BE(v.portNo, off)),
    length: () => 8,
  },
  group: idOnly('group', 'groupId'),
  group_desc: empty('group_desc'),
  group_features: empty('group_features'),
  meter: idOnly('meter', 'meterId'),
  meter_config: idOnly('meter_config', 'meterId'),
  meter_features: empty('meter_features'),
  table_features: {
    decode: (buf, off, end) => ({ type: 'table_features', tables: tableFeatures.decode(buf, off, end) }),
    encode: (v, buf, off) => tableFeatures.encode(v.tables, buf, off),
    length: (v) => tableFeatures.length(v.tables),
  },
  port_desc: empty('port_desc'),
  experimenter,
};

const DESC_FIELDS = [
  ['mfrDesc', DESC_STR_LEN],
  ['hwDesc', DESC_STR_LEN],
  ['swDesc', DESC_STR_LEN],
  ['serialNum', SERIAL_NUM_LEN],
  ['dpDesc', DESC_STR_LEN],
] as const;

export const MULTIPART_REPLIES: { [N in OfpmpName]: BodyCodec<Rep<N>> } = {
  desc: {
    decode: (buf, off, end) => {
      exactly(off, end, 1056, 'ofp_desc');
      const v = { type: 'desc' } as Rep<'desc'>;
      let p = off;
      for (const [k, n] of DESC_FIELDS) {
        v[k] = readFixedString(buf, p, n);
        p += n;
      }
      return v;
    },
    encode: (v, buf, off) => {
      for (const [k, n] of DESC_FIELDS) off = writeFixedString(buf, off, n, v[k], `ofp_desc.${k}`);
      return off;
    },
    length: () => 1056,
  },
  flow: listBody('flow', 'stats', flowStats),
  aggregate: {
    decode: (buf, off, end) => (
      exactly(off, end, 24, 'ofp_aggregate_stats_reply'),
      { type: 'aggregate', packetCount: readU64(buf, off), byteCount: readU64(buf, off + 8), flowCount: buf.readUInt32BE(off + 16) }
    ),
    encode: (v, buf, off) => {
      writeU64(buf, v.packetCount, off);
      writeU64(buf, v.byteCount, off + 8);
      buf.writeUInt32BE(v.flowCount, off + 16);
      return zero(buf, off + 20, 4);
    },
    length: () => 24,
  },
  table: listBody('table', 'stats', tableStats),
  port_stats: listBody('port_stats', 'stats', portStats),
  queue: listBody('queue', 'stats', queueStats),
  group: listBody('group', 'stats', groupStats),
  group_desc: listBody('group_desc', 'groups', groupDescs),
  group_features: {
    decode: (buf, off, end) => {
      exactly(off, end, 40, 'ofp_group_features');
      const four = (p: number) => [0, 1, 2, 3].map((i) => buf.readUInt32BE(p + 4 * i));
      return { type: 'group_features', types: buf.readUInt32BE(off), capabilities: buf.readUInt32BE(off + 4), maxGroups: four(off + 8), actions: four(off + 24) };
    },
    encode: (v, buf, off) => {
      buf.writeUInt32BE(v.types, off);
      buf.writeUInt32BE(v.capabilities, off + 4);
      if (v.maxGroups.length !== 4 || v.actions.length !== 4) throw new OfpError('OFP_ENCODE_INVALID', off, 'ofp_group_features.max_groups and .actions have 4 entries');
      let p = off + 8;
      for (const x of [...v.maxGroups, ...v.actions]) p = buf.writeUInt32BE(x, p);
      return p;
    },
    length: () => 40,
  },
  meter: listBody('meter', 'stats', meterStats),
  meter_config: listBody('meter_config', 'configs', meterConfigs),
  meter_features: {
    decode: (buf, off, end) => (
      exactly(off, end, 16, 'ofp_meter_features'),
      {
        type: 'meter_features',
        maxMeter: buf.readUInt32BE(off),
        bandTypes: buf.readUInt32BE(off + 4),
        capabilities: buf.readUInt32BE(off + 8),
        maxBands: buf[off + 12]!,
        maxColor: buf[off + 13]!,
      }
    ),
    encode: (v, buf, off) => {
      buf.writeUInt32BE(v.maxMeter, off);
      buf.writeUInt32BE(v.bandTypes, off + 4);
      buf.writeUInt32BE(v.capabilities, off + 8);
      buf.writeUInt8(v.maxBands, off + 12);
      buf.writeUInt8(v.maxColor, off + 13);
      return zero(buf, off + 14, 2);
    },
    length: () => 16,
  },
  table_features: listBody('table_features', 'tables', tableFeatures),
  port_desc: listBody('port_desc', 'ports', ports),
  experimenter,
};

export const OFPMP_BY_CODE = new Map<number, OfpmpName>((Object.keys(OFPMP) as OfpmpName[]).map((k) => [OFPMP[k], k]));

/** The list field of each list-shaped reply body (the bodies a switch may split with OFPMPF_REPLY_MORE). */
const REPLY_LIST_KEY: Partial<Record<OfpmpName, string>> = {
  flow: 'stats', table: 'stats', port_stats: 'stats', queue: 'stats', group: 'stats', group_desc: 'groups',
  meter: 'stats', meter_config: 'configs', table_features: 'tables', port_desc: 'ports',
};

/**
 * Joins the bodies of one multipart reply that the switch split over several messages (all but
 * the last carry OFPMPF_REPLY_MORE, §7.3.5): list bodies are concatenated in order, experimenter
 * bodies' data too. Throws OFP_BAD_MULTIPART when the parts are of different types, or when a
 * single-structure body (desc, aggregate, ...) comes in more than one part.
 */
export function joinMultipartReplyBodies(parts: readonly MultipartReplyBody[]): MultipartReplyBody {
  const first = parts[0];
  if (first === undefined) throw new OfpError('OFP_BAD_MULTIPART', 0, 'a multipart reply has at least one part');
  if (parts.length === 1) return first;
  if (parts.some((p) => p.type !== first.type)) {
    throw new OfpError('OFP_BAD_MULTIPART', 0, 'every part of a multipart reply has the same type', parts.map((p) => p.type).join(','));
  }
  if (first.type === 'experimenter') {
    return { ...first, data: Buffer.concat(parts.map((p) => (p as ExperimenterBody).data)) };
  }
  const key = REPLY_LIST_KEY[first.type];
  if (key === undefined) throw new OfpError('OFP_BAD_MULTIPART', 0, `a ${first.type} reply is one part`, `got ${parts.length}`);
  return { ...first, [key]: parts.flatMap((p) => (p as unknown as Record<string, unknown[]>)[key]!) } as MultipartReplyBody;
}
