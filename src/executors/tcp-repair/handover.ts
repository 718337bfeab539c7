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
  child.once('exit', (code, signal) => (exited = signal ?? `exit ${code}`));
  return {
    pid: child.pid,
    child,
    release(timeoutMs) {
      return new Promise((resolve, reject) => {
        if (exited) return reject(new HandoverError('HANDOVER_EXITED', `service ${child.pid} ended (${exited}) before resume`));
        let buf = '';
        const timer = setTimeout(() => done(new HandoverError('HANDOVER_NO_ACK', `service ${child.pid} did not acknowledge "resume" in ${timeoutMs} ms`)), timeoutMs);
        const onExit = () => done(new HandoverError('HANDOVER_EXITED', `service ${child.pid} ended (${exited ?? 'unknown'}) before acknowledging "resume"`));
        const onData = (d: Buffer) => {
          buf += d.toString();
          if (buf.includes('ok\n')) done();
        };
        const done = (err?: Error) => {
          clearTimeout(timer);
          control.off('data', onData);
          child.off('exit', onExit);
          control.destroy();
          if (err) reject(err);
          else resolve();
        };
        control.on('data', onData);
        child.once('exit', onExit);
        control.write('resume\n');
      });
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
