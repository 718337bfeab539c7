/**
 * Errors of the live adapters (the orchestrator's ports on the real controller and agents). Each
 * code names the check that failed; `details` carries the ids a person needs.
 */
import { CoatError } from '../../errors.js';

export type LiveErrorCode =
  /** A port the migration needs is not on the bridge (or no port numbers are known for a host). */
  | 'LIVE_NO_PORT'
  /** A switch to the destination was asked before the destination was staged. */
  | 'LIVE_NOT_STAGED'
  /** A state change of a migration's flows was not applied on every bridge (names each and why). */
  | 'LIVE_FLOWS'
  /** The service's placement on a host is not known (no namespace, state dir or command). */
  | 'LIVE_NO_PLACEMENT'
  /** The lab is not in a state a migration can run in (missing endpoint, agent, switch). */
  | 'LIVE_LAB';

export class LiveMigrationError extends CoatError {
  constructor(
    code: LiveErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}
