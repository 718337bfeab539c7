/**
 * OpenFlow 1.3.5 constants, mirroring `openflow.h` (spec Appendix A) the way Ryu's
 * `ryu/ofproto/ofproto_v1_3.py` does: spec names, lower-cased, without their `OFPx_` prefix.
 * Every table is `as const` so the union types below are derived from it, never typed twice.
 */

export const OFP_VERSION = 0x04;
export const OFP_HEADER_LEN = 8;
/** The largest message the 16-bit `ofp_header.length` can describe (§7.1). */
export const OFP_MAX_MESSAGE_LEN = 0xffff;

/** §7.1 `enum ofp_type`. */
export const OFPT = {
  hello: 0,
  error: 1,
  echo_request: 2,
  echo_reply: 3,
  experimenter: 4,
  features_request: 5,
  features_reply: 6,
  get_config_request: 7,
  get_config_reply: 8,
  set_config: 9,
  packet_in: 10,
  flow_removed: 11,
  port_status: 12,
  packet_out: 13,
  flow_mod: 14,
  group_mod: 15,
  port_mod: 16,
  table_mod: 17,
  multipart_request: 18,
  multipart_reply: 19,
  barrier_request: 20,
  barrier_reply: 21,
  queue_get_config_request: 22,
  queue_get_config_reply: 23,
  role_request: 24,
  role_reply: 25,
  get_async_request: 26,
  get_async_reply: 27,
  set_async: 28,
  meter_mod: 29,
} as const;
export type OfptName = keyof typeof OFPT;

/**
 * ONF extension EXT-230 (bundles) carried in an OpenFlow 1.3 experimenter message, as Open vSwitch
 * implements it (`openflow-common.h`: ONF_VENDOR_ID, ONF_ET_BUNDLE_CONTROL/ADD_MESSAGE).
 */
export const ONF_EXPERIMENTER_ID = 0x4f4e4600;
export const ONF_ET = { bundle_control: 2300, bundle_add: 2301 } as const;

/** OpenFlow 1.4 §7.3.9 `enum ofp_bundle_ctrl_type`, reused by EXT-230. */
export const OFPBCT = {
  open_request: 0,
  open_reply: 1,
  close_request: 2,
  close_reply: 3,
  commit_request: 4,
  commit_reply: 5,
  discard_request: 6,
  discard_reply: 7,
} as const;
export type BundleCtrlType = keyof typeof OFPBCT;

/** `enum ofp_bundle_flags`. */
export const OFPBF = { atomic: 1 << 0, ordered: 1 << 1 } as const;

/** §7.2.1 `enum ofp_port_no`: reserved port numbers. */
export const OFPP = {
  max: 0xffffff00,
  in_port: 0xfffffff8,
  table: 0xfffffff9,
  normal: 0xfffffffa,
  flood: 0xfffffffb,
  all: 0xfffffffc,
  controller: 0xfffffffd,
  local: 0xfffffffe,
  any: 0xffffffff,
} as const;

/** §7.3.4.1 `enum ofp_table`. */
export const OFPTT = { max: 0xfe, all: 0xff } as const;
/** §7.2.5 `enum ofp_group`. */
export const OFPG = { max: 0xffffff00, all: 0xfffffffc, any: 0xffffffff } as const;
/** §7.3.4.4 `enum ofp_meter`. */
export const OFPM = { max: 0xffff0000, slowpath: 0xfffffffd, controller: 0xfffffffe, all: 0xffffffff } as const;
/** §7.2.5 `OFP_NO_BUFFER`. */
export const OFP_NO_BUFFER = 0xffffffff;
/** §7.2.5 `enum ofp_controller_max_len`. */
export const OFPCML = { max: 0xffe5, no_buffer: 0xffff } as const;

/** §7.2.3.1 `enum ofp_match_type`. Only OXM exists in 1.3 (STANDARD is deprecated). */
export const OFPMT = { standard: 0, oxm: 1 } as const;

/** §7.2.3.3 `enum ofp_oxm_class`. */
export const OFPXMC = {
  nxm_0: 0x0000,
  nxm_1: 0x0001,
  openflow_basic: 0x8000,
  experimenter: 0xffff,
} as const;

/** §7.2.3.8 `enum ofp_vlan_id`: OFPVID_PRESENT is OR-ed into vlan_vid values. */
export const OFPVID = { present: 0x1000, none: 0x0000 } as const;

/** How an OXM payload is represented in TypeScript. */
export type OxmKind = 'u8' | 'u16' | 'u24' | 'u32' | 'u64' | 'mac' | 'ipv4' | 'ipv6';

/**
 * §7.2.3.7 `enum oxm_ofb_match_fields`, with each field's payload size and maskability from
 * table 12 ("Header fields details"). The index in this array is the OXM field number.
 */
export const OXM_BASIC_FIELDS = [
  { name: 'in_port', kind: 'u32', bytes: 4, maskable: false },
  { name: 'in_phy_port', kind: 'u32', bytes: 4, maskable: false },
  { name: 'metadata', kind: 'u64', bytes: 8, maskable: true },
  { name: 'eth_dst', kind: 'mac', bytes: 6, maskable: true },
  { name: 'eth_src', kind: 'mac', bytes: 6, maskable: true },
  { name: 'eth_type', kind: 'u16', bytes: 2, maskable: false },
  { name: 'vlan_vid', kind: 'u16', bytes: 2, maskable: true },
  { name: 'vlan_pcp', kind: 'u8', bytes: 1, maskable: false },
  { name: 'ip_dscp', kind: 'u8', bytes: 1, maskable: false },
  { name: 'ip_ecn', kind: 'u8', bytes: 1, maskable: false },
  { name: 'ip_proto', kind: 'u8', bytes: 1, maskable: false },
  { name: 'ipv4_src', kind: 'ipv4', bytes: 4, maskable: true },
  { name: 'ipv4_dst', kind: 'ipv4', bytes: 4, maskable: true },
  { name: 'tcp_src', kind: 'u16', bytes: 2, maskable: false },
  { name: 'tcp_dst', kind: 'u16', bytes: 2, maskable: false },
  { name: 'udp_src', kind: 'u16', bytes: 2, maskable: false },
  { name: 'udp_dst', kind: 'u16', bytes: 2, maskable: false },
  { name: 'sctp_src', kind: 'u16', bytes: 2, maskable: false },
  { name: 'sctp_dst', kind: 'u16', bytes: 2, maskable: false },
  { name: 'icmpv4_type', kind: 'u8', bytes: 1, maskable: false },
  { name: 'icmpv4_code', kind: 'u8', bytes: 1, maskable: false },
  { name: 'arp_op', kind: 'u16', bytes: 2, maskable: false },
  { name: 'arp_spa', kind: 'ipv4', bytes: 4, maskable: true },
  { name: 'arp_tpa', kind: 'ipv4', bytes: 4, maskable: true },
  { name: 'arp_sha', kind: 'mac', bytes: 6, maskable: true },
  { name: 'arp_tha', kind: 'mac', bytes: 6, maskable: true },
  { name: 'ipv6_src', kind: 'ipv6', bytes: 16, maskable: true },
  { name: 'ipv6_dst', kind: 'ipv6', bytes: 16, maskable: true },
  { name: 'ipv6_flabel', kind: 'u32', bytes: 4, maskable: true },
  { name: 'icmpv6_type', kind: 'u8', bytes: 1, maskable: false },
  { name: 'icmpv6_code', kind: 'u8', bytes: 1, maskable: false },
  { name: 'ipv6_nd_target', kind: 'ipv6', bytes: 16, maskable: false },
  { name: 'ipv6_nd_sll', kind: 'mac', bytes: 6, maskable: false },
  { name: 'ipv6_nd_tll', kind: 'mac', bytes: 6, maskable: false },
  { name: 'mpls_label', kind: 'u32', bytes: 4, maskable: false },
  { name: 'mpls_tc', kind: 'u8', bytes: 1, maskable: false },
  { name: 'mpls_bos', kind: 'u8', bytes: 1, maskable: false },
  { name: 'pbb_isid', kind: 'u24', bytes: 3, maskable: true },
  { name: 'tunnel_id', kind: 'u64', bytes: 8, maskable: true },
  { name: 'ipv6_exthdr', kind: 'u16', bytes: 2, maskable: true },
] as const satisfies readonly { name: string; kind: OxmKind; bytes: number; maskable: boolean }[];

type OxmBasicTable = typeof OXM_BASIC_FIELDS;
export type OxmBasicName = OxmBasicTable[number]['name'];
/** The kind of one named field, derived from the table. */
export type OxmKindOf<N extends OxmBasicName> = Extract<OxmBasicTable[number], { name: N }>['kind'];

/** Field name -> field number. */
export const OXM_FIELD_NUMBER: { readonly [N in OxmBasicName]: number } = Object.fromEntries(
  OXM_BASIC_FIELDS.map((f, i) => [f.name, i]),
) as { [N in OxmBasicName]: number };

/**
 * Names of OXM fields the codec keeps opaque, for display only (`meta-flow.h` lists them): Nicira
 * NXM_0 ("0:N") and NXM_1 ("1:N") fields Open vSwitch emits, and OpenFlow-basic fields added after
 * 1.3 ("basic:N", OpenFlow 1.4/1.5 §7.2.3.7), ONF experimenter fields ("onf:EXP_TYPE").
 */
export const NXM_FIELD_NAMES: Readonly<Record<string, string>> = {
  'basic:41': 'pbb_uca',
  // ONF experimenter OXM in OpenFlow 1.3 (EXT-256): class 0xffff, experimenter ONF, exp_type 2560.
  'onf:2560': 'pbb_uca',
  'basic:42': 'tcp_flags',
  'basic:43': 'actset_output',
  'basic:44': 'packet_type',
  ...Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`1:${i}`, `reg${i}`])),
  '1:16': 'tun_id',
  '1:31': 'tun_ipv4_src',
  '1:32': 'tun_ipv4_dst',
  '1:33': 'pkt_mark',
  '1:37': 'conj_id',
  '1:38': 'tun_gbp_id',
  '1:39': 'tun_gbp_flags',
  '1:40': 'tun_metadata0',
  '1:43': 'ct_state',
  '1:44': 'ct_zone',
  '1:45': 'ct_mark',
  '1:46': 'ct_label',
  '0:0': 'nxm_in_port',
};

/** §7.2.4 `enum ofp_action_type`. */
export const OFPAT = {
  output: 0,
  copy_ttl_out: 11,
  copy_ttl_in: 12,
  set_mpls_ttl: 15,
  dec_mpls_ttl: 16,
  push_vlan: 17,
  pop_vlan: 18,
  push_mpls: 19,
  pop_mpls: 20,
  set_queue: 21,
  group: 22,
  set_nw_ttl: 23,
  dec_nw_ttl: 24,
  set_field: 25,
  push_pbb: 26,
  pop_pbb: 27,
  experimenter: 0xffff,
} as const;
export type OfpatName = keyof typeof OFPAT;

/** §7.2.4 `enum ofp_instruction_type`. */
export const OFPIT = {
  goto_table: 1,
  write_metadata: 2,
  write_actions: 3,
  apply_actions: 4,
  clear_actions: 5,
  meter: 6,
  experimenter: 0xffff,
} as const;
export type OfpitName = keyof typeof OFPIT;

/** §7.3.4.1 `enum ofp_flow_mod_command`. */
export const OFPFC = { add: 0, modify: 1, modify_strict: 2, delete: 3, delete_strict: 4 } as const;
/** §7.3.4.1 `enum ofp_flow_mod_flags`. */
export const OFPFF = {
  send_flow_rem: 1 << 0,
  check_overlap: 1 << 1,
  reset_counts: 1 << 2,
  no_pkt_counts: 1 << 3,
  no_byt_counts: 1 << 4,
} as const;
/** §7.3.4.2 `enum ofp_group_mod_command`, `enum ofp_group_type`. */
export const OFPGC = { add: 0, modify: 1, delete: 2 } as const;
export const OFPGT = { all: 0, select: 1, indirect: 2, ff: 3 } as const;
/** §7.3.4.4 `enum ofp_meter_mod_command`, `enum ofp_meter_flags`, `enum ofp_meter_band_type`. */
export const OFPMC = { add: 0, modify: 1, delete: 2 } as const;
export const OFPMF = { kbps: 1 << 0, pktps: 1 << 1, burst: 1 << 2, stats: 1 << 3 } as const;
export const OFPMBT = { drop: 1, dscp_remark: 2, experimenter: 0xffff } as const;
/** §7.2.2 `enum ofp_queue_properties`. */
export const OFPQT = { min_rate: 1, max_rate: 2, experimenter: 0xffff } as const;

/** §7.3.5 `enum ofp_multipart_type`. */
export const OFPMP = {
  desc: 0,
  flow: 1,
  aggregate: 2,
  table: 3,
  port_stats: 4,
  queue: 5,
  group: 6,
  group_desc: 7,
  group_features: 8,
  meter: 9,
  meter_config: 10,
  meter_features: 11,
  table_features: 12,
  port_desc: 13,
  experimenter: 0xffff,
} as const;
export type OfpmpName = keyof typeof OFPMP;
/** §7.3.5 `enum ofp_multipart_request_flags` / `_reply_flags`. */
export const OFPMPF = { more: 1 << 0 } as const;

/** §7.3.5.5.2 `enum ofp_table_feature_prop_type`. */
export const OFPTFPT = {
  instructions: 0,
  instructions_miss: 1,
  next_tables: 2,
  next_tables_miss: 3,
  write_actions: 4,
  write_actions_miss: 5,
  apply_actions: 6,
  apply_actions_miss: 7,
  match: 8,
  wildcards: 10,
  write_setfield: 12,
  write_setfield_miss: 13,
  apply_setfield: 14,
  apply_setfield_miss: 15,
  experimenter: 0xfffe,
  experimenter_miss: 0xffff,
} as const;
export type OfptfptName = keyof typeof OFPTFPT;

/** §7.1 `enum ofp_hello_elem_type`. */
export const OFPHET = { versionbitmap: 1 } as const;

/** §7.3.9 `enum ofp_controller_role`. */
export const OFPCR_ROLE = { nochange: 0, equal: 1, master: 2, slave: 3 } as const;
/** §7.3.2 `enum ofp_config_flags`. */
export const OFPC_FRAG = { normal: 0, drop: 1, reasm: 2, mask: 3 } as const;
/** §7.3.1 `enum ofp_capabilities`. */
export const OFPC = {
  flow_stats: 1 << 0,
  table_stats: 1 << 1,
  port_stats: 1 << 2,
  group_stats: 1 << 3,
  ip_reasm: 1 << 5,
  queue_stats: 1 << 6,
  port_blocked: 1 << 8,
} as const;
/** §7.4.1 `enum ofp_packet_in_reason`. */
export const OFPR = { no_match: 0, action: 1, invalid_ttl: 2 } as const;
/** §7.4.2 `enum ofp_flow_removed_reason`. */
export const OFPRR = { idle_timeout: 0, hard_timeout: 1, delete: 2, group_delete: 3 } as const;
/** §7.4.3 `enum ofp_port_reason`. */
export const OFPPR = { add: 0, delete: 1, modify: 2 } as const;
/** §7.2.1 `enum ofp_port_config`, `enum ofp_port_state`. */
export const OFPPC = { port_down: 1 << 0, no_recv: 1 << 2, no_fwd: 1 << 5, no_packet_in: 1 << 6 } as const;
export const OFPPS = { link_down: 1 << 0, blocked: 1 << 1, live: 1 << 2 } as const;

/** §7.4.4 `enum ofp_error_type`. */
export const OFPET = {
  hello_failed: 0,
  bad_request: 1,
  bad_action: 2,
  bad_instruction: 3,
  bad_match: 4,
  flow_mod_failed: 5,
  group_mod_failed: 6,
  port_mod_failed: 7,
  table_mod_failed: 8,
  queue_op_failed: 9,
  switch_config_failed: 10,
  role_request_failed: 11,
  meter_mod_failed: 12,
  table_features_failed: 13,
  experimenter: 0xffff,
} as const;
export type OfpetName = keyof typeof OFPET;

/** §7.4.4 error codes per error type, indexed by OFPET value (names without their prefix). */
export const OFP_ERROR_CODES: { readonly [T in Exclude<OfpetName, 'experimenter'>]: readonly string[] } = {
  hello_failed: ['incompatible', 'eperm'],
  bad_request: [
    'bad_version', 'bad_type', 'bad_multipart', 'bad_experimenter', 'bad_exp_type', 'eperm', 'bad_len',
    'buffer_empty', 'buffer_unknown', 'bad_table_id', 'is_slave', 'bad_port', 'bad_packet',
    'multipart_buffer_overflow',
  ],
  bad_action: [
    'bad_type', 'bad_len', 'bad_experimenter', 'bad_exp_type', 'bad_out_port', 'bad_argument', 'eperm',
    'too_many', 'bad_queue', 'bad_out_group', 'match_inconsistent', 'unsupported_order', 'bad_tag',
    'bad_set_type', 'bad_set_len', 'bad_set_argument',
  ],
  bad_instruction: [
    'unknown_inst', 'unsup_inst', 'bad_table_id', 'unsup_metadata', 'unsup_metadata_mask',
    'bad_experimenter', 'bad_exp_type', 'bad_len', 'eperm',
  ],
  bad_match: [
    'bad_type', 'bad_len', 'bad_tag', 'bad_dl_addr_mask', 'bad_nw_addr_mask', 'bad_wildcards', 'bad_field',
    'bad_value', 'bad_mask', 'bad_prereq', 'dup_field', 'eperm',
  ],
  flow_mod_failed: ['unknown', 'table_full', 'bad_table_id', 'overlap', 'eperm', 'bad_timeout', 'bad_command', 'bad_flags'],
  group_mod_failed: [
    'group_exists', 'invalid_group', 'weight_unsupported', 'out_of_groups', 'out_of_buckets',
    'chaining_unsupported', 'watch_unsupported', 'loop', 'unknown_group', 'chained_group', 'bad_type',
    'bad_command', 'bad_bucket', 'bad_watch', 'eperm',
  ],
  port_mod_failed: ['bad_port', 'bad_hw_addr', 'bad_config', 'bad_advertise', 'eperm'],
  table_mod_failed: ['bad_table', 'bad_config', 'eperm'],
  queue_op_failed: ['bad_port', 'bad_queue', 'eperm'],
  switch_config_failed: ['bad_flags', 'bad_len', 'eperm'],
  role_request_failed: ['stale', 'unsup', 'bad_role'],
  meter_mod_failed: [
    'unknown', 'meter_exists', 'invalid_meter', 'unknown_meter', 'bad_command', 'bad_flags', 'bad_rate',
    'bad_burst', 'bad_band', 'bad_band_value', 'out_of_meters', 'out_of_bands',
  ],
  table_features_failed: ['bad_table', 'bad_metadata', 'bad_type', 'bad_len', 'bad_argument', 'eperm'],
};

/** "bad_request/bad_type"-style name for an error type and code, or undefined when not in the spec. */
export function errorName(errorType: number, code: number): string | undefined {
  const typeName = (Object.keys(OFPET) as OfpetName[]).find((k) => OFPET[k] === errorType);
  if (typeName === undefined || typeName === 'experimenter') return typeName;
  const codeName = OFP_ERROR_CODES[typeName][code];
  return codeName === undefined ? undefined : `${typeName}/${codeName}`;
}

/** Fixed string sizes (§7.2.1, §7.3.5.1, §7.3.5.5). */
export const OFP_MAX_PORT_NAME_LEN = 16;
export const OFP_MAX_TABLE_NAME_LEN = 32;
export const DESC_STR_LEN = 256;
export const SERIAL_NUM_LEN = 32;
export const OFP_ETH_ALEN = 6;
