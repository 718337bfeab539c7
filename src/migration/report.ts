/**
 * The verification report of design.md ("The verification report"), built from three witnesses
 * that do not trust each other: the orchestrator's journal (steps, timings, hold counters), a
 * packet capture of the client's interface (retransmissions, resets, throughput; capture/), and
 * the workload client, which checks every byte it receives (workload/client.ts).
 *
 * Verdict rule (docs/migration.md repeats it):
 * - "failed": the migration did not end `done` (rolled back or failed), or a witness is missing
 *   (no capture or no client statistics: then nothing proves the absence of loss);
 * - "zero-loss": done, and every byte the client received was verified (bytesVerified ==
 *   bytesReceived, no corrupt offset, no client error), 0 retransmissions and 0 resets in the
 *   capture on the service's connections, the hold queue dropped nothing and replayed all it held
 *   (held == replayed, dropped == 0);
 * - "loss": done, but one of those checks failed; `verdictReasons` names each.
 * Downtime is the client's largest gap between arrivals (its own clock), total time the journal's
 * begin to end.
 */
import { MigrationError } from './errors.js';
import type { JournalSummary, StepTiming, HoldCounts } from './journal.js';
import type { TerminalState } from './state-machine.js';
import type { CaptureAnalysis, ConnectionAnalysis } from '../capture/tcp-analysis.js';

export const VERDICTS = ['zero-loss', 'loss', 'failed'] as const;
export type Verdict = (typeof VERDICTS)[number];

export interface ReportStep {
  /** Step name; pre-copy rounds are `precopy-1`, `precopy-2`, ... */
  name: string;
  /** ms from the migration's start. */
  startMs: number;
  endMs: number;
  ok?: boolean;
}

export interface VerificationReport {
  migrationId: string;
  executor: string;
  strategy: string;
  verdict: Verdict;
  downtimeMs: number;
  totalMs: number;
  predicted: { downtimeMs: number; totalMs: number };
  client: { bytesSent: number; bytesReceived: number; bytesVerified: number; retransmissions: number; resets: number; maxGapMs: number };
  hold: HoldCounts;
  steps: ReportStep[];
  // Beyond the design's minimum:
  reportVersion: 1;
  state: TerminalState | string;
  failedStep?: string;
  error?: { code: string; message: string };
  verdictReasons: string[];
  /** Which witnesses the verdict had, and the client's own error count (stream or ping). */
  witnesses: { capture: boolean; client: boolean; clientErrors: number };
  /** Epoch ms of the migration's start (time zero of steps and timeline). */
  startedAtMs: number;
  switchMs?: number;
  source?: string;
  destination?: string;
  service?: string;
  capture?: { packets: number; kernelDropped?: number; connections: number; file?: string; maxGapMs: number };
  /** For the plot: client throughput per bucket and RTT samples, ms from the migration's start. */
  timeline?: { bucketMs: number; throughput: { tMs: number; rxBytes: number; txBytes: number }[]; rtt: { tMs: number; rttMs: number }[] };
}

/** The workload client's statistics (workload/client.ts ClientStats fits this). */
export interface WorkloadClientStats {
  bytesSent: number;
  bytesReceived: number;
  bytesVerified: number;
  maxGapMs: number;
  resets?: number;
  errors?: string[];
  stream?: { firstBadOffset: string | null };
  ping?: { errors: number; rttMs?: number[] };
}

/** What the orchestrator knows of one migration, from its outcome or read back from its journal. */
export interface MigrationRecord {
  migrationId: string;
  executor: string;
  state: TerminalState | string;
  startedAtMs: number;
  endedAtMs: number;
  steps: StepTiming[];
  hold: HoldCounts;
  strategy: string;
  predicted: { downtimeMs: number; totalMs: number };
  switchMs?: number;
  failedStep?: string;
  error?: { code: string; message: string };
  source?: string;
  destination?: string;
  service?: string;
}

/** The record of a finished (or crashed) migration, from its journal. */
export function recordFromJournal(s: JournalSummary): MigrationRecord {
  const ref = (s.request.ref ?? {}) as { executor?: string; source?: string; destination?: string; service?: { name?: string } };
  const plan = s.steps.find((x) => x.name === 'plan')?.detail as { strategy?: string; predicted?: { downtimeMs: number; totalMs: number } } | undefined;
  const replay = s.steps.find((x) => x.name === 'replay')?.detail as Partial<HoldCounts> | undefined;
  const sw = s.steps.find((x) => x.name === 'switch')?.detail as { switchMs?: number } | undefined;
  const hold: HoldCounts = s.hold ?? { held: replay?.held ?? 0, replayed: replay?.replayed ?? 0, dropped: replay?.dropped ?? 0 };
  const last = s.steps.reduce((m, x) => Math.max(m, x.endMs ?? x.startMs), s.startedAtMs);
  return {
    migrationId: s.migrationId,
    executor: ref.executor ?? 'unknown',
    state: s.state,
    startedAtMs: s.startedAtMs,
    endedAtMs: s.endedAtMs ?? last,
    steps: s.steps,
    hold,
    strategy: s.request.mode === 'coat-baseline' ? 'coat-baseline' : (plan?.strategy ?? 'unknown'),
    predicted: plan?.predicted ?? { downtimeMs: 0, totalMs: 0 },
    ...(sw?.switchMs !== undefined ? { switchMs: sw.switchMs } : {}),
    ...(s.failedStep ? { failedStep: s.failedStep } : {}),
    ...(s.error ? { error: s.error } : {}),
    ...(ref.source ? { source: ref.source } : {}),
    ...(ref.destination ? { destination: ref.destination } : {}),
    ...(ref.service?.name ? { service: ref.service.name } : {}),
  };
}

export interface BuildReportInput {
  migration: MigrationRecord;
  capture?: CaptureAnalysis & { file?: string; kernelDropped?: number };
  client?: WorkloadClientStats;
  /** Count only the capture's connections to this address (the service); default: all. */
  serviceIp?: string;
}

function serviceConnections(capture: CaptureAnalysis, serviceIp?: string): ConnectionAnalysis[] {
  if (serviceIp === undefined) return capture.connections;
  return capture.connections.filter((c) => c.directions.some((d) => d.src.startsWith(`${serviceIp}:`)));
}

export function buildReport(input: BuildReportInput): VerificationReport {
  const m = input.migration;
  const conns = input.capture ? serviceConnections(input.capture, input.serviceIp) : [];
  const retransmissions = conns.reduce((n, c) => n + c.retransmissions, 0);
  const resets = conns.reduce((n, c) => n + c.resets, 0) + 0;
  const captureGap = conns.reduce((n, c) => Math.max(n, c.maxGapMs), 0);
  const c = input.client;
  const report: VerificationReport = {
    migrationId: m.migrationId,
    executor: m.executor,
    strategy: m.strategy,
    verdict: 'failed',
    downtimeMs: round3(c ? c.maxGapMs : captureGap),
    totalMs: round3(m.endedAtMs - m.startedAtMs),
    predicted: m.predicted,
    client: {
      bytesSent: c?.bytesSent ?? 0,
      bytesReceived: c?.bytesReceived ?? 0,
      bytesVerified: c?.bytesVerified ?? 0,
      retransmissions,
      resets,
      maxGapMs: round3(c?.maxGapMs ?? captureGap),
    },
    hold: { held: m.hold.held, replayed: m.hold.replayed, dropped: m.hold.dropped },
    steps: m.steps.map((s) => ({
      name: s.round !== undefined ? `${s.name}-${s.round}` : s.name,
      startMs: round3(s.startMs - m.startedAtMs),
      endMs: round3((s.endMs ?? m.endedAtMs) - m.startedAtMs),
      ...(s.ok !== undefined ? { ok: s.ok } : {}),
    })),
    reportVersion: 1,
    state: m.state,
    ...(m.failedStep ? { failedStep: m.failedStep } : {}),
    ...(m.error ? { error: m.error } : {}),
    verdictReasons: [],
    witnesses: { capture: !!input.capture, client: !!c, clientErrors: 0 },
    startedAtMs: m.startedAtMs,
    ...(m.switchMs !== undefined ? { switchMs: m.switchMs } : {}),
    ...(m.source ? { source: m.source } : {}),
    ...(m.destination ? { destination: m.destination } : {}),
    ...(m.service ? { service: m.service } : {}),
  };
  if (input.capture) {
    const cap = input.capture;
    report.capture = {
      packets: cap.packets,
      connections: conns.length,
      maxGapMs: round3(captureGap),
      ...(cap.kernelDropped !== undefined ? { kernelDropped: cap.kernelDropped } : {}),
      ...(cap.file ? { file: cap.file } : {}),
    };
    const shift = cap.timeline.originUs / 1000 - m.startedAtMs;
    report.timeline = {
      bucketMs: cap.timeline.bucketMs,
      throughput: cap.timeline.buckets.map((b) => ({ tMs: round3(b.tMs + shift), rxBytes: b.rxBytes, txBytes: b.txBytes })),
      rtt: cap.rtt.map((r) => ({ tMs: round3(r.tMs + shift), rttMs: round3(r.rttMs) })),
    };
  }
  report.witnesses.clientErrors = (c?.errors?.length ?? 0) + (c?.ping?.errors ?? 0) + (c?.stream?.firstBadOffset ? 1 : 0);
  const { verdict, reasons } = decideVerdict(report);
  report.verdict = verdict;
  report.verdictReasons = reasons;
  return report;
}

/** The verdict rule (module comment). Pure; `coat verify` re-applies it to a report file. */
export function decideVerdict(r: Pick<VerificationReport, 'state' | 'client' | 'hold' | 'failedStep' | 'error' | 'witnesses' | 'capture'>): { verdict: Verdict; reasons: string[] } {
  const w = r.witnesses;
  const kernelDropped = r.capture?.kernelDropped ?? 0;
  const reasons: string[] = [];
  if (r.state !== 'done') {
    reasons.push(`migration ended ${r.state}${r.failedStep ? ` at step ${r.failedStep}` : ''}${r.error ? `: ${r.error.message}` : ''}`);
    return { verdict: 'failed', reasons };
  }
  if (!w.capture) reasons.push('not verified: no capture of the client interface');
  if (!w.client) reasons.push('not verified: no statistics from the workload client');
  if (reasons.length > 0) return { verdict: 'failed', reasons };
  const c = r.client;
  if (c.bytesVerified !== c.bytesReceived) reasons.push(`client verified ${c.bytesVerified} of ${c.bytesReceived} bytes received`);
  if (w.clientErrors > 0) reasons.push(`client reported ${w.clientErrors} error(s)`);
  if (c.retransmissions > 0) reasons.push(`${c.retransmissions} TCP retransmission(s) in the capture`);
  if (c.resets > 0) reasons.push(`${c.resets} TCP reset(s) in the capture`);
  if (r.hold.dropped > 0) reasons.push(`hold queue dropped ${r.hold.dropped} packet(s)`);
  if (r.hold.held !== r.hold.replayed) reasons.push(`hold queue held ${r.hold.held} but replayed ${r.hold.replayed}`);
  if (kernelDropped > 0) reasons.push(`the capture missed ${kernelDropped} packet(s) (kernel drops): its counts are a lower bound`);
  return { verdict: reasons.length === 0 ? 'zero-loss' : 'loss', reasons };
}

export interface RecheckResult {
  /** The verdict the rule gives for the report's own numbers. */
  verdict: Verdict;
  reasons: string[];
  /** The report's stated verdict equals the recomputed one. */
  verdictMatches: boolean;
  /** Internal inconsistencies (counters that do not add up, steps out of order). */
  problems: string[];
}

/**
 * Re-checks a report read from a file (`coat verify`): the shape, the verdict rule applied to its
 * own numbers, and that its numbers agree with each other.
 */
export function recheckReport(value: unknown): { report: VerificationReport; result: RecheckResult } {
  const report = validateReport(value);
  const problems: string[] = [];
  const h = report.hold;
  if (h.held < h.replayed + h.dropped) problems.push(`hold: replayed ${h.replayed} + dropped ${h.dropped} exceed held ${h.held}`);
  if (report.state === 'done' && h.held !== h.replayed + h.dropped) problems.push(`hold: held ${h.held} != replayed ${h.replayed} + dropped ${h.dropped} after a finished migration`);
  if (report.client.bytesVerified > report.client.bytesReceived) problems.push(`client: verified ${report.client.bytesVerified} > received ${report.client.bytesReceived}`);
  let prevStart = -Infinity;
  for (const s of report.steps) {
    if (s.endMs < s.startMs) problems.push(`step ${s.name}: ends (${s.endMs}) before it starts (${s.startMs})`);
    if (s.startMs < prevStart) problems.push(`step ${s.name}: starts before the step listed before it`);
    if (s.endMs > report.totalMs + 1) problems.push(`step ${s.name}: ends after the migration (${s.endMs} > ${report.totalMs} ms)`);
    prevStart = s.startMs;
  }
  const { verdict, reasons } = decideVerdict(report);
  return { report, result: { verdict, reasons, verdictMatches: verdict === report.verdict, problems } };
}

const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Checks the design's fields; MIGRATION_REPORT_INVALID names the first bad one. */
export function validateReport(value: unknown): VerificationReport {
  const bad = (path: string, want: string): never => {
    throw new MigrationError('MIGRATION_REPORT_INVALID', `report.${path}: expected ${want}`, { path });
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('', 'an object');
  const r = value as Record<string, unknown>;
  for (const k of ['migrationId', 'executor', 'strategy', 'state'] as const) if (typeof r[k] !== 'string') bad(k, 'a string');
  if (!VERDICTS.includes(r.verdict as Verdict)) bad('verdict', `one of ${VERDICTS.join(', ')}`);
  for (const k of ['downtimeMs', 'totalMs', 'startedAtMs'] as const) if (!num(r[k])) bad(k, 'a number');
  const obj = (k: string, fields: string[]): void => {
    const o = r[k];
    if (typeof o !== 'object' || o === null) bad(k, 'an object');
    for (const f of fields) if (!num((o as Record<string, unknown>)[f])) bad(`${k}.${f}`, 'a number');
  };
  obj('predicted', ['downtimeMs', 'totalMs']);
  obj('client', ['bytesSent', 'bytesReceived', 'bytesVerified', 'retransmissions', 'resets', 'maxGapMs']);
  obj('hold', ['held', 'replayed', 'dropped']);
  if (!Array.isArray(r.steps)) bad('steps', 'an array');
  (r.steps as unknown[]).forEach((s, i) => {
    const o = s as Record<string, unknown>;
    if (typeof s !== 'object' || s === null || typeof o.name !== 'string') bad(`steps[${i}].name`, 'a string');
    if (!num(o.startMs)) bad(`steps[${i}].startMs`, 'a number');
    if (!num(o.endMs)) bad(`steps[${i}].endMs`, 'a number');
  });
  const w = r.witnesses as Record<string, unknown> | undefined;
  if (typeof w !== 'object' || w === null || typeof w.capture !== 'boolean' || typeof w.client !== 'boolean' || !num(w.clientErrors)) {
    bad('witnesses', '{capture: boolean, client: boolean, clientErrors: number}');
  }
  if (r.capture !== undefined && (typeof r.capture !== 'object' || r.capture === null)) bad('capture', 'an object');
  if (!Array.isArray(r.verdictReasons)) r.verdictReasons = [];
  return r as unknown as VerificationReport;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
