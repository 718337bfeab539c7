/**
 * The migration state machine (pure): the timeline of design.md ("Timeline of one migration") as
 * explicit states and the only transitions between them. The orchestrator asks this module before
 * every move, so an out-of-order call is a typed error, never a half-done migration.
 *
 *   created -> plan -> prepare -> precopy* -> hold -> dump -> restore -> resume -> replay
 *           -> release -> verify -> done
 *
 * `hold` is also the switch: one bundle per bridge puts the hold flows in and flips the service's
 * flows to the staged destination under them, before the freeze. The hold flows outrank every
 * other flow for the service, so the redirect is invisible until the hold is removed, and the
 * switch costs no downtime. The final image is streamed by the source's agent in the `dump` step
 * itself (announced to the destination during `hold`), and the destination's agent restores it
 * the moment it lands (asked for with the dump; `restore` collects it). So `switch` and `stream`
 * are steps of coat-baseline only, which runs COAT's sequential procedure.
 *
 * The point of no return is the destination's resume: until it takes its sockets out of repair
 * mode the source is frozen but intact (executor contract: `dump` leaves it frozen, `abort` thaws
 * it), so any failure before the resume request (coat-baseline: up to `switch`) rolls back
 * (design.md step 8). Once the destination has run it may have acknowledged client bytes the
 * source never saw, so a failure after the request rolls forward: the remaining clean-up steps
 * run best-effort and the migration ends `failed`, naming the step.
 *
 * coat sends the resume request when the dump step ends (the source frozen, its image sent),
 * while the destination still restores; its agent resumes the moment the restore is done. So a
 * failure in `restore` or `resume` may come after the request, and the request's fate decides
 * (`afterResumeRequest`): a destination that provably did not resume (it refused, its restore
 * failed, or the request never reached it) rolls back; one that may have resumed rolls forward.
 */
import { MigrationError } from './errors.js';

/**
 * The steps of one migration, in timeline order (coat-baseline's for the steps only it has). Each
 * is also the state while it runs.
 */
export const STEP_NAMES = [
  'plan',
  'prepare',
  'precopy',
  'hold',
  'dump',
  'stream',
  'restore',
  'switch',
  'resume',
  'replay',
  'release',
  'verify',
] as const;
export type StepName = (typeof STEP_NAMES)[number];

export const TERMINAL_STATES = ['done', 'rolled-back', 'failed'] as const;
export type TerminalState = (typeof TERMINAL_STATES)[number];

export const MIGRATION_STATES = ['created', ...STEP_NAMES, 'rolling-back', ...TERMINAL_STATES] as const;
export type MigrationState = (typeof MIGRATION_STATES)[number];

/** Steps whose failure is undone (source thawed, held packets replayed to it, destination cleared). */
export const ROLLBACK_STEPS: readonly StepName[] = ['plan', 'prepare', 'precopy', 'hold', 'dump', 'stream', 'restore', 'switch'];
/** Steps whose failure cannot be undone: the destination owns the connection from `resume` on. */
export const ROLL_FORWARD_STEPS: readonly StepName[] = ['resume', 'replay', 'release', 'verify'];

const FORWARD: Record<MigrationState, readonly MigrationState[]> = {
  created: ['plan'],
  plan: ['prepare'],
  // Cold migration goes straight to hold; iterative pre-copy runs one state per round.
  prepare: ['precopy', 'hold'],
  precopy: ['precopy', 'hold'],
  hold: ['dump'],
  dump: ['restore'],
  restore: ['resume'],
  // coat-baseline only (BASELINE_FORWARD leads here).
  stream: ['restore'],
  switch: ['resume'],
  resume: ['replay'],
  replay: ['release'],
  release: ['verify'],
  verify: ['done'],
  'rolling-back': ['rolled-back', 'failed'],
  done: [],
  'rolled-back': [],
  failed: [],
};

export function isStep(s: string): s is StepName {
  return (STEP_NAMES as readonly string[]).includes(s);
}

export function isTerminal(s: MigrationState): s is TerminalState {
  return (TERMINAL_STATES as readonly string[]).includes(s);
}

/** True while a failure can still be undone. */
export function canRollBack(s: MigrationState): boolean {
  return s === 'created' || (isStep(s) && ROLLBACK_STEPS.includes(s));
}

/**
 * `coat`: the timeline above. `coat-baseline`: COAT's published Stop&Copy procedure with the same
 * parts, for comparison in one run (background.md §1): no hold and no replay, the destination is
 * built after the freeze, every step waits for the one before, so the path is
 * prepare -> dump -> stream -> restore -> switch -> resume -> release.
 */
export type MigrationMode = 'coat' | 'coat-baseline';

const BASELINE_FORWARD: Partial<Record<MigrationState, readonly MigrationState[]>> = {
  prepare: ['dump'],
  dump: ['stream'],
  restore: ['switch'],
  resume: ['release'],
};

/**
 * Steps that may fail after the resume request left, so either way out is legal and the request's
 * fate picks one (`afterResumeRequest`): `restore` (coat asks for the resume while the destination
 * restores) and `resume` itself.
 */
export const RESUME_REQUEST_STEPS: readonly StepName[] = ['restore', 'resume'];

/** Every state `from` may move to. */
export function nextStates(from: MigrationState, mode: MigrationMode = 'coat'): readonly MigrationState[] {
  const forward = (mode === 'coat-baseline' ? BASELINE_FORWARD[from] : undefined) ?? FORWARD[from];
  if (isStep(from) && RESUME_REQUEST_STEPS.includes(from)) return [...forward, 'rolling-back', 'failed'];
  if (canRollBack(from)) return [...forward, 'rolling-back'];
  if (isStep(from)) return [...forward, 'failed']; // roll-forward steps end `failed` on error
  return forward;
}

/**
 * What the destination did with a resume request, as far as the controller can tell: `not-sent`
 * (never asked), `not-resumed` (provably nothing: refused, restore failed, or the request never
 * reached the agent), `resumed` (it acknowledged), `unknown` (no answer, or a failure while resuming).
 */
export type ResumeFate = 'not-sent' | 'not-resumed' | 'resumed' | 'unknown';

/**
 * Roll back or forward after step `failed` failed (pure). Before the resume request, the step's
 * own rule (ROLLBACK_STEPS); after it, only a destination that provably did not resume lets the
 * source run again: two copies of the service must never both answer the client.
 */
export function afterResumeRequest(failed: StepName, fate: ResumeFate): 'roll-back' | 'roll-forward' {
  if (fate === 'not-sent') return canRollBack(failed) ? 'roll-back' : 'roll-forward';
  if (!RESUME_REQUEST_STEPS.includes(failed)) return 'roll-forward'; // replay, release, verify: it resumed
  return fate === 'not-resumed' ? 'roll-back' : 'roll-forward';
}

export function isLegalTransition(from: MigrationState, to: MigrationState, mode: MigrationMode = 'coat'): boolean {
  return nextStates(from, mode).includes(to);
}

/** Returns `to`, or throws MIGRATION_ILLEGAL_TRANSITION naming both states and the legal ones. */
export function transition(from: MigrationState, to: MigrationState, migrationId?: string, mode: MigrationMode = 'coat'): MigrationState {
  if (!isLegalTransition(from, to, mode)) {
    throw new MigrationError(
      'MIGRATION_ILLEGAL_TRANSITION',
      `illegal transition ${from} -> ${to}${mode === 'coat' ? '' : ` in ${mode}`} (legal from ${from}: ${nextStates(from, mode).join(', ') || 'none, terminal'})`,
      { migrationId, from, to, mode },
    );
  }
  return to;
}

/**
 * Steps inside the client's downtime (hold flows in, packets queued) whose journal `step-start`
 * is written but not fsync'd on its own: each fsync costs 1-3 ms on this machine and the window
 * has the downtime goal of a few ms. Recovery stays safe because it assumes all of them started
 * once `hold` did (the undo actions are idempotent), and the point of no return (the journal's
 * `resume-armed` record) is always synced before the resume request can leave: coat writes it
 * right before the hold's synced step-start, so it costs no fsync of its own inside the window.
 */
export const UNSYNCED_WINDOW_STEPS: readonly StepName[] = ['dump', 'stream', 'restore', 'switch', 'replay'];

/** Steps a crashed controller may have started without a durable record (see UNSYNCED_WINDOW_STEPS). */
export function assumeStartedAfterCrash(started: Iterable<StepName>): StepName[] {
  const s = new Set(started);
  if (s.has('hold')) for (const step of ['dump', 'stream', 'restore', 'switch'] as const) s.add(step);
  return STEP_NAMES.filter((x) => s.has(x));
}

/** What rollback does, in the order it must happen. Each action is idempotent in the ports. */
export const UNDO_ACTIONS = [
  /** Flip every bridge back to the source flows (the switch bundle's inverse). Packets stay held. */
  'switch-back',
  /** Executor abort at the destination: remove what restore made (sockets never left repair mode). */
  'abort-destination',
  /** Executor abort at the source: thaw the frozen service untouched. */
  'thaw-source',
  /** Packet-out every held packet toward the source, in arrival order. */
  'replay-to-source',
  /** Delete the hold flows (+ barrier); traffic flows to the source directly again. */
  'remove-hold',
  /** Delete the destination's staged lower-priority flows. */
  'unstage-destination',
  /** Delete the destination's service namespace and its bridge port. */
  'clear-destination',
] as const;
export type UndoAction = (typeof UNDO_ACTIONS)[number];

/**
 * The undo actions for a migration that started the given steps (pure; the orchestrator and the
 * crash recovery both use it, the latter with the steps read back from the journal). A step that
 * started counts even if it did not finish: its effect may be partly there.
 */
export function undoPlan(started: Iterable<StepName>): UndoAction[] {
  const s = new Set(started);
  const actions = new Set<UndoAction>();
  // coat's hold bundle flips the flows too; coat-baseline has a switch step of its own.
  if (s.has('switch') || s.has('hold')) actions.add('switch-back');
  if (s.has('prepare')) {
    actions.add('abort-destination');
    // The source executor was prepared too (pre-copy tracking, or a frozen service after dump).
    actions.add('thaw-source');
    actions.add('unstage-destination');
    actions.add('clear-destination');
  }
  if (s.has('dump')) actions.add('thaw-source');
  if (s.has('hold')) {
    actions.add('replay-to-source');
    actions.add('remove-hold');
  }
  return UNDO_ACTIONS.filter((a) => actions.has(a));
}
