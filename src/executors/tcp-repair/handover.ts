/**
 * Starting the restored service with its sockets (destination side of the SDK's handover, see
 * src/workload/sdk.ts for the file format and control protocol). The service runs in the
 * destination namespace (`ip netns exec`, which execs in place, so the pid we get is the
 * service's), inherits the sockets at fixed descriptor numbers, and waits on the control channel:
 * until `release()` says "resume" it must not touch them (they are still in repair mode).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { CoatError } from '../../errors.js';
import { HANDOVER_ENV, HANDOVER_VERSION, type Handover } from '../../workload/sdk.js';

export class HandoverError extends CoatError {
  declare readonly code: 'HANDOVER_SPAWN' | 'HANDOVER_NO_ACK' | 'HANDOVER_EXITED';
}

export interface HandoverSocket {
  fd: number;
  family: 4 | 6;
}

export interface StartOptions {
  migrationId: string;
  command: string[];
  netns?: string;
  env?: Record<string, string>;
  handoverPath: string;
  logPath: string;
  listeners: (HandoverSocket & { address: string; port: number })[];
  connections: (HandoverSocket & { local: { address: string; port: number }; remote: { address: string; port: number }; written: bigint; read: bigint })[];
}

export interface StartedService {
  pid: number;
  child: ChildProcess;
  /** Waits until the service has started and waits for "resume" (so resume costs no start-up). */
  ready(timeoutMs: number): Promise<void>;
  /** Tells the service to adopt its sockets and waits for its "ok". */
  release(timeoutMs: number): Promise<void>;
  kill(): void;
}

/** Child descriptor layout: 0 stdin (null), 1-2 log, 3 control, then listeners, then connections. */
export function handoverLayout(o: Pick<StartOptions, 'migrationId' | 'listeners' | 'connections'>): Handover {
  let next = 4;
  return {
    version: HANDOVER_VERSION,
    migrationId: o.migrationId,
    control: 3,
    listeners: o.listeners.map((l) => ({ fd: next++, family: l.family, address: l.address, port: l.port })),
    connections: o.connections.map((c) => ({ fd: next++, family: c.family, local: c.local, remote: c.remote, written: c.written.toString(), read: c.read.toString() })),
  };
}

export function startService(o: StartOptions): StartedService {
  const [file, ...args] = o.command;
  if (!file) throw new HandoverError('HANDOVER_SPAWN', 'service command is empty');
  const layout = handoverLayout(o);
  writeFileSync(o.handoverPath, JSON.stringify(layout, null, 2));
  const argv = o.netns ? ['ip', ['netns', 'exec', o.netns, file, ...args]] as const : [file, args] as const;
  const log = openSync(o.logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(argv[0], [...argv[1]], {
      stdio: ['ignore', log, log, 'pipe', ...o.listeners.map((l) => l.fd), ...o.connections.map((c) => c.fd)],
      env: { ...process.env, ...o.env, [HANDOVER_ENV]: o.handoverPath },
      detached: true,
    });
  } catch (err) {
    throw new HandoverError('HANDOVER_SPAWN', `cannot start ${o.command.join(' ')}: ${(err as Error).message}`, { cause: err });
  } finally {
    closeSync(log);
  }
  if (child.pid === undefined) throw new HandoverError('HANDOVER_SPAWN', `cannot start ${o.command.join(' ')}`);
  child.unref();
  const control = child.stdio[3] as Socket;
  control.unref?.();
  let exited: string | null = null;
  const lines: string[] = [];
  let partial = '';
  let wake: (() => void) | undefined;
  control.on('data', (d: Buffer) => {
    partial += d.toString();
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      lines.push(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
    wake?.();
  });
  control.on('error', () => wake?.());
  child.once('exit', (code, signal) => {
    exited = signal ?? `exit ${code}`;
    wake?.();
  });
  /** Waits for one line from the service: `want`, or a typed error on timeout / exit / other text. */
  const expect = (want: string, timeoutMs: number, what: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => finish(new HandoverError('HANDOVER_NO_ACK', `service ${child.pid} did not ${what} in ${timeoutMs} ms`)), timeoutMs);
      const finish = (err?: Error) => {
        clearTimeout(timer);
        wake = undefined;
        if (err) reject(err);
        else resolve();
      };
      const check = () => {
        const line = lines.shift();
        if (line === want) return finish();
        if (line !== undefined) return finish(new HandoverError('HANDOVER_NO_ACK', `service ${child.pid} said ${JSON.stringify(line)}, want "${want}"`));
        if (exited) return finish(new HandoverError('HANDOVER_EXITED', `service ${child.pid} ended (${exited}) before it could ${what}`));
      };
      wake = check;
      check();
    });
  return {
    pid: child.pid,
    child,
    ready: (timeoutMs) => expect('ready', timeoutMs, 'report ready'),
    async release(timeoutMs) {
      control.write('resume\n');
      await expect('ok', timeoutMs, 'acknowledge "resume"');
      control.destroy();
    },
    kill() {
      try {
        process.kill(child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    },
  };
}
