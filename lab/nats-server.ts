/**
 * One real nats-server (Debian's 2.9) for a lab or a test: its own run directory carrying the run's
 * tag (config, pid file, ports file, log), optionally inside a network namespace, stopped by the pid
 * it wrote, never by name.
 *
 * Why a config file rather than flags: authorization with several users and per-user permissions
 * can only be given in a config file (nats-server "Configuration > Authorization"). The port is
 * chosen by the server itself (`port: -1`, a random free port) and read back from the ports file
 * (`ports_file_dir`), so a server inside a namespace needs no probing from outside it.
 */
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoatError } from '../src/errors.js';
import { isAlive, stopPid } from './process.js';

export class NatsServerError extends CoatError {}

/** One NATS user and what it may publish and subscribe to (nats-server permissions block). */
export interface NatsUser {
  user: string;
  password: string;
  /** Subjects this user may publish to; absent = everything. */
  publish?: string[];
  /** Subjects this user may subscribe to; absent = everything. */
  subscribe?: string[];
  /** May answer requests it received, whatever the reply subject (`allow_responses`). */
  allowResponses?: boolean;
}

export interface NatsServerOptions {
  /** Run directory; created, and removed by `destroy()`. Must carry the run's tag. */
  dir: string;
  /** Network namespace to run in (must exist). */
  netns?: string;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default: a random free port chosen by the server). */
  port?: number;
  /** Single-token authorization (`authorization { token }`). Exclusive with `users`. */
  token?: string;
  /** User/password authorization with permissions. */
  users?: NatsUser[];
  /** How long to wait for the server to be ready (default 10 s). */
  startTimeoutMs?: number;
}

/** Quotes a string for the nats-server config format (JSON string syntax is accepted). */
function q(s: string): string {
  return JSON.stringify(s);
}

/** The config file text; pure so it can be tested and logged. */
export function natsConfig(opts: NatsServerOptions): string {
  const lines = [
    `host: ${q(opts.host ?? '127.0.0.1')}`,
    `port: ${opts.port ?? -1}`,
    `pid_file: ${q(join(opts.dir, 'nats-server.pid'))}`,
    `ports_file_dir: ${q(opts.dir)}`,
    `log_file: ${q(join(opts.dir, 'nats-server.log'))}`,
    // Commands are small; images never travel through NATS (they go agent to agent over TCP).
    'max_payload: 1048576',
  ];
  if (opts.token !== undefined && opts.users !== undefined) throw new NatsServerError('NATS_CONFIG', 'token and users are exclusive');
  if (opts.token !== undefined) lines.push(`authorization { token: ${q(opts.token)} }`);
  if (opts.users !== undefined) {
    const users = opts.users.map((u) => {
      const perms: string[] = [];
      if (u.publish) perms.push(`publish: [${u.publish.map(q).join(', ')}]`);
      if (u.subscribe) perms.push(`subscribe: [${u.subscribe.map(q).join(', ')}]`);
      if (u.allowResponses) perms.push('allow_responses: true');
      const p = perms.length ? `, permissions: { ${perms.join(', ')} }` : '';
      return `    { user: ${q(u.user)}, password: ${q(u.password)}${p} }`;
    });
    lines.push('authorization {', '  users: [', users.join(',\n'), '  ]', '}');
  }
  return lines.join('\n') + '\n';
}

export class NatsServer {
  readonly dir: string;
  readonly netns: string | undefined;
  private readonly opts: NatsServerOptions;
  private boundPort: number | undefined;
  private childPid: number | undefined;

  constructor(opts: NatsServerOptions) {
    this.opts = opts;
    this.dir = opts.dir;
    this.netns = opts.netns;
  }

  get host(): string {
    return this.opts.host ?? '127.0.0.1';
  }

  /** The port the server listens on (known after `start()`). */
  get port(): number {
    if (this.boundPort === undefined) throw new NatsServerError('NATS_NOT_STARTED', 'nats-server not started');
    return this.boundPort;
  }

  /** `nats://host:port`, for clients in the same namespace (0.0.0.0 is given as 127.0.0.1). */
  get url(): string {
    const h = this.host === '0.0.0.0' ? '127.0.0.1' : this.host;
    return `nats://${h}:${this.port}`;
  }

  get logFile(): string {
    return join(this.dir, 'nats-server.log');
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    // A ports file left by an earlier server in this dir would give its stale port.
    for (const n of await readdir(this.dir)) if (n.endsWith('.ports')) await rm(join(this.dir, n), { force: true });
    const conf = join(this.dir, 'nats-server.conf');
    await writeFile(conf, natsConfig(this.opts), { mode: 0o600 });
    const argv = this.netns ? ['ip', 'netns', 'exec', this.netns, 'nats-server', '-c', conf] : ['nats-server', '-c', conf];
    // Output goes to the log file (log_file); early errors before the config is read go here.
    const early = openSync(join(this.dir, 'nats-server.stderr'), 'a');
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', early, early] });
    closeSync(early);
    child.unref();
    // `ip netns exec` execs the program, so this pid is nats-server's own.
    this.childPid = child.pid;
    let exited: string | undefined;
    child.once('exit', (code, signal) => {
      exited = signal ?? `exit ${code}`;
    });
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 10_000);
    for (;;) {
      const port = await this.readPortsFile();
      if (port !== undefined) {
        this.boundPort = port;
        return;
      }
      if (exited !== undefined) {
        const why = await readFile(join(this.dir, 'nats-server.stderr'), 'utf8').catch(() => '');
        const log = await readFile(this.logFile, 'utf8').catch(() => '');
        throw new NatsServerError('NATS_START_FAILED', `nats-server ${exited}: ${(why + log).trim().slice(-500)}`);
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new NatsServerError('NATS_START_TIMEOUT', `nats-server in ${this.dir} not ready after ${this.opts.startTimeoutMs ?? 10_000} ms`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** nats-server writes `nats-server_PID.ports` once it accepts clients. */
  private async readPortsFile(): Promise<number | undefined> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const name = names.find((n) => n.endsWith('.ports'));
    if (!name) return undefined;
    try {
      const ports = JSON.parse(await readFile(join(this.dir, name), 'utf8')) as { nats?: string[] };
      const m = /:(\d+)$/.exec(ports.nats?.[0] ?? '');
      return m ? Number(m[1]) : undefined;
    } catch {
      return undefined; // written but not yet complete
    }
  }

  /** The pid from the pid file, or the spawned pid; undefined when not running. */
  async pid(): Promise<number | undefined> {
    let pid = this.childPid;
    try {
      pid = Number((await readFile(join(this.dir, 'nats-server.pid'), 'utf8')).trim());
    } catch {
      /* not written yet: use the spawned pid */
    }
    // A zombie (exited, not yet reaped by this process) is not a running server: stop() returns
    // at that point, and pid() must agree with it.
    return isAlive(pid) ? pid : undefined;
  }

  /** Stops the server by its pid: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    const pid = await this.pid();
    if (pid !== undefined) await stopPid(pid, 'SIGTERM', graceMs);
  }

  /** Stops the server and removes its run directory. */
  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
