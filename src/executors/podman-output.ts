/**
 * Reading what Podman 4.3 prints: the `--print-stats` JSON (cmd/podman/containers/checkpoint.go and
 * restore.go: times in microseconds), its logrus lines (`time="..." level=error msg="..."`) and its
 * final `Error: ...` line, mapped to typed errors with stable codes. Pure.
 */
import { CoatError } from '../errors.js';

/** `podman container checkpoint --print-stats` (pkg/domain/entities CheckpointReport). */
export interface PodmanCheckpointStats {
  podmanUs?: number;
  runtimeUs?: number;
  freezingUs?: number;
  frozenUs?: number;
  memdumpUs?: number;
  memwriteUs?: number;
  pagesScanned?: number;
  pagesWritten?: number;
  containerId?: string;
}

/** `podman container restore --print-stats`. */
export interface PodmanRestoreStats {
  podmanUs?: number;
  runtimeUs?: number;
  restoreUs?: number;
  forkingUs?: number;
  pagesRestored?: number;
  containerId?: string;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Finds the JSON object Podman prints (it may follow other lines) and parses it; undefined if none. */
function jsonOf(stdout: string): Record<string, unknown> | undefined {
  const start = stdout.indexOf('{');
  const end = stdout.lastIndexOf('}');
  if (start < 0 || end < start) return undefined;
  try {
    const v: unknown = JSON.parse(stdout.slice(start, end + 1));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function firstContainer(j: Record<string, unknown>): Record<string, unknown> | undefined {
  const list = j.container_statistics;
  if (!Array.isArray(list) || list.length === 0) return undefined;
  const c: unknown = list[0];
  return c !== null && typeof c === 'object' ? (c as Record<string, unknown>) : undefined;
}

function set<T extends object>(target: T, key: keyof T, v: unknown): void {
  const n = typeof v === 'string' ? v : num(v);
  if (n !== undefined) (target as Record<string, unknown>)[key as string] = n;
}

export function parseCheckpointStats(stdout: string): PodmanCheckpointStats {
  const out: PodmanCheckpointStats = {};
  const j = jsonOf(stdout);
  if (!j) return out;
  set(out, 'podmanUs', j.podman_checkpoint_duration);
  const c = firstContainer(j);
  if (c) {
    set(out, 'containerId', c.Id ?? c.id);
    set(out, 'runtimeUs', c.runtime_checkpoint_duration);
    const s = c.criu_statistics as Record<string, unknown> | undefined;
    if (s && typeof s === 'object') {
      set(out, 'freezingUs', s.freezing_time);
      set(out, 'frozenUs', s.frozen_time);
      set(out, 'memdumpUs', s.memdump_time);
      set(out, 'memwriteUs', s.memwrite_time);
      set(out, 'pagesScanned', s.pages_scanned);
      set(out, 'pagesWritten', s.pages_written);
    }
  }
  return out;
}

export function parseRestoreStats(stdout: string): PodmanRestoreStats {
  const out: PodmanRestoreStats = {};
  const j = jsonOf(stdout);
  if (!j) return out;
  set(out, 'podmanUs', j.podman_restore_duration);
  const c = firstContainer(j);
  if (c) {
    set(out, 'containerId', c.Id ?? c.id);
    set(out, 'runtimeUs', c.runtime_restore_duration);
    const s = c.criu_statistics as Record<string, unknown> | undefined;
    if (s && typeof s === 'object') {
      set(out, 'restoreUs', s.restore_time);
      set(out, 'forkingUs', s.forking_time);
      set(out, 'pagesRestored', s.pages_restored);
    }
  }
  return out;
}

export interface PodmanMessages {
  /** logrus `level=error` messages, unescaped. */
  errors: string[];
  /** The final "Error: ..." line, without the prefix. */
  final?: string;
  /** CRIU's log file named by "log file: PATH" (checkpoint/restore failures). */
  criuLog?: string;
}

export function parsePodmanStderr(stderr: string): PodmanMessages {
  const out: PodmanMessages = { errors: [] };
  for (const line of stderr.split('\n')) {
    const lr = /level=error msg="((?:[^"\\]|\\.)*)"/.exec(line);
    if (lr) {
      let msg: string;
      try {
        msg = JSON.parse(`"${lr[1]}"`) as string;
      } catch {
        msg = lr[1]!;
      }
      out.errors.push(msg);
      const log = /log file: (\S+)/.exec(msg);
      if (log) out.criuLog = log[1]!;
      continue;
    }
    const fin = /^Error: (.*)$/.exec(line.trim());
    if (fin) out.final = fin[1]!;
  }
  return out;
}

export type PodmanErrorCode =
  /** podman is not installed. */
  | 'PODMAN_NOT_INSTALLED'
  /** No container of that name or id. */
  | 'PODMAN_NO_CONTAINER'
  /** Checkpointing needs root. */
  | 'PODMAN_ROOTLESS'
  /** --pre-checkpoint / --with-previous need CRIU's memory tracking, which this system lacks. */
  | 'PODMAN_NO_MEMORY_TRACKING'
  /** CRIU failed under the runtime; `criuLog` names its log, `cause` is CRIU's root cause if readable. */
  | 'PODMAN_CRIU_FAILED'
  /** The checkpoint archive to import cannot be read. */
  | 'PODMAN_IMPORT'
  /** The OCI runtime refused to create or start the container (rlimits, permissions). */
  | 'PODMAN_RUNTIME'
  /** podman did not finish before its deadline. */
  | 'PODMAN_TIMEOUT'
  /** Any other failure. */
  | 'PODMAN_FAILED';

export class PodmanError extends CoatError {
  constructor(
    code: PodmanErrorCode,
    readonly step: string,
    message: string,
    readonly exitCode: number | null,
    readonly messages: PodmanMessages,
    readonly criuCause?: string,
  ) {
    super(code, message);
  }
}

// Podman's own messages (libpod, cmd/podman/containers): define.ErrNoSuchCtr "no such container",
// "checkpointing a container requires root", "system (architecture/kernel/CRIU) does not support
// memory tracking", "criu failed: type DUMP errno 0\nlog file: ...", "failed to open checkpoint
// archive ... for import", runc's "runc create failed".
const RULES: [PodmanErrorCode, RegExp][] = [
  ['PODMAN_NO_CONTAINER', /no such container|no container with name or ID/],
  ['PODMAN_ROOTLESS', /requires root/],
  ['PODMAN_NO_MEMORY_TRACKING', /does not support memory tracking/],
  ['PODMAN_IMPORT', /failed to open checkpoint archive|failed extracting runtime information|for import/],
  ['PODMAN_CRIU_FAILED', /criu failed|CRIU|checkpoint.*failed: exit status|restore.*failed: exit status/],
  ['PODMAN_RUNTIME', /runc create failed|OCI permission denied|OCI runtime error/],
];

/**
 * A failed podman run as a typed error (undefined on exit 0). `criuCause` is the root cause read
 * from CRIU's log by the caller, when the log named in the output was readable.
 */
export function podmanFailure(step: string, exitCode: number | null, stderr: string, criuCause?: string): PodmanError | undefined {
  if (exitCode === 0) return undefined;
  const m = parsePodmanStderr(stderr);
  const all = [...m.errors, m.final ?? ''].join('\n');
  let code: PodmanErrorCode = 'PODMAN_FAILED';
  for (const [c, re] of RULES) {
    if (re.test(all)) {
      code = c;
      break;
    }
  }
  const text = m.final ?? m.errors[m.errors.length - 1] ?? stderr.trim().split('\n').pop() ?? '';
  const why = criuCause ? `; CRIU: ${criuCause}` : m.criuLog ? `; CRIU log ${m.criuLog}` : '';
  return new PodmanError(code, step, `podman ${step}: ${text.slice(0, 400)}${why}${exitCode !== null ? ` (exit ${exitCode})` : ''}`, exitCode, m, criuCause);
}
