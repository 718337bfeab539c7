/**
 * Typed errors of the migration orchestrator, journal, hold queue and report. Each `code` is
 * stable and documented in docs/migration.md ("Error codes").
 */
import { CoatError } from '../errors.js';

export type MigrationErrorCode =
  /** A state transition the timeline does not allow (state-machine.ts). */
  | 'MIGRATION_ILLEGAL_TRANSITION'
  /** A step or the whole migration passed its deadline. */
  | 'MIGRATION_DEADLINE'
  /** Undoing a failed migration failed too: an operator must look (`step` is the undo action). */
  | 'MIGRATION_ROLLBACK_FAILED'
  /** A journal file holds a line that is not a journal record (not the torn last line of a crash). */
  | 'MIGRATION_JOURNAL_CORRUPT'
  /** A journal for this migration id exists already. */
  | 'MIGRATION_JOURNAL_EXISTS'
  /**
   * The destination provably did not resume (its agent refused the request, its restore failed,
   * or the request never reached it): the rollback may thaw the source (AgentPort.resume).
   */
  | 'MIGRATION_NOT_RESUMED'
  /** The controller stopped mid-migration after the point of no return; found by recovery. */
  | 'MIGRATION_INTERRUPTED'
  /** A verification report does not have the shape of the design's report. */
  | 'MIGRATION_REPORT_INVALID';

export class MigrationError extends CoatError {
  constructor(
    code: MigrationErrorCode,
    message: string,
    readonly details: { migrationId?: string; step?: string; [k: string]: unknown } = {},
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** The message of any thrown value, for journals and the CLI ("which step failed and why"). */
export function reasonOf(err: unknown): { code: string; message: string } {
  if (err instanceof CoatError) return { code: err.code, message: err.message };
  // Node's system errors (ECONNREFUSED, ENOENT) and other libraries carry a string `code` too.
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof Error) return { code: typeof code === 'string' ? code : 'ERROR', message: err.message };
  return { code: 'ERROR', message: String(err) };
}
