/**
 * coat's flows as the policy layer describes them, and their OFPT_FLOW_MOD form (pure).
 *
 * A `FlowSpec` names its priority band and rank instead of a raw priority, and carries no cookie:
 * the cookie is derived from the flow's content (see cookies.ts), which is what lets
 * reconciliation diff by cookie alone.
 */
import { encodeMessage, flowMod, OFPFC, type FlowMod, type Instruction, type Match } from '../openflow/index.js';
import { BandTable, flowCookie } from './cookies.js';
import { cachedEncoding, rememberEncoding } from './wire-cache.js';
import { ControllerError, ControllerErrorCode } from './errors.js';

export interface FlowSpec {
  /** Name of the priority band (see BandTable / DEFAULT_BANDS). */
  band: string;
  /** Rank inside the band, 0 = lowest (default 0). */
  rank?: number;
  /** Table id (default 0). */
  table?: number;
  match: Match;
  instructions: Instruction[];
  idleTimeout?: number;
  hardTimeout?: number;
  /** OFPFF_* flags, e.g. OFPFF_SEND_FLOW_REM (default 0). */
  flags?: number;
}

/**
 * The OFPFC_ADD for one coat flow, its cookie in coat's cookie space. The result is frozen and its
 * encoding kept (wire-cache.ts): build a new one instead of changing it.
 */
export function coatFlowMod(spec: FlowSpec, bands: BandTable = DEFAULT_BAND_TABLE): FlowMod {
  const band = bands.get(spec.band);
  const priority = bands.priority(spec.band, spec.rank ?? 0);
  const content = {
    tableId: spec.table ?? 0,
    priority,
    match: spec.match,
    instructions: spec.instructions,
    idleTimeout: spec.idleTimeout ?? 0,
    hardTimeout: spec.hardTimeout ?? 0,
    flags: spec.flags ?? 0,
  };
  const unnamed = flowMod({ ...content, command: OFPFC.add, cookie: 0n });
  const wire = encodeMessage(unnamed);
  const cookie = flowCookie(band, wire);
  wire.writeBigUInt64BE(cookie, 8); // ofp_flow_mod.cookie is the first field after the header (§7.3.4.1)
  return rememberEncoding({ ...unnamed, cookie }, wire);
}

/** Flow-mods for a list of specs; rejects two different flows that would share a cookie. */
export function coatFlowMods(specs: readonly FlowSpec[], bands: BandTable = DEFAULT_BAND_TABLE): FlowMod[] {
  const seen = new Map<bigint, FlowMod>();
  for (const spec of specs) {
    const fm = coatFlowMod(spec, bands);
    const prev = seen.get(fm.cookie);
    if (prev && !cachedEncoding(prev)!.equals(cachedEncoding(fm)!)) {
      throw new ControllerError(
        ControllerErrorCode.CookieCollision,
        `two different flows hash to cookie 0x${fm.cookie.toString(16)} (priorities ${prev.priority} and ${fm.priority}); change one`,
      );
    }
    seen.set(fm.cookie, fm);
  }
  return [...seen.values()];
}

export const DEFAULT_BAND_TABLE = new BandTable();
