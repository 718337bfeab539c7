/**
 * coat-baseline (COAT's published procedure, the orchestrator's `coat-baseline` mode) in the lab,
 * there and back: edge-a -> edge-b -> edge-a under a continuous stream. The move back starts from
 * where the first move left the service (its new host and new MAC in the flow port's topology),
 * so both must end `done` with the client's stream intact. No zero-loss verdict is asserted: with
 * no hold, segments that reach the frozen source are lost and TCP retransmits them, which is what
 * the baseline is there to show.
 */
import t from 'tap';
import { runScenarioInLab } from '../../src/migration/live/lab-run.js';
import { reportSummaryLine } from '../../src/migration/report.js';
import { labForMigration } from './helpers.js';

t.test('coat-baseline there and back: both moves done, the stream intact', async (t) => {
  const lab = await labForMigration(t);
  const r = await runScenarioInLab({ ...lab, traffic: 'stream', migrations: 2, strategy: 'coat-baseline' }, { progress: (l) => t.comment(l) });
  t.equal(r.reports.length, 2);
  for (const rep of r.reports) {
    t.comment(reportSummaryLine(rep));
    t.equal(rep.state, 'done', `${rep.migrationId} ${rep.source} -> ${rep.destination}: done${rep.error ? ` (${rep.failedStep}: ${rep.error.message})` : ''}`);
    t.equal(rep.strategy, 'coat-baseline', `${rep.migrationId}: run in the orchestrator's coat-baseline mode`);
    t.same([rep.hold.held, rep.hold.replayed], [0, 0], `${rep.migrationId}: nothing held (no hold in the baseline)`);
    t.equal(rep.client.resets, 0, `${rep.migrationId}: no reset`);
  }
  t.same(r.reports.map((rep) => [rep.source, rep.destination]), [['edge-a', 'edge-b'], ['edge-b', 'edge-a']], 'the second move starts where the first ended');
  t.equal(r.finalHost, 'edge-a');
  t.ok(r.serviceAlive, 'the service still serves its client at the end');
  t.equal(r.client.firstBadOffset, null, 'every stream byte the client read was the right one');
  t.equal(r.client.bytesVerified, r.capture.serviceBytesOnWire, `bytes verified (${r.client.bytesVerified}) == bytes the service sent (${r.capture.serviceBytesOnWire})`);
  t.same(r.client.closed, { stream: false, ping: false }, 'no client connection closed');
  t.same(r.leftovers, [], 'no staged or redirect flow and no stale service port left');
});
