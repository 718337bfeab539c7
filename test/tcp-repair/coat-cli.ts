// Runs the coat CLI from source (tsx) for tests that start `coat workload ...` as a process.
import { main } from '../../src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(70);
  },
);
