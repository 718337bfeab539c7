/**
 * The contract every `coat` subcommand module fulfils. `src/cli/commands/NAME.ts` is the command
 * `coat NAME`; the dispatcher finds commands by listing that folder, so adding a command is adding
 * one file. A module handles its own sub-verbs (`coat lab up`), `--help` and `--json`.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface CliIO {
  /** Results: text, or JSON with --json. */
  stdout: NodeJS.WritableStream;
  /** Progress and diagnostics; never parsed. */
  stderr: NodeJS.WritableStream;
}

export interface Command {
  /** One line shown by `coat --help`. */
  summary: string;
  /** Runs the command; resolves to the process exit code. */
  run(argv: string[], io: CliIO): Promise<number>;
}

/** Exit codes shared by all commands. */
export const ExitCode = {
  ok: 0,
  /** The command ran and the answer is "no" (e.g. roundtrip differs, verification found loss). */
  negative: 1,
  /** Bad input: malformed file, failed validation. */
  badInput: 2,
  /** Usage error: unknown flag or missing argument. */
  usage: 64,
  /** A dependency failed (switch, agent, database). */
  unavailable: 69,
  /** A bug. */
  internal: 70,
} as const;

export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * util.parseArgs with coat's conventions: `--help`/`-h` and `--json` always accepted, unknown
 * flags are a UsageError naming the flag.
 */
export interface ParsedFlags {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

export function parseFlags(argv: string[], options: Options): ParsedFlags {
  try {
    return parseArgs({
      args: argv,
      options: { help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' }, ...options },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Writes a value as JSON; bigint becomes a decimal string. */
export function writeJson(out: NodeJS.WritableStream, value: unknown): void {
  out.write(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
}
