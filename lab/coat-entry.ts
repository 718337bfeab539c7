/**
 * Runs the coat CLI in a child process the lab starts (the controller in the `ctl` namespace):
 * the same `main` as bin/coat.js, but usable from source (through tsx) as well as from dist/.
 */
import { main } from '../src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error((err as Error)?.stack ?? String(err));
    process.exitCode = 70;
  },
);
