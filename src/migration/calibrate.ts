/**
 * Fitting PAM's testbed constants (background.md §3: "the other constants are fitted per testbed from
 * a few runs") from measured migrations of one executor, by linear least squares, one step at a time:
 *
 *   step (measured)             model                                  unknowns (features)
 *   freezing                    beta                                   beta (mean)
 *   dump frozen                 phi_d + Gamma * xi(R^) * M             phi_d, Gamma      ([1, xi M])
 *   pre-dump frozen (round 0)   phi_p + Gamma * zeta * M               phi_p, zeta       ([1, M] / Gamma)
 *   memory write                delta + Lambda * m, m = eta(R^) M for an incremental dump, M for a
 *                               full one (cold dump or pre-dump round 0)  delta, Lambda   ([1, m])
 *   engine checkpoint           a1a2 * (beta + frozen + memory)        a1a2 (through the origin)
 *   transfer                    netFixed + V / (L * eff), the final    netFixed, 1/eff, 1/eff_final
 *                               dump's with eff_final when the runs    ([1, V/L pre-copy, V/L final])
 *                               have both kinds of round
 *   restore                     a3a4 * (psi + omega M), or omega V_n   psi', omega' with a3a4 = 1
 *                               (the final image) where restore does
 *                               not read the whole state
 *                                                                      (only the products are
 *                                                                      identifiable from the total)
 *   setup (coat's, T_mig only)  setupMs + setupMsPerByte * M            setupMs, setupMsPerByte
 *
 * The solver is ml-matrix's QR decomposition (Householder): a well-kept library, and QR is the
 * numerically sound way to solve least squares (the normal equations square the condition number, and
 * M spans 1e5..1e9 B against an intercept of 1).  Columns are scaled to unit max before solving.
 * Steps whose runs do not vary a feature (all M equal, say) fit the intercept only and keep the
 * slope's default, and say so in `notes`. Negative estimates (noise on a tiny slope) clamp to 0.
 *
 * Least squares fits the mean, but MOSE needs upper bounds: after the fit, `safetyFactor` (>= 1, on
 * every round and the setup) is set to a quantile of measured / predicted total, then
 * `downtimeFactor` from measured / predicted downtime under it (the measured downtime is what the
 * client saw, which may be shorter than the frozen window the steps add up to: then the factor is
 * below 1). The total's quantile is 1 - (1 - `quantile`) / 2 (`quantile` default 0.95:
 * 0.975), taken per configuration (M, R, L, I) and the largest one kept; then the
 * downtime factor is the smallest under which, in every configuration, at least `quantile` of the
 * runs have both bounded (`jointDowntimeFactor`). `totalMarginMs` is left at 0 (an operator's extra margin).
 *
 * Pure: records in, constants out. Reading and writing the calibration file is pam-calibration-file.ts.
 */
import { Matrix, QrDecomposition } from 'ml-matrix';
import { CoatError } from '../errors.js';
import { DEFAULT_CONSTANTS, EXECUTOR_PRESETS, PAPER_FITS, normalisedDirtyRate, predictPam, type PamConstants, type PamFits } from './pam.js';

/** One pre-copy round or the final dump as measured. Times in ms, sizes in B. */
export interface MeasuredRound {
  kind: 'pre-dump' | 'dump';
  /** Time to freeze the tasks (CRIU "freezing_time"). */
  freezingMs?: number;
  /** Time the tasks were frozen (CRIU "frozen_time"). */
  frozenMs?: number;
  /** Memory dump/write time (CRIU "memdump_time" + "memwrite_time"). */
  memoryDumpMs?: number;
  /** The executor's whole checkpoint step (e.g. Podman's runtime_checkpoint_duration). */
  checkpointMs?: number;
  /** Image transfer of this round. */
  transferMs?: number;
  /** Bytes of image sent in this round. */
  bytes?: number;
}

/**
 * One measured migration (the input file of `coat calibrate` is a JSON array of these, or
 * `{ "runs": [...] }`). The flat step fields describe the final dump when `rounds` is absent.
 */
export interface MeasuredMigration {
  executor?: string;
  /** State size M, B. */
  stateBytes: number;
  /** Dirty-page rate during the migration, pages/s. */
  dirtyPagesPerS: number;
  /** Link capacity (or the image stream's limit), Mbit/s. */
  bandwidthMbit: number;
  /** Pre-copy rounds I (0 = cold). */
  preDumpRounds: number;
  freezingMs?: number;
  frozenMs?: number;
  memoryDumpMs?: number;
  checkpointMs?: number;
  transferMs?: number;
  transferBytes?: number;
  restoreMs?: number;
  /**
   * coat: the migration's time outside PAM's rounds (profiling, preparing the destination, hold,
   * release): total minus the pre-copy rounds minus dump-to-resumed. Fits setupMs/setupMsPerByte.
   */
  setupMs?: number;
  /** Measured downtime (the client's largest gap, or the executor's frozen-to-resumed time). */
  downtimeMs: number;
  /** Measured total migration time. */
  totalMs: number;
  rounds?: MeasuredRound[];
}

export type CalibrationErrorCode =
  /** A run record lacks a required field or has one of the wrong type; `index` and `field` say which. */
  | 'CALIBRATION_BAD_RUN'
  /** Fewer runs than the fit needs. */
  | 'CALIBRATION_TOO_FEW_RUNS'
  /** The calibration file is not one coat wrote (format, version, JSON). */
  | 'CALIBRATION_BAD_FILE';

export class CalibrationError extends CoatError {
  constructor(code: CalibrationErrorCode, message: string, readonly details: { index?: number; field?: string; path?: string } = {}) {
    super(code, message);
  }
}

export interface StepFit {
  /** Runs (or rounds) that fed this step's fit. */
  samples: number;
  /** Root mean square residual of the least-squares fit, ms. */
  rmseMs: number;
}

export interface CalibrationResult {
  executor: string;
  runs: number;
  constants: PamConstants;
  /** Per step: how many samples and how well the line fits. */
  steps: Record<string, StepFit>;
  /** Share of the runs whose measured downtime and total the calibrated model upper-bounds. */
  upperBoundShare: number;
  /** Largest measured / predicted ratio after the safety factor (<= 1: bounded). */
  worstRatio: number;
  notes: string[];
}

export interface CalibrateOptions {
  executor?: string;
  /** Share of runs the calibrated model must upper-bound (default 0.95). */
  quantile?: number;
  /** Constants to start from (the executor's preset by default). */
  base?: Partial<PamConstants>;
  fits?: PamFits;
}

const REQUIRED = ['stateBytes', 'dirtyPagesPerS', 'bandwidthMbit', 'preDumpRounds', 'downtimeMs', 'totalMs'] as const;
const OPTIONAL_NUMBERS = ['freezingMs', 'frozenMs', 'memoryDumpMs', 'checkpointMs', 'transferMs', 'transferBytes', 'restoreMs', 'setupMs'] as const;

/** Checks the shape of parsed JSON runs; returns them typed or throws CALIBRATION_BAD_RUN. */
export function parseRuns(value: unknown): MeasuredMigration[] {
  const list = Array.isArray(value) ? value : value !== null && typeof value === 'object' && Array.isArray((value as { runs?: unknown }).runs) ? (value as { runs: unknown[] }).runs : undefined;
  if (!list) throw new CalibrationError('CALIBRATION_BAD_RUN', 'runs must be a JSON array of measured migrations or { "runs": [...] }');
  return list.map((r, index) => {
    if (r === null || typeof r !== 'object') throw new CalibrationError('CALIBRATION_BAD_RUN', `run ${index}: not an object`, { index });
    const o = r as Record<string, unknown>;
    const num = (field: string, required: boolean) => {
      const v = o[field];
      if (v === undefined && !required) return;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
        throw new CalibrationError('CALIBRATION_BAD_RUN', `run ${index}: ${field} must be a finite number >= 0 (got ${JSON.stringify(v)})`, { index, field });
      }
    };
    for (const f of REQUIRED) num(f, true);
    for (const f of OPTIONAL_NUMBERS) num(f, false);
    if (!((o.bandwidthMbit as number) > 0)) throw new CalibrationError('CALIBRATION_BAD_RUN', `run ${index}: bandwidthMbit must be > 0`, { index, field: 'bandwidthMbit' });
    if (!Number.isInteger(o.preDumpRounds)) throw new CalibrationError('CALIBRATION_BAD_RUN', `run ${index}: preDumpRounds must be an integer`, { index, field: 'preDumpRounds' });
    if (o.executor !== undefined && typeof o.executor !== 'string') throw new CalibrationError('CALIBRATION_BAD_RUN', `run ${index}: executor must be a string`, { index, field: 'executor' });
    if (o.rounds !== undefined) {
      if (!Array.isArray(o.rounds)) throw new CalibrationError('CALIBRATION_BAD_RUN', `run ${index}: rounds must be an array`, { index, field: 'rounds' });
      o.rounds.forEach((rd: unknown, j: number) => {
        const field = `rounds[${j}]`;
        if (rd === null || typeof rd !== 'object') throw new CalibrationError('CALIBRATION_BAD_RUN', `run ${index}: ${field} is not an object`, { index, field });
        const ro = rd as Record<string, unknown>;
        if (ro.kind !== 'pre-dump' && ro.kind !== 'dump') throw new CalibrationError('CALIBRATION_BAD_RUN', `run ${index}: ${field}.kind must be "pre-dump" or "dump"`, { index, field: `${field}.kind` });
        for (const f of ['freezingMs', 'frozenMs', 'memoryDumpMs', 'checkpointMs', 'transferMs', 'bytes']) {
          const v = ro[f];
          if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) {
            throw new CalibrationError('CALIBRATION_BAD_RUN', `run ${index}: ${field}.${f} must be a finite number >= 0`, { index, field: `${field}.${f}` });
          }
        }
      });
    }
    return o as unknown as MeasuredMigration;
  });
}

/**
 * Least squares by QR on column-scaled features. Returns null when there are fewer samples than
 * unknowns or the scaled system is rank deficient (a feature that does not vary).
 */
export function leastSquares(samples: { x: number[]; y: number }[]): { coef: number[]; rmse: number } | null {
  const p = samples[0]?.x.length ?? 0;
  if (p === 0 || samples.length < p) return null;
  const scale = Array.from({ length: p }, (_, j) => Math.max(...samples.map((s) => Math.abs(s.x[j]!))) || 0);
  if (scale.some((s) => s === 0)) return null;
  const X = new Matrix(samples.map((s) => s.x.map((v, j) => v / scale[j]!)));
  const y = Matrix.columnVector(samples.map((s) => s.y));
  const qr = new QrDecomposition(X);
  // ml-matrix's isFullRank() tests R's diagonal for exact 0; floats need a relative tolerance.
  const R = qr.upperTriangularMatrix;
  const diag = Array.from({ length: p }, (_, j) => Math.abs(R.get(j, j)));
  if (diag.some((d) => !(d > 1e-10 * Math.max(...diag)))) return null;
  const scaled = qr.solve(y).to1DArray();
  const coef = scaled.map((c, j) => c / scale[j]!);
  if (!coef.every(Number.isFinite)) return null;
  const sse = samples.reduce((acc, s) => acc + (s.y - s.x.reduce((t, v, j) => t + v * coef[j]!, 0)) ** 2, 0);
  return { coef, rmse: Math.sqrt(sse / samples.length) };
}

function varies(values: number[]): boolean {
  if (values.length < 2) return false;
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return hi - lo > 1e-9 * Math.max(1, Math.abs(hi));
}

function quantileOf(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[idx]!;
}

/** The runs' values grouped by configuration: the planner's inputs (M, R, L, I). */
function byConfiguration<T>(runs: readonly MeasuredMigration[], value: (r: MeasuredMigration) => T): T[][] {
  const groups = new Map<string, T[]>();
  for (const r of runs) {
    const key = `${r.stateBytes}/${r.dirtyPagesPerS}/${r.bandwidthMbit}/${r.preDumpRounds}`;
    const g = groups.get(key);
    if (g) g.push(value(r));
    else groups.set(key, [value(r)]);
  }
  return [...groups.values()];
}

/**
 * The largest, over configurations, of the q-quantile of `ratio` within each configuration. One
 * quantile over all runs would let the configurations the fit suits least fall below q (a model fits
 * some sizes better than others), while the bound is promised per configuration.
 */
function worstConfigurationQuantile(runs: readonly MeasuredMigration[], ratio: (r: MeasuredMigration) => number, q: number): number {
  return Math.max(...byConfiguration(runs, ratio).map((g) => quantileOf(g, q)));
}

/**
 * The smallest downtime factor under which, in every configuration, at least a share q of the runs
 * have both their downtime and their total upper-bounded (the totals under the safety factor
 * already chosen). This is the promise itself, taken jointly: where the totals are all bounded it
 * is the downtime's q-quantile, one rank less conservative than the union bound's 1 - (1 - q) / 2
 * (with 20 runs: the second largest ratio, not the largest), so one outlier of a noisy
 * configuration does not lift every prediction of the model.
 */
function jointDowntimeFactor(runs: readonly MeasuredMigration[], predict: (r: MeasuredMigration) => { downtimeMs: number; totalMs: number }, q: number): number {
  const groups = byConfiguration(runs, (r) => {
    const p = predict(r);
    // The prediction's downtime at factor 1: the ratio is the factor this run needs.
    return { down: r.downtimeMs / p.downtimeMs, totalBounded: r.totalMs <= p.totalMs * (1 + 1e-12) };
  });
  let factor = 0;
  for (const g of groups) {
    const need = Math.max(1, Math.ceil(q * g.length - 1e-9));
    const candidates = g.filter((x) => x.totalBounded).map((x) => x.down).sort((a, b) => a - b);
    // Fewer bounded totals than needed: the share cannot be reached; bound every downtime.
    const f = candidates.length >= need ? candidates[need - 1]! : Math.max(...g.map((x) => x.down));
    factor = Math.max(factor, f);
  }
  return factor;
}

/** Fits intercept + slope where the feature varies, else the intercept (mean) with the slope fixed. */
function fitLine(name: string, pts: { f: number; y: number }[], fixedSlope: number, notes: string[]): { a: number; b: number; fit: StepFit } | undefined {
  if (pts.length === 0) return undefined;
  const fs = pts.map((p) => p.f);
  if (varies(fs) && pts.length >= 2) {
    const r = leastSquares(pts.map((p) => ({ x: [1, p.f], y: p.y })));
    if (r) {
      let [a, b] = r.coef as [number, number];
      if (b < 0) {
        notes.push(`${name}: fitted slope ${b.toExponential(3)} < 0 clamped to 0 (noise larger than the effect)`);
        b = 0;
        a = pts.reduce((s, p) => s + p.y, 0) / pts.length;
      }
      if (a < 0) {
        notes.push(`${name}: fitted intercept ${a.toFixed(3)} ms < 0 clamped to 0`);
        a = 0;
      }
      return { a, b, fit: { samples: pts.length, rmseMs: r.rmse } };
    }
  }
  notes.push(`${name}: the runs do not vary its feature; fitted the intercept only, slope kept at ${fixedSlope.toExponential(3)}`);
  const a = Math.max(0, pts.reduce((s, p) => s + p.y - fixedSlope * p.f, 0) / pts.length);
  const rmse = Math.sqrt(pts.reduce((s, p) => s + (p.y - a - fixedSlope * p.f) ** 2, 0) / pts.length);
  return { a, b: fixedSlope, fit: { samples: pts.length, rmseMs: rmse } };
}

/** The rounds of a run, with the flat fields read as its final dump when `rounds` is absent. */
function roundsOf(run: MeasuredMigration): MeasuredRound[] {
  if (run.rounds && run.rounds.length > 0) return run.rounds;
  const dump: MeasuredRound = { kind: 'dump' };
  if (run.freezingMs !== undefined) dump.freezingMs = run.freezingMs;
  if (run.frozenMs !== undefined) dump.frozenMs = run.frozenMs;
  if (run.memoryDumpMs !== undefined) dump.memoryDumpMs = run.memoryDumpMs;
  if (run.checkpointMs !== undefined) dump.checkpointMs = run.checkpointMs;
  if (run.transferMs !== undefined) dump.transferMs = run.transferMs;
  if (run.transferBytes !== undefined) dump.bytes = run.transferBytes;
  return [dump];
}

/** Fits the constants of one executor from its measured runs. */
export function calibrate(runsIn: readonly MeasuredMigration[], opts: CalibrateOptions = {}): CalibrationResult {
  const executor = opts.executor ?? runsIn.find((r) => r.executor)?.executor ?? 'podman';
  const runs = runsIn.filter((r) => r.executor === undefined || r.executor === executor);
  const fits = opts.fits ?? PAPER_FITS;
  const q = opts.quantile ?? 0.95;
  if (runs.length < 2) throw new CalibrationError('CALIBRATION_TOO_FEW_RUNS', `executor ${executor}: ${runs.length} run(s); at least 2 are needed (20 per configuration recommended)`);
  const c: PamConstants = { ...DEFAULT_CONSTANTS, ...(EXECUTOR_PRESETS[executor] ?? {}), ...(opts.base ?? {}), safetyFactor: 1 };
  const notes: string[] = [];
  const steps: Record<string, StepFit> = {};

  // PAM normalises R to the range the runs cover (R^ in [0, 1]).
  const rs = runs.map((r) => r.dirtyPagesPerS);
  if (varies(rs)) {
    c.rMin = Math.min(...rs);
    c.rMax = Math.max(...rs);
  } else notes.push(`rMin/rMax: every run has R=${rs[0]}; kept ${c.rMin}..${c.rMax} pages/s`);
  const rHat = (r: MeasuredMigration) => normalisedDirtyRate(r.dirtyPagesPerS, c.rMin, c.rMax);

  type Tagged = { run: MeasuredMigration; round: MeasuredRound; index: number };
  const tagged: Tagged[] = runs.flatMap((run) => roundsOf(run).map((round, index) => ({ run, round, index })));
  /** Round 0 of a pre-copy run, or a cold dump, writes all of M. */
  const isFull = (t: Tagged) => t.index === 0;
  // The model uses the dump's frozen formula for every round but a pre-dump's round 0.
  const dumpLike = tagged.filter((t) => t.round.kind === 'dump' || t.index >= 1);

  // beta: the freezing time is a constant in PAM.
  const freezing = tagged.map((t) => t.round.freezingMs).filter((v): v is number => v !== undefined);
  if (freezing.length > 0) {
    c.beta = freezing.reduce((s, v) => s + v, 0) / freezing.length;
    steps.freezing = { samples: freezing.length, rmseMs: Math.sqrt(freezing.reduce((s, v) => s + (v - c.beta) ** 2, 0) / freezing.length) };
  }

  // Dump frozen: phi_d + Gamma * xi(R^) M.  Cold dumps and incremental dumps share it (PAM).
  const frozenD = dumpLike.filter((t) => t.round.frozenMs !== undefined).map((t) => ({ f: fits.xi(rHat(t.run)) * t.run.stateBytes, y: t.round.frozenMs! }));
  const fd = fitLine('dump frozen', frozenD, c.Gamma, notes);
  if (fd) {
    c.phiD = fd.a;
    c.Gamma = fd.b;
    steps.dumpFrozen = fd.fit;
  }
  // Pre-dump frozen: phi_p + (Gamma zeta) M.
  const frozenP = tagged.filter((t) => t.round.kind === 'pre-dump' && t.index === 0 && t.round.frozenMs !== undefined).map((t) => ({ f: t.run.stateBytes, y: t.round.frozenMs! }));
  const fp = fitLine('pre-dump frozen', frozenP, c.Gamma * c.zeta, notes);
  if (fp) {
    c.phiP = fp.a;
    if (c.Gamma > 0) c.zeta = fp.b / c.Gamma;
    else notes.push('zeta: Gamma fitted to 0, zeta kept (the pre-dump slope is not representable)');
    steps.preDumpFrozen = fp.fit;
  }
  // Memory: delta + Lambda m.
  const mem = tagged
    .filter((t) => t.round.memoryDumpMs !== undefined)
    .map((t) => ({ f: isFull(t) ? t.run.stateBytes : fits.eta(rHat(t.run)) * t.run.stateBytes, y: t.round.memoryDumpMs! }));
  const fm = fitLine('memory', mem, c.Lambda, notes);
  if (fm) {
    c.delta = fm.a;
    c.Lambda = fm.b;
    steps.memory = fm.fit;
  }
  // Engine factor on the checkpoint: through the origin, a1a2 = sum(x y) / sum(x^2).
  const ckpt = tagged
    .filter((t) => t.round.checkpointMs !== undefined)
    .map((t) => {
      const full = isFull(t);
      const frozen = t.round.frozenMs ?? (t.round.kind === 'dump' || t.index >= 1 ? c.phiD + c.Gamma * fits.xi(rHat(t.run)) * t.run.stateBytes : c.phiP + c.Gamma * c.zeta * t.run.stateBytes);
      const memory = t.round.memoryDumpMs ?? c.delta + c.Lambda * (full ? t.run.stateBytes : fits.eta(rHat(t.run)) * t.run.stateBytes);
      return { x: (t.round.freezingMs ?? c.beta) + frozen + memory, y: t.round.checkpointMs! };
    });
  if (ckpt.length > 0) {
    const sxy = ckpt.reduce((s, p) => s + p.x * p.y, 0);
    const sxx = ckpt.reduce((s, p) => s + p.x * p.x, 0);
    const a12 = sxx > 0 ? sxy / sxx : 1;
    c.alpha1 = a12;
    c.alpha2 = 1;
    notes.push('alpha1*alpha2 fitted as one product (alpha2 = 1): the runs give the engine total, not runc\'s share');
    steps.checkpoint = { samples: ckpt.length, rmseMs: Math.sqrt(ckpt.reduce((s, p) => s + (p.y - a12 * p.x) ** 2, 0) / ckpt.length) };
  } else {
    c.alpha1 = 1;
    c.alpha2 = 1;
    notes.push('no checkpointMs in the runs: the step times are the executor\'s own, alpha1 = alpha2 = 1');
  }
  // Image size: tau1 = bytes / (rho M) over full rounds that report bytes.
  const full = tagged.filter((t) => isFull(t) && t.round.bytes !== undefined && t.run.stateBytes > 0);
  if (full.length > 0) {
    c.tau1 = full.reduce((s, t) => s + t.round.bytes! / (c.rho * t.run.stateBytes), 0) / full.length;
  }
  // Transfer: netFixed + (V / L) / eff.  V measured where given, else the model's full-round volume.
  // The final dump's stream (frozen service, sent at once) and the pre-copy rounds' (paced) get
  // their own efficiency when the runs have both: netFixed + (V / L) / eff_pre or / eff_final.
  const xfer = tagged
    .filter((t) => t.round.transferMs !== undefined && (t.round.bytes !== undefined || isFull(t)))
    .map((t) => ({ f: (t.round.bytes ?? c.rho * c.tau1 * t.run.stateBytes) / (t.run.bandwidthMbit * 125), y: t.round.transferMs!, final: t.round.kind === 'dump' }));
  const both = xfer.some((p) => p.final) && xfer.some((p) => !p.final) ? leastSquares(xfer.map((p) => ({ x: [1, p.final ? 0 : p.f, p.final ? p.f : 0], y: p.y }))) : null;
  const [a0, bPre, bFinal] = both?.coef ?? [];
  if (both && a0! >= 0 && bPre! > 0 && bFinal! > 0) {
    c.netFixedMs = a0!;
    c.linkEfficiency = Math.min(1, 1 / bPre!);
    c.finalLinkEfficiency = Math.min(1, 1 / bFinal!);
    steps.transfer = { samples: xfer.length, rmseMs: both.rmse };
  } else {
    const fx = fitLine('transfer', xfer, 1 / c.linkEfficiency, notes);
    if (fx) {
      c.netFixedMs = fx.a;
      if (fx.b > 0) c.linkEfficiency = Math.min(1, 1 / fx.b);
      c.finalLinkEfficiency = 0;
      steps.transfer = fx.fit;
    }
  }
  // Restore: a3a4 (psi + omega M) with the product folded into psi and omega; against the final
  // image's volume V_n instead of M where restore does not read the whole state (pam.ts).
  const restoredBytes = (r: MeasuredMigration): number | undefined => {
    if (c.restoreReadsWholeState) return r.stateBytes;
    const last = roundsOf(r).at(-1);
    return last?.bytes ?? (r.preDumpRounds === 0 ? c.rho * c.tau1 * r.stateBytes : undefined);
  };
  const rest = runs
    .map((r) => ({ f: restoredBytes(r), y: r.restoreMs }))
    .filter((p): p is { f: number; y: number } => p.f !== undefined && p.y !== undefined);
  const a34 = c.alpha3 * c.alpha4;
  const fr = fitLine('restore', rest, a34 * c.omega, notes);
  if (fr) {
    c.alpha3 = 1;
    c.alpha4 = 1;
    c.psi = fr.a;
    c.omega = fr.b;
    steps.restore = fr.fit;
  }
  // Setup (coat's, outside PAM's rounds): setupMs + setupMsPerByte M.
  const setup = runs.filter((r) => r.setupMs !== undefined).map((r) => ({ f: r.stateBytes, y: r.setupMs! }));
  const fs = fitLine('setup', setup, c.setupMsPerByte, notes);
  if (fs) {
    c.setupMs = fs.a;
    c.setupMsPerByte = fs.b;
    steps.setup = fs.fit;
  }

  // Upper bounds, each at 1 - (1 - q) / 2 so that both hold together in at least q of the runs
  // (union bound): safetyFactor (>= 1) on every round and the setup from the totals, then
  // downtimeFactor from the downtimes under that factor (it absorbs it: downtime = df * k * T_down).
  const qEach = 1 - (1 - q) / 2;
  c.totalMarginMs = 0;
  c.downtimeFactor = 1;
  const predict = (k: PamConstants, r: MeasuredMigration) => predictPam({ stateBytes: r.stateBytes, dirtyPagesPerS: r.dirtyPagesPerS, bandwidthMbit: r.bandwidthMbit, preDumpRounds: r.preDumpRounds }, k, fits);
  c.safetyFactor = Math.max(1, worstConfigurationQuantile(runs, (r) => r.totalMs / predict(c, r).totalMs, qEach));
  // Recomputed with the factor, not divided: a longer round also dirties more pages.
  c.downtimeFactor = jointDowntimeFactor(runs, (r) => predict(c, r), q);
  if (c.downtimeFactor < 1) notes.push(`downtimeFactor ${c.downtimeFactor.toFixed(3)} < 1: the measured downtimes are shorter than the frozen windows the steps add up to`);
  const after = runs.map((r) => {
    const p = predict(c, r);
    return Math.max(r.downtimeMs / p.downtimeMs, r.totalMs / p.totalMs);
  });
  const bounded = after.filter((x) => x <= 1 + 1e-12).length;
  return { executor, runs: runs.length, constants: c, steps, upperBoundShare: bounded / runs.length, worstRatio: Math.max(...after), notes };
}
