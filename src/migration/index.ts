/**
 * The migration layer's front door (nats.js's lesson: one module lists the public exports).
 * The PAM model, planner and calibration (pam.ts, planner.ts, calibrate.ts) export from their own
 * modules; the live wiring of the ports to the controller and agents lives in live/.
 */
export { MigrationError, reasonOf, type MigrationErrorCode } from './errors.js';
export {
  STEP_NAMES,
  MIGRATION_STATES,
  TERMINAL_STATES,
  ROLLBACK_STEPS,
  ROLL_FORWARD_STEPS,
  UNDO_ACTIONS,
  UNSYNCED_WINDOW_STEPS,
  assumeStartedAfterCrash,
  canRollBack,
  isLegalTransition,
  isStep,
  isTerminal,
  nextStates,
  transition,
  undoPlan,
  type MigrationMode,
  type MigrationState,
  type StepName,
  type TerminalState,
  type UndoAction,
} from './state-machine.js';
export { HoldQueue, DEFAULT_HOLD_LIMITS, type HeldPacket, type HoldLimits, type HoldStats, type PushResult } from './hold-queue.js';
export {
  Journal,
  journalDir,
  journalPath,
  listJournals,
  parseJournal,
  readJournal,
  summarizeJournal,
  unfinishedMigrations,
  MIGRATION_ID_PATTERN,
  type ErrorSummary,
  type HoldCounts,
  type JournalRecord,
  type JournalSummary,
  type StepTiming,
} from './journal.js';
export {
  systemClock,
  type AgentPort,
  type Clock,
  type FlowPort,
  type HeldPacketIn,
  type MigrationPlan,
  type MigrationRef,
  type Objective,
  type PlannerPort,
  type Side,
  type StreamResult,
  type SwitchResult,
} from './ports.js';
export {
  Orchestrator,
  type MigrationEvent,
  type MigrationFacts,
  type MigrationOutcome,
  type MigrationRequest,
  type OrchestratorOptions,
  type OrchestratorPorts,
  type VerifyPort,
} from './orchestrator.js';
export {
  VERDICTS,
  buildReport,
  decideVerdict,
  recheckReport,
  recordFromJournal,
  validateReport,
  type BuildReportInput,
  type MigrationRecord,
  type RecheckResult,
  type ReportStep,
  type Verdict,
  type VerificationReport,
  type WorkloadClientStats,
} from './report.js';
export { ReportVerifier, recordFromFacts, type ReportVerifierOptions } from './verifier.js';
export * from './executor.js';
