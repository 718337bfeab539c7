import t from 'tap';
import { buildReport, decideVerdict, recheckReport, recordFromJournal, validateReport, type WorkloadClientStats } from '../../src/migration/report.js';
import { finishedJournal, syntheticCapture, SERVICE_IP } from '../report/helpers.js';

const client = (over: Partial<WorkloadClientStats> = {}): WorkloadClientStats => ({
  bytesSent: 640,
  bytesReceived: 60_000,
  bytesVerified: 60_000,
  maxGapMs: 12.5,
  errors: [],
  stream: { firstBadOffset: null },
  ping: { errors: 0 },
  ...over,
});

t.test('a finished migration with clean witnesses is zero-loss; the design fields are all there', async (t) => {
  const { summary } = await finishedJournal(t, 'r-ok');
  const rec = recordFromJournal(summary);
  t.equal(rec.state, 'done');
  t.equal(rec.strategy, 'precopy');
  t.same(rec.hold, { held: 4, replayed: 4, dropped: 0 });
  const cap = syntheticCapture(rec.startedAtMs * 1000 - 50_000);
  const r = buildReport({ migration: rec, capture: cap.analysis, client: client(), serviceIp: SERVICE_IP });
  t.equal(r.verdict, 'zero-loss', r.verdictReasons.join('; '));
  t.same(r.verdictReasons, []);
  t.match(r, {
    migrationId: 'r-ok',
    executor: 'tcp-repair',
    strategy: 'precopy',
    downtimeMs: 12.5,
    predicted: { downtimeMs: 40, totalMs: 400 },
    client: { bytesSent: 640, bytesReceived: 60_000, bytesVerified: 60_000, retransmissions: 0, resets: 0, maxGapMs: 12.5 },
    hold: { held: 4, replayed: 4, dropped: 0 },
  });
  t.same(r.steps.map((s) => s.name), ['plan', 'prepare', 'precopy-1', 'precopy-2', 'hold', 'dump', 'restore', 'resume', 'replay', 'release', 'verify']);
  t.ok(r.steps.every((s, i) => s.startMs >= 0 && s.endMs >= s.startMs && (i === 0 || s.startMs >= r.steps[i - 1]!.endMs)));
  t.equal(r.totalMs, rec.endedAtMs - rec.startedAtMs);
  t.ok(r.totalMs > 0);
  t.equal(r.timeline!.throughput[0]!.tMs, -50, 'timeline aligned on the migration start');
  t.equal(r.switchMs, 0.4);
  const again = recheckReport(JSON.parse(JSON.stringify(r)));
  t.ok(again.result.verdictMatches);
  t.same(again.result.problems, []);
});

t.test('each check that fails makes it loss and says why', async (t) => {
  const { summary } = await finishedJournal(t, 'r-loss');
  const rec = recordFromJournal(summary);
  const origin = rec.startedAtMs * 1000;
  const cases: [string, Parameters<typeof buildReport>[0], RegExp][] = [
    ['retransmission', { migration: rec, capture: syntheticCapture(origin, { retransmit: true }).analysis, client: client() }, /1 TCP retransmission/],
    ['reset', { migration: rec, capture: syntheticCapture(origin, { reset: true }).analysis, client: client() }, /1 TCP reset/],
    ['unverified bytes', { migration: rec, capture: syntheticCapture(origin).analysis, client: client({ bytesVerified: 59_000 }) }, /verified 59000 of 60000/],
    ['corrupt stream', { migration: rec, capture: syntheticCapture(origin).analysis, client: client({ stream: { firstBadOffset: '4096' } }) }, /client reported 1 error/],
    ['hold drop', { migration: { ...rec, hold: { held: 5, replayed: 4, dropped: 1 } }, capture: syntheticCapture(origin).analysis, client: client() }, /dropped 1 packet/],
    ['kernel drop', { migration: rec, capture: { ...syntheticCapture(origin).analysis, kernelDropped: 3 }, client: client() }, /missed 3 packet/],
  ];
  for (const [name, input, why] of cases) {
    const r = buildReport(input);
    t.equal(r.verdict, 'loss', name);
    t.match(r.verdictReasons.join('\n'), why, name);
  }
});

t.test('a rolled-back migration, or a missing witness, is failed', async (t) => {
  const { summary } = await finishedJournal(t, 'r-rb', 'agents.restoreOnArrival:dump@edge-b');
  const rec = recordFromJournal(summary);
  t.equal(rec.state, 'rolled-back');
  const r = buildReport({ migration: rec, capture: syntheticCapture(rec.startedAtMs * 1000).analysis, client: client() });
  t.equal(r.verdict, 'failed');
  t.equal(r.failedStep, 'restore');
  t.match(r.verdictReasons[0], /rolled-back at step restore: injected failure/);
  t.equal(r.steps.find((s) => s.name === 'restore')?.ok, false);
  const { summary: ok } = await finishedJournal(t, 'r-nowit');
  const noCap = buildReport({ migration: recordFromJournal(ok), client: client() });
  t.equal(noCap.verdict, 'failed');
  t.match(noCap.verdictReasons, [/no capture/]);
  const noClient = buildReport({ migration: recordFromJournal(ok), capture: syntheticCapture(0).analysis });
  t.match(noClient.verdictReasons, [/no statistics from the workload client/]);
  t.equal(noClient.downtimeMs, noClient.capture!.maxGapMs, 'without the client, the capture gives the gap');
});

t.test('downtime is the client gap; the capture sees the same hole', async (t) => {
  const { summary } = await finishedJournal(t, 'r-gap');
  const rec = recordFromJournal(summary);
  const cap = syntheticCapture(rec.startedAtMs * 1000, { holeFromMs: 200, holeMs: 100 });
  const r = buildReport({ migration: rec, capture: cap.analysis, client: client({ maxGapMs: 110 }), serviceIp: SERVICE_IP });
  t.equal(r.downtimeMs, 110);
  t.equal(r.capture!.maxGapMs, 110, 'server data at 190 then 300 ms');
  t.equal(r.timeline!.throughput.find((b) => b.tMs === 200)!.rxBytes, 0, 'an empty bucket in the hole');
});

t.test('recheck: a verdict the numbers do not support, or counters that do not add up, are reported', async (t) => {
  const { summary } = await finishedJournal(t, 'r-lie');
  const rec = recordFromJournal(summary);
  const r = buildReport({ migration: rec, capture: syntheticCapture(rec.startedAtMs * 1000, { retransmit: true }).analysis, client: client() });
  const lie = { ...r, verdict: 'zero-loss' };
  const c = recheckReport(lie).result;
  t.equal(c.verdict, 'loss');
  t.notOk(c.verdictMatches);
  const bad = { ...r, hold: { held: 3, replayed: 4, dropped: 0 }, steps: [{ name: 'x', startMs: 5, endMs: 1 }] };
  const p = recheckReport(bad).result.problems.join('\n');
  t.match(p, /exceed held 3/);
  t.match(p, /ends \(1\) before it starts/);
  t.same(decideVerdict({ ...r, client: { ...r.client, retransmissions: 0 } }).verdict, 'zero-loss');
});

t.test('validateReport names the first bad field', async (t) => {
  const { summary } = await finishedJournal(t, 'r-val');
  const r = buildReport({ migration: recordFromJournal(summary), capture: syntheticCapture(0).analysis, client: client() });
  t.throws(() => validateReport([]), { code: 'MIGRATION_REPORT_INVALID', message: /report\.: expected an object/ });
  t.throws(() => validateReport({ ...r, verdict: 'fine' }), { message: /report\.verdict: expected one of zero-loss, loss, failed/ });
  t.throws(() => validateReport({ ...r, client: { ...r.client, resets: '0' } }), { message: /report\.client\.resets/ });
  t.throws(() => validateReport({ ...r, steps: [{ name: 'a', startMs: 0 }] }), { message: /report\.steps\[0\]\.endMs/ });
  t.throws(() => validateReport({ ...r, witnesses: undefined }), { message: /report\.witnesses/ });
  t.equal(validateReport(JSON.parse(JSON.stringify(r))).migrationId, 'r-val');
});

t.test('ReportVerifier: the verify step writes the report and its page, and the outcome carries the verdict', async (t) => {
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { pino } = await import('pino');
  const { Orchestrator } = await import('../../src/migration/orchestrator.js');
  const { ReportVerifier } = await import('../../src/migration/verifier.js');
  const { FakeOverlay, ManualClock, fakeAgents, fakeFlows, fakePlanner, testRef } = await import('./fakes.js');
  const dir = mkdtempSync(join(tmpdir(), 'coat-verifier-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const o = new FakeOverlay(testRef('rv-1'));
  o.trafficOn.set('agents.dumpAndSend@edge-a->edge-b', 2);
  const clock = new ManualClock();
  let written = '';
  const verifier = new ReportVerifier({
    outDir: join(dir, 'reports'),
    capture: async () => syntheticCapture(clock.now() * 1000).analysis,
    client: async () => client(),
    serviceIp: SERVICE_IP,
    onReport: (r, p) => (written = `${r.verdict} ${p.html}`),
  });
  const orch = new Orchestrator(
    { flows: fakeFlows(o), agents: fakeAgents(o), planner: fakePlanner(o, { strategy: 'cold', iterations: 0, predicted: { downtimeMs: 5, totalMs: 50 } }), verifier, clock },
    { dataDir: dir, log: pino({ level: 'silent' }) },
  );
  const out = await orch.migrate({ ref: o.ref, objective: 'min-resources' });
  t.equal(out.state, 'done');
  t.equal(out.verdict, 'zero-loss');
  t.equal(out.reportPath, join(dir, 'reports', 'rv-1.report.json'));
  const r = JSON.parse(readFileSync(out.reportPath!, 'utf8'));
  t.match(r, { migrationId: 'rv-1', verdict: 'zero-loss', hold: { held: 2, replayed: 2, dropped: 0 }, source: 'edge-a', destination: 'edge-b', service: 'svc' });
  t.notOk(r.steps.some((s: { name: string }) => s.name === 'verify'), 'verification is not migration time');
  t.match(written, /^zero-loss .*rv-1\.report\.html$/);
  t.match(readFileSync(join(dir, 'reports', 'rv-1.report.html'), 'utf8'), /id="verdict">zero-loss</);
});

t.test('property: any JSON value is either a valid report or MIGRATION_REPORT_INVALID, never a crash', async () => {
  const fc = (await import('fast-check')).default;
  const { MigrationError } = await import('../../src/migration/errors.js');
  fc.assert(
    fc.property(fc.oneof(fc.jsonValue(), fc.record({ migrationId: fc.string(), steps: fc.array(fc.jsonValue()), client: fc.jsonValue(), hold: fc.jsonValue() })), (v) => {
      try {
        recheckReport(v);
        return true;
      } catch (e) {
        return e instanceof MigrationError && e.code === 'MIGRATION_REPORT_INVALID';
      }
    }),
    { numRuns: 2000 },
  );
});
