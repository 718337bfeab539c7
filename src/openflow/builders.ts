/**
 * Builders for the messages a controller sends most, with the spec's defaults filled in, so callers
 * never hand-assemble structures. Each returns a plain `OfpMessage` object (encode it with
 * `encodeMessage`); anything can still be overridden field by field.
 */
import { OFPCML, OFPFC, OFPG, OFPP, OFPTT, OFP_NO_BUFFER, OXM_BASIC_FIELDS, type OxmBasicName } from './constants.js';
import type { Action, Instruction } from './actions.js';
import type { FlowMod, MessageOf, PacketOut, OfpMessage, BundleAdd, BundleControl } from './messages.js';
import type { MultipartRequestBody } from './multipart.js';
import type { Match, OxmBasicField, OxmField } from './oxm.js';
import type { BundleCtrlType } from './constants.js';

/** Value type of a named OXM field (e.g. number for in_port, string for eth_dst, bigint for metadata). */
export type OxmValueOf<N extends OxmBasicName> = Extract<OxmBasicField, { field: N }>['value'];

/** One OXM entry: `oxm('eth_dst', '00:00:00:00:00:01')`, `oxm('ipv4_dst', '10.0.0.0', '255.0.0.0')`. */
export function oxm<N extends OxmBasicName>(field: N, value: OxmValueOf<N>, mask?: OxmValueOf<N>): OxmField {
  return (mask === undefined ? { field, value } : { field, value, mask }) as OxmField;
}

/**
 * A match from an object of field values, emitted in the spec's field order so prerequisites come
 * first (§7.2.3.6): `match({ in_port: 1, eth_type: 0x0800, ipv4_dst: ['10.0.0.0', '255.0.0.0'] })`.
 * A `[value, mask]` pair sets a mask.
 */
export function match(fields: { [N in OxmBasicName]?: OxmValueOf<N> | [OxmValueOf<N>, OxmValueOf<N>] }): Match {
  const out: Match = [];
  for (const name of ORDER) {
    const v = fields[name];
    if (v === undefined) continue;
    out.push(Array.isArray(v) ? oxm(name, v[0] as never, v[1] as never) : oxm(name, v as never));
  }
  return out;
}
const ORDER: readonly OxmBasicName[] = OXM_BASIC_FIELDS.map((f) => f.name);

/** `OFPAT_OUTPUT`; `maxLen` defaults to OFPCML_NO_BUFFER (whole packet to the controller). */
export function output(port: number | keyof typeof OFPP, maxLen: number = OFPCML.no_buffer): Action {
  return { type: 'output', port: typeof port === 'string' ? OFPP[port] : port, maxLen };
}

/** `OFPAT_SET_FIELD` with one OXM value. */
export function setField<N extends OxmBasicName>(field: N, value: OxmValueOf<N>): Action {
  return { type: 'set_field', field: oxm(field, value) };
}

export function applyActions(...actions: Action[]): Instruction {
  return { type: 'apply_actions', actions };
}

export function writeActions(...actions: Action[]): Instruction {
  return { type: 'write_actions', actions };
}

export function gotoTable(tableId: number): Instruction {
  return { type: 'goto_table', tableId };
}

type FlowModInit = Partial<Omit<FlowMod, 'type' | 'command'>> & { command?: number | keyof typeof OFPFC };

/** An OFPT_FLOW_MOD with §7.3.4.1 defaults: add, table 0, no buffer, any port/group, no timeouts. */
export function flowMod(init: FlowModInit = {}): FlowMod {
  const { command, ...rest } = init;
  return {
    type: 'flow_mod',
    xid: 0,
    cookie: 0n,
    cookieMask: 0n,
    tableId: 0,
    idleTimeout: 0,
    hardTimeout: 0,
    priority: 0x8000,
    bufferId: OFP_NO_BUFFER,
    outPort: OFPP.any,
    outGroup: OFPG.any,
    flags: 0,
    match: [],
    instructions: [],
    ...rest,
    command: typeof command === 'string' ? OFPFC[command] : command ?? OFPFC.add,
  };
}

/** Deletes every flow of every table matching `match` (OFPFC_DELETE, table OFPTT_ALL). */
export function flowDelete(init: FlowModInit = {}): FlowMod {
  return flowMod({ tableId: OFPTT.all, ...init, command: init.command ?? 'delete' });
}

/** An OFPT_PACKET_OUT of `data` (unbuffered) from the controller. */
export function packetOut(data: Buffer, actions: Action[], init: Partial<Omit<PacketOut, 'type' | 'data' | 'actions'>> = {}): PacketOut {
  return { type: 'packet_out', xid: 0, bufferId: OFP_NO_BUFFER, inPort: OFPP.controller, ...init, actions, data };
}

export function hello(xid = 0, versions: number[] = [4]): MessageOf<'hello'> {
  return { type: 'hello', xid, elements: [{ type: 'versionbitmap', versions }] };
}

export function echoRequest(xid: number, data: Buffer = Buffer.alloc(0)): MessageOf<'echo_request'> {
  return { type: 'echo_request', xid, data };
}

export function barrierRequest(xid: number): MessageOf<'barrier_request'> {
  return { type: 'barrier_request', xid };
}

export function featuresRequest(xid: number): MessageOf<'features_request'> {
  return { type: 'features_request', xid };
}

export function roleRequest(xid: number, role: number, generationId: bigint): MessageOf<'role_request'> {
  return { type: 'role_request', xid, role, generationId };
}

/** A multipart request; flow/aggregate bodies get "all tables, any port/group, every cookie" defaults. */
export function multipartRequest(xid: number, body: MultipartRequestBody, flags = 0): MessageOf<'multipart_request'> {
  return { type: 'multipart_request', xid, flags, body };
}

export function flowStatsRequest(xid: number, matchFields: Match = [], tableId: number = OFPTT.all): MessageOf<'multipart_request'> {
  return multipartRequest(xid, { type: 'flow', tableId, outPort: OFPP.any, outGroup: OFPG.any, cookie: 0n, cookieMask: 0n, match: matchFields });
}

export function portDescRequest(xid: number): MessageOf<'multipart_request'> {
  return multipartRequest(xid, { type: 'port_desc' });
}

export function bundleControl(xid: number, bundleId: number, controlType: BundleCtrlType, flags = 0): BundleControl {
  return { type: 'bundle_control', xid, bundleId, controlType, flags, properties: Buffer.alloc(0) };
}

/** Wraps `message` in a bundle add; like Open vSwitch, the outer xid is the inner message's xid. */
export function bundleAdd(bundleId: number, message: OfpMessage, flags = 0): BundleAdd {
  return { type: 'bundle_add', xid: message.xid, bundleId, flags, message, properties: Buffer.alloc(0) };
}

