/**
 * MOSE's designer (background.md §2) on PAM with the paper's fits: its regions, monotonicity in the
 * targets, and the invariant that it never claims a target its own model says the plan misses.
 */
import fc from 'fast-check';
import t from 'tap';
import { PamInputError, predictPam } from '../../src/migration/pam.js';
import { plan, planFromProfile, type PlanRequest } from '../../src/migration/planner.js';

const MB = 1e6;
const base: PlanRequest = {
  objective: 'min-downtime',
  stateBytes: 100 * MB,
  dirtyPagesPerS: 200,
  maxBandwidthMbit: 100,
  targetDowntimeMs: 1000,
  targetTotalMs: 30_000,
};

t.test('min-downtime, large M and low R, loose total target: iterative pre-copy at the maximum bandwidth', async (t) => {
  const p = plan(base);
  t.equal(p.strategy, 'precopy');
  t.equal(p.bandwidthMbit, 100);
  t.ok(p.iterations >= 1);
  t.ok(p.predicted.totalMs <= base.targetTotalMs);
  // The largest I meeting the target: one more round would miss it (or I is at the cap).
  if (p.iterations < 8) t.ok(predictPam({ stateBytes: base.stateBytes, dirtyPagesPerS: 200, bandwidthMbit: 100, preDumpRounds: p.iterations + 1 }).totalMs > base.targetTotalMs);
  t.match(p.reason, /iterative pre-copy, I=\d+ at the maximum bandwidth/);
  t.equal(p.model.rounds.length, p.iterations + 1);
});

t.test('min-downtime with a total target too tight for any pre-copy: cold at the maximum bandwidth', async (t) => {
  const p = plan({ ...base, targetTotalMs: 100 });
  t.equal(p.strategy, 'cold');
  t.equal(p.iterations, 0);
  t.equal(p.bandwidthMbit, 100);
  t.match(p.reason, /even 1 pre-copy round needs \d+ ms > target total 100 ms/);
  t.equal(p.meetsTargets, false, 'cold cannot meet 100 ms either, and the plan says so');
});

t.test('min-downtime where pre-copy does not pay off (high R, small M): cold', async (t) => {
  for (const req of [{ ...base, dirtyPagesPerS: 9500 }, { ...base, stateBytes: 0.5 * MB, dirtyPagesPerS: 5000 }]) {
    const p = plan(req);
    t.equal(p.strategy, 'cold', `M=${req.stateBytes} R=${req.dirtyPagesPerS}`);
    t.match(p.reason, /does not lower the downtime/);
  }
});

t.test('min-downtime: executors without pre-copy get cold', async (t) => {
  const p = plan({ ...base, preCopySupported: false });
  t.equal(p.strategy, 'cold');
  t.match(p.reason, /does not support pre-copy/);
});

t.test('min-resources: cold with the smallest bandwidth meeting the downtime target', async (t) => {
  const p = plan({ ...base, objective: 'min-resources', stateBytes: 10 * MB, maxBandwidthMbit: 1000, targetDowntimeMs: 3000 });
  t.equal(p.strategy, 'cold');
  t.ok(p.bandwidthMbit < 1000 && p.bandwidthMbit > 0);
  t.ok(p.predicted.downtimeMs <= 3000);
  const less = predictPam({ stateBytes: 10 * MB, dirtyPagesPerS: 200, bandwidthMbit: p.bandwidthMbit - 0.1, preDumpRounds: 0 });
  t.ok(less.downtimeMs > 3000, `0.1 Mbit/s less misses: ${less.downtimeMs} ms at ${p.bandwidthMbit - 0.1}`);
  t.equal(p.meetsTargets, true);
});

t.test('min-resources with a downtime target too tight: cold at the maximum available', async (t) => {
  const p = plan({ ...base, objective: 'min-resources', targetDowntimeMs: 50 });
  t.equal(p.strategy, 'cold');
  t.equal(p.bandwidthMbit, 100);
  t.equal(p.meetsTargets, false);
  t.match(p.reason, /even there T_down is \d+ ms > target 50 ms/);
});

t.test('the chosen I grows monotonically with the total target', async (t) => {
  let prev = -1;
  const seen: number[] = [];
  for (let target = 2000; target <= 60_000; target += 500) {
    const p = plan({ ...base, targetTotalMs: target, maxPreDumpRounds: 20 });
    seen.push(p.iterations);
    t.ok(p.iterations >= prev, `target ${target}: I=${p.iterations} >= ${prev}`);
    prev = p.iterations;
  }
  t.ok(new Set(seen).size >= 4, `I took several values: ${[...new Set(seen)].join(',')}`);
  t.equal(seen[0], 0, 'tightest: cold');
});

t.test('the chosen L falls monotonically as the downtime target loosens', async (t) => {
  let prev = Infinity;
  const seen: number[] = [];
  for (let target = 200; target <= 20_000; target += 200) {
    const p = plan({ ...base, objective: 'min-resources', stateBytes: 50 * MB, maxBandwidthMbit: 1000, targetDowntimeMs: target, targetTotalMs: Infinity });
    seen.push(p.bandwidthMbit);
    t.ok(p.bandwidthMbit <= prev, `target ${target}: L=${p.bandwidthMbit} <= ${prev}`);
    prev = p.bandwidthMbit;
  }
  t.equal(seen[0], 1000, 'tightest: the maximum available');
  t.ok(seen[seen.length - 1]! < 100, `loosest: a small L (${seen[seen.length - 1]})`);
});

t.test('MOSE Table I targets (1 s / 5 s) for a 10 MB service at 500 Mbit/s: both objectives meet them', async (t) => {
  const req = { ...base, stateBytes: 10 * MB, dirtyPagesPerS: 100, maxBandwidthMbit: 500, targetDowntimeMs: 1000, targetTotalMs: 5000 };
  const down = plan(req, { constants: { alpha1: 1, alpha2: 1, alpha3: 1, alpha4: 1 } });
  const res = plan({ ...req, objective: 'min-resources' }, { constants: { alpha1: 1, alpha2: 1, alpha3: 1, alpha4: 1 } });
  t.equal(down.strategy, 'precopy');
  t.equal(res.strategy, 'cold');
  t.ok(down.predicted.downtimeMs < res.predicted.downtimeMs, 'pre-copy gives the lower downtime');
  t.ok(res.bandwidthMbit < 500, 'min-resources uses less than the maximum');
  t.ok(down.meetsTargets && res.meetsTargets);
});

t.test('bad requests are typed errors', async (t) => {
  for (const [bad, field] of [
    [{ objective: 'fastest' }, 'objective'],
    [{ targetDowntimeMs: -1 }, 'targetDowntimeMs'],
    [{ targetTotalMs: NaN }, 'targetTotalMs'],
    [{ maxBandwidthMbit: 0 }, 'bandwidthMbit[0]'],
    [{ maxPreDumpRounds: 2.5 }, 'maxPreDumpRounds'],
    [{ stateBytes: -5 }, 'stateBytes'],
  ] as const) {
    let err: unknown;
    try {
      plan({ ...base, ...(bad as Partial<PlanRequest>) });
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof PamInputError && err.field === field, `${field}: ${String(err)}`);
  }
});

t.test('property: the planner never claims a target its own model says the plan misses', async (t) => {
  fc.assert(
    fc.property(
      fc.record({
        objective: fc.constantFrom('min-downtime' as const, 'min-resources' as const),
        stateBytes: fc.double({ min: 1e4, max: 2e9, noNaN: true }),
        dirtyPagesPerS: fc.double({ min: 0, max: 20000, noNaN: true }),
        maxBandwidthMbit: fc.double({ min: 1, max: 10000, noNaN: true }),
        targetDowntimeMs: fc.double({ min: 0, max: 60000, noNaN: true }),
        targetTotalMs: fc.double({ min: 0, max: 200000, noNaN: true }),
        maxPreDumpRounds: fc.integer({ min: 0, max: 10 }),
      }),
      (req) => {
        const p = plan(req);
        // Re-evaluate the plan independently with the model.
        const again = predictPam({ stateBytes: req.stateBytes, dirtyPagesPerS: req.dirtyPagesPerS, bandwidthMbit: p.bandwidthMbit, preDumpRounds: p.iterations });
        const meets = again.downtimeMs <= req.targetDowntimeMs && again.totalMs <= req.targetTotalMs;
        return (
          p.meetsTargets === meets &&
          p.predicted.downtimeMs === again.downtimeMs &&
          p.predicted.totalMs === again.totalMs &&
          p.bandwidthMbit > 0 &&
          p.bandwidthMbit <= req.maxBandwidthMbit &&
          (p.strategy === 'cold') === (p.iterations === 0) &&
          p.iterations <= req.maxPreDumpRounds &&
          p.reasons.length >= 2
        );
      },
    ),
    { numRuns: 1500 },
  );
  t.pass('1500 random requests');
});

t.test('planFromProfile: units from the agents\' profile, worst-case R, operator cap on L', async (t) => {
  const profile = { stateBytes: 100 * MB, dirtyPagesPerSecond: [50, 200, 120], bandwidthBitsPerSecond: 100e6 };
  const p = planFromProfile(profile, 'min-downtime', { targetDowntimeMs: 1000, targetTotalMs: 30_000 });
  t.same(
    { strategy: p.strategy, iterations: p.iterations, bandwidthMbit: p.bandwidthMbit, predicted: p.predicted },
    (({ strategy, iterations, bandwidthMbit, predicted }) => ({ strategy, iterations, bandwidthMbit, predicted }))(plan(base)),
    'same plan as M=100 MB, R=max(samples)=200, L=100 Mbit/s',
  );
  t.match(p.reasons[1]!, /worst of 3 dirty-rate samples: 200 pages\/s/);
  const capped = planFromProfile(profile, 'min-downtime', { targetDowntimeMs: 1000, targetTotalMs: 30_000, maxBandwidthMbit: 40 });
  t.equal(capped.bandwidthMbit, 40);
  const noR = planFromProfile({ stateBytes: MB, bandwidthBitsPerSecond: 1e9 }, 'min-resources', { targetDowntimeMs: 5000, targetTotalMs: 5000 });
  t.match(noR.reasons[1]!, /no dirty-page rate: planned for R = 0/);
  let err: unknown;
  try {
    planFromProfile({ stateBytes: MB, dirtyPagesPerSecond: 10 }, 'min-downtime', { targetDowntimeMs: 1, targetTotalMs: 1 });
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof PamInputError && err.field === 'bandwidthBitsPerSecond', String(err));
});
