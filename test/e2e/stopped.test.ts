/**
 * A scenario that cannot go on: after its first migration the service hangs (SIGSTOP by its pid),
 * so the client's traffic does not flow again. The run must stop there with a typed error that
 * keeps what it measured: the report of the migration that ran, built from the same capture and
 * client figures as a finished run's, and no second migration started.
 */
import t from 'tap';
import { runScenarioInLab, ScenarioStoppedError } from '../../src/migration/live/lab-run.js';
import { reportSummaryLine } from '../../src/migration/report.js';
import { labForMigration } from './helpers.js';

t.test('traffic that does not resume: ScenarioStoppedError with the earlier migration’s report', async (t) => {
  const lab = await labForMigration(t);
  const err = await runScenarioInLab({ ...lab, traffic: 'stream', migrations: 3, stopServiceAfter: 1, resumeTimeoutMs: 3000 }, { progress: (l) => t.comment(l) }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ScenarioStoppedError, `a ScenarioStoppedError (got ${String(err)})`);
  if (!(err instanceof ScenarioStoppedError)) return;
  t.equal(err.code, 'LIVE_TRAFFIC_STALLED');
  t.equal(err.afterMigration, 1);
  t.match(err.message, /after migration 1 \(done\)/);
  const r = err.result;
  t.equal(r.reports.length, 1, 'one report: the migration that ran, none for the two that did not');
  const rep = r.reports[0]!;
  t.comment(reportSummaryLine(rep));
  t.equal(rep.state, 'done');
  t.same([rep.source, rep.destination], ['edge-a', 'edge-b']);
  t.equal(r.finalHost, 'edge-b');
  t.equal(r.client.firstBadOffset, null, 'every stream byte the client read was the right one');
  t.equal(r.client.bytesVerified, r.capture.serviceBytesOnWire, 'the client read every byte the service sent before it hung');
  t.equal(r.capture.resets, 0, 'no reset');
  t.same(r.leftovers, [], 'nothing of the migration left behind');
});
