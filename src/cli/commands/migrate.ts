/**
 * `coat migrate`: moves a service to another host and prints progress per step; on failure, which
 * step failed and why, and what the rollback did.
 *
 *   coat migrate --service NAME --to HOST [--executor E] [--objective min-downtime|min-resources]
 *                [--new-mac MAC] [--exact-rounds] [--id ID] [--json]
 *   coat migrate status [--data-dir DIR] [--json]      the journaled migrations and their states
 *
 * The command is a shell over the orchestrator: it talks to a MigrationBackend (the controller that
 * runs the orchestrator). `setMigrationBackend` plugs one in; without one, when a lab brought up
 * with `coat lab up` is active (its state directory: --state-dir, $COAT_LAB_DIR or /run/coat/labs),
 * the migration runs in that lab (migration/live/lab-backend.ts: it stands in for the lab's
 * controller for the migration's duration); else the command says the controller is unavailable
 * (exit 69). The formatting of progress and outcome lives here and is tested with the real
 * orchestrator over fakes, and against a real lab in test/e2e/migrate-cli.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { ExitCode, parseFlags, UsageError, writeJson, type CliIO, type Command } from '../command.js';
import { EXECUTOR_NAMES, type ExecutorName } from '../../migration/executor.js';
import { listJournals } from '../../migration/journal.js';
import type { MigrationEvent, MigrationOutcome, OrchestratorOptions } from '../../migration/orchestrator.js';
import type { Objective } from '../../migration/ports.js';
import type { MigrationMode } from '../../migration/state-machine.js';
import { activeTag, stateDir as labStateDir } from '../../../lab/state.js';
import { migrateInLabCtl } from '../../migration/live/lab-run.js';

export interface MigrateRequest {
  migrationId: string;
  service: string;
  to: string;
  executor?: ExecutorName;
  objective: Objective;
  newMac?: string;
  /** `coat-baseline`: COAT's Stop&Copy with the same parts, for comparison. */
  mode: MigrationMode;
  /** false: pre-copy runs the plan's I rounds, without p.haul's early stop. */
  precopyStopRule?: boolean;
}

/** The orchestrator options a request sets (a backend adds its own: data dir, log, timeouts). */
export function orchestratorOptionsOf(req: MigrateRequest): Pick<OrchestratorOptions, 'precopyStopRule'> {
  return req.precopyStopRule === false ? { precopyStopRule: false } : {};
}

/** What `coat migrate` needs from the controller: run one migration, reporting progress. */
export interface MigrationBackend {
  migrate(req: MigrateRequest, onEvent: (e: MigrationEvent) => void): Promise<MigrationOutcome>;
  close?(): Promise<void>;
}

/** The lab backend could not run the migration at all (its reason is already printed). */
class MigrateUnavailable extends Error {}

let backendFactory: (() => Promise<MigrationBackend>) | undefined;

/** Plugs in how `coat migrate` reaches the orchestrator (the controller API client, or a lab). */
export function setMigrationBackend(factory: (() => Promise<MigrationBackend>) | undefined): void {
  backendFactory = factory;
}

const HELP = `usage: coat migrate --service NAME --to HOST [--executor E] [--objective O] [--new-mac MAC] [--baseline]
                    [--exact-rounds] [--id ID] [--state-dir DIR] [--json]
       coat migrate status [--data-dir DIR] [--json]

Live-migrates a service: plan, prepare, pre-copy, hold (with the switch under it), dump (the
image streamed as it is taken), restore, resume, replay, release, verify (docs/migration.md).
A failure before resume rolls back: the source keeps running and its clients keep their
connections. Progress goes to stderr, one line per step.

  --service NAME     the service endpoint from the topology
  --to HOST          destination host
  --executor E       ${EXECUTOR_NAMES.join(' | ')} (default: the service's)
  --objective O      min-downtime (default) | min-resources
  --new-mac MAC      COAT's behaviour: a new MAC at the destination, gratuitous ARP, neighbour flush
  --baseline         run COAT's published Stop&Copy procedure with the same parts (no hold, no
                     replay, destination built after the freeze) for comparison
  --exact-rounds     pre-copy runs the plan's I rounds; by default it stops early by p.haul's rule
                     (a round wrote <= 64 dirty pages, or 10 % more than the round before)
  --id ID            migration id (default: generated)
  --state-dir DIR    the lab's state directory when migrating in a lab from \`coat lab up\`
                     (default $COAT_LAB_DIR or /run/coat/labs); the service must be running
                     (the process listening on its address) and have a --state-dir
  --data-dir DIR     for 'status': coat's data directory (default $COAT_DATA_DIR or /var/lib/coat)

Exit: 0 done, 1 rolled back or failed (the step and the reason are printed), 64 usage,
69 controller unavailable.
`;

const ms = (x: number): string => `${Math.round(x * 1000) / 1000} ms`;

/** One progress line per event (stderr). */
export function formatEvent(e: MigrationEvent, startedAtMs?: number): string | undefined {
  const at = startedAtMs !== undefined && 'atMs' in e ? `+${ms(e.atMs - startedAtMs)} ` : '';
  const step = 'step' in e ? `${e.step}${'round' in e && e.round !== undefined ? ` ${e.round}` : ''}` : '';
  switch (e.type) {
    case 'step-start':
      return `${at}${step} ...`;
    case 'step-end':
      return e.ok ? `${at}${step} ok` : `${at}${step} FAILED: ${e.error?.code}: ${e.error?.message}`;
    case 'rollback':
      return `rolling back (${e.actions.join(', ') || 'nothing to undo'})`;
    case 'undo':
      return e.ok ? `  undo ${e.action} ok` : `  undo ${e.action} FAILED: ${e.error?.code}: ${e.error?.message}`;
    case 'end':
      return undefined;
  }
}

/** The final lines: the outcome, and for a failure which step and why. */
export function formatOutcome(o: MigrationOutcome): string {
  const lines: string[] = [];
  const total = ms(o.endedAtMs - o.startedAtMs);
  if (o.state === 'done') {
    lines.push(`migration ${o.migrationId}${o.mode === 'coat-baseline' ? ' (coat-baseline)' : ''} done in ${total}${o.verdict ? `: ${o.verdict}` : ''}`);
    if (o.plan) lines.push(`  plan: ${o.plan.strategy}${o.plan.strategy === 'precopy' ? ` (${o.plan.iterations} rounds)` : ''}, predicted downtime <= ${o.plan.predicted.downtimeMs} ms`);
  } else {
    lines.push(`migration ${o.migrationId} ${o.state} after ${total}`);
    lines.push(`  failed step: ${o.failedStep ?? '(none: interrupted)'}`);
    lines.push(`  why: ${o.error ? `${o.error.code}: ${o.error.message}` : 'unknown'}`);
    if (o.state === 'rolled-back') lines.push('  the service runs at the source; held packets were replayed to it');
    for (const u of o.undoFailures) lines.push(`  NOT UNDONE: ${u.action}: ${u.error.code}: ${u.error.message}`);
  }
  lines.push(`  hold: held ${o.hold.held}, replayed ${o.hold.replayed}, dropped ${o.hold.dropped}`);
  if (o.switchMs !== undefined) lines.push(`  switch: ${ms(o.switchMs)}`);
  if (o.reportPath) lines.push(`  report: ${o.reportPath}`);
  return lines.join('\n') + '\n';
}

function status(argv: string[], io: CliIO): number {
  const { values } = parseFlags(argv, { 'data-dir': { type: 'string' } });
  if (values.help) {
    io.stdout.write(HELP);
    return ExitCode.ok;
  }
  const dataDir = (values['data-dir'] as string | undefined) ?? process.env.COAT_DATA_DIR ?? '/var/lib/coat';
  const all = listJournals(dataDir).map((s) => ({
    migrationId: s.migrationId,
    state: s.state,
    startedAt: new Date(s.startedAtMs).toISOString(),
    ...(s.endedAtMs !== undefined ? { totalMs: Math.round((s.endedAtMs - s.startedAtMs) * 1000) / 1000 } : {}),
    ...(s.failedStep ? { failedStep: s.failedStep } : {}),
    ...(s.error ? { error: s.error } : {}),
  }));
  if (values.json) writeJson(io.stdout, all);
  else if (all.length === 0) io.stdout.write(`no migrations in ${dataDir}\n`);
  else for (const m of all) io.stdout.write(`${m.migrationId}  ${m.state}  ${m.startedAt}${m.totalMs !== undefined ? `  ${m.totalMs} ms` : ''}${m.failedStep ? `  failed at ${m.failedStep}: ${m.error?.message ?? ''}` : ''}\n`);
  return ExitCode.ok;
}

export const command: Command = {
  summary: 'live-migrate a service to another host (progress per step; rollback on failure)',
  async run(argv: string[], io: CliIO): Promise<number> {
    if (argv[0] === 'status') return status(argv.slice(1), io);
    const { values, positionals } = parseFlags(argv, {
      service: { type: 'string' },
      to: { type: 'string' },
      executor: { type: 'string' },
      objective: { type: 'string' },
      'new-mac': { type: 'string' },
      baseline: { type: 'boolean' },
      'exact-rounds': { type: 'boolean' },
      id: { type: 'string' },
      'state-dir': { type: 'string' },
    });
    if (values.help) {
      io.stdout.write(HELP);
      return ExitCode.ok;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const service = values.service as string | undefined;
    const to = values.to as string | undefined;
    if (!service || !to) throw new UsageError('--service NAME and --to HOST are required');
    const executor = values.executor as string | undefined;
    if (executor !== undefined && !(EXECUTOR_NAMES as readonly string[]).includes(executor)) throw new UsageError(`--executor must be one of ${EXECUTOR_NAMES.join(', ')}`);
    const objective = (values.objective as string | undefined) ?? 'min-downtime';
    if (objective !== 'min-downtime' && objective !== 'min-resources') throw new UsageError('--objective must be min-downtime or min-resources');
    const newMac = values['new-mac'] as string | undefined;
    if (newMac !== undefined && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(newMac)) throw new UsageError(`--new-mac '${newMac}' is not a MAC address`);
    const migrationId = (values.id as string | undefined) ?? `m-${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`;

    let backend: MigrationBackend;
    if (backendFactory) backend = await backendFactory();
    else {
      const dir = labStateDir(values['state-dir'] as string | undefined);
      const tag = await activeTag(dir);
      if (!tag) {
        io.stderr.write(`coat migrate: MIGRATE_UNAVAILABLE: no controller to run the migration and no lab up in ${dir} (coat lab up, or coat demo)\n`);
        return ExitCode.unavailable;
      }
      backend = {
        migrate: async (req, onEvent) => {
          try {
            return await migrateInLabCtl({ stateDir: dir, tag, request: req }, { onEvent, progress: (l) => io.stderr.write(`${l}\n`), timeoutMs: 600_000 });
          } catch (e) {
            // The migration could not start (no service, no agents...): say why, as for a failed step.
            io.stderr.write(`coat migrate: ${(e as Error).message}\n`);
            throw new MigrateUnavailable();
          }
        },
      };
    }
    let started: number | undefined;
    try {
      const outcome = await backend.migrate(
        { migrationId, service, to, ...(executor ? { executor: executor as ExecutorName } : {}), objective, ...(newMac ? { newMac } : {}), mode: values.baseline ? 'coat-baseline' : 'coat', ...(values['exact-rounds'] ? { precopyStopRule: false } : {}) },
        (e) => {
          if (e.type === 'step-start' && started === undefined) started = e.atMs;
          const line = formatEvent(e, started);
          if (line) io.stderr.write(line + '\n');
        },
      );
      if (values.json) writeJson(io.stdout, outcome);
      else io.stdout.write(formatOutcome(outcome));
      return outcome.state === 'done' ? ExitCode.ok : ExitCode.negative;
    } catch (e) {
      if (e instanceof MigrateUnavailable) return ExitCode.unavailable;
      throw e;
    } finally {
      await backend.close?.();
    }
  },
};
