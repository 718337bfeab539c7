/**
 * The migration journal: one append-only JSON-lines file per migration id under
 * `DATA_DIR/migrations/ID.jsonl`, so that a controller that restarts finds the migrations it left
 * unfinished and rolls them back (design.md: "Migration records survive a controller restart").
 *
 * Write-ahead rule: a step's `step-start` record is on disk (fsync) before the step touches
 * anything, so recovery never misses an effect it must undo. `step-end` records are written at
 * once but synced together with the next `step-start` (one fsync per step boundary, not two).
 * Inside the downtime window the orchestrator skips the fsync of some step starts
 * (state-machine.ts, UNSYNCED_WINDOW_STEPS) and recovery assumes they started. Terminal records
 * are synced at once.
 *
 * A crash can tear the last line; reading ignores a torn last line (no trailing newline) and
 * rejects any other malformed line with MIGRATION_JOURNAL_CORRUPT naming the line.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { MigrationError } from './errors.js';
import { isStep, type MigrationState, type StepName, type TerminalState, type UndoAction } from './state-machine.js';

export interface ErrorSummary {
  code: string;
  message: string;
}

export type JournalRecord =
  | { type: 'begin'; migrationId: string; atMs: number; request: Record<string, unknown> }
  | { type: 'step-start'; step: StepName; atMs: number; round?: number }
  | { type: 'step-end'; step: StepName; atMs: number; round?: number; ok: boolean; error?: ErrorSummary; detail?: Record<string, unknown> }
  /**
   * The point of no return is armed: from here on the resume request to the destination may leave
   * (coat sends it in `restore`, coat-baseline in `resume`). Written, durably, before the request
   * can leave: recovery then asks the destination whether it resumed before it thaws the source.
   */
  | { type: 'resume-armed'; atMs: number; host: string }
  | { type: 'rollback-start'; atMs: number; failedStep?: StepName; error?: ErrorSummary; actions: UndoAction[] }
  | { type: 'undo-start'; action: UndoAction; atMs: number }
  | { type: 'undo-end'; action: UndoAction; atMs: number; ok: boolean; error?: ErrorSummary }
  | { type: 'end'; state: TerminalState; atMs: number; failedStep?: StepName; error?: ErrorSummary; hold?: HoldCounts };

/** The hold queue's counters as journaled (hold-queue.ts defines them). */
export interface HoldCounts {
  held: number;
  replayed: number;
  dropped: number;
}

export const MIGRATION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function journalDir(dataDir: string): string {
  return join(dataDir, 'migrations');
}

export function journalPath(dataDir: string, migrationId: string): string {
  if (!MIGRATION_ID_PATTERN.test(migrationId)) {
    throw new MigrationError('MIGRATION_JOURNAL_CORRUPT', `migration id '${migrationId}' is not a safe file name`, { migrationId });
  }
  return join(journalDir(dataDir), `${migrationId}.jsonl`);
}

/** The durable record of one migration. Single writer: the orchestrator running it. */
export class Journal {
  private fd: number | undefined;
  private dirty = false;

  private constructor(
    readonly migrationId: string,
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** Creates the journal of a new migration; refuses an id that has one already. */
  static create(dataDir: string, migrationId: string, request: Record<string, unknown>, atMs: number): Journal {
    const path = journalPath(dataDir, migrationId);
    mkdirSync(journalDir(dataDir), { recursive: true });
    let fd: number;
    try {
      fd = openSync(path, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new MigrationError('MIGRATION_JOURNAL_EXISTS', `a journal for migration ${migrationId} exists: ${path}`, { migrationId });
      }
      throw err;
    }
    const j = new Journal(migrationId, path, fd);
    j.append({ type: 'begin', migrationId, atMs, request });
    j.sync();
    return j;
  }

  /** Reopens an existing journal to continue it (crash recovery). */
  static reopen(dataDir: string, migrationId: string): Journal {
    const path = journalPath(dataDir, migrationId);
    const text = readFileSync(path, 'utf8');
    const { tornTail } = parseJournal(text, path);
    // A torn last line is a record the crash never finished: cut it off so the next append starts
    // on a line of its own (the record is lost either way; recovery treats its step as started).
    if (tornTail) truncateSync(path, Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1)));
    const fd = openSync(path, 'a');
    return new Journal(migrationId, path, fd);
  }

  /**
   * Appends one record. Write-ahead and terminal records are synced at once unless the caller says
   * `sync: false` (the orchestrator does so inside the downtime window; see UNSYNCED_WINDOW_STEPS).
   */
  append(record: JournalRecord, opts: { sync?: boolean } = {}): void {
    if (this.fd === undefined) throw new Error(`journal ${this.path} is closed`);
    writeSync(this.fd, JSON.stringify(record) + '\n');
    this.dirty = true;
    const writeAhead = record.type === 'step-start' || record.type === 'resume-armed' || record.type === 'undo-start' || record.type === 'rollback-start' || record.type === 'end';
    if (opts.sync ?? writeAhead) this.sync();
  }

  sync(): void {
    if (this.fd !== undefined && this.dirty) {
      fsyncSync(this.fd);
      this.dirty = false;
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    this.sync();
    closeSync(this.fd);
    this.fd = undefined;
  }
}

export interface ReadJournalResult {
  records: JournalRecord[];
  /** The last line had no newline and did not parse: the writer crashed mid-line. */
  tornTail: boolean;
}

const RECORD_TYPES = new Set(['begin', 'step-start', 'step-end', 'resume-armed', 'rollback-start', 'undo-start', 'undo-end', 'end']);

export function parseJournal(text: string, path = '(journal)'): ReadJournalResult {
  const lines = text.split('\n');
  const endsClean = text.endsWith('\n') || text.length === 0;
  const records: JournalRecord[] = [];
  let tornTail = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const isLast = i === lines.length - 1 && !endsClean;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      if (isLast) {
        tornTail = true;
        continue;
      }
      throw new MigrationError('MIGRATION_JOURNAL_CORRUPT', `${path}:${i + 1}: not JSON`, { line: i + 1 });
    }
    const rec = value as { type?: unknown; atMs?: unknown; step?: unknown };
    if (typeof value !== 'object' || value === null || typeof rec.type !== 'string' || !RECORD_TYPES.has(rec.type) || typeof rec.atMs !== 'number') {
      throw new MigrationError('MIGRATION_JOURNAL_CORRUPT', `${path}:${i + 1}: not a journal record (needs a known 'type' and a numeric 'atMs')`, { line: i + 1 });
    }
    if ((rec.type === 'step-start' || rec.type === 'step-end') && !(typeof rec.step === 'string' && isStep(rec.step))) {
      throw new MigrationError('MIGRATION_JOURNAL_CORRUPT', `${path}:${i + 1}: unknown step '${String(rec.step)}'`, { line: i + 1 });
    }
    records.push(value as JournalRecord);
  }
  if (records.length > 0 && records[0]!.type !== 'begin') {
    throw new MigrationError('MIGRATION_JOURNAL_CORRUPT', `${path}:1: the first record must be 'begin'`, { line: 1 });
  }
  return { records, tornTail };
}

export function readJournal(path: string): ReadJournalResult {
  return parseJournal(readFileSync(path, 'utf8'), path);
}

export interface StepTiming {
  name: StepName;
  /** Pre-copy round number (from 1), for `precopy` steps. */
  round?: number;
  startMs: number;
  /** Absent when the step never ended (crash) . */
  endMs?: number;
  ok?: boolean;
  error?: ErrorSummary;
  detail?: Record<string, unknown>;
}

/** What a journal says about its migration. */
export interface JournalSummary {
  migrationId: string;
  request: Record<string, unknown>;
  startedAtMs: number;
  endedAtMs?: number;
  /** The state the migration was in when the journal's last record was written. */
  state: MigrationState;
  steps: StepTiming[];
  /** Steps that started (whether or not they ended). */
  startedSteps: StepName[];
  failedStep?: StepName;
  error?: ErrorSummary;
  /** The resume request may have left (a `resume-armed` record): recovery asks before it rolls back. */
  resumeArmed: boolean;
  /** Undo actions that completed successfully (recovery does not repeat them). */
  undone: UndoAction[];
  /** Undo actions planned by the rollback, if one started. */
  undoPlanned?: UndoAction[];
  /** Hold counters from the end record (absent while unfinished). */
  hold?: HoldCounts;
}

export function summarizeJournal(records: readonly JournalRecord[]): JournalSummary {
  const begin = records[0];
  if (!begin || begin.type !== 'begin') throw new MigrationError('MIGRATION_JOURNAL_CORRUPT', 'journal has no begin record');
  const out: JournalSummary = {
    migrationId: begin.migrationId,
    request: begin.request,
    startedAtMs: begin.atMs,
    state: 'created',
    steps: [],
    startedSteps: [],
    resumeArmed: false,
    undone: [],
  };
  for (const r of records.slice(1)) {
    switch (r.type) {
      case 'begin':
        throw new MigrationError('MIGRATION_JOURNAL_CORRUPT', `a second begin record in journal of ${out.migrationId}`);
      case 'step-start':
        out.steps.push({ name: r.step, ...(r.round !== undefined ? { round: r.round } : {}), startMs: r.atMs });
        if (!out.startedSteps.includes(r.step)) out.startedSteps.push(r.step);
        if (out.state !== 'rolling-back') out.state = r.step;
        break;
      case 'step-end': {
        const open = [...out.steps].reverse().find((s) => s.name === r.step && s.round === r.round && s.endMs === undefined);
        if (open) {
          open.endMs = r.atMs;
          open.ok = r.ok;
          if (r.error) open.error = r.error;
          if (r.detail) open.detail = r.detail;
        }
        if (!r.ok && out.failedStep === undefined) {
          out.failedStep = r.step;
          if (r.error) out.error = r.error;
        }
        break;
      }
      case 'resume-armed':
        out.resumeArmed = true;
        break;
      case 'rollback-start':
        out.state = 'rolling-back';
        out.undoPlanned = r.actions;
        if (r.failedStep) out.failedStep = r.failedStep;
        if (r.error) out.error = r.error;
        break;
      case 'undo-start':
        break;
      case 'undo-end':
        if (r.ok && !out.undone.includes(r.action)) out.undone.push(r.action);
        break;
      case 'end':
        out.state = r.state;
        out.endedAtMs = r.atMs;
        if (r.failedStep) out.failedStep = r.failedStep;
        if (r.error) out.error = r.error;
        if (r.hold) out.hold = r.hold;
        break;
    }
  }
  return out;
}

/** Every journal in the data dir, summarized, oldest first. */
export function listJournals(dataDir: string): JournalSummary[] {
  let files: string[];
  try {
    files = readdirSync(journalDir(dataDir));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return files
    .filter((f) => f.endsWith('.jsonl'))
    .map((f) => summarizeJournal(readJournal(join(journalDir(dataDir), f)).records))
    .sort((a, b) => a.startedAtMs - b.startedAtMs);
}

/** Migrations a restarted controller must finish (roll back, or roll forward after resume). */
export function unfinishedMigrations(dataDir: string): JournalSummary[] {
  return listJournals(dataDir).filter((s) => s.state !== 'done' && s.state !== 'rolled-back' && s.state !== 'failed');
}
