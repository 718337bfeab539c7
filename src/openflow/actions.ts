/**
 * Actions (OpenFlow 1.3.5 §7.2.5) and instructions (§7.2.4). One decoder per type, registered in
 * a table keyed by the wire type code. Experimenter actions/instructions (Nicira's learn,
 * conjunction, resubmit, ...) and type codes the spec does not define are kept as opaque bodies
 * and re-encoded byte-identical.
 */
import { OFPAT, OFPIT, type OfpatName, type OfpitName } from './constants.js';
import { OfpError } from './errors.js';
import { decodeOxm, encodeOxm, oxmLength, type OxmField } from './oxm.js';
import { align8, need, structEnd, zero, readU64, writeU64 } from './wire.js';

export type Action =
  | { type: 'output'; port: number; maxLen: number }
  | { type: 'copy_ttl_out' }
  | { type: 'copy_ttl_in' }
  | { type: 'set_mpls_ttl'; mplsTtl: number }
  | { type: 'dec_mpls_ttl' }
  | { type: 'push_vlan'; ethertype: number }
  | { type: 'pop_vlan' }
  | { type: 'push_mpls'; ethertype: number }
  | { type: 'pop_mpls'; ethertype: number }
  | { type: 'set_queue'; queueId: number }
  | { type: 'group'; groupId: number }
  | { type: 'set_nw_ttl'; nwTtl: number }
  | { type: 'dec_nw_ttl' }
  | { type: 'set_field'; field: OxmField }
  | { type: 'push_pbb'; ethertype: number }
  | { type: 'pop_pbb' }
  /** `ofp_action_experimenter_header`; `data` is everything after the experimenter id, padding included. */
  | { type: 'experimenter'; experimenter: number; data: Buffer }
  /** A type code OpenFlow 1.3 does not define; `data` is everything after the 4-byte header. */
  | { type: 'unknown'; actionType: number; data: Buffer };
export type ActionType = Action['type'];

interface StructCodec<T> {
  /** Decodes the body of a structure whose 4-byte type/len header is at `off`; `end` is off + len. */
  decode(buf: Buffer, off: number, end: number): T;
  /** Writes the body after the header (at `off + 4`); returns the end offset (padding included). */
  encode(v: T, buf: Buffer, off: number): number;
  length(v: T): number;
}

/**
 * An 8-byte action (§7.2.5): the 4-byte header, then at most one field and zero padding up to 8
 * (`ofp_action_generic`, `ofp_action_push`, `ofp_action_mpls_ttl`, `ofp_action_group`, ...).
 * `write` fills the field after the padding has been zeroed.
 */
function eightByteAction<T>(fields: (buf: Buffer, off: number) => T, write: (v: T, buf: Buffer, off: number) => void): StructCodec<T> {
  return {
    decode: (buf, off, end) => {
      if (end - off !== 8) throw new OfpError('OFP_BAD_LENGTH', off, 'action.len == 8', `got ${end - off}`);
      return fields(buf, off);
    },
    encode: (v, buf, off) => {
      zero(buf, off + 4, 4);
      write(v, buf, off);
      return off + 8;
    },
    length: () => 8,
  };
}

type ActionOf<N extends ActionType> = Extract<Action, { type: N }>;
const bare = <N extends ActionType>(type: N) =>
  eightByteAction<ActionOf<N>>(() => ({ type }) as ActionOf<N>, () => undefined);
const ethertype = <N extends 'push_vlan' | 'push_mpls' | 'pop_mpls' | 'push_pbb'>(type: N) =>
  eightByteAction<ActionOf<N>>(
    (b, o) => ({ type, ethertype: b.readUInt16BE(o + 4) }) as ActionOf<N>,
    (v, b, o) => b.writeUInt16BE((v as { ethertype: number }).ethertype, o + 4),
  );

/** Action codecs by name; decoders are looked up through ACTION_BY_CODE. */
const ACTIONS: { [N in Exclude<ActionType, 'unknown'>]: StructCodec<ActionOf<N>> } = {
  output: {
    decode: (buf, off, end) => {
      if (end - off !== 16) throw new OfpError('OFP_BAD_LENGTH', off, 'ofp_action_output.len == 16', `got ${end - off}`);
      return { type: 'output', port: buf.readUInt32BE(off + 4), maxLen: buf.readUInt16BE(off + 8) };
    },
    encode: (v, buf, off) => {
      buf.writeUInt32BE(v.port, off + 4);
      buf.writeUInt16BE(v.maxLen, off + 8);
      return zero(buf, off + 10, 6);
    },
    length: () => 16,
  },
  copy_ttl_out: bare('copy_ttl_out'),
  copy_ttl_in: bare('copy_ttl_in'),
  set_mpls_ttl: eightByteAction((b, o) => ({ type: 'set_mpls_ttl', mplsTtl: b[o + 4]! }), (v, b, o) => b.writeUInt8(v.mplsTtl, o + 4)),
  dec_mpls_ttl: bare('dec_mpls_ttl'),
  push_vlan: ethertype('push_vlan'),
  pop_vlan: bare('pop_vlan'),
  push_mpls: ethertype('push_mpls'),
  pop_mpls: ethertype('pop_mpls'),
  set_queue: eightByteAction((b, o) => ({ type: 'set_queue', queueId: b.readUInt32BE(o + 4) }), (v, b, o) => b.writeUInt32BE(v.queueId, o + 4)),
  group: eightByteAction((b, o) => ({ type: 'group', groupId: b.readUInt32BE(o + 4) }), (v, b, o) => b.writeUInt32BE(v.groupId, o + 4)),
  set_nw_ttl: eightByteAction((b, o) => ({ type: 'set_nw_ttl', nwTtl: b[o + 4]! }), (v, b, o) => b.writeUInt8(v.nwTtl, o + 4)),
  dec_nw_ttl: bare('dec_nw_ttl'),
  set_field: {
    // §7.2.5: one OXM TLV, then zero padding to a multiple of 8.
    decode: (buf, off, end) => {
      const field = decodeOxm(buf, off + 4, end);
      if (end - off !== align8(4 + oxmLength(field))) {
        throw new OfpError('OFP_BAD_LENGTH', off, 'ofp_action_set_field.len == align8(4 + OXM length)', `got ${end - off}`);
      }
      return { type: 'set_field', field };
    },
    encode: (v, buf, off) => {
      const p = encodeOxm(v.field, buf, off + 4);
      return zero(buf, p, align8(p - off) - (p - off));
    },
    length: (v) => align8(4 + oxmLength(v.field)),
  },
  push_pbb: ethertype('push_pbb'),
  pop_pbb: bare('pop_pbb'),
  experimenter: {
    decode: (buf, off, end) => {
      need(off + 4, 4, end, 'ofp_action_experimenter_header.experimenter');
      return { type: 'experimenter', experimenter: buf.readUInt32BE(off + 4), data: buf.subarray(off + 8, end) };
    },
    encode: (v, buf, off) => {
      buf.writeUInt32BE(v.experimenter, off + 4);
      return off + 8 + v.data.copy(buf, off + 8);
    },
    length: (v) => 8 + v.data.length,
  },
};

const UNKNOWN_ACTION: StructCodec<ActionOf<'unknown'>> = {
  decode: (buf, off, end) => ({ type: 'unknown', actionType: buf.readUInt16BE(off), data: buf.subarray(off + 4, end) }),
  encode: (v, buf, off) => off + 4 + v.data.copy(buf, off + 4),
  length: (v) => 4 + v.data.length,
};

const ACTION_BY_CODE = new Map<number, StructCodec<Action>>(
  (Object.keys(ACTIONS) as (keyof typeof ACTIONS)[]).map((n) => [OFPAT[n as OfpatName], ACTIONS[n] as StructCodec<Action>]),
);

function actionCodec(a: Action): StructCodec<Action> {
  const c = a.type === 'unknown' ? UNKNOWN_ACTION : (ACTIONS as Record<string, StructCodec<Action> | undefined>)[a.type];
  if (c === undefined) throw new OfpError('OFP_ENCODE_INVALID', 0, 'action.type is an OpenFlow 1.3 action', `got ${String(a.type)}`);
  return c as StructCodec<Action>;
}

export function actionLength(a: Action): number {
  return actionCodec(a).length(a);
}

export function actionsLength(list: readonly Action[]): number {
  let n = 0;
  for (const a of list) n += actionCodec(a).length(a);
  return n;
}

/** Decodes one action at `off` and returns it; its length is `buf.readUInt16BE(off + 2)`. */
export function decodeAction(buf: Buffer, off: number, end: number): Action {
  need(off, 4, end, 'ofp_action_header');
  const type = buf.readUInt16BE(off);
  const len = buf.readUInt16BE(off + 2);
  // §7.2.5: every action is a multiple of 8 bytes long.
  if (len % 8 !== 0) throw new OfpError('OFP_BAD_LENGTH', off, 'action.len % 8 == 0', `got ${len}`);
  const actionEnd = structEnd(off, len, 8, end, 'ofp_action_header');
  return (ACTION_BY_CODE.get(type) ?? UNKNOWN_ACTION).decode(buf, off, actionEnd);
}

export function decodeActions(buf: Buffer, off: number, end: number): Action[] {
  const out: Action[] = [];
  while (off < end) {
    out.push(decodeAction(buf, off, end));
    off += buf.readUInt16BE(off + 2);
  }
  return out;
}

const ACTION_CODE: Readonly<Record<string, number>> = { ...OFPAT };
const INSTRUCTION_CODE: Readonly<Record<string, number>> = { ...OFPIT };

export function encodeAction(a: Action, buf: Buffer, off: number): number {
  const c = actionCodec(a);
  const p = c.encode(a, buf, off);
  const code = a.type === 'unknown' ? a.actionType : ACTION_CODE[a.type]!;
  if (p - off > 0xffff) throw new OfpError('OFP_ENCODE_TOO_LONG', off, 'action.len <= 65535');
  buf.writeUInt16BE(code, off);
  buf.writeUInt16BE(p - off, off + 2);
  return p;
}

export function encodeActions(list: readonly Action[], buf: Buffer, off: number): number {
  for (const a of list) off = encodeAction(a, buf, off);
  return off;
}

// ---------------------------------------------------------------------------------------------
// Instructions (§7.2.4)

export type Instruction =
  | { type: 'goto_table'; tableId: number }
  | { type: 'write_metadata'; metadata: bigint; metadataMask: bigint }
  | { type: 'write_actions'; actions: Action[] }
  | { type: 'apply_actions'; actions: Action[] }
  | { type: 'clear_actions' }
  | { type: 'meter'; meterId: number }
  | { type: 'experimenter'; experimenter: number; data: Buffer }
  | { type: 'unknown'; instructionType: number; data: Buffer };
export type InstructionType = Instruction['type'];
type InstructionOf<N extends InstructionType> = Extract<Instruction, { type: N }>;

function fixedLen(off: number, end: number, len: number, what: string): void {
  if (end - off !== len) throw new OfpError('OFP_BAD_LENGTH', off, `${what}.len == ${len}`, `got ${end - off}`);
}

const actionList = <N extends 'write_actions' | 'apply_actions'>(type: N): StructCodec<InstructionOf<N>> => ({
  // `ofp_instruction_actions`: type, len, pad[4], then actions.
  decode: (buf, off, end) => {
    need(off, 8, end, 'ofp_instruction_actions');
    return { type, actions: decodeActions(buf, off + 8, end) } as InstructionOf<N>;
  },
  encode: (v, buf, off) => encodeActions((v as { actions: Action[] }).actions, buf, zero(buf, off + 4, 4)),
  length: (v) => 8 + actionsLength((v as { actions: Action[] }).actions),
});

const INSTRUCTIONS: { [N in Exclude<InstructionType, 'unknown'>]: StructCodec<InstructionOf<N>> } = {
  goto_table: {
    decode: (buf, off, end) => (fixedLen(off, end, 8, 'ofp_instruction_goto_table'), { type: 'goto_table', tableId: buf[off + 4]! }),
    encode: (v, buf, off) => (buf.writeUInt8(v.tableId, off + 4), zero(buf, off + 5, 3)),
    length: () => 8,
  },
  write_metadata: {
    decode: (buf, off, end) => (
      fixedLen(off, end, 24, 'ofp_instruction_write_metadata'),
      { type: 'write_metadata', metadata: readU64(buf, off + 8), metadataMask: readU64(buf, off + 16) }
    ),
    encode: (v, buf, off) => {
      zero(buf, off + 4, 4);
      writeU64(buf, v.metadata, off + 8);
      return writeU64(buf, v.metadataMask, off + 16);
    },
    length: () => 24,
  },
  write_actions: actionList('write_actions'),
  apply_actions: actionList('apply_actions'),
  clear_actions: {
    decode: (_buf, off, end) => (fixedLen(off, end, 8, 'ofp_instruction_actions'), { type: 'clear_actions' }),
    encode: (_v, buf, off) => zero(buf, off + 4, 4),
    length: () => 8,
  },
  meter: {
    decode: (buf, off, end) => (fixedLen(off, end, 8, 'ofp_instruction_meter'), { type: 'meter', meterId: buf.readUInt32BE(off + 4) }),
    encode: (v, buf, off) => buf.writeUInt32BE(v.meterId, off + 4),
    length: () => 8,
  },
  experimenter: {
    decode: (buf, off, end) => {
      need(off + 4, 4, end, 'ofp_instruction_experimenter.experimenter');
      return { type: 'experimenter', experimenter: buf.readUInt32BE(off + 4), data: buf.subarray(off + 8, end) };
    },
    encode: (v, buf, off) => {
      buf.writeUInt32BE(v.experimenter, off + 4);
      return off + 8 + v.data.copy(buf, off + 8);
    },
    length: (v) => 8 + v.data.length,
  },
};

const UNKNOWN_INSTRUCTION: StructCodec<InstructionOf<'unknown'>> = {
  decode: (buf, off, end) => ({ type: 'unknown', instructionType: buf.readUInt16BE(off), data: buf.subarray(off + 4, end) }),
  encode: (v, buf, off) => off + 4 + v.data.copy(buf, off + 4),
  length: (v) => 4 + v.data.length,
};

const INSTRUCTION_BY_CODE = new Map<number, StructCodec<Instruction>>(
  (Object.keys(INSTRUCTIONS) as (keyof typeof INSTRUCTIONS)[]).map((n) => [OFPIT[n as OfpitName], INSTRUCTIONS[n] as StructCodec<Instruction>]),
);

function instructionCodec(i: Instruction): StructCodec<Instruction> {
  const c = i.type === 'unknown' ? UNKNOWN_INSTRUCTION : (INSTRUCTIONS as Record<string, StructCodec<Instruction> | undefined>)[i.type];
  if (c === undefined) throw new OfpError('OFP_ENCODE_INVALID', 0, 'instruction.type is an OpenFlow 1.3 instruction', `got ${String(i.type)}`);
  return c as StructCodec<Instruction>;
}

export function instructionsLength(list: readonly Instruction[]): number {
  let n = 0;
  for (const i of list) n += instructionCodec(i).length(i);
  return n;
}

export function decodeInstructions(buf: Buffer, off: number, end: number): Instruction[] {
  const out: Instruction[] = [];
  while (off < end) {
    need(off, 4, end, 'ofp_instruction');
    const type = buf.readUInt16BE(off);
    const len = buf.readUInt16BE(off + 2);
    const iEnd = structEnd(off, len, 4, end, 'ofp_instruction');
    out.push((INSTRUCTION_BY_CODE.get(type) ?? UNKNOWN_INSTRUCTION).decode(buf, off, iEnd));
    off = iEnd;
  }
  return out;
}

export function encodeInstructions(list: readonly Instruction[], buf: Buffer, off: number): number {
  for (const i of list) {
    const p = instructionCodec(i).encode(i, buf, off);
    if (p - off > 0xffff) throw new OfpError('OFP_ENCODE_TOO_LONG', off, 'instruction.len <= 65535');
    buf.writeUInt16BE(i.type === 'unknown' ? i.instructionType : INSTRUCTION_CODE[i.type]!, off);
    buf.writeUInt16BE(p - off, off + 2);
    off = p;
  }
  return off;
}
