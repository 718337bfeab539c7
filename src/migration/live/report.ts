/**
 * The verification report of design.md ("The verification report") for migrations run in the lab:
 * the orchestrator's outcome (steps, hold counters, plan), the client's own byte verification
 * (workload client), and the capture of the client's interface (retransmissions, resets, the
 * timeline). Pure: building and rendering; writing the files is the caller's.
 *
 * The verdict is `zero-loss` only when every one of these holds: the migration ended `done`, every
 * stream byte the service put on the wire was verified by the client, the capture shows no
 * retransmission and no reset, every held packet was replayed and none dropped, and no connection
 * closed. Otherwise `loss` (it moved, something was lost or repaired by TCP) or `failed` (it did
 * not move; after a rollback the report still says whether the client kept its connection).
 */
import type { MigrationOutcome } from '../orchestrator.js';
import type { CaptureSummary } from './capture.js';

export type Verdict = 'zero-loss' | 'loss' | 'failed';

/** The workload client's statistics, as far as the report uses them. */
export interface ClientFigures {
  bytesReceived: number;
  bytesVerified: number;
  firstBadOffset: string | null;
  maxGapMs: number;
  resets: number;
  closed: { stream: boolean; ping: boolean };
  ping?: { answered: number; errors: number; rtt: { p50: number | null; p99: number | null; max: number | null } };
}

export interface MigrationReport {
  migrationId: string;
  executor: string;
  strategy: string;
  objective: string;
  source: string;
  destination: string;
  state: string;
  verdict: Verdict;
  reasons: string[];
  /** The client's largest gap between two stream arrivals (capture when there is one). */
  downtimeMs: number;
  totalMs: number;
  switchMs: number | null;
  predicted: { downtimeMs: number; totalMs: number } | null;
  /**
   * retransmissions: segments resent because they were lost, from the migration's start to 500 ms
   * after its end; spuriousRetransmissions: resent though the client had them (tail-loss probes
   * after a late ACK, D-SACKed), same window; captureRetransmissions: every retransmission of the
   * whole capture, both kinds, migration or not (the lab's own jitter shows up here).
   */
  client: { bytesSent: number; bytesReceived: number; bytesVerified: number; retransmissions: number; spuriousRetransmissions: number; captureRetransmissions: number; resets: number; maxGapMs: number };
  hold: { held: number; replayed: number; dropped: number; peakPackets: number; peakBytes: number };
  steps: { name: string; round?: number; startMs: number; endMs: number | null; ok: boolean | null }[];
  failedStep: string | null;
  error: { code: string; message: string } | null;
  /** Service-to-client bytes per 10 ms bin, ms relative to the migration's start. */
  timeline: [number, number][];
}

export interface ReportInput {
  outcome: MigrationOutcome;
  executor: string;
  objective: string;
  source: string;
  destination: string;
  client: ClientFigures;
  capture: CaptureSummary;
  /** Capture bins within this many ms of the migration go into the timeline (default 1000). */
  marginMs?: number;
}

export function buildReport(r: ReportInput): MigrationReport {
  const o = r.outcome;
  const reasons: string[] = [];
  const bytesSent = r.capture.serviceBytesOnWire;
  const inWindow = r.capture.retransmissionTimes.filter(([t]) => t >= o.startedAtMs && t <= o.endedAtMs + 500);
  const lost = inWindow.filter(([, spurious]) => !spurious).length;
  const spurious = inWindow.length - lost;
  if (o.state !== 'done') reasons.push(`migration ${o.state}${o.failedStep ? ` at ${o.failedStep}` : ''}${o.error ? `: ${o.error.message}` : ''}`);
  if (r.client.firstBadOffset !== null) reasons.push(`client found a wrong byte at stream offset ${r.client.firstBadOffset}`);
  if (r.client.bytesVerified !== bytesSent) reasons.push(`client verified ${r.client.bytesVerified} bytes, the service sent ${bytesSent}`);
  if (lost > 0) reasons.push(`${lost} retransmissions of lost segments during the migration`);
  if (r.capture.resets > 0 || r.client.resets > 0) reasons.push(`${Math.max(r.capture.resets, r.client.resets)} resets`);
  if (o.hold.dropped > 0) reasons.push(`${o.hold.dropped} held packets dropped`);
  if (o.hold.held !== o.hold.replayed) reasons.push(`held ${o.hold.held}, replayed ${o.hold.replayed}`);
  if (r.client.closed.stream || r.client.closed.ping) reasons.push('a client connection closed');
  const verdict: Verdict = o.state !== 'done' ? 'failed' : reasons.length === 0 ? 'zero-loss' : 'loss';
  const t0 = o.startedAtMs;
  const margin = r.marginMs ?? 1000;
  const timeline = r.capture.throughput.filter(([t]) => t >= t0 - margin && t <= o.endedAtMs + margin).map(([t, b]) => [+(t - t0).toFixed(1), b] as [number, number]);
  // Downtime: the largest gap the client saw during this migration (capture when it has data).
  let downtimeMs = 0;
  let prev: number | undefined;
  for (const [t] of r.capture.throughput.filter(([t]) => t >= t0 - 20 && t <= o.endedAtMs + 200)) {
    if (prev !== undefined) downtimeMs = Math.max(downtimeMs, t - prev - 10);
    prev = t;
  }
  return {
    migrationId: o.migrationId,
    executor: r.executor,
    strategy: o.plan?.strategy ?? 'unplanned',
    objective: r.objective,
    source: r.source,
    destination: r.destination,
    state: o.state,
    verdict,
    reasons,
    downtimeMs: Math.max(0, +downtimeMs.toFixed(1)),
    totalMs: +(o.endedAtMs - o.startedAtMs).toFixed(1),
    switchMs: o.switchMs !== undefined ? +o.switchMs.toFixed(3) : null,
    predicted: o.plan ? { downtimeMs: +o.plan.predicted.downtimeMs.toFixed(1), totalMs: +o.plan.predicted.totalMs.toFixed(1) } : null,
    client: { bytesSent, bytesReceived: r.client.bytesReceived, bytesVerified: r.client.bytesVerified, retransmissions: lost, spuriousRetransmissions: spurious, captureRetransmissions: r.capture.retransmissions, resets: Math.max(r.capture.resets, r.client.resets), maxGapMs: r.client.maxGapMs },
    hold: { held: o.hold.held, replayed: o.hold.replayed, dropped: o.hold.dropped, peakPackets: o.hold.peakPackets, peakBytes: o.hold.peakBytes },
    steps: o.steps.map((s) => ({ name: s.name, ...(s.round !== undefined ? { round: s.round } : {}), startMs: +(s.startMs - t0).toFixed(2), endMs: s.endMs !== undefined ? +(s.endMs - t0).toFixed(2) : null, ok: s.ok ?? null })),
    failedStep: o.failedStep ?? null,
    error: o.error ? { code: o.error.code, message: o.error.message } : null,
    timeline,
  };
}

/** One line for a terminal. */
export function summaryLine(r: MigrationReport): string {
  return `${r.migrationId} ${r.source} -> ${r.destination}: ${r.verdict} (${r.state}${r.failedStep ? ` at ${r.failedStep}` : ''}); downtime ${r.downtimeMs} ms, total ${r.totalMs} ms, switch ${r.switchMs ?? '-'} ms; predicted ${r.predicted ? `${r.predicted.downtimeMs}/${r.predicted.totalMs} ms` : '-'}; held ${r.hold.held} replayed ${r.hold.replayed} dropped ${r.hold.dropped}; retransmissions ${r.client.retransmissions} (+${r.client.spuriousRetransmissions} spurious; ${r.client.captureRetransmissions} in the whole capture), resets ${r.client.resets}; verified ${r.client.bytesVerified}/${r.client.bytesSent} bytes${r.reasons.length ? `; ${r.reasons.join('; ')}` : ''}`;
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** A self-contained HTML page: summary table, and an SVG timeline of throughput, steps and hold. */
export function renderHtml(reports: readonly MigrationReport[], title = 'coat migration report'): string {
  const sections = reports.map((r) => {
    const W = 900;
    const H = 220;
    const pad = 40;
    const tMin = Math.min(0, ...r.timeline.map(([t]) => t));
    const tMax = Math.max(r.totalMs, ...r.timeline.map(([t]) => t), 1);
    const bMax = Math.max(1, ...r.timeline.map(([, b]) => b));
    const x = (t: number) => pad + ((t - tMin) / (tMax - tMin)) * (W - 2 * pad);
    const y = (b: number) => H - pad - (b / bMax) * (H - 2 * pad);
    const line = r.timeline.map(([t, b], i) => `${i === 0 ? 'M' : 'L'}${x(t).toFixed(1)},${y(b).toFixed(1)}`).join(' ');
    const hold = r.steps.find((s) => s.name === 'hold');
    const replay = r.steps.find((s) => s.name === 'replay');
    const holdRect = hold && replay?.endMs != null ? `<rect x="${x(hold.startMs).toFixed(1)}" y="${pad}" width="${Math.max(1, x(replay.endMs) - x(hold.startMs)).toFixed(1)}" height="${H - 2 * pad}" fill="#fc6" opacity="0.35"><title>hold window ${hold.startMs}-${replay.endMs} ms</title></rect>` : '';
    const steps = r.steps
      .map((s, i) => `<rect x="${x(s.startMs).toFixed(1)}" y="${H - pad + 6 + (i % 3) * 8}" width="${Math.max(1, x(s.endMs ?? s.startMs) - x(s.startMs)).toFixed(1)}" height="6" fill="${s.ok === false ? '#c33' : '#36c'}"><title>${esc(s.name)}${s.round ? ` ${s.round}` : ''}: ${s.startMs}-${s.endMs ?? '?'} ms</title></rect>`)
      .join('');
    const rows: [string, string][] = [
      ['verdict', `<b>${esc(r.verdict)}</b>${r.reasons.length ? ` (${esc(r.reasons.join('; '))})` : ''}`],
      ['move', `${esc(r.source)} → ${esc(r.destination)}, ${esc(r.executor)}, ${esc(r.strategy)}, objective ${esc(r.objective)}`],
      ['downtime / total', `${r.downtimeMs} ms / ${r.totalMs} ms (predicted ${r.predicted ? `${r.predicted.downtimeMs} / ${r.predicted.totalMs} ms` : '-'})`],
      ['switch', `${r.switchMs ?? '-'} ms`],
      ['client', `sent ${r.client.bytesSent}, received ${r.client.bytesReceived}, verified ${r.client.bytesVerified} bytes; ${r.client.retransmissions} retransmissions of lost segments (+${r.client.spuriousRetransmissions} spurious; ${r.client.captureRetransmissions} in the whole capture), ${r.client.resets} resets; largest gap ${r.client.maxGapMs} ms`],
      ['hold', `held ${r.hold.held}, replayed ${r.hold.replayed}, dropped ${r.hold.dropped} (peak ${r.hold.peakPackets} packets, ${r.hold.peakBytes} bytes)`],
      ['steps', r.steps.map((s) => `${esc(s.name)}${s.round ? ` ${s.round}` : ''} ${s.endMs !== null ? (s.endMs - s.startMs).toFixed(1) : '?'} ms`).join(', ')],
    ];
    return `<section><h2>${esc(r.migrationId)}</h2><table>${rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join('')}</table>
<svg width="${W}" height="${H + 20}" viewBox="0 0 ${W} ${H + 20}" role="img" aria-label="client throughput">
${holdRect}<path d="${line}" fill="none" stroke="#222" stroke-width="1"/>
<line x1="${pad}" y1="${H - pad}" x2="${W - pad}" y2="${H - pad}" stroke="#888"/>
<text x="${pad}" y="${pad - 8}" font-size="11">service → client bytes per 10 ms (max ${bMax}); shaded: hold window; bars: steps</text>
<text x="${pad}" y="${H + 16}" font-size="11">${tMin.toFixed(0)} ms</text><text x="${W - pad - 60}" y="${H + 16}" font-size="11">${tMax.toFixed(0)} ms</text>
${steps}</svg></section>`;
  });
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>body{font-family:sans-serif;margin:2em}th{text-align:left;padding-right:1em;vertical-align:top}section{margin-bottom:2em}</style></head><body><h1>${esc(title)}</h1>
<script type="application/json" id="report">${JSON.stringify(reports).replace(/</g, '\\u003c')}</script>
${sections.join('\n')}</body></html>
`;
}
