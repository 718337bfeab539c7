/**
 * PAM: a Performance-Aware Migration model (Calagna et al., IEEE ICC 2023; background.md §3) that
 * predicts the time of every pre-copy round, the downtime T_down and the total migration time T_mig
 * of a container migration from the state size M, the dirty-page rate R and the link capacity L.
 * Beside it, the "ideal" model (He, Toosi, Buyya 2021) that counts only the transfer of M and then of
 * the dirtied pages, which PAM shows badly underestimates because processing time dominates.
 *
 * Pure: numbers in, numbers out, no I/O, no clock.
 *
 * Units (every figure below, and in the constants' documentation):
 * - bytes (B) for sizes, pages/s for dirty rates, Mbit/s for link capacity (10^6 bit/s),
 * - milliseconds (ms) for every time; "ms/B" constants are per byte of state M.
 *
 * Rounds. `preDumpRounds` (n >= 0) is MOSE's number of pre-copy iterations I:
 * - n = 0: cold (stop-and-copy): freeze, dump all of M, transfer it, restore. T_mig = T_down.
 * - n >= 1: round 0 pre-dumps all of M while the service runs; rounds 1..n-1 pre-dump the pages
 *   dirtied during the previous round; the final dump (in downtime) carries the pages dirtied during
 *   round n-1. PAM writes this as "I + 1 iterations" i = 0..I with T_mig = sum T_i + T_down; coat's
 *   round n is the dump, which is T_down.
 *
 * PAM's equations as coat evaluates them (background.md §3; a1a2 = alpha1*alpha2, a3a4 likewise):
 *   R^          = (R - Rmin) / (Rmax - Rmin), clamped to [0, 1]
 *   T^p_frozen  = phi_p + Gamma * zeta * M                 (pre-dump, frozen)
 *   T^p_mem     = delta + Lambda * M                       (pre-dump, memory write after thaw)
 *   T^d_frozen  = phi_d + Gamma * xi(R^) * M               (dump / incremental round, frozen)
 *   T^d_mem     = delta + Lambda * eta(R^) * M             (dump / incremental round, memory)
 *   N_d         = mu_d(R^) (M <= 1e5 B), else mu_d(R^) + nu_d(R^) * M   (pages a dump writes at least)
 *   V_0 = rho * tau1 * M;  V_i = rho * tau2 * N_i * sigma;  N_i * sigma = R (T_{i-1} - T_frozen_{i-1})
 *   T_net,i     = netFixedMs + V_i / (L * linkEfficiency)      (the final dump's: finalLinkEfficiency)
 *   T_0         = a1a2 (beta + T^p_frozen + T^p_mem) + T_net,0
 *   T_i         = a1a2 (beta + T^d_frozen [+ T^d_mem]) + T_net,i                      (1 <= i < n)
 *   T_down      = a1a2 (beta + T^d_frozen [+ T^d_mem]) + T_net,n + a3a4 (psi + omega M)
 *                 (omega V_n instead of omega M where restore does not read the whole state)
 *   T_mig       = sum_{i<n} T_i + T_down + setupMs + setupMsPerByte * M + totalMarginMs
 *   downtime    = downtimeFactor * T_down        (what is reported as the downtime; T_mig keeps T_down)
 * (every round's time, and the setup, is finally multiplied by `safetyFactor`, 1 unless set)
 * Where coat reads the paper and chooses (each is a named option so the printed form can be had):
 * - `countDumpMemoryTime` (default true): background.md's T_i and T_down omit T^d_mem although PAM
 *   fits eta for it. CRIU writes a dump's pages while the task is frozen (`criu dump` only thaws at
 *   the end, and with --leave-stopped never), so the memory time is part of downtime. False gives
 *   the formula as printed.
 * - The dirtied set of a round is max(R * running time, N_d) pages, capped at M / sigma: N_d is the
 *   paper's fit of what a dump writes even when little was dirtied (stack, vDSO, heap metadata), and no
 *   round can carry more pages than the state has. The cap keeps predictions finite when R * sigma > L.
 * - `restoreReadsWholeState` (default true, PAM): restore takes psi + omega M, as CRIU's does (a
 *   restore reads every page of the image, the pre-dumps' parents included). An executor that
 *   applies each pre-copy round at the destination as it arrives (coat's `settle`, tcp-repair) only
 *   applies the final image while frozen: false makes restore psi + omega V_n (the final round's
 *   volume; V_0 ~ M for cold, so cold is unchanged).
 * - `netFixedMs` (default 0) and `linkEfficiency` (default 1) are coat's: a per-round stream setup
 *   cost and the share of L the image stream achieves; `coat calibrate` fits both.
 *   `finalLinkEfficiency` (0: the same) is the final dump's share: coat paces pre-copy rounds in
 *   small slices so that they do not queue in front of the running service's segments, while the
 *   frozen service has no traffic to protect and its image leaves at once. Measured here: a 10 MiB
 *   pre-dump at ~320 Mbit/s, the same 10 MiB as a cold dump at ~650 Mbit/s, over a 1000 Mbit/s link.
 * - `setupMs` + `setupMsPerByte` M (default 0) are coat's: a migration in coat also profiles the
 *   service (MOSE's profiling: M, R), prepares the destination, installs the hold and releases the
 *   source. PAM's T_mig has no term for that work, which on a fast testbed is most of the total;
 *   `coat calibrate` fits it from the runs' `setupMs`. It is in T_mig, never in T_down.
 * - Cold migration dumps all of M while frozen: frozen phi_d + gamma_d M, memory delta + Lambda M,
 *   volume rho tau1 M.
 */

import { CoatError } from '../errors.js';

/** Bytes per Mbit/s per ms: 1 Mbit/s = 10^6 / 8 B/s = 125 B/ms. */
const BYTES_PER_MS_PER_MBIT = 125;

/** The paper's fitted functions of R^ (PAM §IV, background.md §3). Replaceable per testbed. */
export interface PamFits {
  /** Dump frozen-time factor: gamma_d = Gamma * xi(R^). Paper: 25 R^. Dimensionless. */
  xi(rHat: number): number;
  /** Dump memory-time factor: Lambda * eta(R^) * M. Paper: 0.01 + 0.99 R^. Dimensionless. */
  eta(rHat: number): number;
  /** Dump pages per byte of state above 1e5 B. Paper: 2.5e-4 R^ pages/B. */
  nuD(rHat: number): number;
  /** Dump pages written at least. Paper: 8 + 44 R^ if R^ < 0.5, else 30. Pages. */
  muD(rHat: number): number;
}

export const PAPER_FITS: PamFits = {
  xi: (r) => 25 * r,
  eta: (r) => 0.01 + 0.99 * r,
  nuD: (r) => 2.5e-4 * r,
  muD: (r) => (r < 0.5 ? 8 + 44 * r : 30),
};

/**
 * The testbed constants. Defaults are starting values from COAT's own step timings (background.md §5:
 * Podman 4.4 + runc 1.1.6 + CRIU 3.16.1, 50 runs per scenario, containers of 1.5 and 9.7 MB) until
 * `coat calibrate` fits this testbed's; each says where its number comes from.
 */
export interface PamConstants {
  /** Page size sigma, B. Linux x86-64: 4096. */
  sigma: number;
  /** Dirty-rate range the fits are normalised to, pages/s (R^ = (R - Rmin)/(Rmax - Rmin)). */
  rMin: number;
  rMax: number;
  /** Compression ratio rho of the image stream (1 = none: coat streams images uncompressed). */
  rho: number;
  /** Image bytes per byte of state in a full dump (round 0, cold). §5: 8.9 MB image / 9.7 MB = 0.92. */
  tau1: number;
  /** Image bytes per dirtied byte in incremental rounds and the dump (whole pages: 1). */
  tau2: number;
  /** Container-engine factors on checkpoint: T = alpha1 * alpha2 * (CRIU time). §5: runc/CRIU ~1.1. */
  alpha1: number;
  /** §5: Podman checkpoint 657-852 ms over runc 118-134 ms: ~6. */
  alpha2: number;
  /** Engine factors on restore: T = alpha3 * alpha4 * (psi + omega M). §5: runc/CRIU restore ~1.1. */
  alpha3: number;
  /** §5: Podman restore 217-231 ms over CRIU restore 44-52 ms (/ alpha3): ~4.2. */
  alpha4: number;
  /** Freezing the task tree, ms (constant). §5: CRIU freezing 61-71 ms: 66. */
  beta: number;
  /** Pre-dump frozen time, intercept, ms. §5 gives only the dump's: 42 (CRIU frozen minimum). */
  phiP: number;
  /** Dump frozen time, intercept, ms. §5: CRIU frozen 42-53 ms: 42. */
  phiD: number;
  /**
   * Frozen time per byte per unit of xi/zeta, ms/B. §5: frozen grew 11 ms over 8.2 MB (1.34 ms/MB);
   * read at a middle R^ = 0.5 (xi = 12.5): ~1e-7 ms/B (0.1 ms/MB).
   */
  Gamma: number;
  /** Pre-dump frozen-time factor: gamma_p = Gamma * zeta. Not published; 1 until calibrated. */
  zeta: number;
  /** Memory dump time, intercept, ms. §5: memory dump 2-11 ms: 2. */
  delta: number;
  /** Memory dump time per byte, ms/B. §5: 9 ms more over 8.3 MB of image: ~1.1e-6 ms/B (1.1 ms/MB). */
  Lambda: number;
  /** Pre-dump pages written: N_p = mu_p + nu_p M. Whole state: 0 and 1/sigma. Pages, pages/B. */
  muP: number;
  nuP: number;
  /** CRIU restore time, intercept, ms. §5: CRIU restore 44-52 ms over 1.5-9.7 MB: 42. */
  psi: number;
  /** CRIU restore time per byte, ms/B. §5: 8 ms over 8.2 MB: ~1e-6 ms/B (1 ms/MB). */
  omega: number;
  /** coat: fixed cost of one image transfer (stream setup, handshake), ms. 0 until calibrated. */
  netFixedMs: number;
  /** coat: share of the nominal L the image stream achieves (0, 1]. 1 until calibrated. */
  linkEfficiency: number;
  /** coat: the same for the final dump's stream (the frozen one); 0 = linkEfficiency. 0 until calibrated. */
  finalLinkEfficiency: number;
  /**
   * coat: per-migration work outside PAM's rounds (profile, prepare the destination, hold, release),
   * intercept, ms. Part of T_mig, not of T_down. 0 until calibrated.
   */
  setupMs: number;
  /** coat: the same work's growth with the state size, ms/B (profiling reads M). 0 until calibrated. */
  setupMsPerByte: number;
  /**
   * coat: added once to T_mig (not to T_down), ms: an operator's margin for totals on top of a
   * calibration. `coat calibrate` leaves it at 0. 0 by default.
   */
  totalMarginMs: number;
  /**
   * coat: the downtime a client sees per modelled frozen window T_down (after `safetyFactor`).
   * `coat calibrate` sets it to a quantile of measured / predicted downtime, so that the prediction
   * upper-bounds that share of the runs; it is below 1 where the client's largest gap is shorter than the freeze (bytes in
   * flight and in the client's receive buffer cover part of it). Reported downtime only; T_mig
   * counts the whole window. Dimensionless, 1 by default.
   */
  downtimeFactor: number;
  /** coat: count T^d_mem in T_i (i >= 1) and T_down (see the module comment). */
  countDumpMemoryTime: boolean;
  /**
   * coat: restore reads the whole state M (PAM, CRIU) rather than only the final image V_n (an
   * executor that settles each pre-copy round at the destination). See the module comment.
   */
  restoreReadsWholeState: boolean;
  /**
   * coat: factor (>= 1) on every round's time and the setup so that predictions upper-bound
   * measurements (MOSE needs upper bounds; least squares fits the mean). `coat calibrate` sets it to
   * a quantile of measured / predicted total (see calibrate.ts). Dimensionless, 1 by default.
   */
  safetyFactor: number;
}

export const DEFAULT_CONSTANTS: Readonly<PamConstants> = Object.freeze({
  sigma: 4096,
  rMin: 0,
  rMax: 10_000,
  rho: 1,
  tau1: 0.92,
  tau2: 1,
  alpha1: 1.1,
  alpha2: 6,
  alpha3: 1.1,
  alpha4: 4.2,
  beta: 66,
  phiP: 42,
  phiD: 42,
  Gamma: 1e-7,
  zeta: 1,
  delta: 2,
  Lambda: 1.1e-6,
  muP: 0,
  nuP: 1 / 4096,
  psi: 42,
  omega: 1e-6,
  netFixedMs: 0,
  linkEfficiency: 1,
  finalLinkEfficiency: 0,
  setupMs: 0,
  setupMsPerByte: 0,
  totalMarginMs: 0,
  downtimeFactor: 1,
  countDumpMemoryTime: true,
  restoreReadsWholeState: true,
  safetyFactor: 1,
});

/** The inputs of one prediction. */
export interface PamInput {
  /** State size M, B. */
  stateBytes: number;
  /** Dirty-page rate R, pages/s. The planner passes the worst case (Rmax). */
  dirtyPagesPerS: number;
  /**
   * Link capacity per round, Mbit/s: one number for every round, or one per round
   * (index i = round i, the last entry = the dump; a short array repeats its last entry).
   */
  bandwidthMbit: number | readonly number[];
  /** Pre-copy rounds I (0 = cold). */
  preDumpRounds: number;
}

export type RoundKind = 'pre-dump-full' | 'pre-dump-incremental' | 'dump-full' | 'dump-incremental';

/** One round's prediction; the last round is the dump (in downtime). */
export interface RoundPrediction {
  /** 0-based; round `preDumpRounds` is the dump. */
  index: number;
  kind: RoundKind;
  /** Bytes sent in this round (V_i). */
  bytes: number;
  /** Pages the executor writes in this round. */
  pages: number;
  /** Time the service is frozen in this round (PAM's T_frozen, before a1a2), ms. */
  frozenMs: number;
  /** Memory write time (T_mem, before a1a2), ms. */
  memoryMs: number;
  /** Checkpoint step at the engine layer: a1a2 (beta + frozen + memory), ms. */
  checkpointMs: number;
  /** Transfer T_net,i, ms. */
  transferMs: number;
  /** Restore (dump round only): a3a4 (psi + omega M), ms. */
  restoreMs: number;
  /** Whole round: T_i, or T_down for the dump, ms. */
  totalMs: number;
}

export interface PamPrediction {
  /** R^ used for the fits. */
  rHat: number;
  rounds: RoundPrediction[];
  /** The downtime: downtimeFactor * T_down (the dump round's totalMs), ms. */
  downtimeMs: number;
  /** coat's setup (profile, prepare, hold, release) counted in T_mig, ms. */
  setupMs: number;
  /** T_mig = sum T_i + T_down + setup, ms. */
  totalMs: number;
  /** Sum of V_i over all rounds, B. */
  totalBytes: number;
}

/** Thrown for inputs no prediction can be made from (negative size, zero bandwidth, ...). */
export class PamInputError extends CoatError {
  constructor(readonly field: string, readonly value: unknown, why: string) {
    super('PAM_BAD_INPUT', `PAM input ${field}=${String(value)}: ${why}`);
  }
}

function checkFinite(field: string, v: number, min: number, inclusive = true): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || (inclusive ? v < min : v <= min)) {
    throw new PamInputError(field, v, `must be a finite number ${inclusive ? '>=' : '>'} ${min}`);
  }
}

/** Validates an input; exported so the CLI can report bad flags before planning. */
export function validateInput(input: PamInput): void {
  checkFinite('stateBytes', input.stateBytes, 0);
  checkFinite('dirtyPagesPerS', input.dirtyPagesPerS, 0);
  if (!Number.isInteger(input.preDumpRounds) || input.preDumpRounds < 0) {
    throw new PamInputError('preDumpRounds', input.preDumpRounds, 'must be an integer >= 0');
  }
  const bws = typeof input.bandwidthMbit === 'number' ? [input.bandwidthMbit] : input.bandwidthMbit;
  if (bws.length === 0) throw new PamInputError('bandwidthMbit', '[]', 'needs at least one value');
  bws.forEach((b, i) => checkFinite(`bandwidthMbit[${i}]`, b, 0, false));
}

function validateConstants(c: PamConstants): void {
  checkFinite('sigma', c.sigma, 0, false);
  checkFinite('linkEfficiency', c.linkEfficiency, 0, false);
  checkFinite('finalLinkEfficiency', c.finalLinkEfficiency, 0);
  checkFinite('safetyFactor', c.safetyFactor, 0, false);
  checkFinite('downtimeFactor', c.downtimeFactor, 0, false);
  if (!(c.rMax >= c.rMin)) throw new PamInputError('rMax', c.rMax, `must be >= rMin (${c.rMin})`);
  for (const k of ['rho', 'tau1', 'tau2', 'alpha1', 'alpha2', 'alpha3', 'alpha4', 'beta', 'phiP', 'phiD', 'Gamma', 'zeta', 'delta', 'Lambda', 'muP', 'nuP', 'psi', 'omega', 'netFixedMs', 'setupMs', 'setupMsPerByte', 'totalMarginMs'] as const) {
    checkFinite(k, c[k], 0);
  }
}

/** R^ = (R - Rmin) / (Rmax - Rmin) clamped to [0, 1]; a degenerate range gives 0 or 1. */
export function normalisedDirtyRate(r: number, rMin: number, rMax: number): number {
  if (rMax <= rMin) return r > rMin ? 1 : 0;
  return Math.min(1, Math.max(0, (r - rMin) / (rMax - rMin)));
}

function bandwidthOfRound(bw: number | readonly number[], round: number): number {
  if (typeof bw === 'number') return bw;
  return bw[Math.min(round, bw.length - 1)]!;
}

/** Evaluates PAM. Throws PamInputError on invalid input; otherwise every number is finite. */
export function predictPam(input: PamInput, constants: Partial<PamConstants> = {}, fits: PamFits = PAPER_FITS): PamPrediction {
  const c: PamConstants = { ...DEFAULT_CONSTANTS, ...constants };
  validateInput(input);
  validateConstants(c);
  const M = input.stateBytes;
  const R = input.dirtyPagesPerS;
  const n = input.preDumpRounds;
  const rHat = normalisedDirtyRate(R, c.rMin, c.rMax);
  const k = c.safetyFactor;
  const a12 = c.alpha1 * c.alpha2 * k;
  const a34 = c.alpha3 * c.alpha4 * k;
  const statePages = M / c.sigma;
  const transferMs = (bytes: number, round: number, final: boolean) => {
    const efficiency = final && c.finalLinkEfficiency > 0 ? c.finalLinkEfficiency : c.linkEfficiency;
    return bytes === 0 ? 0 : k * (c.netFixedMs + bytes / (bandwidthOfRound(input.bandwidthMbit, round) * BYTES_PER_MS_PER_MBIT * efficiency));
  };

  const dumpFrozen = c.phiD + c.Gamma * fits.xi(rHat) * M;
  const dumpMemory = c.countDumpMemoryTime ? c.delta + c.Lambda * fits.eta(rHat) * M : 0;
  const dumpMinPages = M <= 1e5 ? fits.muD(rHat) : fits.muD(rHat) + fits.nuD(rHat) * M;
  /** Restore of the final image of `bytes`: all of M when restore reads the whole state. */
  const restoreMs = (bytes: number) => a34 * (c.psi + c.omega * (c.restoreReadsWholeState ? M : bytes));

  /** Pages dirtied while the previous round ran unfrozen, at least N_d, at most the whole state. */
  const dirtiedPages = (prev: RoundPrediction) => {
    const runningMs = Math.max(0, prev.totalMs - prev.frozenMs);
    return Math.min(statePages, Math.max((R * runningMs) / 1000, dumpMinPages));
  };

  const rounds: RoundPrediction[] = [];
  if (n === 0) {
    const frozenMs = dumpFrozen;
    const memoryMs = c.delta + c.Lambda * M;
    const bytes = c.rho * c.tau1 * M;
    const checkpointMs = a12 * (c.beta + frozenMs + memoryMs);
    const t = transferMs(bytes, 0, true);
    const restore = restoreMs(bytes);
    rounds.push({ index: 0, kind: 'dump-full', bytes, pages: statePages, frozenMs, memoryMs, checkpointMs, transferMs: t, restoreMs: restore, totalMs: checkpointMs + t + restore });
  } else {
    const frozen0 = c.phiP + c.Gamma * c.zeta * M;
    const memory0 = c.delta + c.Lambda * M;
    const bytes0 = c.rho * c.tau1 * M;
    const ckpt0 = a12 * (c.beta + frozen0 + memory0);
    const t0 = transferMs(bytes0, 0, false);
    rounds.push({ index: 0, kind: 'pre-dump-full', bytes: bytes0, pages: c.muP + c.nuP * M, frozenMs: frozen0, memoryMs: memory0, checkpointMs: ckpt0, transferMs: t0, restoreMs: 0, totalMs: ckpt0 + t0 });
    for (let i = 1; i <= n; i++) {
      const pages = dirtiedPages(rounds[i - 1]!);
      const bytes = c.rho * c.tau2 * pages * c.sigma;
      const checkpointMs = a12 * (c.beta + dumpFrozen + dumpMemory);
      const isDump = i === n;
      const t = transferMs(bytes, i, isDump);
      const restore = isDump ? restoreMs(bytes) : 0;
      rounds.push({
        index: i,
        kind: isDump ? 'dump-incremental' : 'pre-dump-incremental',
        bytes,
        pages,
        frozenMs: dumpFrozen,
        memoryMs: dumpMemory,
        checkpointMs,
        transferMs: t,
        restoreMs: restore,
        totalMs: checkpointMs + t + restore,
      });
    }
  }
  const dump = rounds[rounds.length - 1]!;
  const setupMs = k * (c.setupMs + c.setupMsPerByte * M);
  const totalMs = rounds.reduce((s, r) => s + r.totalMs, 0) + setupMs + c.totalMarginMs;
  return { rHat, rounds, downtimeMs: c.downtimeFactor * dump.totalMs, setupMs, totalMs, totalBytes: rounds.reduce((s, r) => s + r.bytes, 0) };
}

/** Inputs of the ideal model: no processing time, pure transfer. */
export interface IdealPrediction {
  rounds: { index: number; bytes: number; totalMs: number }[];
  downtimeMs: number;
  totalMs: number;
  totalBytes: number;
}

/**
 * The ideal pre-copy model (He, Toosi, Buyya 2021, as PAM restates it): round 0 sends M, round i
 * sends what was dirtied while round i-1 was sent, V_i = min(M, R sigma T_{i-1}); T_i = V_i / L; the
 * dump is round I and is the downtime; no checkpoint, freeze or restore time. Cold: T_down = M / L.
 */
export function predictIdeal(input: PamInput, sigma: number = DEFAULT_CONSTANTS.sigma): IdealPrediction {
  validateInput(input);
  const M = input.stateBytes;
  const rounds: IdealPrediction['rounds'] = [];
  let bytes = M;
  for (let i = 0; i <= input.preDumpRounds; i++) {
    const t = bytes / (bandwidthOfRound(input.bandwidthMbit, i) * BYTES_PER_MS_PER_MBIT);
    rounds.push({ index: i, bytes, totalMs: t });
    bytes = Math.min(M, (input.dirtyPagesPerS * sigma * t) / 1000);
  }
  const dump = rounds[rounds.length - 1]!;
  return {
    rounds,
    downtimeMs: dump.totalMs,
    totalMs: rounds.reduce((s, r) => s + r.totalMs, 0),
    totalBytes: rounds.reduce((s, r) => s + r.bytes, 0),
  };
}

/** Named constant presets per executor: starting points before calibration. */
export const EXECUTOR_PRESETS: Record<string, Partial<PamConstants>> = {
  /** COAT's measurements were taken through Podman: the defaults are Podman's. */
  podman: {},
  /** CRIU driven directly: no container-engine layer on top of CRIU's own times. */
  criu: { alpha1: 1, alpha2: 1, alpha3: 1, alpha4: 1 },
  /**
   * The built-in executor freezes and saves sockets itself; CRIU-level times are the closest start.
   * It settles each pre-copy round at the destination, so its restore applies the final image only.
   */
  'tcp-repair': { alpha1: 1, alpha2: 1, alpha3: 1, alpha4: 1, restoreReadsWholeState: false },
  /** User hooks: unknown until calibrated; start from Podman's (the slowest, so predictions bound). */
  hooks: {},
};
