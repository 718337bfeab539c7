/**
 * The verify step's port implemented with this part's own pieces: the client capture's analysis
 * (capture/), the workload client's statistics and the orchestrator's facts become the report
 * (report.ts), written as `OUT_DIR/ID.report.json` and a self-contained `OUT_DIR/ID.report.html`.
 *
 * The verify step runs after `release`, so the migration has moved; its total time ends where
 * `release` ended (verification itself is not migration time).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderReportHtml } from '../report/html.js';
import type { CaptureAnalysis } from '../capture/tcp-analysis.js';
import type { MigrationFacts, VerifyPort } from './orchestrator.js';
import { buildReport, type MigrationRecord, type VerificationReport, type WorkloadClientStats } from './report.js';

export interface ReportVerifierOptions {
  /** Where the report files go. */
  outDir: string;
  /** The client capture's analysis at this moment (e.g. `() => running.snapshot()`, or a stop). */
  capture?: () => Promise<CaptureAnalysis & { kernelDropped?: number; file?: string }>;
  /** The workload client's statistics (its --stats-file, or the client object in a test). */
  client?: () => Promise<WorkloadClientStats>;
  /** Count only the capture's connections to the service. */
  serviceIp?: string;
  /** Called with the report once written (the CLI prints its summary). */
  onReport?: (r: VerificationReport, paths: { json: string; html: string }) => void;
}

/** The orchestrator's facts at the verify step, as a report's migration record. */
export function recordFromFacts(f: MigrationFacts): MigrationRecord {
  const ended = f.steps.filter((s) => s.name !== 'verify').reduce((m, s) => Math.max(m, s.endMs ?? s.startMs), f.startedAtMs);
  return {
    migrationId: f.ref.migrationId,
    executor: f.ref.executor,
    state: 'done',
    startedAtMs: f.startedAtMs,
    endedAtMs: ended,
    steps: f.steps.filter((s) => s.name !== 'verify'),
    hold: { held: f.hold.held, replayed: f.hold.replayed, dropped: f.hold.dropped },
    strategy: f.mode === 'coat-baseline' ? 'coat-baseline' : f.plan.strategy,
    predicted: f.plan.predicted,
    ...(f.switchMs !== undefined ? { switchMs: f.switchMs } : {}),
    source: f.ref.source,
    destination: f.ref.destination,
    service: f.ref.service.name,
  };
}

export class ReportVerifier implements VerifyPort {
  constructor(private readonly opts: ReportVerifierOptions) {}

  async verify(facts: MigrationFacts): Promise<{ verdict: string; reportPath: string }> {
    const [capture, client] = await Promise.all([this.opts.capture?.(), this.opts.client?.()]);
    const report = buildReport({
      migration: recordFromFacts(facts),
      ...(capture ? { capture } : {}),
      ...(client ? { client } : {}),
      ...(this.opts.serviceIp ? { serviceIp: this.opts.serviceIp } : {}),
    });
    mkdirSync(this.opts.outDir, { recursive: true });
    const json = join(this.opts.outDir, `${facts.ref.migrationId}.report.json`);
    const html = join(this.opts.outDir, `${facts.ref.migrationId}.report.html`);
    writeFileSync(json, JSON.stringify(report, null, 2) + '\n');
    writeFileSync(html, renderReportHtml(report));
    this.opts.onReport?.(report, { json, html });
    return { verdict: report.verdict, reportPath: json };
  }
}
