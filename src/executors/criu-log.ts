/**
 * Reading what CRIU prints: its log lines, the success marker of each action, the statistics of
 * `--display-stats`, and the failure, mapped to a typed error with a stable code. Pure.
 *
 * Log line shapes (criu/log.c): in the -o log file every line is prefixed by a timestamp
 * "(SS.UUUUUU) "; on stderr it is not. Errors are "Error (FILE:LINE): MESSAGE", warnings
 * "Warn  (FILE:LINE): MESSAGE". Success markers (criu/cr-dump.c, cr-restore.c):
 * "Dumping finished successfully", "Pre-dumping finished successfully",
 * "Restore finished successfully." Statistics (criu/stats.c display_stats()):
 * "Freezing time: N us", "Frozen time: N us", "Memory dump time: N us", "Memory write time: N us",
 * "Memory pages scanned: N (0x..)", "Memory pages skipped from parent: N (0x..)",
 * "Memory pages written: N (0x..)"; restore: "Pages restored: N (0x..)", "Restore time: N us",
 * "Forking time: N us".
 */
import { CoatError } from '../errors.js';
import type { CriuAction } from './criu-argv.js';

export interface CriuLogError {
  /** Source file and line in CRIU, e.g. "criu/vdso.c", 381. */
  file: string;
  line: number;
  message: string;
  /** Seconds since CRIU started, where the line had a timestamp. */
  at?: number;
}

export interface CriuDumpStats {
  freezingUs?: number;
  frozenUs?: number;
  memdumpUs?: number;
  memwriteUs?: number;
  pagesScanned?: number;
  pagesSkippedParent?: number;
  pagesWritten?: number;
}

export interface CriuRestoreStats {
  pagesRestored?: number;
  restoreUs?: number;
  forkingUs?: number;
}

export interface CriuOutput {
  errors: CriuLogError[];
  warnings: CriuLogError[];
  /** Which success marker was seen, if any. */
  succeeded: CriuAction | 'check' | undefined;
  dump: CriuDumpStats;
  restore: CriuRestoreStats;
  /** Last timestamp seen, s (the action's duration as CRIU measured it). */
  lastAt?: number;
}

const LINE = /^(?:\(\s*(\d+\.\d+)\)\s+)?(Error|Warn)\s*\(([^:()]+):(\d+)\):\s?(.*)$/;
const STAT_US: [RegExp, keyof CriuDumpStats | keyof CriuRestoreStats, 'dump' | 'restore'][] = [
  [/^Freezing time: (\d+) us/, 'freezingUs', 'dump'],
  [/^Frozen time: (\d+) us/, 'frozenUs', 'dump'],
  [/^Memory dump time: (\d+) us/, 'memdumpUs', 'dump'],
  [/^Memory write time: (\d+) us/, 'memwriteUs', 'dump'],
  [/^Memory pages scanned: (\d+)/, 'pagesScanned', 'dump'],
  [/^Memory pages skipped from parent: (\d+)/, 'pagesSkippedParent', 'dump'],
  [/^Memory pages written: (\d+)/, 'pagesWritten', 'dump'],
  [/^Pages restored: (\d+)/, 'pagesRestored', 'restore'],
  [/^Restore time: (\d+) us/, 'restoreUs', 'restore'],
  [/^Forking time: (\d+) us/, 'forkingUs', 'restore'],
];

/** Parses CRIU's log file and/or its stdout+stderr (pass them concatenated). Never throws. */
export function parseCriuOutput(text: string): CriuOutput {
  const out: CriuOutput = { errors: [], warnings: [], succeeded: undefined, dump: {}, restore: {} };
  const seen = new Set<string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const ts = /^\(\s*(\d+\.\d+)\)\s+(.*)$/.exec(line);
    const body = ts ? ts[2]! : line;
    if (ts) out.lastAt = Number(ts[1]);
    const m = LINE.exec(line);
    if (m) {
      const entry: CriuLogError = { file: m[3]!, line: Number(m[4]), message: m[5]!.trim() };
      if (m[1]) entry.at = Number(m[1]);
      // CRIU writes some errors both to the log and to stderr: keep one of each.
      const key = `${m[2]}|${entry.file}|${entry.line}|${entry.message}`;
      if (!seen.has(key)) {
        seen.add(key);
        (m[2] === 'Error' ? out.errors : out.warnings).push(entry);
      }
      continue;
    }
    if (/Pre-dumping finished successfully/.test(body)) out.succeeded = 'pre-dump';
    else if (/Dumping finished successfully/.test(body)) out.succeeded = 'dump';
    else if (/Restore finished successfully/.test(body)) out.succeeded = 'restore';
    else if (/^Looks good\.?$/.test(body.trim())) out.succeeded = 'check';
    for (const [re, key, group] of STAT_US) {
      const s = re.exec(body);
      if (s) (out[group] as Record<string, number>)[key] = Number(s[1]);
    }
  }
  return out;
}

export type CriuErrorCode =
  /** CRIU cannot run on this kernel at all (kerndat init failed: e.g. the vDSO layout it cannot parse). */
  | 'CRIU_KERNEL_UNSUPPORTED'
  /** Soft-dirty memory tracking is missing: no pre-copy with CRIU here. */
  | 'CRIU_NO_MEMORY_TRACKING'
  /** The images directory cannot be opened or written. */
  | 'CRIU_IMAGES_DIR'
  /** The process to dump does not exist (or is gone). */
  | 'CRIU_NO_PROCESS'
  /** The tree has an established TCP connection and --tcp-established was not given. */
  | 'CRIU_TCP_ESTABLISHED'
  /** The tree uses a resource CRIU cannot dump without being told (external unix socket, ...). */
  | 'CRIU_EXTERNAL_RESOURCE'
  /** criu rejected its command line. */
  | 'CRIU_USAGE'
  /** criu is not installed (or not executable). */
  | 'CRIU_NOT_INSTALLED'
  /** criu did not finish before its deadline (it was killed). */
  | 'CRIU_TIMEOUT'
  /** Any other failure: `errors` holds CRIU's own error lines. */
  | 'CRIU_FAILED';

export class CriuError extends CoatError {
  constructor(
    code: CriuErrorCode,
    readonly action: CriuAction | 'check',
    message: string,
    readonly exitCode: number | null,
    readonly errors: CriuLogError[],
    readonly logPath?: string,
  ) {
    super(code, message);
  }
}

interface Rule {
  code: CriuErrorCode;
  test: RegExp;
}

// Most specific first; the first error line that matches a rule decides. Each message is CRIU's own
// (3.17 sources): kerndat.c, vdso.c, image.c, crtools.c, sk-tcp.c, sk-unix.c, seize.c.
const RULES: Rule[] = [
  { code: 'CRIU_NO_MEMORY_TRACKING', test: /Tracking memory is not available|Dirty tracking is (?:OFF|not supported)/ },
  { code: 'CRIU_IMAGES_DIR', test: /Can't open (?:image )?dir|Couldn't open image dir|Can't open images directory/ },
  { code: 'CRIU_TCP_ESTABLISHED', test: /Connected TCP socket, consider using --tcp-established/ },
  { code: 'CRIU_EXTERNAL_RESOURCE', test: /[Ee]xternal (?:socket|resource)|consider using --ext-|--external/ },
  { code: 'CRIU_NO_PROCESS', test: /No such process|Can't (?:open|read) \/proc\/\d+|Unable to seize|[Cc]an't seize/ },
  { code: 'CRIU_KERNEL_UNSUPPORTED', test: /Could not initialize kernel features detection|kerndat_\w+ failed/ },
];

/** The first specific cause: the earliest error line that is not one of CRIU's summary lines. */
function rootCause(errors: CriuLogError[]): CriuLogError | undefined {
  const generic = /^exited, status=\d+$|FAILED\.?$|Could not initialize kernel features detection|kerndat_\w+ failed/;
  return errors.find((e) => !generic.test(e.message)) ?? errors[0];
}

/**
 * Turns a failed criu run (exit status, log text, stdout+stderr) into a typed error, or returns
 * undefined when the run succeeded (exit 0 and, when `action` has one, its success marker).
 */
export function criuFailure(action: CriuAction | 'check', exitCode: number | null, text: string, logPath?: string): CriuError | undefined {
  const parsed = parseCriuOutput(text);
  // Success is exit 0 plus the action's own marker (page-server and check have none to require).
  // Error lines in a successful run are ones CRIU recovered from (it retries some probes).
  const markerOk = action === 'page-server' || action === 'check' || parsed.succeeded === action;
  if (exitCode === 0 && markerOk) return undefined;
  if (/unrecognized option|invalid option|Unknown command|^Usage:/m.test(text) && parsed.errors.length === 0) {
    const bad = /unrecognized option '([^']+)'|invalid option -- '([^']+)'/.exec(text);
    return new CriuError('CRIU_USAGE', action, `criu ${action}: command line rejected${bad ? `: ${bad[1] ?? bad[2]}` : ''}`, exitCode, [], logPath);
  }
  let code: CriuErrorCode = 'CRIU_FAILED';
  outer: for (const rule of RULES) {
    for (const e of parsed.errors) {
      if (rule.test.test(e.message)) {
        code = rule.code;
        break outer;
      }
    }
  }
  const cause = rootCause(parsed.errors);
  const where = cause ? ` (${cause.file}:${cause.line}: ${cause.message})` : exitCode === 0 ? ` (exit 0 but no "${action}" success marker)` : '';
  const what: Record<CriuErrorCode, string> = {
    CRIU_KERNEL_UNSUPPORTED: 'CRIU cannot initialise on this kernel',
    CRIU_NO_MEMORY_TRACKING: 'the kernel has no soft-dirty memory tracking (needed for pre-copy)',
    CRIU_IMAGES_DIR: 'cannot open the images directory',
    CRIU_NO_PROCESS: 'the process to dump is not there',
    CRIU_TCP_ESTABLISHED: 'the tree has an established TCP connection and --tcp-established was not given',
    CRIU_EXTERNAL_RESOURCE: 'the tree uses an external resource CRIU must be told about',
    CRIU_USAGE: 'command line rejected',
    CRIU_NOT_INSTALLED: 'criu is not installed',
    CRIU_TIMEOUT: 'criu did not finish in time',
    CRIU_FAILED: 'failed',
  };
  return new CriuError(code, action, `criu ${action}: ${what[code]}${where}${exitCode !== null ? `, exit ${exitCode}` : ''}${logPath ? `; log ${logPath}` : ''}`, exitCode, parsed.errors, logPath);
}
