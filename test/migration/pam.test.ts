/**
 * PAM (background.md §3) with the paper's published fits: the qualitative findings of Calagna et al.
 * and the properties every prediction must have.
 */
import fc from 'fast-check';
import t from 'tap';
import { DEFAULT_CONSTANTS, PAPER_FITS, PamInputError, normalisedDirtyRate, predictIdeal, predictPam, type PamInput } from '../../src/migration/pam.js';

const MB = 1e6;
/** The error `fn` throws (tap's t.throws matches a pattern, not a predicate). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

const at = (stateBytes: number, dirtyPagesPerS: number, bandwidthMbit: number, preDumpRounds: number): PamInput => ({ stateBytes, dirtyPagesPerS, bandwidthMbit, preDumpRounds });

t.test('the paper fits, as published', async (t) => {
  t.equal(PAPER_FITS.xi(0), 0);
  t.equal(PAPER_FITS.xi(1), 25);
  t.equal(PAPER_FITS.eta(0), 0.01);
  t.equal(PAPER_FITS.eta(1), 1);
  t.equal(PAPER_FITS.nuD(1), 2.5e-4);
  t.equal(PAPER_FITS.muD(0), 8);
  t.equal(PAPER_FITS.muD(0.25), 19);
  t.equal(PAPER_FITS.muD(0.5), 30);
  t.equal(PAPER_FITS.muD(0.9), 30);
  t.equal(normalisedDirtyRate(5000, 0, 10000), 0.5);
  t.equal(normalisedDirtyRate(-5, 0, 10000), 0, 'clamped below');
  t.equal(normalisedDirtyRate(20000, 0, 10000), 1, 'clamped above');
  t.equal(normalisedDirtyRate(7, 7, 7), 0, 'degenerate range');
});

t.test('cold migration is checkpoint + transfer + restore, by hand', async (t) => {
  const c = { ...DEFAULT_CONSTANTS };
  const M = 10 * MB;
  const p = predictPam(at(M, 0, 100, 0), c);
  const rHat = 0;
  const checkpoint = c.alpha1 * c.alpha2 * (c.beta + (c.phiD + c.Gamma * PAPER_FITS.xi(rHat) * M) + (c.delta + c.Lambda * M));
  const transfer = (c.rho * c.tau1 * M) / (100 * 125);
  const restore = c.alpha3 * c.alpha4 * (c.psi + c.omega * M);
  t.equal(p.rounds.length, 1);
  t.equal(p.rounds[0]!.kind, 'dump-full');
  t.ok(Math.abs(p.downtimeMs - (checkpoint + transfer + restore)) < 1e-9);
  t.equal(p.totalMs, p.downtimeMs, 'cold: T_mig = T_down');
  t.equal(p.totalBytes, c.rho * c.tau1 * M);
});

t.test('pre-copy round volumes follow N_i sigma = R (T_{i-1} - T_frozen_{i-1})', async (t) => {
  const M = 50 * MB;
  const R = 300;
  const p = predictPam(at(M, R, 100, 2));
  t.equal(p.rounds.map((r) => r.kind).join(','), 'pre-dump-full,pre-dump-incremental,dump-incremental');
  for (let i = 1; i < p.rounds.length; i++) {
    const prev = p.rounds[i - 1]!;
    const expectPages = Math.min(M / 4096, Math.max((R * (prev.totalMs - prev.frozenMs)) / 1000, PAPER_FITS.muD(p.rHat) + PAPER_FITS.nuD(p.rHat) * M));
    t.ok(Math.abs(p.rounds[i]!.pages - expectPages) < 1e-6, `round ${i} pages`);
    t.ok(Math.abs(p.rounds[i]!.bytes - expectPages * 4096) < 1e-3, `round ${i} bytes (rho = tau2 = 1)`);
  }
  t.ok(Math.abs(p.totalMs - p.rounds.reduce((s, r) => s + r.totalMs, 0)) < 1e-9, 'T_mig = sum T_i + T_down');
  t.equal(p.downtimeMs, p.rounds[2]!.totalMs);
  t.ok(p.rounds[2]!.restoreMs > 0 && p.rounds[0]!.restoreMs === 0 && p.rounds[1]!.restoreMs === 0, 'restore only in the dump');
});

t.test('finding: pre-copy pays off for large M and low R, not for small M or high R', async (t) => {
  // "pays off": one pre-copy round lowers the downtime by a worthwhile share of cold's downtime.
  const gain = (M: number, R: number) => {
    const cold = predictPam(at(M, R, 100, 0)).downtimeMs;
    const pre = predictPam(at(M, R, 100, 1)).downtimeMs;
    return (cold - pre) / cold;
  };
  t.ok(gain(200 * MB, 100) > 0.8, `large M, low R: ${gain(200 * MB, 100).toFixed(3)}`);
  t.ok(gain(50 * MB, 100) > 0.5, `50 MB, low R: ${gain(50 * MB, 100).toFixed(3)}`);
  t.ok(gain(1 * MB, 100) < 0.1, `small M: ${gain(1 * MB, 100).toFixed(3)}`);
  t.ok(gain(200 * MB, 9000) <= 0, `high R: pre-copy does not lower the downtime (${gain(200 * MB, 9000).toFixed(3)})`);
  t.ok(gain(10 * MB, 9000) <= 0, `high R, 10 MB: ${gain(10 * MB, 9000).toFixed(3)}`);
  // The gain grows with M at low R and falls with R at fixed M.
  const byM = [1, 5, 20, 100, 400].map((m) => gain(m * MB, 100));
  for (let i = 1; i < byM.length; i++) t.ok(byM[i]! > byM[i - 1]!, `gain grows with M (${byM.map((g) => g.toFixed(3)).join(' ')})`);
  const byR = [50, 500, 2000, 5000, 9000].map((r) => gain(100 * MB, r));
  for (let i = 1; i < byR.length; i++) t.ok(byR[i]! < byR[i - 1]!, `gain falls with R (${byR.map((g) => g.toFixed(3)).join(' ')})`);
});

t.test('finding: T_mig grows with I while T_down shrinks (large M, low R)', async (t) => {
  for (const [M, R] of [[100 * MB, 200], [20 * MB, 500]] as const) {
    const ps = [0, 1, 2, 3, 4, 6].map((i) => predictPam(at(M, R, 100, i)));
    for (let i = 1; i < ps.length; i++) {
      t.ok(ps[i]!.totalMs > ps[i - 1]!.totalMs, `M=${M} R=${R}: T_mig grows (${ps.map((p) => Math.round(p.totalMs)).join(' ')})`);
      t.ok(ps[i]!.downtimeMs <= ps[i - 1]!.downtimeMs, `M=${M} R=${R}: T_down shrinks (${ps.map((p) => Math.round(p.downtimeMs)).join(' ')})`);
    }
    t.ok(ps[1]!.downtimeMs < ps[0]!.downtimeMs, 'the first round brings a strict gain');
  }
});

t.test('finding: the ideal model underestimates, more so as L grows', async (t) => {
  for (const rounds of [0, 1, 3]) {
    const ratios = [10, 50, 100, 500, 1000, 10000].map((L) => {
      const pam = predictPam(at(10 * MB, 500, L, rounds));
      const ideal = predictIdeal(at(10 * MB, 500, L, rounds));
      t.ok(ideal.downtimeMs < pam.downtimeMs && ideal.totalMs < pam.totalMs, `I=${rounds} L=${L}: ideal below PAM`);
      return pam.totalMs / ideal.totalMs;
    });
    for (let i = 1; i < ratios.length; i++) t.ok(ratios[i]! > ratios[i - 1]!, `I=${rounds}: PAM/ideal grows with L (${ratios.map((r) => r.toFixed(2)).join(' ')})`);
  }
});

t.test('the ideal model: M/L then geometric dirty rounds', async (t) => {
  const p = predictIdeal(at(10 * MB, 1000, 100, 2));
  const t0 = (10 * MB) / 12500;
  t.equal(p.rounds[0]!.totalMs, t0);
  const v1 = (1000 * 4096 * t0) / 1000;
  t.ok(Math.abs(p.rounds[1]!.bytes - v1) < 1e-6);
  t.equal(p.downtimeMs, p.rounds[2]!.totalMs);
  t.equal(predictIdeal(at(10 * MB, 0, 100, 0)).downtimeMs, t0, 'cold: M / L');
});

t.test('per-round bandwidth: later rounds use their own L (short arrays repeat the last)', async (t) => {
  const same = predictPam(at(20 * MB, 200, 100, 2));
  const faster = predictPam({ ...at(20 * MB, 200, 100, 2), bandwidthMbit: [100, 1000] });
  t.equal(faster.rounds[0]!.transferMs, same.rounds[0]!.transferMs);
  t.ok(faster.rounds[2]!.transferMs < same.rounds[2]!.transferMs);
});

t.test('restoreReadsWholeState=false: a pre-copy restore costs the final image, a cold one is unchanged', async (t) => {
  const M = 100e6;
  const pre = predictPam(at(M, 100, 1000, 2));
  const settled = predictPam(at(M, 100, 1000, 2), { restoreReadsWholeState: false });
  const dump = settled.rounds.at(-1)!;
  t.equal(dump.restoreMs, DEFAULT_CONSTANTS.alpha3 * DEFAULT_CONSTANTS.alpha4 * (DEFAULT_CONSTANTS.psi + DEFAULT_CONSTANTS.omega * dump.bytes));
  t.ok(dump.bytes < M / 10 && settled.downtimeMs < pre.downtimeMs, `downtime ${settled.downtimeMs.toFixed(1)} < ${pre.downtimeMs.toFixed(1)} ms`);
  const coldSettled = predictPam(at(M, 100, 1000, 0), { restoreReadsWholeState: false, tau1: 1 });
  const coldPam = predictPam(at(M, 100, 1000, 0), { tau1: 1 });
  t.equal(coldSettled.downtimeMs, coldPam.downtimeMs, 'cold: V_0 = M with rho = tau1 = 1');
});

t.test("finalLinkEfficiency: the final dump's transfer only; 0 means the same as linkEfficiency", async (t) => {
  const M = 100e6;
  const same = predictPam(at(M, 100, 1000, 2), { linkEfficiency: 0.5 });
  const zero = predictPam(at(M, 100, 1000, 2), { linkEfficiency: 0.5, finalLinkEfficiency: 0 });
  t.same(zero, same, '0: unchanged');
  const fast = predictPam(at(M, 100, 1000, 2), { linkEfficiency: 0.5, finalLinkEfficiency: 1 });
  t.equal(fast.rounds[0]!.transferMs, same.rounds[0]!.transferMs, 'pre-copy round 0 unchanged');
  t.equal(fast.rounds[1]!.transferMs, same.rounds[1]!.transferMs, 'pre-copy round 1 unchanged');
  t.ok(Math.abs(fast.rounds[2]!.transferMs - same.rounds[2]!.transferMs / 2) < 1e-9, 'the final dump at twice the share: half the time (netFixed 0)');
  const cold = predictPam(at(M, 100, 1000, 0), { linkEfficiency: 0.5, finalLinkEfficiency: 1 });
  t.ok(Math.abs(cold.rounds[0]!.transferMs - cold.rounds[0]!.bytes / (1000 * 125)) < 1e-9, "cold's one round is the final dump");
  t.throws(() => predictPam(at(M, 100, 1000, 0), { finalLinkEfficiency: -1 }), PamInputError);
});

t.test('countDumpMemoryTime=false gives the formula as printed in background.md', async (t) => {
  const M = 30 * MB;
  const on = predictPam(at(M, 2000, 100, 1));
  const off = predictPam(at(M, 2000, 100, 1), { countDumpMemoryTime: false });
  const c = DEFAULT_CONSTANTS;
  const memD = c.delta + c.Lambda * PAPER_FITS.eta(on.rHat) * M;
  t.ok(Math.abs(on.rounds[1]!.checkpointMs - off.rounds[1]!.checkpointMs - c.alpha1 * c.alpha2 * memD) < 1e-6);
  t.equal(off.rounds[1]!.memoryMs, 0);
});

t.test('bad input is a typed error naming the field', async (t) => {
  const cases: [Partial<PamInput>, string][] = [
    [{ stateBytes: -1 }, 'stateBytes'],
    [{ stateBytes: NaN }, 'stateBytes'],
    [{ dirtyPagesPerS: Infinity }, 'dirtyPagesPerS'],
    [{ bandwidthMbit: 0 }, 'bandwidthMbit[0]'],
    [{ bandwidthMbit: [] }, 'bandwidthMbit'],
    [{ bandwidthMbit: [10, -1] }, 'bandwidthMbit[1]'],
    [{ preDumpRounds: 1.5 }, 'preDumpRounds'],
    [{ preDumpRounds: -1 }, 'preDumpRounds'],
  ];
  for (const [bad, field] of cases) {
    const e = thrown(() => predictPam({ ...at(MB, 10, 100, 1), ...bad }));
    t.ok(e instanceof PamInputError && e.code === 'PAM_BAD_INPUT' && e.field === field, `${field}: ${String(e)}`);
  }
  const e1 = thrown(() => predictPam(at(MB, 10, 100, 1), { rMin: 10, rMax: 5 }));
  t.ok(e1 instanceof PamInputError && e1.field === 'rMax', String(e1));
  const e2 = thrown(() => predictPam(at(MB, 10, 100, 1), { Gamma: -1 }));
  t.ok(e2 instanceof PamInputError && e2.field === 'Gamma', String(e2));
});

const arbInput = fc.record({
  stateBytes: fc.double({ min: 0, max: 4e9, noNaN: true }),
  dirtyPagesPerS: fc.double({ min: 0, max: 1e6, noNaN: true }),
  bandwidthMbit: fc.double({ min: 0.01, max: 1e5, noNaN: true }),
  preDumpRounds: fc.integer({ min: 0, max: 12 }),
});

t.test('property: predictions are finite and non-negative, for PAM and the ideal model', async (t) => {
  fc.assert(
    fc.property(arbInput, (input) => {
      const p = predictPam(input);
      const i = predictIdeal(input);
      for (const v of [p.downtimeMs, p.totalMs, p.totalBytes, i.downtimeMs, i.totalMs, ...p.rounds.flatMap((r) => [r.bytes, r.pages, r.totalMs])]) {
        if (!Number.isFinite(v) || v < 0) return false;
      }
      return p.rounds.length === input.preDumpRounds + 1 && p.totalMs >= p.downtimeMs;
    }),
    { numRuns: 2000 },
  );
  t.pass('2000 random inputs');
});

t.test('property: monotone in M and in 1/L', async (t) => {
  fc.assert(
    fc.property(arbInput, fc.double({ min: 1, max: 10, noNaN: true }), (input, k) => {
      const base = predictPam(input);
      const bigger = predictPam({ ...input, stateBytes: input.stateBytes * k });
      const slower = predictPam({ ...input, bandwidthMbit: (input.bandwidthMbit as number) / k });
      const eps = 1e-9 * Math.max(1, base.totalMs);
      return (
        bigger.downtimeMs >= base.downtimeMs - eps &&
        bigger.totalMs >= base.totalMs - eps &&
        slower.downtimeMs >= base.downtimeMs - eps &&
        slower.totalMs >= base.totalMs - eps
      );
    }),
    { numRuns: 2000 },
  );
  t.pass('2000 random inputs');
});

t.test("coat's setup (profile, prepare, release) is in T_mig, scaled by the safety factor, never in T_down", async (t) => {
  const input: PamInput = { stateBytes: 10e6, dirtyPagesPerS: 5, bandwidthMbit: 100, preDumpRounds: 1 };
  const plain = predictPam(input, { alpha1: 1, alpha2: 1, alpha3: 1, alpha4: 1 });
  const withSetup = predictPam(input, { alpha1: 1, alpha2: 1, alpha3: 1, alpha4: 1, setupMs: 300, setupMsPerByte: 2e-5 });
  t.equal(plain.setupMs, 0);
  t.equal(withSetup.setupMs, 300 + 2e-5 * 10e6);
  t.equal(withSetup.downtimeMs, plain.downtimeMs, 'downtime unchanged');
  t.ok(Math.abs(withSetup.totalMs - plain.totalMs - 500) < 1e-9, `total grows by the setup: ${withSetup.totalMs - plain.totalMs}`);
  const safe = predictPam(input, { alpha1: 1, alpha2: 1, alpha3: 1, alpha4: 1, setupMs: 300, setupMsPerByte: 2e-5, safetyFactor: 2 });
  t.equal(safe.setupMs, 1000, 'the safety factor scales the setup too');
  const margin = predictPam(input, { alpha1: 1, alpha2: 1, alpha3: 1, alpha4: 1, totalMarginMs: 250, safetyFactor: 2 });
  const noMargin = predictPam(input, { alpha1: 1, alpha2: 1, alpha3: 1, alpha4: 1, safetyFactor: 2 });
  t.equal(margin.downtimeMs, noMargin.downtimeMs, 'the total margin is not in T_down');
  t.ok(Math.abs(margin.totalMs - noMargin.totalMs - 250) < 1e-9, 'the total margin is added once, not scaled');
  t.throws(() => predictPam(input, { setupMs: -1 }), PamInputError);
});
