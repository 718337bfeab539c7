/**
 * Test fixtures for the TCP_REPAIR tests: tagged namespaces, the demo workload as real processes,
 * a waiting helper. Everything is removed in teardown, processes are killed by the pid we started.
 *
 * Topology (`threeNamespaces`): a client namespace holding a Linux bridge with the client's
 * address, and two service namespaces each joined to the bridge by a veth pair. The service
 * address and MAC live on the veth in namespace A; a migration moves them to the veth in B, so the
 * client reaches the same IP and MAC through another bridge port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exec } from '../../src/exec.js';
import { newTag } from '../../lab/tag.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export const CLI = join(dirname(fileURLToPath(import.meta.url)), 'coat-cli.ts');
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SERVICE_IP = '10.213.0.2';
export const CLIENT_IP = '10.213.0.1';
export const SERVICE_MAC = '02:c0:a7:00:00:02';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(everyMs);
  }
}

/** /proc/PID/stat fields after the command name (which may hold spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The process exists and is not a zombie (a killed child stays one until it is reaped). */
export function alive(pid: number): boolean {
  const f = statFields(pid);
  return f !== undefined && f[0] !== 'Z' && f[0] !== 'X';
}

/** When the process started, seconds since boot (proc(5): starttime, field 22, in clock ticks of 1/100 s here). */
export function startedAtSeconds(pid: number): number {
  const f = statFields(pid);
  if (!f) throw new Error(`process ${pid} is gone`);
  return Number(f[19]) / 100;
}

/** Seconds since boot, as startedAtSeconds counts them. */
export function uptimeSeconds(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
}

export interface Topology {
  tag: string;
  client: string;
  a: string;
  b: string;
  /** Bridge ports in the client namespace towards A and B. */
  portA: string;
  portB: string;
  /** The service-side veth names in A and B. */
  ifA: string;
  ifB: string;
  dir: string;
}

const ip = (args: string[], netns?: string) => exec('ip', args, { timeoutMs: 10_000, ...(netns ? { netns } : {}) });

export async function threeNamespaces(t: Teardown): Promise<Topology> {
  const tag = newTag();
  const topo: Topology = { tag, client: `${tag}-cl`, a: `${tag}-a`, b: `${tag}-b`, portA: `${tag}ca`, portB: `${tag}cb`, ifA: `${tag}ac`, ifB: `${tag}bc`, dir: await mkdtemp(join(tmpdir(), `coat-${tag}-`)) };
  t.teardown(async () => {
    for (const ns of [topo.client, topo.a, topo.b]) await exec('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 10_000 });
    await rm(topo.dir, { recursive: true, force: true });
  });
  for (const ns of [topo.client, topo.a, topo.b]) {
    await ip(['netns', 'add', ns]);
    await ip(['link', 'set', 'lo', 'up'], ns);
  }
  await ip(['link', 'add', 'br0', 'type', 'bridge'], topo.client);
  await ip(['addr', 'add', `${CLIENT_IP}/24`, 'dev', 'br0'], topo.client);
  await ip(['link', 'set', 'br0', 'up'], topo.client);
  for (const [port, peer, ns] of [[topo.portA, topo.ifA, topo.a], [topo.portB, topo.ifB, topo.b]] as const) {
    await ip(['link', 'add', port, 'netns', topo.client, 'type', 'veth', 'peer', 'name', peer, 'netns', ns]);
    await ip(['link', 'set', port, 'master', 'br0', 'up'], topo.client);
    await ip(['link', 'set', peer, 'address', SERVICE_MAC], ns);
    await ip(['link', 'set', peer, 'up'], ns);
  }
  await ip(['addr', 'add', `${SERVICE_IP}/24`, 'dev', topo.ifA], topo.a);
  return topo;
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  kill(signal?: NodeJS.Signals): void;
  exited: Promise<number | null>;
}

/** Starts `coat ARGS` (from source) in a namespace; killed by pid in teardown. */
export function coat(t: Teardown, args: string[], netns?: string, env: Record<string, string> = {}): Proc {
  const argv = [process.execPath, '--import', 'tsx', CLI, ...args];
  const child = netns ? spawn('ip', ['netns', 'exec', netns, ...argv], { cwd: REPO, env: { ...process.env, ...env } }) : spawn(argv[0]!, argv.slice(1), { cwd: REPO, env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const kill = (signal: NodeJS.Signals = 'SIGKILL') => {
    try {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, signal);
    } catch {
      // gone
    }
  };
  t.teardown(() => kill('SIGKILL'));
  return { child, pid: child.pid!, stdout: () => out, stderr: () => err, kill, exited };
}

/** The argv that starts the workload server (also what the executor runs at the destination). */
export function serverArgv(stateDir: string, extra: string[] = []): string[] {
  return [process.execPath, '--import', 'tsx', CLI, 'workload', 'server', '--host', SERVICE_IP, '--port', '7000', '--state-dir', stateDir, ...extra];
}

export async function readStats(path: string): Promise<ClientStatsLite | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as ClientStatsLite;
  } catch {
    return undefined;
  }
}

export interface ClientStatsLite {
  bytesSent: number;
  bytesReceived: number;
  bytesVerified: number;
  stream: { bytesReceived: number; bytesVerified: number; firstBadOffset: string | null; maxGapMs: number };
  ping: { sent: number; answered: number; errors: number; firstError: string | null; rtt: { p50: number | null; p99: number | null; max: number | null }; maxGapMs: number };
  maxGapMs: number;
  resets: number;
  closed: { stream: boolean; ping: boolean };
  errors: string[];
}

/** A tcpdump in a namespace that has printed "listening on" (style.md §9); lines as they come. */
export async function tcpdump(t: Teardown, netns: string, args: string[]): Promise<{ lines(): string[]; stop(): Promise<void> }> {
  const child = spawn('ip', ['netns', 'exec', netns, 'tcpdump', '-l', '-n', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const kill = () => {
    try {
      if (child.exitCode === null) process.kill(child.pid!, 'SIGTERM');
    } catch {
      // gone
    }
  };
  t.teardown(kill);
  await waitFor('tcpdump "listening on"', () => err.includes('listening on') || (child.exitCode !== null ? Promise.reject(new Error(err)) : false), 10_000, 20);
  return {
    lines: () => out.split('\n').filter(Boolean),
    stop: async () => {
      kill();
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    },
  };
}
