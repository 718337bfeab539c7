/** `npm run bench -- NAME [--json] [ARGS]`: runs bench/NAME.bench.ts and prints its table. */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatTable, type Bench } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const names = readdirSync(here).filter((f) => f.endsWith('.bench.ts')).map((f) => f.slice(0, -'.bench.ts'.length)).sort();

const args = process.argv.slice(2);
const json = args.includes('--json');
const positional = args.filter((a) => a !== '--json');
const name = positional[0];
if (!name || !names.includes(name)) {
  process.stderr.write(`usage: npm run bench -- NAME [--json]\nbenches: ${names.join(', ')}\n`);
  process.exit(name ? 64 : 0);
}
const { bench } = (await import(pathToFileURL(join(here, `${name}.bench.ts`)).href)) as { bench: Bench };
process.stderr.write(`bench ${name}: ${bench.summary}\n`);
const rows = await bench.run({ args: positional.slice(1), progress: (l) => process.stderr.write(`  ${l}\n`) });
if (json) process.stdout.write(JSON.stringify({ bench: name, machine: { cpus: (await import('node:os')).cpus().length, node: process.version }, rows }, null, 2) + '\n');
else process.stdout.write(formatTable(rows) + '\n');
