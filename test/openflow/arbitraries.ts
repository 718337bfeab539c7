/**
 * fast-check generators of OpenFlow 1.3 messages covering every message type, every OXM kind,
 * every action/instruction type and the opaque (experimenter/unknown) variants. Generated values
 * are in the codec's normal form (what decode returns), so decode(encode(m)) must equal m.
 */
import fc from 'fast-check';
import {
  OXM_BASIC_FIELDS, OFPAT, OFPIT, OFPMBT, OFPQT, OFPTFPT, ONF_EXPERIMENTER_ID, OFPBCT,
  type Action, type Instruction, type Match, type OfpMessage, type OxmField, type MultipartReplyBody, type MultipartRequestBody,
  type TableFeatures, type TableFeatureProperty, type BundleCtrlType,
} from '../../src/openflow/index.js';
import { readIpv6 } from '../../src/openflow/wire.js';

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u24 = fc.integer({ min: 0, max: 0xffffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: 0xffffffffffffffffn });
const bytes = (max = 24, min = 0) => fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));
const bytesMultiple = (mult: number, rem: number, maxUnits = 3) =>
  fc.integer({ min: 0, max: maxUnits }).chain((n) => bytes(n * mult + rem, n * mult + rem));
const hex2 = (n: number) => n.toString(16).padStart(2, '0');
const mac = fc.array(u8, { minLength: 6, maxLength: 6 }).map((a) => a.map(hex2).join(':'));
const ipv4 = fc.array(u8, { minLength: 4, maxLength: 4 }).map((a) => a.join('.'));
// Sparse addresses exercise "::" compression.
const ipv6 = fc.array(fc.oneof(fc.constant(0), u16), { minLength: 8, maxLength: 8 }).map((g) => {
  const b = Buffer.alloc(16);
  g.forEach((v, i) => b.writeUInt16BE(v, 2 * i));
  return readIpv6(b, 0);
});
const name = (max: number) => fc.string({ maxLength: max, unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_.'.split('')) });

const KIND_ARB = { u8, u16, u24, u32, u64, mac, ipv4, ipv6 } as const;

export const oxmField: fc.Arbitrary<OxmField> = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...OXM_BASIC_FIELDS).chain((d) => {
    const v = KIND_ARB[d.kind] as fc.Arbitrary<unknown>;
    return fc.tuple(v, fc.option(v, { nil: undefined })).map(([value, mask]) =>
      (mask === undefined ? { field: d.name, value } : { field: d.name, value, mask }) as OxmField);
  }) },
  {
    weight: 1,
    arbitrary: fc.record({
      field: fc.constant('opaque' as const),
      oxmClass: fc.constantFrom(0x0000, 0x0001, 0xffff),
      oxmField: fc.integer({ min: 0, max: 127 }),
      hasMask: fc.boolean(),
      payload: bytes(16),
    }),
  },
);

export const match: fc.Arbitrary<Match> = fc.array(oxmField, { maxLength: 6 });

const DEFINED_ACTIONS = new Set<number>(Object.values(OFPAT));
export const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ type: fc.constant('output' as const), port: u32, maxLen: u16 }),
  fc.constantFrom(
    ...(['copy_ttl_out', 'copy_ttl_in', 'dec_mpls_ttl', 'pop_vlan', 'dec_nw_ttl', 'pop_pbb'] as const).map((type) => ({ type }) as Action),
  ),
  fc.record({ type: fc.constant('set_mpls_ttl' as const), mplsTtl: u8 }),
  fc.record({ type: fc.constantFrom('push_vlan' as const, 'push_mpls' as const, 'pop_mpls' as const, 'push_pbb' as const), ethertype: u16 }),
  fc.record({ type: fc.constant('set_queue' as const), queueId: u32 }),
  fc.record({ type: fc.constant('group' as const), groupId: u32 }),
  fc.record({ type: fc.constant('set_nw_ttl' as const), nwTtl: u8 }),
  fc.record({ type: fc.constant('set_field' as const), field: oxmField }),
  fc.record({ type: fc.constant('experimenter' as const), experimenter: u32, data: bytesMultiple(8, 0) }),
  fc.record({ type: fc.constant('unknown' as const), actionType: u16.filter((c) => !DEFINED_ACTIONS.has(c)), data: bytesMultiple(8, 4) }),
);
const actions = fc.array(action, { maxLength: 5 });

const DEFINED_INSTRUCTIONS = new Set<number>(Object.values(OFPIT));
export const instruction: fc.Arbitrary<Instruction> = fc.oneof(
  fc.record({ type: fc.constant('goto_table' as const), tableId: u8 }),
  fc.record({ type: fc.constant('write_metadata' as const), metadata: u64, metadataMask: u64 }),
  fc.record({ type: fc.constantFrom('write_actions' as const, 'apply_actions' as const), actions }),
  fc.constant({ type: 'clear_actions' as const }),
  fc.record({ type: fc.constant('meter' as const), meterId: u32 }),
  fc.record({ type: fc.constant('experimenter' as const), experimenter: u32, data: bytes(12) }),
  fc.record({ type: fc.constant('unknown' as const), instructionType: u16.filter((c) => !DEFINED_INSTRUCTIONS.has(c)), data: bytes(12) }),
);
const instructions = fc.array(instruction, { maxLength: 4 });

const port = fc.record({
  portNo: u32, hwAddr: mac, name: name(15), config: u32, state: u32, curr: u32, advertised: u32, supported: u32, peer: u32,
  currSpeed: u32, maxSpeed: u32,
});
const bucket = fc.record({ weight: u16, watchPort: u32, watchGroup: u32, actions });
const meterBand = fc.oneof(
  fc.record({ type: fc.constant('drop' as const), rate: u32, burstSize: u32 }),
  fc.record({ type: fc.constant('dscp_remark' as const), rate: u32, burstSize: u32, precLevel: u8 }),
  fc.record({ type: fc.constant('experimenter' as const), rate: u32, burstSize: u32, experimenter: u32, data: bytes(8) }),
  fc.record({
    type: fc.constant('unknown' as const), bandType: u16.filter((c) => !(Object.values(OFPMBT) as number[]).includes(c)),
    rate: u32, burstSize: u32, data: bytes(8),
  }),
);
const queueProperty = fc.oneof(
  fc.record({ type: fc.constantFrom('min_rate' as const, 'max_rate' as const), rate: u16 }),
  fc.record({ type: fc.constant('experimenter' as const), experimenter: u32, data: bytes(8) }),
  fc.record({ type: fc.constant('unknown' as const), property: u16.filter((c) => !(Object.values(OFPQT) as number[]).includes(c)), data: bytes(8) }),
);

const featureId = fc.record({ id: u16, data: fc.oneof(fc.constant(Buffer.alloc(0)), bytes(8, 4)) });
const oxmId = fc.oneof(
  fc.record({ oxmClass: fc.constantFrom(0x8000, 0x0001), oxmField: fc.integer({ min: 0, max: 127 }), hasMask: fc.boolean(), payloadLength: u8 }),
  fc.record({ oxmClass: fc.constant(0xffff), oxmField: fc.integer({ min: 0, max: 127 }), hasMask: fc.boolean(), payloadLength: u8, experimenter: u32 }),
);
const DEFINED_TFPT = new Set<number>(Object.values(OFPTFPT));
const tableFeatureProperty: fc.Arbitrary<TableFeatureProperty> = fc.oneof(
  fc.record({ type: fc.constantFrom('instructions' as const, 'instructions_miss' as const), instructionIds: fc.array(featureId, { maxLength: 4 }) }),
  fc.record({ type: fc.constantFrom('next_tables' as const, 'next_tables_miss' as const), tableIds: fc.array(u8, { maxLength: 10 }) }),
  fc.record({
    type: fc.constantFrom('write_actions' as const, 'write_actions_miss' as const, 'apply_actions' as const, 'apply_actions_miss' as const),
    actionIds: fc.array(featureId, { maxLength: 4 }),
  }),
  fc.record({
    type: fc.constantFrom('match' as const, 'wildcards' as const, 'write_setfield' as const, 'write_setfield_miss' as const, 'apply_setfield' as const, 'apply_setfield_miss' as const),
    oxmIds: fc.array(oxmId, { maxLength: 6 }),
  }),
  fc.record({ type: fc.constantFrom('experimenter' as const, 'experimenter_miss' as const), experimenter: u32, expType: u32, data: bytes(12) }),
  fc.record({ type: fc.constant('unknown' as const), propType: u16.filter((c) => !DEFINED_TFPT.has(c)), data: bytes(12) }),
);
const tableFeatures: fc.Arbitrary<TableFeatures> = fc.record({
  tableId: u8, name: name(31), metadataMatch: u64, metadataWrite: u64, config: u32, maxEntries: u32,
  properties: fc.array(tableFeatureProperty, { maxLength: 4 }),
});

const flowRequest = { tableId: u8, outPort: u32, outGroup: u32, cookie: u64, cookieMask: u64, match };
const multipartRequestBody: fc.Arbitrary<MultipartRequestBody> = fc.oneof(
  fc.constantFrom(...(['desc', 'table', 'group_desc', 'group_features', 'meter_features', 'port_desc'] as const).map((type) => ({ type }) as MultipartRequestBody)),
  fc.record({ type: fc.constantFrom('flow' as const, 'aggregate' as const), ...flowRequest }),
  fc.record({ type: fc.constant('port_stats' as const), portNo: u32 }),
  fc.record({ type: fc.constant('queue' as const), portNo: u32, queueId: u32 }),
  fc.record({ type: fc.constant('group' as const), groupId: u32 }),
  fc.record({ type: fc.constantFrom('meter' as const, 'meter_config' as const), meterId: u32 }),
  fc.record({ type: fc.constant('table_features' as const), tables: fc.array(tableFeatures, { maxLength: 2 }) }),
  fc.record({ type: fc.constant('experimenter' as const), experimenter: u32, expType: u32, data: bytes(16) }),
);
const stat = { durationSec: u32, durationNsec: u32 };
const multipartReplyBody: fc.Arbitrary<MultipartReplyBody> = fc.oneof(
  fc.record({ type: fc.constant('desc' as const), mfrDesc: name(40), hwDesc: name(40), swDesc: name(40), serialNum: name(31), dpDesc: name(40) }),
  fc.record({
    type: fc.constant('flow' as const),
    stats: fc.array(fc.record({
      tableId: u8, ...stat, priority: u16, idleTimeout: u16, hardTimeout: u16, flags: u16, cookie: u64, packetCount: u64, byteCount: u64,
      match, instructions,
    }), { maxLength: 3 }),
  }),
  fc.record({ type: fc.constant('aggregate' as const), packetCount: u64, byteCount: u64, flowCount: u32 }),
  fc.record({ type: fc.constant('table' as const), stats: fc.array(fc.record({ tableId: u8, activeCount: u32, lookupCount: u64, matchedCount: u64 }), { maxLength: 3 }) }),
  fc.record({
    type: fc.constant('port_stats' as const),
    stats: fc.array(fc.record({
      portNo: u32, rxPackets: u64, txPackets: u64, rxBytes: u64, txBytes: u64, rxDropped: u64, txDropped: u64, rxErrors: u64,
      txErrors: u64, rxFrameErr: u64, rxOverErr: u64, rxCrcErr: u64, collisions: u64, ...stat,
    }), { maxLength: 2 }),
  }),
  fc.record({ type: fc.constant('queue' as const), stats: fc.array(fc.record({ portNo: u32, queueId: u32, txBytes: u64, txPackets: u64, txErrors: u64, ...stat }), { maxLength: 2 }) }),
  fc.record({
    type: fc.constant('group' as const),
    stats: fc.array(fc.record({
      groupId: u32, refCount: u32, packetCount: u64, byteCount: u64, ...stat,
      bucketStats: fc.array(fc.record({ packetCount: u64, byteCount: u64 }), { maxLength: 3 }),
    }), { maxLength: 2 }),
  }),
  fc.record({ type: fc.constant('group_desc' as const), groups: fc.array(fc.record({ groupType: u8, groupId: u32, buckets: fc.array(bucket, { maxLength: 2 }) }), { maxLength: 2 }) }),
  fc.record({
    type: fc.constant('group_features' as const), types: u32, capabilities: u32,
    maxGroups: fc.array(u32, { minLength: 4, maxLength: 4 }), actions: fc.array(u32, { minLength: 4, maxLength: 4 }),
  }),
  fc.record({
    type: fc.constant('meter' as const),
    stats: fc.array(fc.record({
      meterId: u32, flowCount: u32, packetInCount: u64, byteInCount: u64, ...stat,
      bandStats: fc.array(fc.record({ packetBandCount: u64, byteBandCount: u64 }), { maxLength: 3 }),
    }), { maxLength: 2 }),
  }),
  fc.record({ type: fc.constant('meter_config' as const), configs: fc.array(fc.record({ flags: u16, meterId: u32, bands: fc.array(meterBand, { maxLength: 3 }) }), { maxLength: 2 }) }),
  fc.record({ type: fc.constant('meter_features' as const), maxMeter: u32, bandTypes: u32, capabilities: u32, maxBands: u8, maxColor: u8 }),
  fc.record({ type: fc.constant('table_features' as const), tables: fc.array(tableFeatures, { maxLength: 2 }) }),
  fc.record({ type: fc.constant('port_desc' as const), ports: fc.array(port, { maxLength: 3 }) }),
  fc.record({ type: fc.constant('experimenter' as const), experimenter: u32, expType: u32, data: bytes(16) }),
);

const xid = u32;
const pair = fc.tuple(u32, u32);

/** Every message type except the bundle ones (which wrap one of these). */
export const plainMessage: fc.Arbitrary<OfpMessage> = fc.oneof(
  fc.record({
    type: fc.constant('hello' as const), xid,
    elements: fc.array(fc.oneof(
      fc.uniqueArray(fc.integer({ min: 0, max: 70 }), { maxLength: 5 }).map((v) => ({ type: 'versionbitmap' as const, versions: v.sort((a, b) => a - b) })),
      fc.record({ type: fc.constant('unknown' as const), elemType: u16.filter((c) => c !== 1), data: bytes(12) }),
    ), { maxLength: 2 }),
  }),
  fc.record({ type: fc.constant('error' as const), xid, errorType: fc.integer({ min: 0, max: 0xfffe }), code: u16, data: bytes(32) }),
  fc.record({ type: fc.constant('error' as const), xid, errorType: fc.constant(0xffff as const), expType: u16, experimenter: u32, data: bytes(32) }),
  fc.record({ type: fc.constantFrom('echo_request' as const, 'echo_reply' as const), xid, data: bytes(32) }),
  fc.record({ type: fc.constant('experimenter' as const), xid, experimenter: u32.filter((e) => e !== ONF_EXPERIMENTER_ID), expType: u32, data: bytes(32) }),
  fc.record({ type: fc.constantFrom('features_request' as const, 'get_config_request' as const, 'barrier_request' as const, 'barrier_reply' as const, 'get_async_request' as const), xid }),
  fc.record({ type: fc.constant('features_reply' as const), xid, datapathId: u64, nBuffers: u32, nTables: u8, auxiliaryId: u8, capabilities: u32, reserved: u32 }),
  fc.record({ type: fc.constantFrom('get_config_reply' as const, 'set_config' as const), xid, flags: u16, missSendLen: u16 }),
  fc.record({ type: fc.constant('packet_in' as const), xid, bufferId: u32, totalLen: u16, reason: u8, tableId: u8, cookie: u64, match, data: bytes(64) }),
  fc.record({
    type: fc.constant('flow_removed' as const), xid, cookie: u64, priority: u16, reason: u8, tableId: u8, ...stat, idleTimeout: u16,
    hardTimeout: u16, packetCount: u64, byteCount: u64, match,
  }),
  fc.record({ type: fc.constant('port_status' as const), xid, reason: u8, port }),
  fc.record({ type: fc.constant('packet_out' as const), xid, bufferId: u32, inPort: u32, actions, data: bytes(64) }),
  fc.record({
    type: fc.constant('flow_mod' as const), xid, cookie: u64, cookieMask: u64, tableId: u8, command: u8, idleTimeout: u16, hardTimeout: u16,
    priority: u16, bufferId: u32, outPort: u32, outGroup: u32, flags: u16, match, instructions,
  }),
  fc.record({ type: fc.constant('group_mod' as const), xid, command: u16, groupType: u8, groupId: u32, buckets: fc.array(bucket, { maxLength: 3 }) }),
  fc.record({ type: fc.constant('port_mod' as const), xid, portNo: u32, hwAddr: mac, config: u32, mask: u32, advertise: u32 }),
  fc.record({ type: fc.constant('table_mod' as const), xid, tableId: u8, config: u32 }),
  fc.record({ type: fc.constant('multipart_request' as const), xid, flags: u16, body: multipartRequestBody }),
  fc.record({ type: fc.constant('multipart_reply' as const), xid, flags: u16, body: multipartReplyBody }),
  fc.record({ type: fc.constant('queue_get_config_request' as const), xid, port: u32 }),
  fc.record({
    type: fc.constant('queue_get_config_reply' as const), xid, port: u32,
    queues: fc.array(fc.record({ queueId: u32, port: u32, properties: fc.array(queueProperty, { maxLength: 3 }) }), { maxLength: 3 }),
  }),
  fc.record({ type: fc.constantFrom('role_request' as const, 'role_reply' as const), xid, role: u32, generationId: u64 }),
  fc.record({ type: fc.constantFrom('get_async_reply' as const, 'set_async' as const), xid, packetInMask: pair, portStatusMask: pair, flowRemovedMask: pair }),
  fc.record({ type: fc.constant('meter_mod' as const), xid, command: u16, flags: u16, meterId: u32, bands: fc.array(meterBand, { maxLength: 3 }) }),
);

export const message: fc.Arbitrary<OfpMessage> = fc.oneof(
  { weight: 10, arbitrary: plainMessage },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('bundle_control' as const), xid, bundleId: u32,
      controlType: fc.constantFrom(...(Object.keys(OFPBCT) as BundleCtrlType[])), flags: u16, properties: bytes(16),
    }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('bundle_add' as const), xid, bundleId: u32, flags: u16, message: plainMessage, properties: bytes(16) }) },
);
