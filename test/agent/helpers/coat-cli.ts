/** Runs the coat CLI from source (tests spawn agents with it: `node --import tsx coat-cli.ts agent ...`). */
import { main } from '../../../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
