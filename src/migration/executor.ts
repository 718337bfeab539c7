/**
 * The checkpoint/restore executor interface, one for every way of moving a service: `tcp-repair`
 * (built in), `criu`, `podman`, `hooks`. The orchestrator drives it through the agents, step by
 * step, at the precise moments of the migration timeline (design.md, "Timeline of one migration"):
 *
 *   source:       prepare -> preDump* -> dump ........................ release | abort
 *   destination:  prepare ..................... restore -> resume     | abort
 *
 * Contract (CRIU's soccr shape: explicit sequences, stated preconditions):
 * - `dump` is called only after the switches hold the service's packets (hold flows + barrier), so
 *   nothing reaches the frozen sockets. After `dump` the source is frozen, NOT killed, and its
 *   sockets stay in repair mode, so nothing it does sends a FIN or RST; `abort` thaws it untouched.
 * - `restore` leaves the restored sockets in repair mode; `resume` takes them out and lets the
 *   service run. `release` (after the orchestrator commits) disposes of the frozen source silently.
 * - Each image-producing step writes only into `ctx.stepDir` (a fresh directory per step, relative
 *   to the image root as `ctx.stepName`); the agent streams that directory to the destination,
 *   where it lands at the same relative path, so `restore` sees every round under `ctx.imageDir`.
 * - Every method throws a typed `CoatError` on failure and leaves the service as it found it where
 *   it can (a failed `dump` thaws the source before throwing).
 */
import type { Logger } from '../log.js';

/**
 * The image step directory of pre-copy round N: `pre-N` under the migration's image root (the
 * final dump's is `dump`). The stream lands it at the same relative name, so the destination's
 * restore finds every round.
 */
export function preCopyStepName(round: number): string {
  return `pre-${round}`;
}

/** The pre-copy round an image step directory holds (`pre-N` -> N), or undefined for any other name. */
export function preCopyRound(stepName: string): number | undefined {
  const m = /^pre-(\d+)$/.exec(stepName);
  return m ? Number(m[1]) : undefined;
}

export const EXECUTOR_NAMES = ['tcp-repair', 'criu', 'podman', 'hooks'] as const;
export type ExecutorName = (typeof EXECUTOR_NAMES)[number];

/** The service being moved, as the agent on a host sees it. */
export interface ServiceSpec {
  /** The endpoint name from the topology, e.g. "svc". */
  name: string;
  /** Network namespace the service runs in on this host. */
  netns: string;
  /** Overlay address and MAC (kept across the move unless `--new-mac`). */
  ip: string;
  mac: string;
  /** Main pid on the source (tcp-repair, criu, hooks). */
  pid?: number;
  /** Container name or id (podman). */
  container?: string;
  /** Directory holding the service's application state (tcp-repair's SDK writes it). */
  stateDir?: string;
  /** argv that starts the service at the destination (tcp-repair: it gets the restored sockets). */
  command?: string[];
  /** Extra environment for the service and hooks. */
  env?: Record<string, string>;
}

export interface ExecutorContext {
  migrationId: string;
  service: ServiceSpec;
  /** Root of this migration's image on this host. */
  imageDir: string;
  /** Where the current step writes (a fresh directory under imageDir). */
  stepDir: string;
  /** Relative name of the current step's directory, e.g. "pre-1" or "dump". */
  stepName: string;
  log: Logger;
  /** Aborts a long step (deadline passed, migration cancelled). */
  signal?: AbortSignal;
}

export interface DumpResult {
  /** Bytes written into stepDir. */
  bytes: number;
  /** Memory pages written in this step (pre-copy stop rule and PAM calibration). */
  pages: number;
  /** Pages dirtied since the previous round, where the executor tracks it. */
  dirtyPages?: number;
  /** TCP sockets captured (dump only). */
  sockets?: number;
  /** Time the service was frozen during this step, ms. */
  frozenMs: number;
  /** Sub-step timings for the report and for calibration, ms. */
  timings: Record<string, number>;
}

export interface RestoreResult {
  /** Pid of the restored service at the destination. */
  pid?: number;
  sockets: number;
  timings: Record<string, number>;
}

export interface ExecutorCapabilities {
  /** Supports iterative pre-copy (`preDump`). */
  preCopy: boolean;
  /** Keeps TCP connections established across the move. */
  tcpEstablished: boolean;
}

export interface Executor {
  readonly name: ExecutorName;
  readonly capabilities: ExecutorCapabilities;
  /** Checks the tools and the service are usable on this host; no side effects on the service. */
  prepare(ctx: ExecutorContext, role: 'source' | 'destination'): Promise<void>;
  /** One pre-copy round while the service runs: only what changed since the previous round. */
  preDump(ctx: ExecutorContext, round: number): Promise<DumpResult>;
  /** Freeze and write the final image; the source stays frozen with sockets in repair mode. */
  dump(ctx: ExecutorContext): Promise<DumpResult>;
  /**
   * Destination, optional: returns once what the pre-copy rounds sent so far is in place (an
   * executor that prepares the state in the background, as tcp-repair does, finishes that work
   * here, outside the downtime, instead of in `restore`).
   */
  settle?(ctx: ExecutorContext): Promise<void>;
  /** Recreate the service from ctx.imageDir; its sockets stay in repair mode. */
  restore(ctx: ExecutorContext): Promise<RestoreResult>;
  /** Take restored sockets out of repair mode; the service runs at the destination. */
  resume(ctx: ExecutorContext): Promise<void>;
  /** After commit: dispose of the frozen source without a FIN or RST reaching the client. */
  release(ctx: ExecutorContext): Promise<void>;
  /** Undo: at the source thaw the service untouched; at the destination remove what restore made. */
  abort(ctx: ExecutorContext, role: 'source' | 'destination'): Promise<void>;
}

/** Options from the CLI or topology, passed to the chosen executor's factory. */
export type ExecutorOptions = Record<string, unknown>;

export interface ExecutorModule {
  createExecutor(options: ExecutorOptions): Executor;
}

/**
 * The factory: `src/executors/NAME.ts` exports `createExecutor`. Loaded on demand so a host that
 * never uses Podman never loads its module.
 */
export async function createExecutor(name: ExecutorName, options: ExecutorOptions = {}): Promise<Executor> {
  if (!EXECUTOR_NAMES.includes(name)) throw new TypeError(`unknown executor '${String(name)}' (known: ${EXECUTOR_NAMES.join(', ')})`);
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const mod = (await import(new URL(`../executors/${name}${ext}`, import.meta.url).href)) as ExecutorModule;
  return mod.createExecutor(options);
}
