/**
 * A fake OpenFlow 1.3 switch pipeline (Faucet's FakeOFTable idea): holds flows and answers "where
 * does this packet go", applying OpenFlow 1.3.5 §5 semantics:
 * - §5.1/§6.4: processing starts at table 0; in each table the highest-priority matching entry
 *   wins; several matching entries of the same highest priority is undefined behaviour, so the
 *   fake refuses it (a policy must never rely on it).
 * - §5.4: no matching entry and no table-miss entry: drop.
 * - §5.9: apply_actions runs immediately; write_actions accumulates into the action set, which
 *   runs when there is no goto_table; clear_actions empties it; goto_table only goes forward.
 * - §7.2.3.6: match prerequisites (arp_* needs eth_type=0x0806, ipv4_* needs 0x0800, ...) are
 *   checked when a flow is added, as a switch would (OFPBMC_BAD_PREREQ).
 * Anything it does not model (groups, meters, experimenter, opaque OXM) is refused loudly.
 */
import type { Action, Instruction } from '../../src/openflow/actions.js';
import { OFPP } from '../../src/openflow/constants.js';
import type { Match, OxmField } from '../../src/openflow/oxm.js';
import { ipv4ToNumber, macToBigInt } from '../../src/packet/address.js';

export interface FakeFlow {
  tableId: number;
  priority: number;
  cookie: bigint;
  match: Match;
  instructions: Instruction[];
}

/** Header fields of a packet, by OXM name. */
export type PacketFields = { in_port: number } & Partial<Record<string, number | string | bigint>>;

export interface Verdict {
  /** Ports the packet is output to, in order (OFPP_* reserved numbers included). */
  outputs: number[];
  toController: boolean;
  /** No output at all. */
  dropped: boolean;
  /** Cookies of the entries that matched, table by table. */
  matched: bigint[];
  /** The packet as it leaves (after set_field). */
  packet: PacketFields;
}

const PREREQ: Record<string, (m: Map<string, OxmField>) => boolean> = {
  arp_op: (m) => val(m, 'eth_type') === 0x0806,
  arp_spa: (m) => val(m, 'eth_type') === 0x0806,
  arp_tpa: (m) => val(m, 'eth_type') === 0x0806,
  arp_sha: (m) => val(m, 'eth_type') === 0x0806,
  arp_tha: (m) => val(m, 'eth_type') === 0x0806,
  ipv4_src: (m) => val(m, 'eth_type') === 0x0800,
  ipv4_dst: (m) => val(m, 'eth_type') === 0x0800,
  ip_proto: (m) => val(m, 'eth_type') === 0x0800 || val(m, 'eth_type') === 0x86dd,
  tcp_src: (m) => val(m, 'ip_proto') === 6,
  tcp_dst: (m) => val(m, 'ip_proto') === 6,
  udp_src: (m) => val(m, 'ip_proto') === 17,
  udp_dst: (m) => val(m, 'ip_proto') === 17,
};
const SUPPORTED = new Set(['in_port', 'eth_dst', 'eth_src', 'eth_type', 'arp_op', 'arp_spa', 'arp_tpa', 'arp_sha', 'arp_tha', 'ipv4_src', 'ipv4_dst', 'ip_proto', 'tcp_src', 'tcp_dst', 'udp_src', 'udp_dst']);

function val(m: Map<string, OxmField>, name: string): unknown {
  const f = m.get(name);
  return f && f.field !== 'opaque' ? f.value : undefined;
}

function asBig(field: string, v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'string') return field.startsWith('eth_') || field === 'arp_sha' || field === 'arp_tha' ? macToBigInt(v) : BigInt(ipv4ToNumber(v));
  throw new Error(`FakeOFTable: no value for ${field}`);
}

function fieldMatches(f: OxmField, pkt: PacketFields): boolean {
  if (f.field === 'opaque') throw new Error('FakeOFTable: opaque OXM fields are not modelled');
  const have = pkt[f.field];
  if (have === undefined) return false; // the packet lacks the header (e.g. arp_tpa of an IPv4 packet)
  const want = asBig(f.field, f.value);
  const mask = f.mask === undefined ? -1n : asBig(f.field, f.mask);
  return (asBig(f.field, have) & mask) === (want & mask);
}

export class FakeOFTable {
  private readonly flows: FakeFlow[] = [];

  constructor(flows: readonly FakeFlow[] = []) {
    for (const f of flows) this.add(f);
  }

  add(f: FakeFlow): void {
    const byName = new Map<string, OxmField>();
    for (const m of f.match) {
      if (m.field === 'opaque' || !SUPPORTED.has(m.field)) throw new Error(`FakeOFTable: match field ${m.field} is not modelled`);
      if (byName.has(m.field)) throw new Error(`FakeOFTable: field ${m.field} twice in one match (OFPBMC_DUP_FIELD)`);
      byName.set(m.field, m);
    }
    for (const name of byName.keys()) {
      const ok = PREREQ[name];
      if (ok && !ok(byName)) throw new Error(`FakeOFTable: ${name} without its prerequisite (OFPBMC_BAD_PREREQ, §7.2.3.6)`);
    }
    for (const i of f.instructions) {
      if (i.type === 'goto_table' && i.tableId <= f.tableId) throw new Error(`FakeOFTable: goto_table ${i.tableId} from table ${f.tableId} goes backwards (OFPBIC_BAD_TABLE_ID)`);
      if (!['apply_actions', 'write_actions', 'clear_actions', 'goto_table'].includes(i.type)) throw new Error(`FakeOFTable: instruction ${i.type} is not modelled`);
      if (i.type === 'apply_actions' || i.type === 'write_actions') for (const a of i.actions) this.checkAction(a);
    }
    // OFPFC_ADD of an identical (table, priority, match) replaces (§6.4).
    const key = (x: FakeFlow) => `${x.tableId}/${x.priority}/${JSON.stringify(x.match, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`;
    const i = this.flows.findIndex((x) => key(x) === key(f));
    if (i >= 0) this.flows.splice(i, 1);
    this.flows.push(f);
  }

  private checkAction(a: Action): void {
    if (a.type !== 'output' && a.type !== 'set_field') throw new Error(`FakeOFTable: action ${a.type} is not modelled`);
  }

  get size(): number {
    return this.flows.length;
  }

  /** All output ports any flow can send to: what "no NORMAL, no flooding" is checked against. */
  outputPorts(): number[] {
    const ports = new Set<number>();
    for (const f of this.flows) for (const i of f.instructions) if (i.type === 'apply_actions' || i.type === 'write_actions') for (const a of i.actions) if (a.type === 'output') ports.add(a.port);
    return [...ports];
  }

  lookup(input: PacketFields): Verdict {
    const pkt: PacketFields = { ...input };
    const outputs: number[] = [];
    const matched: bigint[] = [];
    let actionSet: Action[] = [];
    let table = 0;
    const run = (actions: Action[]) => {
      for (const a of actions) {
        if (a.type === 'output') outputs.push(a.port === OFPP.in_port ? pkt.in_port : a.port);
        else if (a.type === 'set_field' && a.field.field !== 'opaque') (pkt as Record<string, unknown>)[a.field.field] = a.field.value;
      }
    };
    for (;;) {
      const hits = this.flows.filter((f) => f.tableId === table && f.match.every((m) => fieldMatches(m, pkt)));
      if (hits.length === 0) break; // §5.4: drop
      const top = Math.max(...hits.map((h) => h.priority));
      const best = hits.filter((h) => h.priority === top);
      if (best.length > 1) throw new Error(`FakeOFTable: ${best.length} entries of priority ${top} in table ${table} match ${JSON.stringify(input)}: undefined behaviour (§6.4)`);
      const f = best[0]!;
      matched.push(f.cookie);
      let next: number | undefined;
      for (const i of f.instructions) {
        if (i.type === 'apply_actions') run(i.actions);
        else if (i.type === 'clear_actions') actionSet = [];
        else if (i.type === 'write_actions') actionSet = [...actionSet.filter((a) => !i.actions.some((b) => b.type === a.type)), ...i.actions];
        else if (i.type === 'goto_table') next = i.tableId;
      }
      if (next === undefined) {
        run(actionSet);
        break;
      }
      table = next;
    }
    return { outputs, toController: outputs.includes(OFPP.controller), dropped: outputs.length === 0, matched, packet: pkt };
  }
}
