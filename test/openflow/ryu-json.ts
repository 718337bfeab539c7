/**
 * Reads Ryu's JSON dumps of OpenFlow 1.3 messages and compares them with our decoded messages,
 * field by field. Ryu's names are mapped to ours here (the codec's types do not mimic Ryu's).
 * Parts our codec keeps opaque (Nicira actions, NXM fields, ONF multipart bodies) are checked on
 * the fields that identify them (experimenter id, subtype, field name and value).
 */
import { NXM_FIELD_NAMES, OFPTFPT, OXM_BASIC_FIELDS, oxmName, type OxmField } from '../../src/openflow/index.js';

/** JSON.parse keeping integers beyond 2^53 exact (as BigInt). */
export function readRyuJson(text: string): unknown {
  const marked = text.replace(/([:\[,]\s*)(-?\d{16,})(?=\s*[,\]}])/g, '$1"__bigint:$2"');
  return JSON.parse(marked, (_k, v) => (typeof v === 'string' && v.startsWith('__bigint:') ? BigInt(v.slice(9)) : v));
}

/** Compare only these keys of the actual object. */
class Loose {
  constructor(readonly fields: Record<string, unknown>) {}
}
/** A check on the actual value that the comparator cannot express structurally. */
class Pred {
  constructor(readonly what: string, readonly test: (actual: unknown) => boolean) {}
}

type J = Record<string, unknown>;
const b64 = (s: unknown) => (s === null || s === undefined ? Buffer.alloc(0) : Buffer.from(String(s), 'base64'));

function unwrap(x: unknown): [string, J] {
  const [cls, body] = Object.entries(x as J)[0]!;
  return [cls, body as J];
}

// ---------------------------------------------------------------------------------------------

function oxm(x: unknown): unknown {
  const [, f] = unwrap(x);
  const name = f.field as string;
  const basic = OXM_BASIC_FIELDS.find((d) => d.name === name);
  if (basic) return f.mask === null || f.mask === undefined ? { field: name, value: f.value } : { field: name, value: f.value, mask: f.mask };
  if (!Object.values(NXM_FIELD_NAMES).includes(name)) throw new Error(`unmapped OXM ${name}`);
  return new Pred(`opaque OXM ${name} = ${String(f.value)}`, (a) => {
    const o = a as Extract<OxmField, { field: 'opaque' }>;
    if (o.field !== 'opaque' || oxmName(o) !== name) return false;
    // ONF experimenter OXMs carry experimenter id and exp_type before the value.
    const p = o.oxmClass === 0xffff ? o.payload.subarray(6) : o.payload;
    const v = typeof f.value === 'string' ? p.subarray(0, 4).join('.') : p.readUIntBE(0, Math.min(6, p.length));
    return v === f.value;
  });
}

const match = (x: unknown) => (unwrap(x)[1].oxm_fields as unknown[]).map(oxm);

const SIMPLE_ACTIONS: Record<string, [string, Record<string, string>]> = {
  OFPActionOutput: ['output', { port: 'port', max_len: 'maxLen' }],
  OFPActionCopyTtlOut: ['copy_ttl_out', {}],
  OFPActionCopyTtlIn: ['copy_ttl_in', {}],
  OFPActionSetMplsTtl: ['set_mpls_ttl', { mpls_ttl: 'mplsTtl' }],
  OFPActionDecMplsTtl: ['dec_mpls_ttl', {}],
  OFPActionPushVlan: ['push_vlan', { ethertype: 'ethertype' }],
  OFPActionPopVlan: ['pop_vlan', {}],
  OFPActionPushMpls: ['push_mpls', { ethertype: 'ethertype' }],
  OFPActionPopMpls: ['pop_mpls', { ethertype: 'ethertype' }],
  OFPActionSetQueue: ['set_queue', { queue_id: 'queueId' }],
  OFPActionGroup: ['group', { group_id: 'groupId' }],
  OFPActionSetNwTtl: ['set_nw_ttl', { nw_ttl: 'nwTtl' }],
  OFPActionDecNwTtl: ['dec_nw_ttl', {}],
  OFPActionPushPbb: ['push_pbb', { ethertype: 'ethertype' }],
  OFPActionPopPbb: ['pop_pbb', {}],
};

function rename(body: J, map: Record<string, string>, extra: J = {}): J {
  const out: J = { ...extra };
  for (const [from, to] of Object.entries(map)) out[to] = body[from];
  return out;
}

function action(x: unknown): unknown {
  const [cls, a] = unwrap(x);
  const simple = SIMPLE_ACTIONS[cls];
  if (simple) return rename(a, simple[1], { type: simple[0] });
  if (cls === 'OFPActionSetField') return { type: 'set_field', field: oxm(a.field) };
  if (cls === 'OFPActionExperimenterUnknown') return { type: 'experimenter', experimenter: a.experimenter, data: b64(a.data) };
  if (cls.startsWith('NXAction')) {
    // Nicira actions stay opaque: check the experimenter id and the subtype that opens the body.
    return new Loose({
      type: 'experimenter',
      experimenter: a.experimenter,
      ...(a.subtype !== undefined ? { data: new Pred(`NX subtype ${String(a.subtype)}`, (d) => (d as Buffer).readUInt16BE(0) === a.subtype) } : {}),
    });
  }
  throw new Error(`unmapped action ${cls}`);
}

function instruction(x: unknown): unknown {
  const [cls, i] = unwrap(x);
  switch (cls) {
    case 'OFPInstructionActions': {
      const type = ({ 3: 'write_actions', 4: 'apply_actions', 5: 'clear_actions' } as Record<number, string>)[i.type as number]!;
      return type === 'clear_actions' ? { type } : { type, actions: (i.actions as unknown[]).map(action) };
    }
    case 'OFPInstructionGotoTable':
      return { type: 'goto_table', tableId: i.table_id };
    case 'OFPInstructionMeter':
      return { type: 'meter', meterId: i.meter_id };
    case 'OFPInstructionWriteMetadata':
      return { type: 'write_metadata', metadata: i.metadata, metadataMask: i.metadata_mask };
  }
  throw new Error(`unmapped instruction ${cls}`);
}

const bucket = (x: unknown) => {
  const b = unwrap(x)[1];
  return { weight: b.weight, watchPort: b.watch_port, watchGroup: b.watch_group, actions: (b.actions as unknown[]).map(action) };
};

function band(x: unknown): unknown {
  const [cls, b] = unwrap(x);
  const base = { rate: b.rate, burstSize: b.burst_size };
  if (cls === 'OFPMeterBandDrop') return { type: 'drop', ...base };
  if (cls === 'OFPMeterBandDscpRemark') return { type: 'dscp_remark', ...base, precLevel: b.prec_level };
  if (cls === 'OFPMeterBandExperimenter') return { type: 'experimenter', ...base, experimenter: b.experimenter, data: Buffer.alloc(0) };
  throw new Error(`unmapped band ${cls}`);
}

const port = (x: unknown) =>
  rename(unwrap(x)[1], {
    port_no: 'portNo', hw_addr: 'hwAddr', name: 'name', config: 'config', state: 'state', curr: 'curr', advertised: 'advertised',
    supported: 'supported', peer: 'peer', curr_speed: 'currSpeed', max_speed: 'maxSpeed',
  });

const u32s = (list: unknown) => {
  const arr = list as number[];
  const b = Buffer.alloc(4 * arr.length);
  arr.forEach((v, i) => b.writeUInt32BE(v, 4 * i));
  return b;
};

const TFPT_NAME = Object.fromEntries(Object.entries(OFPTFPT).map(([k, v]) => [v, k]));
function tableFeatureProp(x: unknown): unknown {
  const [cls, p] = unwrap(x);
  const type = TFPT_NAME[p.type as number];
  const ids = (list: unknown) => (list as unknown[]).map((y) => ({ id: unwrap(y)[1].type, data: Buffer.alloc(0) }));
  switch (cls) {
    case 'OFPTableFeaturePropInstructions':
      return { type, instructionIds: ids(p.instruction_ids) };
    case 'OFPTableFeaturePropNextTables':
      return { type, tableIds: p.table_ids };
    case 'OFPTableFeaturePropActions':
      return { type, actionIds: ids(p.action_ids) };
    case 'OFPTableFeaturePropOxm':
      return {
        type,
        oxmIds: (p.oxm_ids as unknown[]).map((y) => {
          const o = unwrap(y)[1];
          const n = OXM_BASIC_FIELDS.findIndex((d) => d.name === o.type);
          if (n < 0) throw new Error(`unmapped OXM id ${String(o.type)}`);
          return { oxmClass: 0x8000, oxmField: n, hasMask: Boolean(o.hasmask), payloadLength: o.length };
        }),
      };
    case 'OFPTableFeaturePropExperimenter':
      return { type, experimenter: p.experimenter, expType: p.exp_type, data: u32s(p.data) };
  }
  throw new Error(`unmapped table feature property ${cls}`);
}

const tableFeatures = (x: unknown) => {
  const f = unwrap(x)[1];
  return {
    tableId: f.table_id, name: f.name, metadataMatch: f.metadata_match, metadataWrite: f.metadata_write, config: f.config,
    maxEntries: f.max_entries, properties: (f.properties as unknown[]).map(tableFeatureProp),
  };
};

const flowReq = (type: string, m: J) => ({
  type, tableId: m.table_id, outPort: m.out_port, outGroup: m.out_group, cookie: m.cookie, cookieMask: m.cookie_mask, match: match(m.match),
});

const entries = (list: unknown, f: (x: unknown) => unknown) => (list as unknown[]).map(f);

/** Ryu message class -> [our type, body mapper]. */
const MESSAGES: Record<string, (m: J) => J> = {
  OFPHello: (m) => ({ type: 'hello', elements: (m.elements as unknown[]).map((e) => ({ type: 'versionbitmap', versions: unwrap(e)[1].versions })) }),
  OFPErrorMsg: (m) =>
    m.type === 0xffff
      ? { type: 'error', errorType: 0xffff, expType: m.exp_type, experimenter: m.experimenter, data: b64(m.data) }
      : { type: 'error', errorType: m.type, code: m.code, data: b64(m.data) },
  OFPEchoRequest: (m) => ({ type: 'echo_request', data: b64(m.data) }),
  OFPEchoReply: (m) => ({ type: 'echo_reply', data: b64(m.data) }),
  OFPExperimenter: (m) => ({ type: 'experimenter', experimenter: m.experimenter, expType: m.exp_type, data: b64(m.data) }),
  OFPFeaturesRequest: () => ({ type: 'features_request' }),
  OFPSwitchFeatures: (m) => ({
    type: 'features_reply', datapathId: m.datapath_id, nBuffers: m.n_buffers, nTables: m.n_tables, auxiliaryId: m.auxiliary_id,
    capabilities: m.capabilities, reserved: new Pred('any reserved', () => true),
  }),
  OFPGetConfigRequest: () => ({ type: 'get_config_request' }),
  OFPGetConfigReply: (m) => ({ type: 'get_config_reply', flags: m.flags, missSendLen: m.miss_send_len }),
  OFPSetConfig: (m) => ({ type: 'set_config', flags: m.flags, missSendLen: m.miss_send_len }),
  OFPPacketIn: (m) => ({
    type: 'packet_in', bufferId: m.buffer_id, totalLen: m.total_len, reason: m.reason, tableId: m.table_id, cookie: m.cookie,
    match: match(m.match), data: b64(m.data),
  }),
  OFPFlowRemoved: (m) => ({
    type: 'flow_removed', cookie: m.cookie, priority: m.priority, reason: m.reason, tableId: m.table_id, durationSec: m.duration_sec,
    durationNsec: m.duration_nsec, idleTimeout: m.idle_timeout, hardTimeout: m.hard_timeout, packetCount: m.packet_count,
    byteCount: m.byte_count, match: match(m.match),
  }),
  OFPPortStatus: (m) => ({ type: 'port_status', reason: m.reason, port: port(m.desc) }),
  OFPPacketOut: (m) => ({
    type: 'packet_out', bufferId: m.buffer_id, inPort: m.in_port, actions: (m.actions as unknown[]).map(action),
    // Ryu sometimes prints the frame parsed by its packet library: check only that one is there.
    data: typeof m.data === 'string' ? b64(m.data) : new Pred('a frame', (d) => (d as Buffer).length > 0),
  }),
  OFPFlowMod: (m) => ({
    type: 'flow_mod', cookie: m.cookie, cookieMask: m.cookie_mask, tableId: m.table_id, command: m.command, idleTimeout: m.idle_timeout,
    hardTimeout: m.hard_timeout, priority: m.priority, bufferId: m.buffer_id, outPort: m.out_port, outGroup: m.out_group, flags: m.flags,
    match: match(m.match), instructions: (m.instructions as unknown[]).map(instruction),
  }),
  OFPGroupMod: (m) => ({ type: 'group_mod', command: m.command, groupType: m.type, groupId: m.group_id, buckets: entries(m.buckets, bucket) }),
  OFPPortMod: (m) => ({ type: 'port_mod', portNo: m.port_no, hwAddr: m.hw_addr, config: m.config, mask: m.mask, advertise: m.advertise }),
  OFPTableMod: (m) => ({ type: 'table_mod', tableId: m.table_id, config: m.config }),
  OFPBarrierRequest: () => ({ type: 'barrier_request' }),
  OFPBarrierReply: () => ({ type: 'barrier_reply' }),
  OFPQueueGetConfigRequest: (m) => ({ type: 'queue_get_config_request', port: m.port }),
  OFPQueueGetConfigReply: (m) => ({
    type: 'queue_get_config_reply', port: m.port,
    queues: entries(m.queues, (q) => {
      const b = unwrap(q)[1];
      return {
        queueId: b.queue_id, port: b.port,
        properties: entries(b.properties, (p) => {
          const [cls, v] = unwrap(p);
          if (cls === 'OFPQueuePropMinRate') return { type: 'min_rate', rate: v.rate };
          if (cls === 'OFPQueuePropMaxRate') return { type: 'max_rate', rate: v.rate };
          return { type: 'experimenter', experimenter: v.experimenter, data: Buffer.from(v.data as number[]) };
        }),
      };
    }),
  }),
  OFPRoleRequest: (m) => ({ type: 'role_request', role: m.role, generationId: m.generation_id }),
  OFPRoleReply: (m) => ({ type: 'role_reply', role: m.role, generationId: m.generation_id }),
  OFPGetAsyncRequest: () => ({ type: 'get_async_request' }),
  OFPGetAsyncReply: (m) => ({ type: 'get_async_reply', packetInMask: m.packet_in_mask, portStatusMask: m.port_status_mask, flowRemovedMask: m.flow_removed_mask }),
  OFPSetAsync: (m) => ({ type: 'set_async', packetInMask: m.packet_in_mask, portStatusMask: m.port_status_mask, flowRemovedMask: m.flow_removed_mask }),
  OFPMeterMod: (m) => ({ type: 'meter_mod', command: m.command, flags: m.flags, meterId: m.meter_id, bands: entries(m.bands, band) }),
};

const req = (body: (m: J) => J) => (m: J) => ({ type: 'multipart_request', flags: m.flags, body: body(m) });
const rep = (body: (m: J) => J) => (m: J) => ({ type: 'multipart_reply', flags: m.flags, body: body(m) });
const one = (x: unknown) => unwrap(Array.isArray(x) ? x[0] : x)[1];

Object.assign(MESSAGES, {
  OFPDescStatsRequest: req(() => ({ type: 'desc' })),
  OFPDescStatsReply: rep((m) => {
    const d = one(m.body);
    return { type: 'desc', mfrDesc: d.mfr_desc, hwDesc: d.hw_desc, swDesc: d.sw_desc, serialNum: d.serial_num, dpDesc: d.dp_desc };
  }),
  OFPFlowStatsRequest: req((m) => flowReq('flow', m)),
  OFPAggregateStatsRequest: req((m) => flowReq('aggregate', m)),
  OFPFlowStatsReply: rep((m) => ({
    type: 'flow',
    stats: entries(m.body, (x) => {
      const f = unwrap(x)[1];
      return {
        tableId: f.table_id, durationSec: f.duration_sec, durationNsec: f.duration_nsec, priority: f.priority, idleTimeout: f.idle_timeout,
        hardTimeout: f.hard_timeout, flags: f.flags, cookie: f.cookie, packetCount: f.packet_count, byteCount: f.byte_count,
        match: match(f.match), instructions: entries(f.instructions, instruction),
      };
    }),
  })),
  OFPAggregateStatsReply: rep((m) => {
    const a = one(m.body);
    return { type: 'aggregate', packetCount: a.packet_count, byteCount: a.byte_count, flowCount: a.flow_count };
  }),
  OFPTableStatsRequest: req(() => ({ type: 'table' })),
  OFPTableStatsReply: rep((m) => ({
    type: 'table',
    stats: entries(m.body, (x) => rename(unwrap(x)[1], { table_id: 'tableId', active_count: 'activeCount', lookup_count: 'lookupCount', matched_count: 'matchedCount' })),
  })),
  OFPPortStatsRequest: req((m) => ({ type: 'port_stats', portNo: m.port_no })),
  OFPPortStatsReply: rep((m) => ({
    type: 'port_stats',
    stats: entries(m.body, (x) =>
      rename(unwrap(x)[1], {
        port_no: 'portNo', rx_packets: 'rxPackets', tx_packets: 'txPackets', rx_bytes: 'rxBytes', tx_bytes: 'txBytes', rx_dropped: 'rxDropped',
        tx_dropped: 'txDropped', rx_errors: 'rxErrors', tx_errors: 'txErrors', rx_frame_err: 'rxFrameErr', rx_over_err: 'rxOverErr',
        rx_crc_err: 'rxCrcErr', collisions: 'collisions', duration_sec: 'durationSec', duration_nsec: 'durationNsec',
      })),
  })),
  OFPQueueStatsRequest: req((m) => ({ type: 'queue', portNo: m.port_no, queueId: m.queue_id })),
  OFPQueueStatsReply: rep((m) => ({
    type: 'queue',
    stats: entries(m.body, (x) =>
      rename(unwrap(x)[1], {
        port_no: 'portNo', queue_id: 'queueId', tx_bytes: 'txBytes', tx_packets: 'txPackets', tx_errors: 'txErrors',
        duration_sec: 'durationSec', duration_nsec: 'durationNsec',
      })),
  })),
  OFPGroupStatsRequest: req((m) => ({ type: 'group', groupId: m.group_id })),
  OFPGroupStatsReply: rep((m) => ({
    type: 'group',
    stats: entries(m.body, (x) => {
      const g = unwrap(x)[1];
      return {
        groupId: g.group_id, refCount: g.ref_count, packetCount: g.packet_count, byteCount: g.byte_count, durationSec: g.duration_sec,
        durationNsec: g.duration_nsec,
        bucketStats: entries(g.bucket_stats, (b) => rename(unwrap(b)[1], { packet_count: 'packetCount', byte_count: 'byteCount' })),
      };
    }),
  })),
  OFPGroupDescStatsRequest: req(() => ({ type: 'group_desc' })),
  OFPGroupDescStatsReply: rep((m) => ({
    type: 'group_desc',
    groups: entries(m.body, (x) => {
      const g = unwrap(x)[1];
      return { groupType: g.type, groupId: g.group_id, buckets: entries(g.buckets, bucket) };
    }),
  })),
  OFPGroupFeaturesStatsRequest: req(() => ({ type: 'group_features' })),
  OFPGroupFeaturesStatsReply: rep((m) => {
    const g = one(m.body);
    return { type: 'group_features', types: g.types, capabilities: g.capabilities, maxGroups: g.max_groups, actions: g.actions };
  }),
  OFPMeterStatsRequest: req((m) => ({ type: 'meter', meterId: m.meter_id })),
  OFPMeterStatsReply: rep((m) => ({
    type: 'meter',
    stats: entries(m.body, (x) => {
      const s = unwrap(x)[1];
      return {
        meterId: s.meter_id, flowCount: s.flow_count, packetInCount: s.packet_in_count, byteInCount: s.byte_in_count,
        durationSec: s.duration_sec, durationNsec: s.duration_nsec,
        bandStats: entries(s.band_stats, (b) => rename(unwrap(b)[1], { packet_band_count: 'packetBandCount', byte_band_count: 'byteBandCount' })),
      };
    }),
  })),
  OFPMeterConfigStatsRequest: req((m) => ({ type: 'meter_config', meterId: m.meter_id })),
  OFPMeterConfigStatsReply: rep((m) => ({
    type: 'meter_config',
    configs: entries(m.body, (x) => {
      const c = unwrap(x)[1];
      return { flags: c.flags, meterId: c.meter_id, bands: entries(c.bands, band) };
    }),
  })),
  OFPMeterFeaturesStatsRequest: req(() => ({ type: 'meter_features' })),
  OFPMeterFeaturesStatsReply: rep((m) => {
    const f = one(m.body);
    return { type: 'meter_features', maxMeter: f.max_meter, bandTypes: f.band_types, capabilities: f.capabilities, maxBands: f.max_bands, maxColor: f.max_color };
  }),
  OFPPortDescStatsRequest: req(() => ({ type: 'port_desc' })),
  OFPPortDescStatsReply: rep((m) => ({ type: 'port_desc', ports: entries(m.body, port) })),
  OFPTableFeaturesStatsRequest: req((m) => ({ type: 'table_features', tables: entries(m.body, tableFeatures) })),
  OFPTableFeaturesStatsReply: rep((m) => ({ type: 'table_features', tables: entries(m.body, tableFeatures) })),
  OFPExperimenterStatsRequest: req((m) => ({ type: 'experimenter', experimenter: m.experimenter, expType: m.exp_type, data: b64(m.data) })),
  OFPExperimenterStatsReply: rep((m) => {
    const e = one(m.body);
    return { type: 'experimenter', experimenter: e.experimenter, expType: e.exp_type, data: b64(e.data) };
  }),
  // ONF flow monitor (EXT-187) is not modelled: an experimenter multipart with ONF's id and exp_type 1870.
  ONFFlowMonitorStatsRequest: req(() => new Loose({ type: 'experimenter', experimenter: 0x4f4e4600, expType: 1870 }) as unknown as J),
});

/** Maps one Ryu JSON message to our expected shape. */
export function expectedFromRyu(json: unknown): unknown {
  const [cls, body] = unwrap(json);
  const map = MESSAGES[cls];
  if (!map) throw new Error(`unmapped Ryu message class ${cls}`);
  return map(body);
}

function compare(actual: unknown, expected: unknown, path: string, out: string[]): void {
  if (expected instanceof Pred) {
    if (!expected.test(actual)) out.push(`${path}: expected ${expected.what}`);
    return;
  }
  if (expected instanceof Loose) {
    for (const [k, v] of Object.entries(expected.fields)) compare((actual as J | undefined)?.[k], v, `${path}.${k}`, out);
    return;
  }
  if (Buffer.isBuffer(expected)) {
    if (!Buffer.isBuffer(actual) || !actual.equals(expected)) out.push(`${path}: bytes differ (${String(actual)} vs ${expected.toString('hex')})`);
    return;
  }
  if ((typeof expected === 'number' || typeof expected === 'bigint') && (typeof actual === 'number' || typeof actual === 'bigint')) {
    if (BigInt(actual) !== BigInt(expected)) out.push(`${path}: ${String(actual)} != ${String(expected)}`);
    // 64-bit fields must be bigint in our types; Ryu's small values arrive as numbers.
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      out.push(`${path}: array length ${Array.isArray(actual) ? actual.length : typeof actual} != ${expected.length}`);
      return;
    }
    expected.forEach((e, i) => compare(actual[i], e, `${path}[${i}]`, out));
    return;
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object') {
      out.push(`${path}: not an object`);
      return;
    }
    const ek = Object.keys(expected).sort();
    const ak = Object.keys(actual).sort();
    if (ek.join() !== ak.join()) out.push(`${path}: keys [${ak.join()}] != [${ek.join()}]`);
    for (const k of ek) compare((actual as J)[k], (expected as J)[k], `${path}.${k}`, out);
    return;
  }
  if (actual !== expected) out.push(`${path}: ${JSON.stringify(actual)} != ${JSON.stringify(expected)}`);
}

/** Differences between our decoded message and Ryu's JSON of it (xid is not in Ryu's JSON). */
export function agree(actual: unknown, ryuJson: unknown): string[] {
  const expected = expectedFromRyu(ryuJson) as J;
  if (!(expected instanceof Loose)) expected.xid = (actual as J).xid;
  const out: string[] = [];
  compare(actual, expected, '$', out);
  return out;
}
