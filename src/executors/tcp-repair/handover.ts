/**
 * The destination's service process (the executor side of the SDK's handover, see
 * src/workload/sdk.ts for the control protocol). `startStandby` starts `service.command` in the
 * destination namespace (`ip netns exec`, which execs in place, so the pid we get is the
 * service's) with `COAT_STANDBY` set and the control channel on descriptor 3: it loads its code,
 * opens nothing on the network, says "standby" and waits. The executor does this at `prepare`,
 * while the source still runs, so the process start (~0.1 s compiled, ~1 s under tsx on this
 * machine: docs/executors.md) is outside the downtime. At restore `handover()` tells it which
 * descriptors of this process to take (pidfd_getfd) and waits for "ready"; `release()` says
 * "resume" once repair mode is off and waits for "ok".
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { CoatError } from '../../errors.js';
import { CONTROL_FD, HANDOVER_VERSION, STANDBY_ENV, type Handover } from '../../workload/sdk.js';

export class HandoverError extends CoatError {
  declare readonly code: 'HANDOVER_SPAWN' | 'HANDOVER_NO_ACK' | 'HANDOVER_EXITED';
}

export interface StandbyOptions {
  command: string[];
  netns?: string;
  env?: Record<string, string>;
  /** The service's stdout and stderr are appended here. */
  logPath: string;
}

export interface HandoverSockets {
  migrationId: string;
  listeners: { fd: number; family: 4 | 6; address: string; port: number }[];
  connections: { fd: number; family: 4 | 6; local: { address: string; port: number }; remote: { address: string; port: number }; written: bigint; read: bigint }[];
}

export interface Standby {
  pid: number;
  child: ChildProcess;
  /** Why the process ended (signal or "exit N"), or null while it runs. */
  readonly exited: string | null;
  /** Waits until the service has loaded its code and waits for the handover. */
  standby(timeoutMs: number): Promise<void>;
  /** Hands the sockets over (descriptors of this process) and waits until the service holds them. */
  handover(h: Handover, timeoutMs: number): Promise<void>;
  /**
   * Tells the service its sockets are out of repair mode; the returned promise settles with its
   * "ok" (the caller may do other work before awaiting it: the service adopts its sockets meanwhile).
   */
  release(timeoutMs: number): Promise<void>;
  kill(): void;
}

/** The handover message for sockets held by this process (pure). */
export function handoverFor(s: HandoverSockets, fromPid: number): Handover {
  return {
    version: HANDOVER_VERSION,
    migrationId: s.migrationId,
    fromPid,
    listeners: s.listeners.map((l) => ({ fd: l.fd, family: l.family, address: l.address, port: l.port })),
    connections: s.connections.map((c) => ({ fd: c.fd, family: c.family, local: c.local, remote: c.remote, written: c.written.toString(), read: c.read.toString() })),
  };
}

export function startStandby(o: StandbyOptions): Standby {
  const [file, ...args] = o.command;
  if (!file) throw new HandoverError('HANDOVER_SPAWN', 'service command is empty');
  const argv = o.netns ? ['ip', ['netns', 'exec', o.netns, file, ...args]] as const : [file, args] as const;
  const log = openSync(o.logPath, 'a');
  let child: ChildProcess;
  try {
    // stdio index CONTROL_FD (3) is the control socketpair.
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', log, log];
    stdio[CONTROL_FD] = 'pipe';
    child = spawn(argv[0], [...argv[1]], { stdio, env: { ...process.env, ...o.env, [STANDBY_ENV]: '1' }, detached: true });
  } catch (err) {
    throw new HandoverError('HANDOVER_SPAWN', `cannot start ${o.command.join(' ')}: ${(err as Error).message}`, { cause: err });
  } finally {
    closeSync(log);
  }
  if (child.pid === undefined) throw new HandoverError('HANDOVER_SPAWN', `cannot start ${o.command.join(' ')}`);
  // The agent must not stay alive for a standby, nor the standby for the agent.
  child.unref();
  const control = child.stdio[CONTROL_FD] as Socket;
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
    get exited() {
      return exited;
    },
    standby: (timeoutMs) => expect('standby', timeoutMs, 'report standby'),
    async handover(h, timeoutMs) {
      control.write(`handover ${JSON.stringify(h)}\n`);
      await expect('ready', timeoutMs, 'take its sockets and report ready');
    },
    release(timeoutMs) {
      control.write('resume\n');
      return expect('ok', timeoutMs, 'acknowledge "resume"').finally(() => control.destroy());
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
