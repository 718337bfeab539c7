/**
 * Running external programs (ovs-vsctl, ip, tc, tcpdump, criu, ...) with a time limit, always.
 * Faucet's lab harness lesson: every external command has a deadline, and a failure says which
 * command, with what arguments, and what it printed.
 */
import { spawn } from 'node:child_process';
import { CoatError } from './errors.js';

export interface ExecOptions {
  /** Run inside this network namespace (`ip netns exec NAME ...`). */
  netns?: string;
  /** Kill the program after this long (default 30 s). */
  timeoutMs?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Bytes written to the program's stdin. */
  input?: string | Buffer;
  /** Resolve even when the exit status is not 0 (the caller inspects `code`). */
  allowFailure?: boolean;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends CoatError {
  constructor(
    code: 'EXEC_FAILED' | 'EXEC_TIMEOUT' | 'EXEC_SPAWN',
    readonly argv: string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    message: string,
  ) {
    super(code, message);
  }
}

export function exec(file: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const argv = opts.netns ? ['ip', 'netns', 'exec', opts.netns, file, ...args] : [file, ...args];
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new CommandError('EXEC_SPAWN', argv, null, '', `cannot run ${argv[0]}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = { code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      const cmdline = argv.join(' ');
      if (timedOut) {
        reject(new CommandError('EXEC_TIMEOUT', argv, null, result.stderr, `${cmdline}: no exit after ${timeoutMs} ms, killed`));
      } else if (result.code !== 0 && !opts.allowFailure) {
        const why = signal ? `killed by ${signal}` : `exit ${result.code}`;
        reject(new CommandError('EXEC_FAILED', argv, code, result.stderr, `${cmdline}: ${why}: ${result.stderr.trim().slice(0, 500)}`));
      } else {
        resolve(result);
      }
    });
    child.stdin.on('error', () => {}); // a program that exits without reading its input is not our error
    child.stdin.end(opts.input ?? '');
  });
}
