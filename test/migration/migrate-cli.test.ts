import t from 'tap';
import { runCommand, type CliRun } from '../fixtures/cli.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { command, orchestratorOptionsOf, setMigrationBackend, type MigrateRequest, type MigrationBackend } from '../../src/cli/commands/migrate.js';
import { Orchestrator } from '../../src/migration/orchestrator.js';
import { FakeOverlay, ManualClock, fakeAgents, fakeFlows, fakePlanner, testRef } from './fakes.js';

function run(argv: string[]): Promise<CliRun> {
  return runCommand(command, argv);
}

/** The real orchestrator over the fakes, as the controller would run it. */
function fakeBackend(dir: string, failOn?: string): MigrationBackend {
  return {
    async migrate(req, onEvent) {
      const o = new FakeOverlay(testRef(req.migrationId));
      if (failOn) o.failOn.set(failOn, 'throw');
      const orch = new Orchestrator(
        { flows: fakeFlows(o), agents: fakeAgents(o), planner: fakePlanner(o, { strategy: 'cold', iterations: 0, predicted: { downtimeMs: 5, totalMs: 50 } }), clock: new ManualClock() },
        { dataDir: dir, log: pino({ level: 'silent' }), onEvent },
      );
      return orch.migrate({ ref: o.ref, objective: req.objective, mode: req.mode });
    },
  };
}

t.test('progress per step on stderr, the outcome on stdout', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'coat-migrate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  setMigrationBackend(async () => fakeBackend(dir));
  t.teardown(() => setMigrationBackend(undefined));
  const r = await run(['--service', 'svc', '--to', 'edge-b', '--id', 'cli-1']);
  t.equal(r.code, 0);
  t.match(r.stderr, /^\+0 ms plan \.\.\.\n\+0 ms plan ok\n\+0 ms prepare \.\.\./);
  t.match(r.stderr, /hold ok\n.*dump \.\.\./);
  t.notMatch(r.stderr, /switch/, 'coat switches in the hold bundle: no switch step');
  t.match(r.stdout, /migration cli-1 done in/);
  t.match(r.stdout, /hold: held 0, replayed 0, dropped 0/);
  const b = await run(['--service', 'svc', '--to', 'edge-b', '--id', 'cli-1b', '--baseline']);
  t.equal(b.code, 0);
  t.match(b.stdout, /migration cli-1b \(coat-baseline\) done/);
  t.notMatch(b.stderr, /hold/, 'the baseline has no hold step');
  const s = await run(['status', '--data-dir', dir, '--json']);
  t.same((JSON.parse(s.stdout) as { migrationId: string; state: string }[]).map((m) => [m.migrationId, m.state]), [['cli-1', 'done'], ['cli-1b', 'done']]);
});

t.test('--exact-rounds runs the plan\'s pre-copy rounds without the early stop', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'coat-migrate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const requests: MigrateRequest[] = [];
  setMigrationBackend(async () => ({
    async migrate(req, onEvent) {
      requests.push(req);
      const o = new FakeOverlay(testRef(req.migrationId));
      const orch = new Orchestrator(
        { flows: fakeFlows(o), agents: fakeAgents(o, [500, 40, 10]), planner: fakePlanner(o, { strategy: 'precopy', iterations: 3, predicted: { downtimeMs: 5, totalMs: 50 } }), clock: new ManualClock() },
        { dataDir: dir, log: pino({ level: 'silent' }), onEvent, ...orchestratorOptionsOf(req) },
      );
      return orch.migrate({ ref: o.ref, objective: req.objective, mode: req.mode });
    },
  }));
  t.teardown(() => setMigrationBackend(undefined));
  const early = await run(['--service', 'svc', '--to', 'edge-b', '--id', 'cli-r1']);
  t.equal(early.code, 0);
  t.match(early.stderr, /precopy 2 ok/);
  t.notMatch(early.stderr, /precopy 3/, 'round 2 wrote 40 <= 64 dirty pages: stop');
  t.equal(requests[0]!.precopyStopRule, undefined);
  const exact = await run(['--service', 'svc', '--to', 'edge-b', '--id', 'cli-r2', '--exact-rounds']);
  t.equal(exact.code, 0);
  t.match(exact.stderr, /precopy 3 ok/, 'all three planned rounds');
  t.equal(requests[1]!.precopyStopRule, false);
});

t.test('a failure prints which step failed and why, and what was undone; exit 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'coat-migrate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  setMigrationBackend(async () => fakeBackend(dir, 'agents.restoreOnArrival:dump@edge-b'));
  t.teardown(() => setMigrationBackend(undefined));
  const r = await run(['--service', 'svc', '--to', 'edge-b', '--id', 'cli-2']);
  t.equal(r.code, 1);
  t.match(r.stderr, /restore FAILED: INJECTED: injected failure in agents\.restoreOnArrival:dump@edge-b/);
  t.match(r.stderr, /rolling back \(switch-back, abort-destination, thaw-source, replay-to-source, remove-hold, unstage-destination, clear-destination\)/);
  t.match(r.stderr, /undo thaw-source ok/);
  t.match(r.stdout, /migration cli-2 rolled-back after/);
  t.match(r.stdout, /failed step: restore\n {2}why: INJECTED: injected failure in agents\.restoreOnArrival:dump@edge-b/);
  t.match(r.stdout, /the service runs at the source/);
  const s = await run(['status', '--data-dir', dir]);
  t.match(s.stdout, /cli-2 {2}rolled-back .* failed at restore: injected failure/);
  const j = await run(['--service', 'svc', '--to', 'edge-b', '--id', 'cli-3', '--json']);
  t.match(JSON.parse(j.stdout), { migrationId: 'cli-3', state: 'rolled-back', failedStep: 'restore', error: { code: 'INJECTED' } });
});

t.test('usage errors and no controller', async (t) => {
  await t.rejects(run(['--service', 'svc']), { message: /--service NAME and --to HOST are required/ });
  await t.rejects(run(['--service', 'svc', '--to', 'b', '--objective', 'fast']), { message: /--objective/ });
  await t.rejects(run(['--service', 'svc', '--to', 'b', '--executor', 'teleport']), { message: /--executor must be one of/ });
  await t.rejects(run(['--service', 'svc', '--to', 'b', '--new-mac', 'zz']), { message: /not a MAC/ });
  await t.rejects(run(['--bogus']), { message: /bogus/ });
  // No backend plugged in and no lab up in the state directory given.
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const empty = mkdtempSync(join(tmpdir(), 'coat-nolab-'));
  t.teardown(() => rmSync(empty, { recursive: true, force: true }));
  const r = await run(['--service', 'svc', '--to', 'edge-b', '--state-dir', empty]);
  t.equal(r.code, 69);
  t.match(r.stderr, /MIGRATE_UNAVAILABLE/);
  t.match((await run(['--help'])).stdout, /usage: coat migrate/);
});
