/**
 * Rollback in the lab (issue 10): one real fault per step, injected into the first migration
 * (lab-scenario.ts `withFault`): the destination agent is killed, the destination bridge's
 * OpenFlow connection is cut as the flows switch (coat: the hold bundle), the streamed image is corrupted on the destination's
 * disk, the destination's restore command does not exist, the restore step's deadline is too short.
 * Each must end with the migration rolled back, the service running at the source with its client's
 * connection alive and every byte verified, and nothing of the migration left on the bridges.
 */
import t from 'tap';
import { runScenarioInLab } from '../../src/migration/live/lab-run.js';
import { FAULTS } from '../../src/migration/live/lab-scenario.js';
import { reportSummaryLine as summaryLine } from '../../src/migration/report.js';
import { labForMigration } from './helpers.js';

for (const fault of FAULTS) {
  t.test(`fault ${fault}: rolled back, the service keeps running at the source with its connection`, async (t) => {
    const lab = await labForMigration(t);
    const r = await runScenarioInLab({ ...lab, traffic: 'stream', migrations: 1, fault }, { progress: (l) => t.comment(l) });
    const rep = r.reports[0]!;
    t.comment(summaryLine(rep));
    t.not(rep.state, 'done', 'the migration did not complete');
    t.ok(rep.failedStep, `the failed step is named: ${rep.failedStep}: ${rep.error?.message}`);
    t.equal(rep.state, 'rolled-back', `rolled back cleanly${rep.error ? ` (${rep.error.message})` : ''}`);
    t.equal(r.finalHost, 'edge-a');
    t.ok(r.serviceAlive, 'the service runs at the source');
    t.same(r.client.closed, { stream: false, ping: false }, 'the client kept its connection');
    t.equal(r.client.firstBadOffset, null, 'every byte verified');
    t.equal(r.client.bytesVerified, r.capture.serviceBytesOnWire, 'bytes verified == bytes the service sent');
    t.equal(r.capture.resets, 0, 'no reset');
    t.equal(rep.hold.held, rep.hold.replayed, 'held packets replayed to the source');
    t.same(r.leftovers, [], 'nothing of the migration left on the bridges');
  });
}

// A cold migration's image holds the state file whole (no page delta, so no delta trailer): the
// flipped bytes are found by the SHA-256 the dump recorded for it.
t.test('fault corrupt-image, cold plan: the whole state file is checked at rest, rolled back', async (t) => {
  const lab = await labForMigration(t);
  const r = await runScenarioInLab({ ...lab, traffic: 'stream', migrations: 1, fault: 'corrupt-image', plan: { strategy: 'cold' } }, { progress: (l) => t.comment(l) });
  const rep = r.reports[0]!;
  t.comment(summaryLine(rep));
  t.equal(rep.state, 'rolled-back', `rolled back cleanly${rep.error ? ` (${rep.error.message})` : ''}`);
  t.equal(rep.failedStep, 'restore');
  t.match(rep.error?.message ?? '', /TREX_IMAGE_INVALID[\s\S]*state\.bin\.whole: SHA-256 mismatch/, 'the whole state file was the one corrupted, and it was caught');
  t.ok(r.serviceAlive, 'the service runs at the source');
  t.same(r.client.closed, { stream: false, ping: false }, 'the client kept its connection');
  t.equal(r.client.firstBadOffset, null, 'every byte verified');
  t.equal(r.client.bytesVerified, r.capture.serviceBytesOnWire, 'bytes verified == bytes the service sent');
  t.same(r.leftovers, [], 'nothing of the migration left on the bridges');
});
