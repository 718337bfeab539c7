/**
 * The coat service SDK: what a service calls to be movable by the `tcp-repair` executor.
 *
 * - `listenOrRestore()`: on a fresh start, listens on the service's ports. When started by the
 *   executor as a standby (environment variable `COAT_STANDBY` set, control channel on descriptor
 *   3), it waits, opening nothing on the network, until the executor hands over the restored
 *   sockets; it takes them from the executor's process, waits for "resume" (the sockets leave
 *   repair mode only then), and returns each connection with the stream offsets its application
 *   protocol stood at.
 * - `StateFile`: the service's state as a file in its state directory, mapped MAP_SHARED, so the
 *   executor can copy it (and track which pages changed) from outside the process.
 *
 * Why a standby: starting a Node service costs ~0.1-1 s (module loading; more under tsx), and
 * restore lies inside the service's downtime. The executor starts the standby at `prepare`, while
 * the source still runs, so restore only rebuilds the sockets and hands them over.
 *
 * Control protocol on descriptor 3 (a socketpair), one line per message:
 *   service -> executor  "standby\n"          code loaded, waiting for the handover
 *   executor -> service  "handover JSON\n"    the Handover below
 *   service -> executor  "ready\n"            it holds every descriptor and waits
 *   executor -> service  "resume\n"           repair mode is off
 *   service -> executor  "ok\n"               it serves
 * The Handover, JSON, version 1 (written by src/executors/tcp-repair/handover.ts):
 *   { version: 1, migrationId, fromPid,
 *     listeners: [{ fd, family, address, port }],
 *     connections: [{ fd, family, local: {address, port}, remote: {address, port},
 *                     written: "DECIMAL", read: "DECIMAL" }] }
 * where every `fd` is a descriptor of process `fromPid` (the executor), taken with pidfd_getfd(2)
 * (Linux 5.6): no descriptor passing over the channel, and the executor keeps its own references
 * until resume.
 */
import net from 'node:net';
import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { CoatError } from '../errors.js';
import { native } from '../tcp-repair/native.js';

export const STANDBY_ENV = 'COAT_STANDBY';
/** The control channel's descriptor number in a standby service. */
export const CONTROL_FD = 3;
export const HANDOVER_VERSION = 1;

export interface HandoverEndpoint {
  address: string;
  port: number;
}

export interface Handover {
  version: 1;
  migrationId: string;
  /** The process that holds the descriptors below (the executor). */
  fromPid: number;
  listeners: { fd: number; family: 4 | 6; address: string; port: number }[];
  connections: { fd: number; family: 4 | 6; local: HandoverEndpoint; remote: HandoverEndpoint; written: string; read: string }[];
}

export class SdkError extends CoatError {
  declare readonly code: 'SDK_HANDOVER_INVALID' | 'SDK_RESUME_TIMEOUT' | 'SDK_STATE_FILE' | 'SDK_TAKE_FD';
}

export interface RestoredConnection {
  socket: net.Socket;
  local: HandoverEndpoint;
  remote: HandoverEndpoint;
  /** Bytes the application had written into this connection when it was dumped. */
  written: bigint;
  /** Bytes the application had read from it. */
  read: bigint;
}

export interface ServiceSockets {
  /** One listening server per requested port. */
  servers: Map<number, net.Server>;
  /** Connections restored from a migration (empty on a fresh start). */
  restored: RestoredConnection[];
  /** The migration this process was restored by, if any. */
  migrationId?: string;
}

export interface ListenOptions {
  host: string;
  ports: number[];
  /** Longest wait for the executor's "resume" once the sockets are handed over (default 60 s). */
  resumeTimeoutMs?: number;
}

/** Parses and checks a handover's content. */
export function parseHandover(text: string): Handover {
  let h: unknown;
  try {
    h = JSON.parse(text);
  } catch (err) {
    throw new SdkError('SDK_HANDOVER_INVALID', `handover is not JSON: ${(err as Error).message}`);
  }
  const o = h as Partial<Handover>;
  if (o?.version !== HANDOVER_VERSION) throw new SdkError('SDK_HANDOVER_INVALID', `handover version ${String(o?.version)}, want ${HANDOVER_VERSION}`);
  if (!Number.isInteger(o.fromPid) || o.fromPid! <= 0 || !Array.isArray(o.listeners) || !Array.isArray(o.connections)) throw new SdkError('SDK_HANDOVER_INVALID', 'handover lacks fromPid, listeners or connections');
  for (const l of o.listeners) {
    if (!Number.isInteger(l.fd) || l.fd < 0 || !Number.isInteger(l.port)) throw new SdkError('SDK_HANDOVER_INVALID', `bad listener entry ${JSON.stringify(l)}`);
  }
  for (const c of o.connections) {
    if (!Number.isInteger(c.fd) || c.fd < 0 || !/^\d+$/.test(c.written) || !/^\d+$/.test(c.read)) throw new SdkError('SDK_HANDOVER_INVALID', `bad connection entry ${JSON.stringify(c)}`);
  }
  return o as Handover;
}

export async function listenOrRestore(opts: ListenOptions): Promise<ServiceSockets> {
  const servers = new Map<number, net.Server>();
  const restored: RestoredConnection[] = [];
  let migrationId: string | undefined;
  let control: ControlChannel | undefined;
  if (process.env[STANDBY_ENV]) {
    delete process.env[STANDBY_ENV]; // children of the service are not standbys
    control = new ControlChannel(new net.Socket({ fd: CONTROL_FD, readable: true, writable: true }));
    native(); // load the addon now (dlopen): the handover, inside the downtime, only uses it
    control.send('standby');
    // No time limit: a standby waits as long as the pre-copy lasts. The executor ends it by pid
    // (abort), and its own end closes the channel, which ends the wait.
    const line = await control.next(undefined, 'the handover');
    if (!line.startsWith('handover ')) throw new SdkError('SDK_HANDOVER_INVALID', `executor said ${JSON.stringify(line.slice(0, 80))}, want "handover JSON"`);
    const handover = parseHandover(line.slice('handover '.length));
    migrationId = handover.migrationId;
    const fds = takeDescriptors(handover.fromPid, [...handover.listeners.map((l) => l.fd), ...handover.connections.map((c) => c.fd)]);
    control.send('ready'); // holds everything: resume can now be quick
    const resume = await control.next(opts.resumeTimeoutMs ?? 60_000, '"resume"');
    if (resume !== 'resume') throw new SdkError('SDK_HANDOVER_INVALID', `executor said ${JSON.stringify(resume.slice(0, 80))}, want "resume"`);
    // The connections first (the client waits on them), then the listeners all at once: each
    // listen's callback costs an event-loop turn, and this is inside the migration's downtime.
    let i = handover.listeners.length; // fds holds the listeners' descriptors, then the connections'
    for (const c of handover.connections) {
      restored.push({ socket: new net.Socket({ fd: fds[i++]!, readable: true, writable: true }), local: c.local, remote: c.remote, written: BigInt(c.written), read: BigInt(c.read) });
    }
    await Promise.all(
      handover.listeners.map(async (l, k) => {
        const server = net.createServer({ pauseOnConnect: false });
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ fd: fds[k]! }, () => resolve());
        });
        servers.set(l.port, server);
      }),
    );
  }
  for (const port of opts.ports) {
    if (servers.has(port)) continue;
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: opts.host, port, exclusive: true }, () => resolve());
    });
    servers.set(port, server);
  }
  control?.end('ok');
  return { servers, restored, ...(migrationId ? { migrationId } : {}) };
}

/** pidfd_getfd(2) of each descriptor of `pid`; on a failure closes what it took and throws. */
function takeDescriptors(pid: number, fds: number[]): number[] {
  const n = native();
  const taken: number[] = [];
  let pidfd = -1;
  try {
    pidfd = n.pidfdOpen(pid);
    for (const fd of fds) taken.push(n.pidfdGetfd(pidfd, fd));
    return taken;
  } catch (err) {
    for (const fd of taken) n.close(fd);
    throw new SdkError('SDK_TAKE_FD', `cannot take descriptor ${fds[taken.length]} of process ${pid}: ${(err as Error).message}`, { cause: err });
  } finally {
    if (pidfd >= 0) n.close(pidfd);
  }
}

/** Line-oriented reader/writer over the control socket. */
class ControlChannel {
  private buf = '';
  private readonly lines: string[] = [];
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf += d.toString('utf8');
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
      this.wake?.();
    });
    const end = () => {
      this.ended = true;
      this.wake?.();
    };
    sock.once('end', end);
    sock.once('error', end);
  }

  send(line: string): void {
    this.sock.write(line + '\n');
  }

  end(line: string): void {
    this.sock.end(line + '\n');
  }

  next(timeoutMs: number | undefined, what: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => done(new SdkError('SDK_RESUME_TIMEOUT', `no ${what} from the executor in ${timeoutMs} ms`)), timeoutMs);
      const done = (err?: Error, line?: string) => {
        if (timer) clearTimeout(timer);
        this.wake = undefined;
        if (err) reject(err);
        else resolve(line!);
      };
      const check = () => {
        const line = this.lines.shift();
        if (line !== undefined) return done(undefined, line);
        if (this.ended) return done(new SdkError('SDK_HANDOVER_INVALID', `the executor closed the control channel before ${what}`));
      };
      this.wake = check;
      check();
    });
  }
}

export const PAGE_SIZE = 4096;

/**
 * A service's state as one file in its state directory, mapped shared: writes to `bytes` land in
 * the page cache, where the executor reads them. Size is rounded up to whole pages. Opening an
 * existing file of the same size keeps its content (that is how a restored service gets its state).
 */
export class StateFile {
  readonly bytes: Uint8Array;
  readonly path: string;
  readonly size: number;
  #fd: number | null;

  private constructor(path: string, fd: number, size: number) {
    this.path = path;
    this.#fd = fd;
    this.size = size;
    try {
      this.bytes = new Uint8Array(native().mmapShared(fd, size));
    } catch (err) {
      closeSync(fd);
      throw new SdkError('SDK_STATE_FILE', `cannot map ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  static open(dir: string, name: string, size: number): StateFile {
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new SdkError('SDK_STATE_FILE', `state file name ${JSON.stringify(name)} must be a plain file name`);
    const pages = Math.max(1, Math.ceil(size / PAGE_SIZE));
    const bytes = pages * PAGE_SIZE;
    mkdirSync(dir, { recursive: true });
    const path = join(dir, name);
    const fd = openSync(path, 'a+'); // create if missing, keep content
    closeSync(fd);
    const rw = openSync(path, 'r+');
    if (fstatSync(rw).size !== bytes) ftruncateSync(rw, bytes);
    return new StateFile(path, rw, bytes);
  }

  get pages(): number {
    return this.size / PAGE_SIZE;
  }

  /** Closes the descriptor; the mapping lives until the buffer is collected. */
  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}
