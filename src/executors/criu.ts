/**
 * The `criu` executor: CRIU (criu.org) checkpoints and restores the service's process tree with its
 * established TCP connections; coat's overlay keeps the IP and holds the packets meanwhile.
 *
 * Steps (executor.ts's contract; argv in criu-argv.ts, output parsing in criu-log.ts):
 * - prepare: `criu check` must pass (it fails on kernels CRIU cannot parse, e.g. this VM's vDSO);
 *   source: the pid must exist.
 * - preDump(round): `criu pre-dump --track-mem [--prev-images-dir ../PREV]` into ctx.stepDir.
 * - dump: `criu dump --tcp-established --leave-stopped [--track-mem --prev-images-dir ../PREV]`: the
 *   tree stays stopped with its sockets in repair mode (CRIU leaves them there unless --leave-running),
 *   so nothing it does sends a FIN or RST.
 * - restore: `criu restore --tcp-established --restore-detached --leave-stopped --pidfile` from
 *   ctx.imageDir/dump (option dumpStepName; its `parent` link reaches the pre-dump rounds), logs in
 *   ctx.stepDir; the tree stays stopped.
 * - resume: SIGCONT to the restored tree.
 * - release (source, after commit): SIGKILL to the stopped tree: sockets in repair mode close
 *   silently (Linux tcp_close() sends nothing for a socket in repair).
 * - abort: source: SIGCONT to the stopped tree (a failed dump is thawed by CRIU itself); destination:
 *   SIGKILL to whatever restore made.
 * Page server: with option `pageServer: {address, port}` the source streams pages to a
 * `criu page-server` the destination agent starts per round with `startPageServer(ctx)`.
 * Runs CRIU inside the service's netns (nsenter --net) so CRIU does not dump or recreate the namespace
 * coat manages.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { CommandError, exec } from '../exec.js';
import type { DumpResult, Executor, ExecutorContext, ExecutorOptions, RestoreResult } from '../migration/executor.js';
import { checkArgv, criuLogFile, dumpArgv, pageServerArgv, preDumpArgv, restoreArgv, type CriuAction, type CriuArgv, type CriuCommonOptions } from './criu-argv.js';
import { CriuError, criuFailure, parseCriuOutput, type CriuOutput } from './criu-log.js';
import { directoryBytes, isAlive, signalTree } from './criu-proc.js';

export interface CriuExecutorOptions {
  criu?: string;
  shellJob?: boolean;
  fileLocks?: boolean;
  pageServer?: { address: string; port: number };
  extraArgs?: string[];
  /** Deadline of one criu run, ms (default 120 s). */
  timeoutMs?: number;
  /** Run criu inside the service's netns (default true). */
  enterNetns?: boolean;
  /** Step name of the final dump under the image root, which restore reads (default "dump"). */
  dumpStepName?: string;
}

function options(o: ExecutorOptions): CriuExecutorOptions {
  const out: CriuExecutorOptions = {};
  if (typeof o.criu === 'string') out.criu = o.criu;
  if (typeof o.shellJob === 'boolean') out.shellJob = o.shellJob;
  if (typeof o.fileLocks === 'boolean') out.fileLocks = o.fileLocks;
  if (typeof o.timeoutMs === 'number') out.timeoutMs = o.timeoutMs;
  if (typeof o.enterNetns === 'boolean') out.enterNetns = o.enterNetns;
  if (typeof o.dumpStepName === 'string') out.dumpStepName = o.dumpStepName;
  if (Array.isArray(o.extraArgs)) out.extraArgs = o.extraArgs.map(String);
  const ps = o.pageServer as { address?: unknown; port?: unknown } | undefined;
  if (ps && typeof ps.address === 'string' && typeof ps.port === 'number') out.pageServer = { address: ps.address, port: ps.port };
  return out;
}

/** Runs one criu command; returns its parsed output or throws a CriuError. */
export async function runCriu(action: CriuAction | 'check', argv: CriuArgv, opts: { timeoutMs: number; logPath?: string; signal?: AbortSignal }): Promise<CriuOutput> {
  if (opts.signal?.aborted) throw new CriuError('CRIU_FAILED', action, `criu ${action}: cancelled before start`, null, []);
  let result;
  try {
    result = await exec(argv.file, argv.args, { timeoutMs: opts.timeoutMs, allowFailure: true });
  } catch (err) {
    if (err instanceof CommandError && err.code === 'EXEC_SPAWN') throw new CriuError('CRIU_NOT_INSTALLED', action, `criu ${action}: ${err.message}`, null, []);
    if (err instanceof CommandError && err.code === 'EXEC_TIMEOUT') throw new CriuError('CRIU_TIMEOUT', action, `criu ${action}: ${err.message}`, null, [], opts.logPath);
    throw err;
  }
  let log = '';
  if (opts.logPath) log = await readFile(opts.logPath, 'utf8').catch(() => '');
  const text = `${log}\n${result.stdout}\n${result.stderr}`;
  const failure = criuFailure(action, result.code, text, opts.logPath);
  if (failure) throw failure;
  return parseCriuOutput(text);
}

interface MigrationState {
  lastPreDump?: string;
  restoredPid?: number;
}

export class CriuExecutor implements Executor {
  readonly name = 'criu' as const;
  readonly capabilities = { preCopy: true, tcpEstablished: true };
  private readonly opts: CriuExecutorOptions;
  private readonly state = new Map<string, MigrationState>();

  constructor(opts: CriuExecutorOptions = {}) {
    this.opts = opts;
  }

  private st(ctx: ExecutorContext): MigrationState {
    let s = this.state.get(ctx.migrationId);
    if (!s) this.state.set(ctx.migrationId, (s = {}));
    return s;
  }

  private common(ctx: ExecutorContext): CriuCommonOptions {
    const c: CriuCommonOptions = {};
    if (this.opts.criu) c.criu = this.opts.criu;
    if (this.opts.shellJob) c.shellJob = true;
    if (this.opts.fileLocks) c.fileLocks = true;
    if (this.opts.pageServer) c.pageServer = this.opts.pageServer;
    if (this.opts.extraArgs) c.extraArgs = this.opts.extraArgs;
    if (this.opts.enterNetns !== false && ctx.service.netns) c.netns = ctx.service.netns;
    return c;
  }

  private timeout(): number {
    return this.opts.timeoutMs ?? 120_000;
  }

  private pid(ctx: ExecutorContext): number {
    const pid = ctx.service.pid;
    if (pid === undefined || !Number.isInteger(pid) || pid <= 0) throw new CriuError('CRIU_NO_PROCESS', 'dump', `service ${ctx.service.name}: no pid to checkpoint`, null, []);
    if (!isAlive(pid)) throw new CriuError('CRIU_NO_PROCESS', 'dump', `service ${ctx.service.name}: pid ${pid} is not running`, null, []);
    return pid;
  }

  async prepare(ctx: ExecutorContext, role: 'source' | 'destination'): Promise<void> {
    await runCriu('check', checkArgv(this.opts.criu ? { criu: this.opts.criu } : {}), { timeoutMs: 30_000, ...(ctx.signal ? { signal: ctx.signal } : {}) });
    if (role === 'source') this.pid(ctx);
    ctx.log.info({ executor: 'criu', role }, 'criu check passed');
  }

  private dumpResult(out: CriuOutput, bytes: number, wallMs: number): DumpResult {
    const d = out.dump;
    const timings: Record<string, number> = { wallMs };
    if (d.freezingUs !== undefined) timings.freezingMs = d.freezingUs / 1000;
    if (d.frozenUs !== undefined) timings.frozenMs = d.frozenUs / 1000;
    if (d.memdumpUs !== undefined) timings.memoryDumpMs = d.memdumpUs / 1000;
    if (d.memwriteUs !== undefined) timings.memoryWriteMs = d.memwriteUs / 1000;
    const res: DumpResult = { bytes, pages: d.pagesWritten ?? 0, frozenMs: (d.frozenUs ?? 0) / 1000, timings };
    if (d.pagesScanned !== undefined && d.pagesSkippedParent !== undefined) res.dirtyPages = d.pagesScanned - d.pagesSkippedParent;
    return res;
  }

  async preDump(ctx: ExecutorContext, round: number): Promise<DumpResult> {
    const s = this.st(ctx);
    await mkdir(ctx.stepDir, { recursive: true });
    const argv = preDumpArgv({ ...this.common(ctx), pid: this.pid(ctx), imagesDir: ctx.stepDir, ...(s.lastPreDump ? { prevImagesDir: relative(ctx.stepDir, join(ctx.imageDir, s.lastPreDump)) } : {}) });
    const t0 = performance.now();
    const out = await runCriu('pre-dump', argv, { timeoutMs: this.timeout(), logPath: join(ctx.stepDir, criuLogFile('pre-dump')), ...(ctx.signal ? { signal: ctx.signal } : {}) });
    s.lastPreDump = ctx.stepName;
    const res = this.dumpResult(out, await directoryBytes(ctx.stepDir), performance.now() - t0);
    ctx.log.info({ executor: 'criu', round, bytes: res.bytes, pages: res.pages }, 'criu pre-dump done');
    return res;
  }

  async dump(ctx: ExecutorContext): Promise<DumpResult> {
    const s = this.st(ctx);
    await mkdir(ctx.stepDir, { recursive: true });
    const argv = dumpArgv({ ...this.common(ctx), pid: this.pid(ctx), imagesDir: ctx.stepDir, ...(s.lastPreDump ? { prevImagesDir: relative(ctx.stepDir, join(ctx.imageDir, s.lastPreDump)) } : {}) });
    const t0 = performance.now();
    // A failed `criu dump` resumes the tree itself (cr-dump.c: unfreeze on error), so nothing to thaw.
    const out = await runCriu('dump', argv, { timeoutMs: this.timeout(), logPath: join(ctx.stepDir, criuLogFile('dump')), ...(ctx.signal ? { signal: ctx.signal } : {}) });
    const res = this.dumpResult(out, await directoryBytes(ctx.stepDir), performance.now() - t0);
    ctx.log.info({ executor: 'criu', bytes: res.bytes, pages: res.pages, frozenMs: res.frozenMs }, 'criu dump done, source left stopped');
    return res;
  }

  async restore(ctx: ExecutorContext): Promise<RestoreResult> {
    const images = join(ctx.imageDir, this.opts.dumpStepName ?? 'dump');
    const dir = ctx.stepDir;
    await mkdir(dir, { recursive: true });
    const pidFile = join(dir, 'restored.pid');
    const t0 = performance.now();
    const out = await runCriu('restore', restoreArgv({ ...this.common(ctx), imagesDir: images, pidFile, workDir: dir }), {
      timeoutMs: this.timeout(),
      logPath: join(dir, criuLogFile('restore')),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    if (!Number.isInteger(pid) || pid <= 0) throw new CriuError('CRIU_FAILED', 'restore', `criu restore: pid file ${pidFile} holds no pid`, 0, []);
    this.st(ctx).restoredPid = pid;
    const timings: Record<string, number> = { wallMs: performance.now() - t0 };
    if (out.restore.restoreUs !== undefined) timings.restoreMs = out.restore.restoreUs / 1000;
    if (out.restore.forkingUs !== undefined) timings.forkingMs = out.restore.forkingUs / 1000;
    const sockets = (await readFile(join(dir, criuLogFile('restore')), 'utf8').catch(() => '')).split('\n').filter((l) => /Restoring TCP connection/.test(l)).length;
    ctx.log.info({ executor: 'criu', pid, sockets }, 'criu restore done, tree left stopped');
    return { pid, sockets, timings };
  }

  async resume(ctx: ExecutorContext): Promise<void> {
    const pid = this.st(ctx).restoredPid;
    if (pid === undefined) throw new CriuError('CRIU_NO_PROCESS', 'restore', `resume: nothing was restored for migration ${ctx.migrationId}`, null, []);
    await signalTree(pid, 'SIGCONT');
  }

  async release(ctx: ExecutorContext): Promise<void> {
    const pid = ctx.service.pid;
    if (pid !== undefined && isAlive(pid)) await signalTree(pid, 'SIGKILL');
    this.state.delete(ctx.migrationId);
  }

  async abort(ctx: ExecutorContext, role: 'source' | 'destination'): Promise<void> {
    const s = this.st(ctx);
    if (role === 'source') {
      const pid = ctx.service.pid;
      if (pid !== undefined && isAlive(pid)) await signalTree(pid, 'SIGCONT');
    } else if (s.restoredPid !== undefined && isAlive(s.restoredPid)) {
      await signalTree(s.restoredPid, 'SIGKILL');
    }
    this.state.delete(ctx.migrationId);
  }

  /** Destination: a page server for the next round's pages (option `pageServer`). Returns its pid. */
  async startPageServer(ctx: ExecutorContext): Promise<number> {
    const ps = this.opts.pageServer;
    if (!ps) throw new CriuError('CRIU_USAGE', 'page-server', 'startPageServer: no pageServer option configured', null, []);
    await mkdir(ctx.stepDir, { recursive: true });
    const pidFile = join(ctx.stepDir, 'page-server.pid');
    await runCriu('page-server', pageServerArgv({ ...this.common(ctx), imagesDir: ctx.stepDir, port: ps.port, address: ps.address, pidFile }), {
      timeoutMs: 30_000,
      logPath: join(ctx.stepDir, criuLogFile('page-server')),
    });
    return Number((await readFile(pidFile, 'utf8')).trim());
  }
}

export function createExecutor(opts: ExecutorOptions = {}): Executor {
  return new CriuExecutor(options(opts));
}
