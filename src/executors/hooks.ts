/**
 * The `hooks` executor: every step is a user command, for services coat has no built-in way to
 * checkpoint (a database with its own snapshot tool, a VM, a service that can hand over its state).
 *
 * Configuration (executor options, e.g. from the topology or the CLI):
 *   { "hooks": { "dump": "...", "restore": "...", "prepare": "...", "preDump": "...", "resume": "...",
 *                "release": "...", "abort": "..." },      string: run by /bin/sh -c; array: argv
 *     "dir": "/etc/coat/hooks/svc",     or executables named prepare, pre-dump, dump, restore, resume,
 *                                       release, abort in this directory (explicit hooks win)
 *     "timeoutMs": 60000,               deadline of one hook (its whole process group is killed)
 *     "stepTimeoutMs": { "dump": 5000 }, per-step deadlines
 *     "inNetns": false,                 run hooks inside the service's netns (ip netns exec)
 *     "tcpEstablished": false }         declare that the hooks keep TCP connections
 * `dump` and `restore` are required; a missing optional hook is a successful no-op. `preDump` present
 * means the executor supports pre-copy.
 *
 * Environment of every hook (the service's own `env` is passed too):
 *   COAT_MIGRATION_ID   the migration's id
 *   COAT_STEP           prepare | pre-dump | dump | restore | resume | release | abort
 *   COAT_ROLE           source | destination
 *   COAT_ROUND          pre-dump round (0-based; pre-dump only)
 *   COAT_IMAGE_DIR      this migration's image root on this host (every round is under it)
 *   COAT_STEP_DIR       where this step writes (created before the hook runs; what it writes there is
 *                       streamed to the destination); COAT_STEP_NAME is its name under the root
 *   COAT_RESULT_FILE    optional: the hook may write JSON here: {"pages", "dirtyPages", "sockets",
 *                       "frozenMs", "pid", "timings": {name: ms}}
 *   COAT_SERVICE_NAME, COAT_SERVICE_NETNS, COAT_SERVICE_IP, COAT_SERVICE_MAC, COAT_SERVICE_PID,
 *   COAT_SERVICE_CONTAINER, COAT_SERVICE_STATE_DIR, COAT_SERVICE_COMMAND (JSON array): the service
 *   spec (absent fields are unset)
 * Exit status 0 is success; anything else, a deadline or a bad result file is a typed HookError.
 * The hooks must honour executor.ts's contract themselves (dump leaves the source frozen, abort thaws).
 */
import { access, constants, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CoatError } from '../errors.js';
import type { DumpResult, Executor, ExecutorContext, ExecutorOptions, RestoreResult } from '../migration/executor.js';
import { directoryBytes } from './criu-proc.js';
import { runHook, type HookRunResult } from './hooks-run.js';

export const HOOK_STEPS = ['prepare', 'preDump', 'dump', 'restore', 'resume', 'release', 'abort'] as const;
export type HookStep = (typeof HOOK_STEPS)[number];
/** The name of each step in COAT_STEP and as a file in `dir`. */
export const HOOK_FILE_NAMES: Record<HookStep, string> = {
  prepare: 'prepare',
  preDump: 'pre-dump',
  dump: 'dump',
  restore: 'restore',
  resume: 'resume',
  release: 'release',
  abort: 'abort',
};
const REQUIRED: HookStep[] = ['dump', 'restore'];

export type HookCommand = string | string[];

export interface HooksExecutorOptions {
  hooks?: Partial<Record<HookStep, HookCommand>>;
  dir?: string;
  timeoutMs?: number;
  stepTimeoutMs?: Partial<Record<HookStep, number>>;
  inNetns?: boolean;
  tcpEstablished?: boolean;
  /** Environment the hooks inherit besides COAT_* (default: PATH, HOME, LANG from this process). */
  baseEnv?: Record<string, string>;
}

export type HookErrorCode =
  /** No hook configured for a required step (dump, restore). */
  | 'HOOK_MISSING'
  /** The hook exited with a non-zero status or was killed by a signal. */
  | 'HOOK_FAILED'
  /** The hook did not finish before its deadline; its process group was killed. */
  | 'HOOK_TIMEOUT'
  /** The migration was cancelled while the hook ran; its process group was killed. */
  | 'HOOK_ABORTED'
  /** The hook could not be started (not found, not executable). */
  | 'HOOK_SPAWN'
  /** COAT_RESULT_FILE holds something that is not the documented JSON. */
  | 'HOOK_BAD_RESULT';

export class HookError extends CoatError {
  constructor(
    code: HookErrorCode,
    readonly step: HookStep,
    message: string,
    readonly exitCode: number | null = null,
    readonly stderr = '',
  ) {
    super(code, message);
  }
}

/** What a hook may report in COAT_RESULT_FILE. */
export interface HookResult {
  pages?: number;
  dirtyPages?: number;
  sockets?: number;
  frozenMs?: number;
  pid?: number;
  timings?: Record<string, number>;
}

/** Validates a hook's result JSON (pure). */
export function parseHookResult(step: HookStep, text: string): HookResult {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new HookError('HOOK_BAD_RESULT', step, `${HOOK_FILE_NAMES[step]} hook: COAT_RESULT_FILE is not JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new HookError('HOOK_BAD_RESULT', step, `${HOOK_FILE_NAMES[step]} hook: COAT_RESULT_FILE must hold a JSON object`);
  const o = v as Record<string, unknown>;
  const out: HookResult = {};
  for (const k of ['pages', 'dirtyPages', 'sockets', 'frozenMs', 'pid'] as const) {
    if (o[k] === undefined) continue;
    const n = o[k];
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw new HookError('HOOK_BAD_RESULT', step, `${HOOK_FILE_NAMES[step]} hook: result field ${k} must be a number >= 0 (got ${JSON.stringify(n)})`);
    out[k] = n;
  }
  if (o.timings !== undefined) {
    if (o.timings === null || typeof o.timings !== 'object' || Array.isArray(o.timings)) throw new HookError('HOOK_BAD_RESULT', step, `${HOOK_FILE_NAMES[step]} hook: result field timings must be an object`);
    out.timings = {};
    for (const [k, n] of Object.entries(o.timings as Record<string, unknown>)) {
      if (typeof n !== 'number' || !Number.isFinite(n)) throw new HookError('HOOK_BAD_RESULT', step, `${HOOK_FILE_NAMES[step]} hook: timings.${k} must be a number`);
      out.timings[k] = n;
    }
  }
  return out;
}

/** The documented environment of a hook (pure). */
export function hookEnv(ctx: ExecutorContext, step: HookStep, role: 'source' | 'destination', resultFile: string, base: Record<string, string>, round?: number): Record<string, string> {
  const s = ctx.service;
  const env: Record<string, string> = { ...base, ...(s.env ?? {}) };
  env.COAT_MIGRATION_ID = ctx.migrationId;
  env.COAT_STEP = HOOK_FILE_NAMES[step];
  env.COAT_ROLE = role;
  env.COAT_IMAGE_DIR = ctx.imageDir;
  env.COAT_STEP_DIR = ctx.stepDir;
  env.COAT_STEP_NAME = ctx.stepName;
  env.COAT_RESULT_FILE = resultFile;
  env.COAT_SERVICE_NAME = s.name;
  env.COAT_SERVICE_NETNS = s.netns;
  env.COAT_SERVICE_IP = s.ip;
  env.COAT_SERVICE_MAC = s.mac;
  if (s.pid !== undefined) env.COAT_SERVICE_PID = String(s.pid);
  if (s.container !== undefined) env.COAT_SERVICE_CONTAINER = s.container;
  if (s.stateDir !== undefined) env.COAT_SERVICE_STATE_DIR = s.stateDir;
  if (s.command !== undefined) env.COAT_SERVICE_COMMAND = JSON.stringify(s.command);
  if (round !== undefined) env.COAT_ROUND = String(round);
  return env;
}

/** argv of a hook command (pure): strings go through /bin/sh -c, arrays run as they are. */
export function hookArgv(cmd: HookCommand, netns?: string): string[] {
  const argv = typeof cmd === 'string' ? ['/bin/sh', '-c', cmd] : [...cmd];
  if (argv.length === 0 || argv[0] === '') throw new RangeError('hook command is empty');
  return netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;
}

function options(o: ExecutorOptions): HooksExecutorOptions {
  const out: HooksExecutorOptions = {};
  const hooks = o.hooks as Record<string, unknown> | undefined;
  if (hooks && typeof hooks === 'object') {
    out.hooks = {};
    for (const step of HOOK_STEPS) {
      const v = hooks[step] ?? hooks[HOOK_FILE_NAMES[step]];
      if (typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'))) out.hooks[step] = v as HookCommand;
    }
  }
  if (typeof o.dir === 'string') out.dir = o.dir;
  if (typeof o.timeoutMs === 'number') out.timeoutMs = o.timeoutMs;
  if (o.stepTimeoutMs && typeof o.stepTimeoutMs === 'object') out.stepTimeoutMs = o.stepTimeoutMs as Partial<Record<HookStep, number>>;
  if (typeof o.inNetns === 'boolean') out.inNetns = o.inNetns;
  if (typeof o.tcpEstablished === 'boolean') out.tcpEstablished = o.tcpEstablished;
  if (o.baseEnv && typeof o.baseEnv === 'object') out.baseEnv = o.baseEnv as Record<string, string>;
  return out;
}

export class HooksExecutor implements Executor {
  readonly name = 'hooks' as const;
  readonly capabilities: { preCopy: boolean; tcpEstablished: boolean };

  constructor(private readonly opts: HooksExecutorOptions) {
    const declaredPre = opts.hooks?.preDump !== undefined;
    // A `dir` may hold a pre-dump executable: known only on disk, so pre-copy is claimed when a dir is
    // given and checked in prepare().
    this.capabilities = { preCopy: declaredPre || opts.dir !== undefined, tcpEstablished: opts.tcpEstablished ?? false };
  }

  /** The command for a step: explicit, else an executable file in `dir`, else undefined. */
  async commandFor(step: HookStep): Promise<HookCommand | undefined> {
    const explicit = this.opts.hooks?.[step];
    if (explicit !== undefined) return explicit;
    if (!this.opts.dir) return undefined;
    const file = join(this.opts.dir, HOOK_FILE_NAMES[step]);
    return access(file, constants.X_OK).then(() => [file], () => undefined);
  }

  private baseEnv(): Record<string, string> {
    if (this.opts.baseEnv) return this.opts.baseEnv;
    const keep: Record<string, string> = {};
    for (const k of ['PATH', 'HOME', 'LANG', 'TMPDIR']) if (process.env[k] !== undefined) keep[k] = process.env[k]!;
    return keep;
  }

  /** Runs a step's hook; undefined when an optional hook is not configured. */
  private async run(ctx: ExecutorContext, step: HookStep, role: 'source' | 'destination', round?: number): Promise<{ result: HookResult; run: HookRunResult } | undefined> {
    const cmd = await this.commandFor(step);
    if (cmd === undefined) {
      if (REQUIRED.includes(step)) throw new HookError('HOOK_MISSING', step, `no ${HOOK_FILE_NAMES[step]} hook configured (hooks.${step} or ${this.opts.dir ? join(this.opts.dir, HOOK_FILE_NAMES[step]) : 'a hooks dir'})`);
      return undefined;
    }
    if (ctx.signal?.aborted) throw new HookError('HOOK_ABORTED', step, `${HOOK_FILE_NAMES[step]} hook: cancelled before start`);
    await mkdir(ctx.stepDir, { recursive: true });
    // The result file lives beside the step dir, not in it, so it is not streamed with the image.
    const resultFile = `${ctx.stepDir}.coat-hook-result.${HOOK_FILE_NAMES[step]}.json`;
    await rm(resultFile, { force: true });
    const argv = hookArgv(cmd, this.opts.inNetns && ctx.service.netns ? ctx.service.netns : undefined);
    const timeoutMs = this.opts.stepTimeoutMs?.[step] ?? this.opts.timeoutMs ?? 60_000;
    const log = ctx.log.child({ executor: 'hooks', step: HOOK_FILE_NAMES[step], role });
    let r: HookRunResult;
    try {
      r = await runHook(argv, { env: hookEnv(ctx, step, role, resultFile, this.baseEnv(), round), timeoutMs, cwd: ctx.stepDir, ...(ctx.signal ? { signal: ctx.signal } : {}) });
    } catch (err) {
      throw new HookError('HOOK_SPAWN', step, `${HOOK_FILE_NAMES[step]} hook: cannot run ${argv[0]}: ${(err as Error).message}`);
    }
    const tail = r.stderr.trim().split('\n').slice(-5).join(' | ').slice(0, 500);
    if (r.aborted) throw new HookError('HOOK_ABORTED', step, `${HOOK_FILE_NAMES[step]} hook: migration cancelled after ${Math.round(r.durationMs)} ms; its processes were killed`, null, r.stderr);
    if (r.timedOut) throw new HookError('HOOK_TIMEOUT', step, `${HOOK_FILE_NAMES[step]} hook: no exit after ${timeoutMs} ms; its processes were killed`, null, r.stderr);
    if (r.code !== 0) {
      const why = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
      throw new HookError('HOOK_FAILED', step, `${HOOK_FILE_NAMES[step]} hook ${argv.join(' ').slice(0, 200)}: ${why}${tail ? `: ${tail}` : ''}`, r.code, r.stderr);
    }
    log.info({ durationMs: Math.round(r.durationMs) }, 'hook done');
    const text = await readFile(resultFile, 'utf8').catch(() => undefined);
    await rm(resultFile, { force: true });
    return { result: text === undefined ? {} : parseHookResult(step, text), run: r };
  }

  async prepare(ctx: ExecutorContext, role: 'source' | 'destination'): Promise<void> {
    for (const step of REQUIRED) {
      if ((await this.commandFor(step)) === undefined) throw new HookError('HOOK_MISSING', step, `no ${HOOK_FILE_NAMES[step]} hook configured`);
    }
    await this.run(ctx, 'prepare', role);
  }

  private async dumpLike(ctx: ExecutorContext, step: 'preDump' | 'dump', round?: number): Promise<DumpResult> {
    const out = await this.run(ctx, step, 'source', round);
    const r = out!.result;
    const res: DumpResult = {
      bytes: await directoryBytes(ctx.stepDir),
      pages: r.pages ?? 0,
      frozenMs: r.frozenMs ?? (step === 'dump' ? out!.run.durationMs : 0),
      timings: { hookMs: out!.run.durationMs, ...(r.timings ?? {}) },
    };
    if (r.dirtyPages !== undefined) res.dirtyPages = r.dirtyPages;
    if (r.sockets !== undefined) res.sockets = r.sockets;
    return res;
  }

  async preDump(ctx: ExecutorContext, round: number): Promise<DumpResult> {
    if ((await this.commandFor('preDump')) === undefined) throw new HookError('HOOK_MISSING', 'preDump', 'pre-copy needs a pre-dump hook');
    return this.dumpLike(ctx, 'preDump', round);
  }

  async dump(ctx: ExecutorContext): Promise<DumpResult> {
    return this.dumpLike(ctx, 'dump');
  }

  async restore(ctx: ExecutorContext): Promise<RestoreResult> {
    const out = (await this.run(ctx, 'restore', 'destination'))!;
    const res: RestoreResult = { sockets: out.result.sockets ?? 0, timings: { hookMs: out.run.durationMs, ...(out.result.timings ?? {}) } };
    if (out.result.pid !== undefined) res.pid = out.result.pid;
    return res;
  }

  async resume(ctx: ExecutorContext): Promise<void> {
    await this.run(ctx, 'resume', 'destination');
  }

  async release(ctx: ExecutorContext): Promise<void> {
    await this.run(ctx, 'release', 'source');
  }

  async abort(ctx: ExecutorContext, role: 'source' | 'destination'): Promise<void> {
    await this.run(ctx, 'abort', role);
  }
}

export function createExecutor(opts: ExecutorOptions = {}): Executor {
  return new HooksExecutor(options(opts));
}
