/**
 * `NetnsClient`: the rtnetlink operations (`RtnlApi`) in a chosen namespace.
 *
 * Measured on this machine (Node 20, kernel 6.18): a netlink socket answers for the namespace
 * its process was in when it opened the socket, and Node offers no setns(2). So, for a named
 * namespace, the client starts one worker process inside it (`ip netns exec NAME node worker`),
 * about 150 ms to start (270 ms when running from TypeScript through tsx), and then relays every
 * operation over a pipe (well under 1 ms each). For the caller's own namespace (`netns`
 * undefined) the operations run in process. A lab opens one client per namespace it configures
 * and closes them when it is built.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetnsError } from './errors.js';
import { Rtnl, type RtnlApi, type RtnlOp } from './rtnl.js';

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; what: string };

export interface NetnsClient extends RtnlApi {
  readonly netns: string | undefined;
  close(): Promise<void>;
}

/** Operations in this process' own namespace. */
class LocalClient implements NetnsClient {
  readonly netns = undefined;
  private readonly rtnl = new Rtnl();
  listLinks = () => this.rtnl.listLinks();
  getLink = (n: string) => this.rtnl.getLink(n);
  createVeth: RtnlApi['createVeth'] = (s) => this.rtnl.createVeth(s);
  createBridge = (n: string) => this.rtnl.createBridge(n);
  createIfb = (n: string) => this.rtnl.createIfb(n);
  createVxlan: RtnlApi['createVxlan'] = (n, o) => this.rtnl.createVxlan(n, o);
  deleteLink = (n: string) => this.rtnl.deleteLink(n);
  setLink: RtnlApi['setLink'] = (n, c) => this.rtnl.setLink(n, c);
  addAddress = (d: string, c: string) => this.rtnl.addAddress(d, c);
  listAddresses = () => this.rtnl.listAddresses();
  addRoute: RtnlApi['addRoute'] = (r) => this.rtnl.addRoute(r);
  setNeighbor: RtnlApi['setNeighbor'] = (d, i, m) => this.rtnl.setNeighbor(d, i, m);
  flushNeighbors = (d?: string) => this.rtnl.flushNeighbors(d);
  setFdb: RtnlApi['setFdb'] = (d, m, i) => this.rtnl.setFdb(d, m, i);
  async close(): Promise<void> {
    this.rtnl.close();
  }
}

/**
 * How to start the worker. From dist/: plain node. From source (tests, tsx): the compiled worker
 * in dist/ when it is newer than every source it is built from (starting a Node process through
 * tsx costs about twice as much CPU, which adds up to seconds for a lab of many namespaces on a
 * small machine), else the TypeScript worker through tsx.
 */
function workerArgv(): string[] {
  const self = fileURLToPath(import.meta.url);
  if (!self.endsWith('.ts')) return [self.replace(/client\.js$/, 'worker.js')];
  const srcDir = dirname(dirname(self)); // .../src
  const compiled = join(dirname(srcDir), 'dist', 'src', 'netns', 'worker.js');
  try {
    const built = statSync(compiled).mtimeMs;
    const sources = [
      ...readdirSync(join(srcDir, 'netns')).map((f) => join(srcDir, 'netns', f)),
      ...readdirSync(join(srcDir, 'packet')).map((f) => join(srcDir, 'packet', f)),
      join(srcDir, 'errors.ts'),
    ];
    if (sources.every((f) => statSync(f).mtimeMs <= built)) return [compiled];
  } catch {
    /* no build: use the source */
  }
  return ['--import', import.meta.resolve('tsx'), self.replace(/client\.ts$/, 'worker.ts')];
}

/** Operations relayed to a worker inside `netns`. */
class WorkerClient implements NetnsClient {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: Error | undefined;
  private stderr = '';
  readonly ready: Promise<void>;

  constructor(readonly netns: string, private readonly timeoutMs: number) {
    this.child = spawn('ip', ['netns', 'exec', netns, process.execPath, ...workerArgv()], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (b: Buffer) => (this.stderr = (this.stderr + b.toString()).slice(-2000)));
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise((res, rej) => ((readyResolve = res), (readyReject = rej)));
    this.pending.set(0, { resolve: () => readyResolve(), reject: readyReject, timer: setTimeout(() => this.fail(`worker in ${netns} not ready after ${timeoutMs} ms`), timeoutMs), what: 'start' });
    createInterface({ input: this.child.stdout }).on('line', (line) => this.onLine(line));
    this.child.on('error', (e) => this.fail(`cannot start the netlink worker in ${netns}: ${e.message}`));
    this.child.on('exit', (code) => this.fail(`netlink worker in ${netns} exited (${code}): ${this.stderr.trim().slice(-500)}`));
  }

  private onLine(line: string): void {
    let msg: { id: number; ok: boolean; result?: unknown; error?: { code: string; message: string; errno?: string } };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      return this.fail(`netlink worker in ${this.netns} wrote a non-JSON line: ${line.slice(0, 200)}`);
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new NetnsError((msg.error?.code as 'NETNS_NETLINK') ?? 'NETNS_WORKER', `[${this.netns}] ${msg.error?.message}`, this.netns, msg.error?.errno));
  }

  private fail(why: string): void {
    this.dead ??= new NetnsError('NETNS_WORKER', why, this.netns);
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(this.dead);
      this.pending.delete(id);
    }
  }

  private call<T>(op: RtnlOp, ...args: unknown[]): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new NetnsError('NETNS_WORKER', `[${this.netns}] ${op} got no answer in ${this.timeoutMs} ms`, this.netns));
      }, this.timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, what: op });
      this.child.stdin.write(JSON.stringify({ id, op, args }) + '\n');
    });
  }

  listLinks = () => this.call<Awaited<ReturnType<RtnlApi['listLinks']>>>('listLinks');
  getLink = (n: string) => this.call<Awaited<ReturnType<RtnlApi['getLink']>>>('getLink', n);
  createVeth: RtnlApi['createVeth'] = (s) => this.call('createVeth', s);
  createBridge = (n: string) => this.call<void>('createBridge', n);
  createIfb = (n: string) => this.call<void>('createIfb', n);
  createVxlan: RtnlApi['createVxlan'] = (n, o) => this.call('createVxlan', n, o);
  deleteLink = (n: string) => this.call<void>('deleteLink', n);
  setLink: RtnlApi['setLink'] = (n, c) => this.call('setLink', n, c);
  addAddress = (d: string, c: string) => this.call<void>('addAddress', d, c);
  listAddresses = () => this.call<Awaited<ReturnType<RtnlApi['listAddresses']>>>('listAddresses');
  addRoute: RtnlApi['addRoute'] = (r) => this.call('addRoute', r);
  setNeighbor: RtnlApi['setNeighbor'] = (d, i, m) => this.call('setNeighbor', d, i, m);
  flushNeighbors = (d?: string) => this.call<number>('flushNeighbors', ...(d === undefined ? [] : [d]));
  setFdb: RtnlApi['setFdb'] = (d, m, i) => this.call('setFdb', d, m, i);

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(t);
  }
}

/** A client for `netns` (undefined: this process' namespace). Resolves once the worker is ready. */
export async function openNetns(netns?: string, timeoutMs = 10_000): Promise<NetnsClient> {
  if (netns === undefined) return new LocalClient();
  const c = new WorkerClient(netns, timeoutMs);
  try {
    await c.ready;
  } catch (e) {
    await c.close();
    throw e;
  }
  return c;
}
