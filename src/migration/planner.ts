/**
 * The MOSE migration designer (Yu et al., IEEE WCNC 2024; background.md §2): chooses cold migration or
 * iterative pre-copy, the number of pre-copy rounds I and the bandwidth L from the PAM model, for one
 * of two objectives:
 *
 * - `min-downtime`: iterative pre-copy on the maximum available bandwidth with the largest I whose
 *   predicted T_mig still meets the target total time; if no I >= 1 meets it, cold migration.
 *   coat adds one check MOSE leaves implicit: if that pre-copy plan's predicted downtime is not lower
 *   than cold's (PAM's finding: small M or high R), cold is chosen, since pre-copy would only cost.
 * - `min-resources`: cold migration with the smallest bandwidth L whose predicted T_down meets the
 *   target downtime (and, as cold's T_mig = T_down, the target total); if even the maximum available
 *   bandwidth does not, the maximum available.
 *
 * The model is evaluated at the worst-case dirty rate (the caller passes the maximum it profiled), so
 * predictions are upper bounds as far as the model holds. Pure: no I/O.
 *
 * Invariant (property-tested): `meetsTargets` is true exactly when the plan's own prediction meets
 * both targets; the planner never claims a target its model says the plan misses.
 */
import { predictPam, validateInput, type PamConstants, type PamFits, type PamPrediction, PAPER_FITS, PamInputError } from './pam.js';

export const OBJECTIVES = ['min-downtime', 'min-resources'] as const;
export type Objective = (typeof OBJECTIVES)[number];

export interface PlanRequest {
  objective: Objective;
  /** State size M, B (profiled). */
  stateBytes: number;
  /** Worst-case dirty-page rate, pages/s (the maximum profiled, MOSE's Rmax). */
  dirtyPagesPerS: number;
  /** Maximum available bandwidth between source and destination, Mbit/s. */
  maxBandwidthMbit: number;
  /** Target downtime, ms. */
  targetDowntimeMs: number;
  /** Target total migration time, ms. */
  targetTotalMs: number;
  /** Upper limit on pre-copy rounds considered (default 8, p.haul's default iteration cap). */
  maxPreDumpRounds?: number;
  /** min-resources: bandwidth granularity the answer is rounded up to, Mbit/s (default 0.1). */
  bandwidthResolutionMbit?: number;
  /** Whether the executor supports pre-copy at all (false: min-downtime can only be cold). */
  preCopySupported?: boolean;
}

export interface Plan {
  objective: Objective;
  strategy: 'cold' | 'precopy';
  /** Pre-copy rounds I (0 for cold). */
  iterations: number;
  /** Bandwidth the image stream should be limited to, Mbit/s. */
  bandwidthMbit: number;
  /** PAM's prediction for this plan at the worst-case dirty rate (an upper bound), ms. */
  predicted: { downtimeMs: number; totalMs: number };
  /** True when the prediction meets both targets. */
  meetsTargets: boolean;
  meets: { downtime: boolean; total: boolean };
  /** Why this plan, in one sentence. */
  reason: string;
  /** Every decision taken, in order. */
  reasons: string[];
  /** The full PAM prediction of the chosen plan (bytes and time per round). */
  model: PamPrediction;
}

export interface PlannerModel {
  constants?: Partial<PamConstants>;
  fits?: PamFits;
}

const DEFAULT_MAX_ROUNDS = 8;

function fmt(ms: number): string {
  return `${Math.round(ms)} ms`;
}

export function plan(req: PlanRequest, model: PlannerModel = {}): Plan {
  const constants = model.constants ?? {};
  const fits = model.fits ?? PAPER_FITS;
  if (!OBJECTIVES.includes(req.objective)) throw new PamInputError('objective', req.objective, `must be one of ${OBJECTIVES.join(', ')}`);
  for (const [k, v] of [['targetDowntimeMs', req.targetDowntimeMs], ['targetTotalMs', req.targetTotalMs]] as const) {
    if (typeof v !== 'number' || Number.isNaN(v) || v < 0) throw new PamInputError(k, v, 'must be a number >= 0 (Infinity for no target)');
  }
  const maxRounds = req.maxPreDumpRounds ?? DEFAULT_MAX_ROUNDS;
  if (!Number.isInteger(maxRounds) || maxRounds < 0) throw new PamInputError('maxPreDumpRounds', maxRounds, 'must be an integer >= 0');
  const resolution = req.bandwidthResolutionMbit ?? 0.1;
  if (!(resolution > 0) || !Number.isFinite(resolution)) throw new PamInputError('bandwidthResolutionMbit', resolution, 'must be > 0');
  validateInput({ stateBytes: req.stateBytes, dirtyPagesPerS: req.dirtyPagesPerS, bandwidthMbit: req.maxBandwidthMbit, preDumpRounds: 0 });

  const predict = (rounds: number, bandwidthMbit: number) =>
    predictPam({ stateBytes: req.stateBytes, dirtyPagesPerS: req.dirtyPagesPerS, bandwidthMbit, preDumpRounds: rounds }, constants, fits);
  const finish = (strategy: Plan['strategy'], rounds: number, bandwidthMbit: number, prediction: PamPrediction, reasons: string[]): Plan => {
    const meets = { downtime: prediction.downtimeMs <= req.targetDowntimeMs, total: prediction.totalMs <= req.targetTotalMs };
    return {
      objective: req.objective,
      strategy,
      iterations: rounds,
      bandwidthMbit,
      predicted: { downtimeMs: prediction.downtimeMs, totalMs: prediction.totalMs },
      meetsTargets: meets.downtime && meets.total,
      meets,
      reason: reasons[reasons.length - 1]!,
      reasons,
      model: prediction,
    };
  };
  const reasons = [`worst case: M=${req.stateBytes} B, R=${req.dirtyPagesPerS} pages/s, L<=${req.maxBandwidthMbit} Mbit/s`];

  if (req.objective === 'min-downtime') {
    const L = req.maxBandwidthMbit;
    const cold = predict(0, L);
    if (req.preCopySupported === false) {
      reasons.push(`cold at the maximum bandwidth ${L} Mbit/s: the executor does not support pre-copy`);
      return finish('cold', 0, L, cold, reasons);
    }
    // MOSE: the largest I whose T_mig meets the target. {I : T_mig(I) <= target} only grows with the
    // target, so the chosen I is monotone in it even where T_mig(I) is not monotone in I.
    let best: { rounds: number; prediction: PamPrediction } | undefined;
    for (let rounds = maxRounds; rounds >= 1; rounds--) {
      const p = predict(rounds, L);
      if (p.totalMs <= req.targetTotalMs) {
        best = { rounds, prediction: p };
        break;
      }
    }
    if (!best) {
      const one = maxRounds >= 1 ? predict(1, L) : undefined;
      reasons.push(
        one
          ? `cold at the maximum bandwidth ${L} Mbit/s: even 1 pre-copy round needs ${fmt(one.totalMs)} > target total ${fmt(req.targetTotalMs)}`
          : `cold at the maximum bandwidth ${L} Mbit/s: no pre-copy rounds allowed`,
      );
      return finish('cold', 0, L, cold, reasons);
    }
    reasons.push(`pre-copy: I=${best.rounds} is the largest number of rounds with T_mig ${fmt(best.prediction.totalMs)} <= target ${fmt(req.targetTotalMs)} at ${L} Mbit/s`);
    if (best.prediction.downtimeMs >= cold.downtimeMs) {
      reasons.push(`cold at the maximum bandwidth ${L} Mbit/s: pre-copy (I=${best.rounds}) does not lower the downtime (${fmt(best.prediction.downtimeMs)} >= cold ${fmt(cold.downtimeMs)}), small state or high dirty rate`);
      return finish('cold', 0, L, cold, reasons);
    }
    reasons.push(`iterative pre-copy, I=${best.rounds} at the maximum bandwidth ${L} Mbit/s: downtime ${fmt(best.prediction.downtimeMs)} against cold ${fmt(cold.downtimeMs)}, T_mig ${fmt(best.prediction.totalMs)} within ${fmt(req.targetTotalMs)}`);
    return finish('precopy', best.rounds, L, best.prediction, reasons);
  }

  // min-resources: cold; T_down of cold falls monotonically as L grows, so bisection finds the
  // smallest L that meets the target; the answer is rounded up to the resolution and re-checked.
  const target = Math.min(req.targetDowntimeMs, req.targetTotalMs);
  const Lmax = req.maxBandwidthMbit;
  const atMax = predict(0, Lmax);
  if (atMax.downtimeMs > target) {
    reasons.push(`cold at the maximum bandwidth ${Lmax} Mbit/s: even there T_down is ${fmt(atMax.downtimeMs)} > target ${fmt(target)}`);
    return finish('cold', 0, Lmax, atMax, reasons);
  }
  let lo = 0; // misses (T_down -> infinity as L -> 0)
  let hi = Lmax; // meets
  for (let k = 0; k < 100 && hi - lo > resolution / 4; k++) {
    const mid = (lo + hi) / 2;
    if (predict(0, mid).downtimeMs <= target) hi = mid;
    else lo = mid;
  }
  let L = Math.min(Lmax, Math.ceil(hi / resolution - 1e-9) * resolution);
  L = Number(L.toFixed(6));
  let p = predict(0, L);
  if (p.downtimeMs > target) {
    // Rounding moved below the threshold by float error: fall back to the bisection's bound.
    L = hi;
    p = predict(0, L);
  }
  reasons.push(`cold with the smallest bandwidth meeting the target: ${L} Mbit/s gives T_down ${fmt(p.downtimeMs)} <= ${fmt(target)} (maximum available ${Lmax} Mbit/s)`);
  return finish('cold', 0, L, p, reasons);
}

/**
 * What the agents' profiling measures (src/agent/protocol.ts ProfileResult, by shape: M in bytes,
 * R in pages/s, L in bit/s). Several dirty-rate samples may be given: MOSE plans for the worst case,
 * so the largest is used.
 */
export interface ProfiledService {
  stateBytes: number;
  dirtyPagesPerSecond?: number | readonly number[];
  bandwidthBitsPerSecond?: number;
}

/**
 * The planner fed from a profile: converts units, takes the worst-case R, and caps L at
 * `maxBandwidthMbit` when given (the operator's limit). A profile without R plans for R = 0 and says
 * so in the reasons; one without L needs `maxBandwidthMbit`.
 */
export function planFromProfile(
  profile: ProfiledService,
  objective: Objective,
  targets: { targetDowntimeMs: number; targetTotalMs: number; maxBandwidthMbit?: number; maxPreDumpRounds?: number; preCopySupported?: boolean },
  model: PlannerModel = {},
): Plan {
  const samples = profile.dirtyPagesPerSecond === undefined ? [] : typeof profile.dirtyPagesPerSecond === 'number' ? [profile.dirtyPagesPerSecond] : [...profile.dirtyPagesPerSecond];
  const R = samples.length > 0 ? Math.max(...samples) : 0;
  const measuredMbit = profile.bandwidthBitsPerSecond === undefined ? undefined : profile.bandwidthBitsPerSecond / 1e6;
  const L = measuredMbit === undefined ? targets.maxBandwidthMbit : targets.maxBandwidthMbit === undefined ? measuredMbit : Math.min(measuredMbit, targets.maxBandwidthMbit);
  if (L === undefined) throw new PamInputError('bandwidthBitsPerSecond', undefined, 'the profile has no bandwidth and no maxBandwidthMbit was given');
  const req: PlanRequest = { objective, stateBytes: profile.stateBytes, dirtyPagesPerS: R, maxBandwidthMbit: L, targetDowntimeMs: targets.targetDowntimeMs, targetTotalMs: targets.targetTotalMs };
  if (targets.maxPreDumpRounds !== undefined) req.maxPreDumpRounds = targets.maxPreDumpRounds;
  if (targets.preCopySupported !== undefined) req.preCopySupported = targets.preCopySupported;
  const p = plan(req, model);
  if (samples.length === 0) p.reasons.splice(1, 0, 'the profile has no dirty-page rate: planned for R = 0, not a worst case');
  else if (samples.length > 1) p.reasons.splice(1, 0, `worst of ${samples.length} dirty-rate samples: ${R} pages/s`);
  return p;
}
