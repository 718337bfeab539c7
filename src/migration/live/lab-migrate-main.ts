/**
 * Entry of the child process that runs one `coat migrate` inside a lab's `ctl` namespace (started
 * by `migrateInLabCtl`). Options as JSON in argv[2]; progress and `@event` lines on stderr; the
 * MigrationOutcome as one JSON document on stdout. Exit 0 when the migration ran (whatever its
 * outcome), 1 when it could not run.
 */
import { migrateInLab, type LabMigrateOptions } from './lab-backend.js';

const opts = JSON.parse(process.argv[2] ?? '{}') as LabMigrateOptions;
migrateInLab({
  ...opts,
  progress: (l) => process.stderr.write(`${l}\n`),
  onEvent: (e) => process.stderr.write(`@event ${JSON.stringify(e)}\n`),
}).then(
  (o) => {
    process.stdout.write(JSON.stringify(o) + '\n');
    process.exitCode = 0;
  },
  (err: unknown) => {
    process.stderr.write(`coat migrate: ${(err as { code?: string }).code ?? 'ERROR'}: ${(err as Error)?.message ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
