/**
 * Entry of the child process that runs one job inside a lab's `ctl` namespace (lab-run.ts):
 * argv[2] names it (`scenario`: lab-scenario.ts, `migrate`: lab-backend.ts), argv[3] holds its
 * options as JSON. Progress lines and `@event JSON` lines on stderr; the result as one JSON
 * document on stdout. Exit 0 when the job ran (whatever its verdicts or outcome), 2 when a scenario
 * stopped before its last migration (lab-run.ts StoppedOutput on stdout: the error and the reports
 * of the migrations that ran), 1 when it could not run.
 */
import type { MigrationEvent } from '../orchestrator.js';
import { migrateInLab, type LabMigrateOptions } from './lab-backend.js';
import { runLabScenario, type ScenarioOptions } from './lab-scenario.js';
import { EXIT_STOPPED, ScenarioStoppedError, type StoppedOutput } from './lab-run.js';

const hooks = {
  progress: (l: string) => process.stderr.write(`${l}\n`),
  onEvent: (e: MigrationEvent) => process.stderr.write(`@event ${JSON.stringify(e)}\n`),
};
const job = process.argv[2];
const opts = JSON.parse(process.argv[3] ?? '{}') as Record<string, unknown>;
const run =
  job === 'scenario'
    ? runLabScenario({ ...(opts as unknown as ScenarioOptions), ...hooks })
    : job === 'migrate'
      ? migrateInLab({ ...(opts as unknown as LabMigrateOptions), ...hooks })
      : Promise.reject(new Error(`unknown job ${JSON.stringify(job)} (scenario | migrate)`));
run.then(
  (r) => {
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exitCode = 0;
  },
  (err: unknown) => {
    if (err instanceof ScenarioStoppedError) {
      // Stopped with the reports of the migrations that ran: the caller rebuilds the error.
      const out: StoppedOutput = { stopped: { code: err.code as StoppedOutput['stopped']['code'], message: err.message, afterMigration: err.afterMigration }, result: err.result };
      process.stdout.write(JSON.stringify(out) + '\n');
      process.stderr.write(`${job} stopped: ${err.code}: ${err.message}\n`);
      process.exitCode = EXIT_STOPPED;
      return;
    }
    process.stderr.write(`${job} failed: ${(err as { code?: string }).code ?? 'ERROR'}: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
