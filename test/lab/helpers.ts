/**
 * Helpers for the lab tests: running the coat CLI as a child process, commands inside lab
 * namespaces, a tcpdump that is listening before traffic starts, and the "nothing left" check.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { exec, type ExecResult } from '../../src/exec.js';
import { listNetns, openNetns } from '../../src/netns/index.js';

const entry = fileURLToPath(new URL('../../lab/coat-entry.ts', import.meta.url));

/** `coat ARGS` from source, with a time limit; never throws on a non-zero exit. */
export function coat(args: string[], timeoutMs = 120_000): Promise<ExecResult> {
  return exec(process.execPath, ['--import', 'tsx', entry, ...args], { timeoutMs, allowFailure: true, env: { COAT_LOG_LEVEL: 'warn' } });
}

export function inNs(netns: string, file: string, args: string[], timeoutMs = 30_000): Promise<ExecResult> {
  return exec(file, args, { netns, timeoutMs });
}

/** Starts tcpdump in `netns` and resolves once it prints "listening on" (Faucet's rule). */
export async function startCapture(netns: string, args: string[]): Promise<{ stop: () => Promise<string>; proc: ChildProcess }> {
  const proc = spawn('ip', ['netns', 'exec', netns, 'tcpdump', '-l', '-n', '-e', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('tcpdump did not start listening in 10 s')), 10_000);
    proc.stderr!.on('data', (b: Buffer) => {
      if (b.toString().includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tcpdump exited (${code}) before listening`));
    });
  });
  return {
    proc,
    stop: async () => {
      await new Promise((r) => setTimeout(r, 300)); // let the last packets be printed
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
      return out;
    },
  };
}

/** Processes whose command line or namespace mentions `tag`. */
export async function processesWithTag(tag: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmd = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
    if (cmd.includes(tag)) found.push(`${pid}: ${cmd.trim()}`);
  }
  return found;
}

/** What is left of a lab with `tag`: namespaces, links in this namespace, processes, paths. */
export async function leftovers(tag: string, paths: string[]): Promise<string[]> {
  const left: string[] = [];
  for (const n of await listNetns()) if (n.includes(tag)) left.push(`namespace ${n}`);
  const root = await openNetns();
  try {
    for (const l of await root.listLinks()) if (l.name.includes(tag)) left.push(`link ${l.name}`);
  } finally {
    await root.close();
  }
  for (const p of await processesWithTag(tag)) left.push(`process ${p}`);
  for (const p of paths) {
    const exists = await readdir(p).then(() => true, () => readFile(p).then(() => true, () => false));
    if (exists) left.push(`path ${p}`);
  }
  return left;
}
