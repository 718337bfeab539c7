/**
 * The lab's reports are the verification reports of src/migration/report.ts (one path for the
 * scenario, `coat demo`, `coat verify` and the orchestrator's verify step). This name stays only
 * for bench/migration.bench.ts, which imports it; import VerificationReport from ../report.js.
 */
export type { VerificationReport as MigrationReport } from '../report.js';
