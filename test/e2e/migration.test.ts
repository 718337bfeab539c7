/**
 * End to end in the lab (issue 10's acceptance): the default testbed (edge-a, edge-b, client; real
 * OVS per host, VXLAN, NATS, a coat agent per host), the workload server in the service namespace
 * on edge-a, the verifying client on `client`, a capture on the client's interface, and the live
 * orchestrator as the controller. A migration must end `zero-loss`: every byte the service put on
 * the wire verified by the client, no retransmission and no reset in the capture, every held
 * packet replayed, none dropped, and nothing of the migration left on the bridges.
 *
 * COAT_E2E_TEN=1 also runs ten migrations back and forth in a row (about a minute).
 */
import t from 'tap';
import { runScenarioInLab } from '../../src/migration/live/lab-run.js';
import { reportSummaryLine as summaryLine } from '../../src/migration/report.js';
import type { ScenarioResult } from '../../src/migration/live/lab-scenario.js';
import { labForMigration } from './helpers.js';

type TapTest = Pick<typeof t, 'comment' | 'equal' | 'ok' | 'same'>;

function assertZeroLoss(t: TapTest, r: ScenarioResult, expectHost: string): void {
  for (const rep of r.reports) {
    t.comment(summaryLine(rep));
    t.equal(rep.state, 'done', `${rep.migrationId}: migration done${rep.error ? ` (${rep.failedStep}: ${rep.error.message})` : ''}`);
    t.equal(rep.hold.held, rep.hold.replayed, `${rep.migrationId}: held ${rep.hold.held} == replayed ${rep.hold.replayed}`);
    t.equal(rep.client.resets, 0, `${rep.migrationId}: no reset`);
    t.equal(rep.hold.dropped, 0, `${rep.migrationId}: no held packet dropped`);
    t.ok(rep.switchMs !== undefined && rep.switchMs >= 0, `${rep.migrationId}: switch took ${rep.switchMs} ms`);
    t.equal(rep.client.retransmissions, 0, `${rep.migrationId}: no lost segment retransmitted during the migration (${rep.client.spuriousRetransmissions} spurious tail-loss probes)`);
  }
  t.equal(r.client.firstBadOffset, null, 'every stream byte the client read was the right one');
  t.equal(r.client.bytesVerified, r.capture.serviceBytesOnWire, `bytes verified (${r.client.bytesVerified}) == bytes the service sent (${r.capture.serviceBytesOnWire})`);
  t.comment(`whole capture: ${r.capture.retransmissions} retransmissions, ${r.capture.spuriousRetransmissions} of them spurious (D-SACKed: the client had the data)`);
  t.equal(r.capture.retransmissions - r.capture.spuriousRetransmissions, 0, 'no retransmission of a lost segment anywhere in the capture');
  t.equal(r.capture.resets, 0, 'no reset in the capture');
  t.same(r.client.closed, { stream: false, ping: false }, 'no client connection closed');
  t.equal(r.finalHost, expectHost);
  t.ok(r.serviceAlive, 'the service still serves its client at the end');
  t.same(r.leftovers, [], 'no hold, staged or redirect flow and no stale service port left');
  t.ok(r.reports.every((rep) => rep.verdict === 'zero-loss'), `verdicts: ${r.reports.map((x) => x.verdict).join(', ')}`);
}

t.test('under a continuous stream: edge-a -> edge-b -> edge-a, zero loss', async (t) => {
  const lab = await labForMigration(t);
  const r = await runScenarioInLab({ ...lab, traffic: 'stream', migrations: 2 }, { progress: (l) => t.comment(l) });
  assertZeroLoss(t, r, 'edge-a');
});

t.test('under ping-pong: edge-a -> edge-b, zero loss, every ping answered', async (t) => {
  const lab = await labForMigration(t);
  const r = await runScenarioInLab({ ...lab, traffic: 'ping-pong', migrations: 1 }, { progress: (l) => t.comment(l) });
  assertZeroLoss(t, r, 'edge-b');
  t.ok((r.client.ping?.answered ?? 0) > 100, `${r.client.ping?.answered} pings answered`);
  t.equal(r.client.ping?.errors, 0, 'no wrong ping answer');
});

t.test('ten migrations back and forth in a row', { skip: process.env.COAT_E2E_TEN === '1' ? false : 'set COAT_E2E_TEN=1 (about a minute)' }, async (t) => {
  const lab = await labForMigration(t);
  const r = await runScenarioInLab({ ...lab, traffic: 'stream', migrations: 10 }, { progress: (l) => t.comment(l), timeoutMs: 600_000 });
  t.equal(r.reports.length, 10);
  assertZeroLoss(t, r, 'edge-a');
});
