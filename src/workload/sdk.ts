/**
 * The coat service SDK: what a service calls to be movable by the `tcp-repair` executor.
 *
 * - `listenOrRestore()`: on a fresh start, listens on the service's ports; when started by the
 *   executor after a migration (environment variable `COAT_HANDOVER` names a handover file), it
 *   adopts the inherited listening sockets and the restored connections, waits until the executor
 *   says "resume" on the control descriptor (the sockets leave repair mode only then), and returns
 *   each connection with the stream offsets its application protocol stood at.
 * - `StateFile`: the service's state as a file in its state directory, mapped MAP_SHARED, so the
 *   executor can copy it (and track which pages changed) from outside the process.
 *
 * The handover file (written by src/executors/tcp-repair/handover.ts), JSON, version 1:
 *   { version: 1, migrationId, control: FD,
 *     listeners: [{ fd, family, address, port }],
 *     connections: [{ fd, family, local: {address, port}, remote: {address, port},
 *                     written: "DECIMAL", read: "DECIMAL" }] }
 * Control protocol on FD (a socketpair): service -> executor "ready\n" once started and waiting;
 * executor -> service "resume\n"; service -> executor "ok\n" once it holds every descriptor.
 */
import net from 'node:net';
import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoatError } from '../errors.js';
import { native } from '../tcp-repair/native.js';

export const HANDOVER_ENV = 'COAT_HANDOVER';
export const HANDOVER_VERSION = 1;

export interface HandoverEndpoint {
  address: string;
  port: number;
}

export interface Handover {
  version: 1;
  migrationId: string;
  control: number;
  listeners: { fd: number; family: 4 | 6; address: string; port: number }[];
  connections: { fd: number; family: 4 | 6; local: HandoverEndpoint; remote: HandoverEndpoint; written: string; read: string }[];
}

export class SdkError extends CoatError {
  declare readonly code: 'SDK_HANDOVER_INVALID' | 'SDK_RESUME_TIMEOUT' | 'SDK_STATE_FILE';
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
  /** Longest wait for the executor's "resume" (default 60 s). */
  resumeTimeoutMs?: number;
}

/** Parses and checks a handover file's content. */
export function parseHandover(text: string): Handover {
  let h: unknown;
  try {
    h = JSON.parse(text);
  } catch (err) {
    throw new SdkError('SDK_HANDOVER_INVALID', `handover is not JSON: ${(err as Error).message}`);
  }
  const o = h as Partial<Handover>;
  if (o?.version !== HANDOVER_VERSION) throw new SdkError('SDK_HANDOVER_INVALID', `handover version ${String(o?.version)}, want ${HANDOVER_VERSION}`);
  if (!Number.isInteger(o.control) || !Array.isArray(o.listeners) || !Array.isArray(o.connections)) throw new SdkError('SDK_HANDOVER_INVALID', 'handover lacks control, listeners or connections');
  for (const c of o.connections) {
    if (!Number.isInteger(c.fd) || !/^\d+$/.test(c.written) || !/^\d+$/.test(c.read)) throw new SdkError('SDK_HANDOVER_INVALID', `bad connection entry ${JSON.stringify(c)}`);
  }
  return o as Handover;
}

export async function listenOrRestore(opts: ListenOptions): Promise<ServiceSockets> {
  const path = process.env[HANDOVER_ENV];
  const servers = new Map<number, net.Server>();
  const restored: RestoredConnection[] = [];
  let migrationId: string | undefined;
  let control: net.Socket | undefined;
  let handover: Handover | undefined;
  if (path) {
    delete process.env[HANDOVER_ENV]; // children of the service must not adopt the same descriptors
    handover = parseHandover(readFileSync(path, 'utf8'));
    migrationId = handover.migrationId;
    control = new net.Socket({ fd: handover.control, readable: true, writable: true });
    control.write('ready\n'); // started and waiting: resume can now be quick
    await waitForLine(control, 'resume', opts.resumeTimeoutMs ?? 60_000);
    for (const l of handover.listeners) {
      const server = net.createServer({ pauseOnConnect: false });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ fd: l.fd }, () => resolve());
      });
      servers.set(l.port, server);
    }
    for (const c of handover.connections) {
      restored.push({ socket: new net.Socket({ fd: c.fd, readable: true, writable: true }), local: c.local, remote: c.remote, written: BigInt(c.written), read: BigInt(c.read) });
    }
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
  if (control) {
    control.end('ok\n');
  }
  return { servers, restored, ...(migrationId ? { migrationId } : {}) };
}

function waitForLine(sock: net.Socket, want: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new SdkError('SDK_RESUME_TIMEOUT', `no "${want}" from the executor in ${timeoutMs} ms`)), timeoutMs);
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.off('data', onData);
      if (buf.slice(0, nl) === want) resolve();
      else reject(new SdkError('SDK_HANDOVER_INVALID', `executor said ${JSON.stringify(buf.slice(0, nl))}, want "${want}"`));
    };
    sock.on('data', onData);
    sock.once('end', () => {
      clearTimeout(timer);
      reject(new SdkError('SDK_HANDOVER_INVALID', 'the executor closed the control channel before "resume"'));
    });
  });
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
