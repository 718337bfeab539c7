/**
 * The `podman` executor: Podman's checkpoint/restore (CRIU under runc) of the service's container,
 * with its established TCP connections, as COAT and MOSE drove it (background.md §1, §2, §5).
 *
 * Steps (argv in podman-argv.ts, output parsing in podman-output.ts):
 * - prepare: podman must run, and CRIU must pass `criu check` (Podman's checkpoint is CRIU); source:
 *   the container must be running.
 * - preDump(round): `container checkpoint --pre-checkpoint --export STEPDIR/pre-checkpoint.tar`.
 *   Podman 4.3 chains ONE level: every pre-checkpoint is a full memory pre-dump replacing the last, and
 *   the final checkpoint is incremental to the latest; more than one round only helps when the state
 *   shrinks. The planner should be calibrated (and limited) accordingly.
 * - dump: `container checkpoint --tcp-established --keep [--with-previous] --export STEPDIR/checkpoint.tar`.
 *   Podman stops the container after the checkpoint (CRIU kills the tasks while their sockets are in
 *   repair mode, so nothing reaches the client). It cannot be left frozen, so an abort at the source
 *   restores it locally from the kept checkpoint (`container restore --tcp-established --keep`).
 * - restore: `container restore --import IMAGEDIR/dump/checkpoint.tar [--import-previous
 *   IMAGEDIR/pre-N/pre-checkpoint.tar] --tcp-established`. Podman restores AND resumes in one step
 *   (it has no "leave stopped" on restore): the restored service runs at once, while the switches still
 *   hold the client's packets, so `resume` has nothing left to do.
 * - release (source, after commit): `container rm --force` of the stopped source.
 * - abort: source: local restore if it was checkpointed; destination: `container rm --force`.
 */
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CommandError, exec, type ExecResult } from '../exec.js';
import { preCopyRound, type DumpResult, type Executor, type ExecutorContext, type ExecutorOptions, type RestoreResult } from '../migration/executor.js';
import { checkArgv } from './criu-argv.js';
import { criuFailure } from './criu-log.js';
import { runCriu } from './criu.js';
import { checkpointArgv, inspectRunningArgv, preCheckpointArgv, removeArgv, restoreArgv, restoreLocalArgv, COMPRESSIONS, type Compression, type PodmanArgv, type PodmanCommon } from './podman-argv.js';
import { parseCheckpointStats, parseRestoreStats, podmanFailure, PodmanError, type PodmanCheckpointStats } from './podman-output.js';

export const PRE_CHECKPOINT_FILE = 'pre-checkpoint.tar';
export const CHECKPOINT_FILE = 'checkpoint.tar';

export interface PodmanExecutorOptions extends PodmanCommon {
  compress?: Compression;
  /** Deadline of one podman run, ms (default 180 s). */
  timeoutMs?: number;
  /** Step name of the final dump under the image root (default "dump"). */
  dumpStepName?: string;
  /** Name of the restored container at the destination (default: the service's container name). */
  restoreName?: string;
}

function options(o: ExecutorOptions): PodmanExecutorOptions {
  const out: PodmanExecutorOptions = {};
  if (typeof o.podman === 'string') out.podman = o.podman;
  if (typeof o.runtime === 'string') out.runtime = o.runtime;
  if (typeof o.compress === 'string' && (COMPRESSIONS as readonly string[]).includes(o.compress)) out.compress = o.compress as Compression;
  if (typeof o.timeoutMs === 'number') out.timeoutMs = o.timeoutMs;
  if (typeof o.dumpStepName === 'string') out.dumpStepName = o.dumpStepName;
  if (typeof o.restoreName === 'string') out.restoreName = o.restoreName;
  return out;
}

/** The newest pre-checkpoint archive under the image root: pre-N with the largest N that has one. */
export async function latestPreCheckpoint(imageDir: string): Promise<string | undefined> {
  let entries: string[];
  try {
    entries = await readdir(imageDir);
  } catch {
    return undefined;
  }
  const rounds = entries
    .map((e) => ({ e, n: preCopyRound(e) }))
    .filter((x): x is { e: string; n: number } => x.n !== undefined)
    .sort((a, b) => b.n - a.n);
  for (const { e } of rounds) {
    const f = join(imageDir, e, PRE_CHECKPOINT_FILE);
    if (await stat(f).then((s) => s.isFile(), () => false)) return f;
  }
  return undefined;
}

interface MigrationState {
  preCheckpointed?: boolean;
  checkpointed?: boolean;
  restoredName?: string;
}

export class PodmanExecutor implements Executor {
  readonly name = 'podman' as const;
  readonly capabilities = { preCopy: true, tcpEstablished: true };
  private readonly state = new Map<string, MigrationState>();

  constructor(private readonly opts: PodmanExecutorOptions = {}) {}

  private st(ctx: ExecutorContext): MigrationState {
    let s = this.state.get(ctx.migrationId);
    if (!s) this.state.set(ctx.migrationId, (s = {}));
    return s;
  }

  private common(): PodmanCommon {
    const c: PodmanCommon = {};
    if (this.opts.podman) c.podman = this.opts.podman;
    if (this.opts.runtime) c.runtime = this.opts.runtime;
    return c;
  }

  private container(ctx: ExecutorContext): string {
    const c = ctx.service.container;
    if (!c) throw new PodmanError('PODMAN_NO_CONTAINER', 'prepare', `service ${ctx.service.name}: no container name in its spec`, null, { errors: [] });
    return c;
  }

  /** Runs podman; on failure reads CRIU's log (named in the output) for the root cause. */
  private async run(step: string, argv: PodmanArgv, signal?: AbortSignal): Promise<ExecResult> {
    if (signal?.aborted) throw new PodmanError('PODMAN_FAILED', step, `podman ${step}: cancelled before start`, null, { errors: [] });
    let r: ExecResult;
    try {
      r = await exec(argv.file, argv.args, { timeoutMs: this.opts.timeoutMs ?? 180_000, allowFailure: true });
    } catch (err) {
      if (err instanceof CommandError && err.code === 'EXEC_SPAWN') throw new PodmanError('PODMAN_NOT_INSTALLED', step, `podman ${step}: ${err.message}`, null, { errors: [] });
      if (err instanceof CommandError && err.code === 'EXEC_TIMEOUT') throw new PodmanError('PODMAN_TIMEOUT', step, `podman ${step}: ${err.message}`, null, { errors: [] });
      throw err;
    }
    if (r.code === 0) return r;
    const logPath = /log file: (\S+?)(?:\\n|"|\s|$)/.exec(r.stderr)?.[1];
    let cause: string | undefined;
    if (logPath) {
      const log = await readFile(logPath, 'utf8').catch(() => undefined);
      const e = log === undefined ? undefined : criuFailure(step.includes('restore') ? 'restore' : 'dump', 1, log);
      if (e) cause = `${e.code}: ${e.message}`;
    }
    throw podmanFailure(step, r.code, r.stderr, cause)!;
  }

  async prepare(ctx: ExecutorContext, role: 'source' | 'destination'): Promise<void> {
    const v = await this.run('version', { file: this.opts.podman ?? 'podman', args: ['--version'] }, ctx.signal);
    await runCriu('check', checkArgv(), { timeoutMs: 30_000 });
    if (role === 'source') {
      const r = await this.run('inspect', inspectRunningArgv({ ...this.common(), container: this.container(ctx) }), ctx.signal);
      if (r.stdout.trim() !== 'true') throw new PodmanError('PODMAN_FAILED', 'prepare', `container ${this.container(ctx)} is not running`, 0, { errors: [] });
    }
    ctx.log.info({ executor: 'podman', role, version: v.stdout.trim() }, 'podman ready');
  }

  private dumpResult(s: PodmanCheckpointStats, bytes: number, wallMs: number): DumpResult {
    const timings: Record<string, number> = { wallMs };
    if (s.podmanUs !== undefined) timings.checkpointMs = s.podmanUs / 1000;
    if (s.runtimeUs !== undefined) timings.runtimeMs = s.runtimeUs / 1000;
    if (s.freezingUs !== undefined) timings.freezingMs = s.freezingUs / 1000;
    if (s.frozenUs !== undefined) timings.frozenMs = s.frozenUs / 1000;
    if (s.memdumpUs !== undefined) timings.memoryDumpMs = s.memdumpUs / 1000;
    if (s.memwriteUs !== undefined) timings.memoryWriteMs = s.memwriteUs / 1000;
    return { bytes, pages: s.pagesWritten ?? 0, frozenMs: (s.frozenUs ?? 0) / 1000, timings };
  }

  async preDump(ctx: ExecutorContext, round: number): Promise<DumpResult> {
    await mkdir(ctx.stepDir, { recursive: true });
    const file = join(ctx.stepDir, PRE_CHECKPOINT_FILE);
    const t0 = performance.now();
    const r = await this.run('pre-checkpoint', preCheckpointArgv({ ...this.common(), container: this.container(ctx), exportFile: file, ...(this.opts.compress ? { compress: this.opts.compress } : {}) }), ctx.signal);
    this.st(ctx).preCheckpointed = true;
    const res = this.dumpResult(parseCheckpointStats(r.stdout), (await stat(file)).size, performance.now() - t0);
    ctx.log.info({ executor: 'podman', round, bytes: res.bytes }, 'podman pre-checkpoint done');
    return res;
  }

  async dump(ctx: ExecutorContext): Promise<DumpResult> {
    await mkdir(ctx.stepDir, { recursive: true });
    const s = this.st(ctx);
    const file = join(ctx.stepDir, CHECKPOINT_FILE);
    const t0 = performance.now();
    const r = await this.run(
      'checkpoint',
      checkpointArgv({ ...this.common(), container: this.container(ctx), exportFile: file, withPrevious: s.preCheckpointed === true, ...(this.opts.compress ? { compress: this.opts.compress } : {}) }),
      ctx.signal,
    );
    s.checkpointed = true;
    const res = this.dumpResult(parseCheckpointStats(r.stdout), (await stat(file)).size, performance.now() - t0);
    ctx.log.info({ executor: 'podman', bytes: res.bytes, frozenMs: res.frozenMs }, 'podman checkpoint done');
    return res;
  }

  async restore(ctx: ExecutorContext): Promise<RestoreResult> {
    const importFile = join(ctx.imageDir, this.opts.dumpStepName ?? 'dump', CHECKPOINT_FILE);
    const previous = await latestPreCheckpoint(ctx.imageDir);
    const name = this.opts.restoreName ?? ctx.service.container;
    const t0 = performance.now();
    const r = await this.run('restore', restoreArgv({ ...this.common(), importFile, ...(previous ? { importPrevious: previous } : {}), ...(name ? { name } : {}) }), ctx.signal);
    const stats = parseRestoreStats(r.stdout);
    this.st(ctx).restoredName = name ?? stats.containerId;
    const timings: Record<string, number> = { wallMs: performance.now() - t0 };
    if (stats.podmanUs !== undefined) timings.podmanRestoreMs = stats.podmanUs / 1000;
    if (stats.runtimeUs !== undefined) timings.runtimeMs = stats.runtimeUs / 1000;
    if (stats.restoreUs !== undefined) timings.restoreMs = stats.restoreUs / 1000;
    ctx.log.info({ executor: 'podman', container: this.st(ctx).restoredName }, 'podman restore done (running)');
    // Podman does not report the number of TCP connections it restored.
    return { sockets: 0, timings };
  }

  async resume(ctx: ExecutorContext): Promise<void> {
    // Podman's restore already resumed the container (see the module comment).
    ctx.log.debug({ executor: 'podman' }, 'resume: podman restored the container running');
  }

  async release(ctx: ExecutorContext): Promise<void> {
    await this.run('rm', removeArgv({ ...this.common(), container: this.container(ctx) }), ctx.signal);
    this.state.delete(ctx.migrationId);
  }

  async abort(ctx: ExecutorContext, role: 'source' | 'destination'): Promise<void> {
    const s = this.st(ctx);
    if (role === 'source') {
      if (s.checkpointed) await this.run('restore-local', restoreLocalArgv({ ...this.common(), container: this.container(ctx) }), ctx.signal);
    } else if (s.restoredName) {
      await this.run('rm', removeArgv({ ...this.common(), container: s.restoredName }), ctx.signal);
    }
    this.state.delete(ctx.migrationId);
  }
}

export function createExecutor(opts: ExecutorOptions = {}): Executor {
  return new PodmanExecutor(options(opts));
}
