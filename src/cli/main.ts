/**
 * `coat` entry point: finds `commands/NAME.js` beside this file and runs it.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CoatError } from '../errors.js';
import { ExitCode, UsageError, type CliIO, type Command } from './command.js';

const commandsDir = join(dirname(fileURLToPath(import.meta.url)), 'commands');

function commandNames(): string[] {
  let files: string[];
  try {
    files = readdirSync(commandsDir);
  } catch {
    return [];
  }
  return files
    .filter((f) => /\.(js|ts)$/.test(f) && !f.endsWith('.d.ts') && !f.endsWith('.test.ts'))
    .map((f) => f.replace(/\.(js|ts)$/, ''))
    .filter((n, i, all) => all.indexOf(n) === i)
    .sort();
}

async function loadCommand(name: string): Promise<Command | undefined> {
  if (!/^[a-z][a-z0-9-]*$/.test(name) || !commandNames().includes(name)) return undefined;
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const mod = (await import(pathToFileURL(join(commandsDir, name + ext)).href)) as { command: Command };
  return mod.command;
}

async function usage(io: CliIO): Promise<void> {
  const lines = ['usage: coat COMMAND [ARGS] [--json] [--help]', '', 'commands:'];
  for (const name of commandNames()) {
    const cmd = await loadCommand(name);
    if (cmd) lines.push(`  ${name.padEnd(12)} ${cmd.summary}`);
  }
  io.stdout.write(lines.join('\n') + '\n');
}

export async function main(argv: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    await usage(io);
    return name === undefined ? ExitCode.usage : ExitCode.ok;
  }
  const cmd = await loadCommand(name);
  if (!cmd) {
    io.stderr.write(`coat: unknown command '${name}' (coat --help lists them)\n`);
    return ExitCode.usage;
  }
  try {
    return await cmd.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`coat ${name}: ${err.message}\n`);
      return ExitCode.usage;
    }
    if (err instanceof CoatError) {
      io.stderr.write(`coat ${name}: ${err.code}: ${err.message}\n`);
      return ExitCode.unavailable;
    }
    throw err;
  }
}
