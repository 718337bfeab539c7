/**
 * Child processes of a lab migration run (agents, workload server and client, tcpdump), each
 * started in a named namespace with `ip netns exec` (which execs the program, so the pid we hold
 * is the program's own) and stopped by that pid only.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface Child {
  readonly pid: number;
  readonly name: string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  readonly running: boolean;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<number | string>;
}

export function startIn(netns: string | undefined, argv: readonly string[], opts: { name: string; env?: Record<string, string>; maxOutput?: number }): Child {
  const full = netns ? ['ip', 'netns', 'exec', netns, ...argv] : [...argv];
  const cp: ChildProcess = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(opts.env ?? {}) } });
  if (cp.pid === undefined) throw new Error(`could not start ${opts.name}`);
  const max = opts.maxOutput ?? 4 * 1024 * 1024;
  let out = '';
  let err = '';
  cp.stdout!.on('data', (d: Buffer) => {
    if (out.length < max) out += d.toString('utf8');
  });
  cp.stderr!.on('data', (d: Buffer) => {
    if (err.length < max) err += d.toString('utf8');
  });
  let running = true;
  const exited = new Promise<number | string>((resolve) => {
    cp.on('exit', (code, signal) => {
      running = false;
      resolve(code ?? signal ?? 'unknown');
    });
    cp.on('error', () => {
      running = false;
      resolve('spawn-error');
    });
  });
  const pid = cp.pid;
  const kill = (signal: NodeJS.Signals = 'SIGTERM') => {
    if (!running) return;
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  };
  return {
    pid,
    name: opts.name,
    stdout: () => out,
    stderr: () => err,
    exited,
    get running() {
      return running;
    },
    kill,
    async stop(graceMs = 3000) {
      if (!running) return exited;
      kill('SIGTERM');
      const t = setTimeout(() => kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `fn` every 50 ms until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}
