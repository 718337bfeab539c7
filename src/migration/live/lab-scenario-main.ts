/**
 * Entry of the child process that runs a lab scenario inside the lab's `ctl` namespace (started by
 * `runScenarioInLab`). Options as JSON in argv[2]; progress lines on stderr; the ScenarioResult as
 * one JSON document on stdout. Exit 0 when the scenario ran (whatever its verdicts), 1 when it
 * could not run.
 */
import { runLabScenario, type ScenarioOptions } from './lab-scenario.js';

const opts = JSON.parse(process.argv[2] ?? '{}') as ScenarioOptions;
runLabScenario({
  ...opts,
  progress: (l) => process.stderr.write(`${l}\n`),
  onEvent: (e) => process.stderr.write(`@event ${JSON.stringify(e)}\n`),
}).then(
  (r) => {
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exitCode = 0;
  },
  (err: unknown) => {
    process.stderr.write(`scenario failed: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
