/**
 * The migration bench's calibration records (bench/migration.bench.ts measuredRun): the
 * orchestrator's steps and the executor's timings map onto PAM's rounds, and the record is one
 * `coat calibrate` accepts. Built from an outcome shaped like the lab's (step names, details).
 */
import t from 'tap';
import { measuredRun } from '../../bench/migration.bench.js';
import { parseRuns } from '../../src/migration/calibrate.js';
import type { VerificationReport } from '../../src/migration/report.js';
import type { MigrationOutcome } from '../../src/migration/orchestrator.js';

const step = (name: string, startMs: number, endMs: number, detail?: Record<string, unknown>, round?: number) => ({ name, startMs, endMs, ok: true, ...(round !== undefined ? { round } : {}), ...(detail ? { detail } : {}) });

const outcome = {
  migrationId: 'm-1',
  state: 'done',
  startedAtMs: 1000,
  endedAtMs: 4000,
  steps: [
    step('plan', 1000, 2000),
    step('prepare', 2000, 2500),
    step('precopy', 2500, 2700, { bytes: 1_000_000, streamedBytes: 1_000_100, frozenMs: 0 }, 1),
    step('hold', 2700, 2710),
    step('dump', 2710, 2760, { freeze: 5, sockets: 10, state: 20, write: 8, total: 43, frozenMs: 38 }),
    step('stream', 2760, 2790, { bytes: 40_000 }),
    step('restore', 2790, 2800),
    step('switch', 2800, 2805),
    step('resume', 2805, 2830),
    step('replay', 2830, 2840),
    step('release', 2840, 3990),
    step('verify', 3990, 4000),
  ],
} as unknown as MigrationOutcome;
const report = { downtimeMs: 95, totalMs: 3000, verdict: 'zero-loss', predicted: { downtimeMs: 120, totalMs: 3500 } } as unknown as VerificationReport;
const cfg = { executor: 'tcp-repair', stateBytes: 1_048_576, dirtyPagesPerS: 5, bandwidthMbit: 1000, label: 'precopy M=1MiB' };

t.test('steps and executor timings become PAM rounds', async (t) => {
  const r = measuredRun(outcome, report, [{ migrationId: 'm-1', round: 1, ms: 120, frozenMs: 2, bytes: 1_000_000, pages: 244, timings: { state: 90, total: 110 } }], cfg)!;
  t.ok(r, 'a record');
  t.equal(r.preDumpRounds, 1);
  t.same(r.rounds![0], { kind: 'pre-dump', bytes: 1_000_100, frozenMs: 2, memoryDumpMs: 108, checkpointMs: 120, transferMs: 80 }, 'pre-copy: executor call, then its stream');
  t.same(r.rounds![1], { kind: 'dump', checkpointMs: 50, transferMs: 30, freezingMs: 5, frozenMs: 30, memoryDumpMs: 8, bytes: 40_000 }, 'dump: freeze, sockets + state frozen, write; stream step');
  t.equal(r.restoreMs, 50, 'restore start to replay end');
  t.equal(r.setupMs, 3000 - 200 - (2840 - 2710), 'total minus the rounds minus dump..replay');
  t.equal(r.downtimeMs, 95, "the client's gap, from the report");
  t.same(parseRuns([r]).length, 1, 'coat calibrate reads it');
});

t.test("coat's shape: the final image streamed inside the dump step (its detail), no stream or switch step", async (t) => {
  const coat = {
    ...outcome,
    steps: [
      ...outcome.steps.filter((s) => !['dump', 'stream', 'switch'].includes(s.name)),
      step('dump', 2710, 2790, { freeze: 5, sockets: 10, state: 20, write: 8, total: 43, frozenMs: 38, streamMs: 30, streamedBytes: 40_000 }),
    ].sort((a, b) => a.startMs - b.startMs),
  } as MigrationOutcome;
  const r = measuredRun(coat, report, [{ migrationId: 'm-1', round: 1, ms: 120, frozenMs: 2, bytes: 1_000_000, pages: 244, timings: { state: 90, total: 110 } }], cfg)!;
  t.ok(r, 'a record without a stream step');
  t.same(r.rounds![1], { kind: 'dump', checkpointMs: 50, transferMs: 30, freezingMs: 5, frozenMs: 30, memoryDumpMs: 8, bytes: 40_000 }, "the dump step less its stream is the checkpoint; the stream is the dump's streamMs");
  t.equal(r.restoreMs, 50, 'restore start to replay end');
});

t.test('a migration that did not finish is no calibration run', async (t) => {
  t.equal(measuredRun({ ...outcome, state: 'rolled-back' } as MigrationOutcome, report, [], cfg), undefined);
  const noReplay = { ...outcome, steps: outcome.steps.filter((s) => s.name !== 'replay') } as MigrationOutcome;
  t.equal(measuredRun(noReplay, report, [], cfg), undefined);
});
