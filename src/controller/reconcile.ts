/**
 * Desired-flows reconciliation, the pure half: given the flows coat wants on a switch and the
 * flows in coat's cookie space the switch reported (OFPMP_FLOW, OpenFlow 1.3.5 §7.3.5.2), which
 * to add and which to delete. Flows are compared by cookie only (cookies.ts: a coat cookie is a
 * hash of the flow's content), so a switch's normalised re-printing of a match never makes coat
 * think a flow changed.
 *
 * Order matters when it is not applied in one atomic bundle:
 * - `deleteFirst`: cookies present more than once (somebody else wrote into our cookie space, or
 *   a hash collision): delete all copies before adding the one we want back.
 * - `add`: desired flows not present. An add whose match and priority equal a stale flow's
 *   replaces it in place (§6.4 "Flow Table Modification Messages": OFPFC_ADD overwrites an
 *   identical flow), so traffic never sees a gap.
 * - `deleteAfter`: stale cookies, removed once their replacements are in.
 */
import type { FlowMod, FlowStats } from '../openflow/index.js';
import { isCoatCookie } from './cookies.js';

/** The flows coat wants: OFPFC_ADD flow-mods carrying coat cookies (see flows.ts). */
export type DesiredFlows = readonly FlowMod[];

export interface ReconcilePlan {
  deleteFirst: bigint[];
  add: FlowMod[];
  deleteAfter: bigint[];
  /** Desired flows already present exactly once. */
  kept: number;
}

export function planReconcile(desired: DesiredFlows, present: readonly Pick<FlowStats, 'cookie'>[]): ReconcilePlan {
  const want = new Map<bigint, FlowMod>();
  for (const fm of desired) {
    if (!isCoatCookie(fm.cookie)) throw new RangeError(`desired flow cookie 0x${fm.cookie.toString(16)} is outside coat's cookie space`);
    want.set(fm.cookie, fm);
  }
  const count = new Map<bigint, number>();
  for (const f of present) if (isCoatCookie(f.cookie)) count.set(f.cookie, (count.get(f.cookie) ?? 0) + 1);

  const plan: ReconcilePlan = { deleteFirst: [], add: [], deleteAfter: [], kept: 0 };
  for (const [cookie, n] of count) {
    if (!want.has(cookie)) plan.deleteAfter.push(cookie);
    else if (n > 1) plan.deleteFirst.push(cookie);
  }
  for (const [cookie, fm] of want) {
    if (count.get(cookie) === 1) plan.kept++;
    else plan.add.push(fm);
  }
  return plan;
}
