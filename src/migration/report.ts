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
 *   bytesReceived, no corrupt offset, no client error), and, when the witnesses cover the stream to
 *   its end (`complete`), every byte the service sent too (bytesVerified == bytesSent); 0
 *   retransmissions of lost segments and 0 resets in the capture on the service's connections
 *   during the migration; the hold queue dropped nothing and replayed all it held (held ==
 *   replayed, dropped == 0);
 * - "loss": done, but one of those checks failed; `verdictReasons` names each.
 * Retransmissions the receiver already had (spurious: acknowledged before, or D-SACKed after,
 * RFC 2883; capture/tcp-analysis.ts) are reported but lose nothing. The migration's window for the
 * capture's counts is its start to `marginMs` after its end (a segment lost inside it is resent
 * after at least one RTO, RFC 6298 §2.4: 200 ms on Linux). `client.bytesSent` is what the service
 * put on the wire toward the client (the capture's highest sequence, when it saw the connection
 * start; else the workload client's own count of bytes it sent).
 * Downtime is the client's largest gap between arrivals (its own clock), or with `downtimeFrom:
 * 'capture'` (several migrations in one run) the largest gap between the service's data segments
 * at the client's interface during this migration; total time is the journal's begin to end.
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
  client: {
    bytesSent: number;
    bytesReceived: number;
    bytesVerified: number;
    /** Retransmissions of lost segments on the service's connections during the migration. */
    retransmissions: number;
    resets: number;
    maxGapMs: number;
    /** Retransmissions the receiver already had, same window (not a loss; 0 without a capture). */
    spuriousRetransmissions: number;
    /** Bytes the workload client itself sent (ping requests). */
    requestBytesSent?: number;
  };
  hold: HoldCounts;
  steps: ReportStep[];
  // Beyond the design's minimum:
  reportVersion: 1;
  state: TerminalState | string;
  failedStep?: string;
  error?: { code: string; message: string };
  verdictReasons: string[];
  /** Which witnesses the verdict had, and the client's own error count (stream or ping). */
  witnesses: { capture: boolean; client: boolean; clientErrors: number; complete?: boolean };
  /** Epoch ms of the migration's start (time zero of steps and timeline). */
  startedAtMs: number;
  switchMs?: number;
  source?: string;
  destination?: string;
  service?: string;
  /**
   * retransmissions/spuriousRetransmissions: the whole capture's, on the service's connections
   * (outside the migration too); maxGapMs likewise; migrationGapMs: the largest gap between the
   * service's data segments during the migration.
   */
  capture?: { packets: number; kernelDropped?: number; connections: number; file?: string; maxGapMs: number; migrationGapMs?: number; retransmissions?: number; spuriousRetransmissions?: number };
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
  // coat switches in the hold's bundle; coat-baseline in a switch step of its own.
  const sw = (s.steps.find((x) => x.name === 'switch') ?? s.steps.find((x) => x.name === 'hold'))?.detail as { switchMs?: number } | undefined;
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
  /** The capture's window for this migration ends this long after it (default 1000 ms). */
  marginMs?: number;
  /** The capture and the client's statistics cover the stream to its end: bytesVerified must equal bytesSent. */
  complete?: boolean;
  /** `client` (default): the workload client's largest gap; `capture`: the largest during this migration. */
  downtimeFrom?: 'client' | 'capture';
}

function serviceConnections(capture: CaptureAnalysis, serviceIp?: string): ConnectionAnalysis[] {
  if (serviceIp === undefined) return capture.connections;
  return capture.connections.filter((c) => c.directions.some((d) => d.src.startsWith(`${serviceIp}:`)));
}

/** One line for a terminal: verdict, the figures, and why when it is not zero-loss. */
export function reportSummaryLine(r: VerificationReport): string {
  const c = r.client;
  return `${r.migrationId} ${r.source ?? '?'} -> ${r.destination ?? '?'}: ${r.verdict} (${r.state}${r.failedStep ? ` at ${r.failedStep}` : ''}); downtime ${r.downtimeMs} ms, total ${r.totalMs} ms, switch ${r.switchMs !== undefined ? round3(r.switchMs) : '-'} ms; predicted ${Math.round(r.predicted.downtimeMs)}/${Math.round(r.predicted.totalMs)} ms; held ${r.hold.held} replayed ${r.hold.replayed} dropped ${r.hold.dropped}; retransmissions ${c.retransmissions} (+${c.spuriousRetransmissions} spurious), resets ${c.resets}; verified ${c.bytesVerified}/${c.bytesSent} bytes${r.verdictReasons.length ? `; ${r.verdictReasons.join('; ')}` : ''}`;
}

/** What the report takes from a capture for one migration (pure; `coat verify` recomputes it). */
export interface CaptureCounts {
  /** Retransmissions of lost segments / spurious ones on the service's connections in the window. */
  retransmissions: number;
  spurious: number;
  /** The same over the whole capture. */
  allRetransmissions: number;
  allSpurious: number;
  resets: number;
  captureGap: number;
  /** Largest gap between the service's data segments that overlaps the migration. */
  migrationGap: number;
  /** Stream bytes the service put on the wire (when the capture saw its SYN). */
  streamBytes: number | undefined;
}

export function captureCounts(capture: CaptureAnalysis, w: { startedAtMs: number; endedAtMs: number; serviceIp?: string; marginMs?: number }): CaptureCounts {
  const conns = serviceConnections(capture, w.serviceIp);
  const isService = (ep: string) => w.serviceIp === undefined || ep.startsWith(`${w.serviceIp}:`);
  const fromService = conns.flatMap((c) => c.directions.filter((d) => isService(d.src)));
  const ids = new Set(conns.flatMap((c) => c.directions.map((d) => `${d.src}>${d.dst}`)));
  const fromUs = w.startedAtMs * 1000;
  const toUs = (w.endedAtMs + (w.marginMs ?? 1000)) * 1000;
  const events = capture.retransmissionEvents.filter((e) => ids.has(`${e.src}>${e.dst}`));
  const inWindow = events.filter((e) => e.tsUs >= fromUs && e.tsUs <= toUs);
  const retransmissions = inWindow.filter((e) => !e.spurious).length;
  const migrationGap = fromService
    .flatMap((d) => d.gaps)
    .filter((g) => g.atUs + g.ms * 1000 >= fromUs && g.atUs <= w.endedAtMs * 1000)
    .reduce((n, g) => Math.max(n, g.ms), 0);
  return {
    retransmissions,
    spurious: inWindow.length - retransmissions,
    allRetransmissions: events.filter((e) => !e.spurious).length,
    allSpurious: events.filter((e) => e.spurious).length,
    resets: conns.reduce((n, c) => n + c.resets, 0),
    captureGap: conns.reduce((n, c) => Math.max(n, c.maxGapMs), 0),
    migrationGap,
    streamBytes: fromService.length > 0 && fromService.every((d) => d.streamBytes !== undefined) ? fromService.reduce((n, d) => n + d.streamBytes!, 0) : undefined,
  };
}

export function buildReport(input: BuildReportInput): VerificationReport {
  const m = input.migration;
  const conns = input.capture ? serviceConnections(input.capture, input.serviceIp) : [];
  const cc = input.capture ? captureCounts(input.capture, { ...m, ...(input.serviceIp ? { serviceIp: input.serviceIp } : {}), ...(input.marginMs !== undefined ? { marginMs: input.marginMs } : {}) }) : undefined;
  const { retransmissions, spurious, resets, captureGap, migrationGap, streamBytes } = cc ?? { retransmissions: 0, spurious: 0, resets: 0, captureGap: 0, migrationGap: 0, streamBytes: undefined };
  const c = input.client;
  const downtime = input.downtimeFrom === 'capture' && input.capture ? migrationGap : c ? c.maxGapMs : captureGap;
  const report: VerificationReport = {
    migrationId: m.migrationId,
    executor: m.executor,
    strategy: m.strategy,
    verdict: 'failed',
    downtimeMs: round3(downtime),
    totalMs: round3(m.endedAtMs - m.startedAtMs),
    predicted: m.predicted,
    client: {
      bytesSent: streamBytes ?? c?.bytesSent ?? 0,
      bytesReceived: c?.bytesReceived ?? 0,
      bytesVerified: c?.bytesVerified ?? 0,
      retransmissions,
      resets,
      maxGapMs: round3(c?.maxGapMs ?? captureGap),
      spuriousRetransmissions: spurious,
      ...(c ? { requestBytesSent: c.bytesSent } : {}),
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
    witnesses: { capture: !!input.capture, client: !!c, clientErrors: 0, ...(input.complete && streamBytes !== undefined ? { complete: true } : {}) },
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
      migrationGapMs: round3(migrationGap),
      retransmissions: cc!.allRetransmissions,
      spuriousRetransmissions: cc!.allSpurious,
      ...(cap.kernelDropped !== undefined ? { kernelDropped: cap.kernelDropped } : {}),
      ...(cap.file ? { file: cap.file } : {}),
    };
    const shift = cap.timeline.originUs / 1000 - m.startedAtMs;
    const margin = input.marginMs ?? 1000;
    const around = (tMs: number) => tMs >= -margin && tMs <= m.endedAtMs - m.startedAtMs + margin;
    report.timeline = {
      bucketMs: cap.timeline.bucketMs,
      // Around this migration only: a capture may span several.
      throughput: cap.timeline.buckets.filter((b) => around(b.tMs + shift)).map((b) => ({ tMs: round3(b.tMs + shift), rxBytes: b.rxBytes, txBytes: b.txBytes })),
      rtt: cap.rtt.filter((r) => around(r.tMs + shift)).map((r) => ({ tMs: round3(r.tMs + shift), rttMs: round3(r.rttMs) })),
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
  if (w.complete && c.bytesVerified !== c.bytesSent) reasons.push(`client verified ${c.bytesVerified} bytes, the service sent ${c.bytesSent}`);
  if (w.clientErrors > 0) reasons.push(`client reported ${w.clientErrors} error(s)`);
  if (c.retransmissions > 0) reasons.push(`${c.retransmissions} TCP retransmission(s) of lost segments in the capture during the migration`);
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
