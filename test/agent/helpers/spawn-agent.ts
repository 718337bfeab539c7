/**
 * Runs `coat agent` as a child process (optionally inside a network namespace), the way a host
 * runs it, so a test can kill it by its pid. Teardown stops it by that pid, also on failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const FILE_EXECUTOR = join(here, 'file-executor.ts');

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface SpawnAgentOptions {
  host: string;
  nats: string;
  user?: string;
  password?: string;
  secret: string;
  dataDir: string;
  netns?: string;
  listen?: string;
  advertise?: string;
  /** Extra environment (e.g. COAT_LOG_LEVEL). */
  env?: Record<string, string>;
}

export interface SpawnedAgent {
  pid: number;
  child: ChildProcess;
  /** stderr so far (the agent's pino log lines). */
  stderr(): string;
  /** Resolves with the exit code or signal when the process ended. */
  exited: Promise<string>;
  kill(signal?: NodeJS.Signals): void;
}

export function spawnAgent(t: Teardown, o: SpawnAgentOptions): SpawnedAgent {
  const args = [
    '--import', 'tsx', join(here, 'coat-cli.ts'), 'agent',
    '--host', o.host, '--nats', o.nats, '--data-dir', o.dataDir,
    '--executor-module', `hooks=${FILE_EXECUTOR}`,
    ...(o.user ? ['--user', o.user, '--password', o.password ?? ''] : []),
    ...(o.listen ? ['--listen', o.listen] : []),
    ...(o.advertise ? ['--advertise', o.advertise] : []),
  ];
  const argv = o.netns ? ['ip', 'netns', 'exec', o.netns, process.execPath, ...args] : [process.execPath, ...args];
  const child = spawn(argv[0]!, argv.slice(1), {
    env: { ...process.env, COAT_AGENT_SECRET: o.secret, COAT_LOG_LEVEL: process.env.COAT_AGENT_LOG_LEVEL ?? 'info', ...(o.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
    if (err.length > 1_000_000) err = err.slice(-500_000);
  });
  child.stdout!.resume();
  const exited = new Promise<string>((res) => child.once('exit', (code, sig) => res(sig ?? `exit ${code}`)));
  const pid = child.pid!;
  const kill = (signal: NodeJS.Signals = 'SIGTERM') => {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  };
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    kill('SIGTERM');
    const done = await Promise.race([exited, new Promise((r) => setTimeout(() => r(undefined), 3000))]);
    if (done === undefined) kill('SIGKILL');
  });
  return { pid, child, stderr: () => err, exited, kill };
}
