/**
 * Running one user hook with a deadline. Not src/exec.ts: a hook is a user's shell script that may
 * fork (a `sleep`, a `criu`, a pipeline), and exec.ts kills only its direct child on timeout, which
 * would leave the grandchildren running past the deadline. Here the hook gets its own process group
 * (spawn `detached`) and the deadline or an abort kills the whole group. A hook that exits in time
 * may leave processes behind on purpose (a restore hook starts the service): those are not touched.
 */
import { spawn } from 'node:child_process';

export interface HookRunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  aborted: boolean;
  durationMs: number;
}

export interface HookRunOptions {
  env: Record<string, string>;
  timeoutMs: number;
  cwd?: string;
  signal?: AbortSignal;
  /** Most bytes of stdout/stderr kept (the rest is counted, not stored). Default 64 KiB. */
  maxOutput?: number;
}

/** Runs argv in its own process group; never rejects for the hook's own failure (spawn errors do). */
export function runHook(argv: readonly string[], opts: HookRunOptions): Promise<HookRunResult> {
  const max = opts.maxOutput ?? 64 * 1024;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { env: opts.env, cwd: opts.cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: string[] = [];
    const err: string[] = [];
    let outLen = 0;
    let errLen = 0;
    let timedOut = false;
    let aborted = false;
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // The group is gone already.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, opts.timeoutMs);
    const onAbort = () => {
      aborted = true;
      killGroup();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (b: Buffer) => {
      if (outLen < max) out.push(b.toString('utf8', 0, Math.min(b.length, max - outLen)));
      outLen += b.length;
    });
    child.stderr.on('data', (b: Buffer) => {
      if (errLen < max) err.push(b.toString('utf8', 0, Math.min(b.length, max - errLen)));
      errLen += b.length;
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(e);
    });
    let done = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({ code, signal, stdout: out.join(''), stderr: err.join(''), timedOut, aborted, durationMs: performance.now() - t0 });
    };
    child.on('close', finish);
    // A hook may leave a process behind on purpose (a restore hook starting the service). If that
    // process kept the hook's stdout open, 'close' would wait for it: after the hook itself exits,
    // take what it printed within a short grace period and stop reading.
    child.on('exit', (code, signal) => setTimeout(() => finish(code, signal), 250).unref());
  });
}
