/**
 * The verification report as one self-contained HTML page (pure: report in, string out): a
 * summary table with the verdict and its reasons, and an inline SVG timeline with the client's
 * throughput per bucket, its RTT samples, the migration steps as lanes and the hold window shaded.
 * No scripts, no external fonts, styles or images: the file can be mailed or archived as it is.
 */
import type { VerificationReport } from '../migration/report.js';

const esc = (s: unknown): string =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const fmt = (n: number, digits = 1): string => (Number.isInteger(n) ? String(n) : n.toFixed(digits));

const VERDICT_COLOUR: Record<string, string> = { 'zero-loss': '#1a7f37', loss: '#bf8700', failed: '#cf222e' };
const STEP_COLOUR: Record<string, string> = {
  plan: '#8c959f', prepare: '#8c959f', precopy: '#54aeff', hold: '#bf8700', dump: '#cf222e', stream: '#fb8f44', restore: '#a475f9',
  switch: '#1a7f37', resume: '#2da44e', replay: '#0969da', release: '#6e7781', verify: '#6e7781',
};

/** "Nice" axis maximum: 1, 2 or 5 times a power of ten, at least `v`. */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function timelineSvg(r: VerificationReport, width = 960): string {
  const steps = r.steps;
  const tp = r.timeline?.throughput ?? [];
  const rtt = r.timeline?.rtt ?? [];
  const bucketMs = r.timeline?.bucketMs ?? 100;
  const tMin = Math.min(0, ...tp.map((b) => b.tMs), ...rtt.map((s) => s.tMs));
  const tMax = Math.max(r.totalMs, ...steps.map((s) => s.endMs), ...tp.map((b) => b.tMs + bucketMs), ...rtt.map((s) => s.tMs), 1);
  const left = 64;
  const right = 64;
  const plotW = width - left - right;
  const plotTop = 20;
  const plotH = 200;
  const laneTop = plotTop + plotH + 36;
  const laneH = 16;
  const lanes = [...new Set(steps.map((s) => s.name.replace(/-\d+$/, '')))];
  const height = laneTop + lanes.length * (laneH + 4) + 30;
  const x = (t: number): number => left + ((t - tMin) / (tMax - tMin)) * plotW;
  const mbit = (bytes: number): number => (bytes * 8) / (bucketMs / 1000) / 1e6;
  const yMaxT = niceMax(Math.max(...tp.map((b) => mbit(b.rxBytes + b.txBytes)), 0.001));
  const yMaxR = niceMax(Math.max(...rtt.map((s) => s.rttMs), 0.001));
  const yT = (v: number): number => plotTop + plotH - (v / yMaxT) * plotH;
  const yR = (v: number): number => plotTop + plotH - (v / yMaxR) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11" role="img" aria-label="migration timeline">`);
  // Hold window: from the hold step's start to the end of the replay (packets wait in between).
  const hold = steps.find((s) => s.name === 'hold');
  const replay = steps.find((s) => s.name === 'replay');
  if (hold) {
    const end = replay?.endMs ?? Math.max(...steps.map((s) => s.endMs));
    out.push(`<rect class="hold-window" x="${x(hold.startMs).toFixed(1)}" y="${plotTop}" width="${Math.max(1, x(end) - x(hold.startMs)).toFixed(1)}" height="${laneTop + lanes.length * (laneH + 4) - plotTop}" fill="#bf8700" fill-opacity="0.12"><title>hold window ${fmt(hold.startMs)}-${fmt(end)} ms: ${r.hold.held} held, ${r.hold.replayed} replayed, ${r.hold.dropped} dropped</title></rect>`);
    out.push(`<text x="${(x(hold.startMs) + 3).toFixed(1)}" y="${plotTop + 12}" fill="#9a6700">hold</text>`);
  }
  // Axes and grid.
  out.push(`<line x1="${left}" y1="${plotTop + plotH}" x2="${left + plotW}" y2="${plotTop + plotH}" stroke="#57606a"/>`);
  for (let i = 0; i <= 4; i++) {
    const y = plotTop + plotH - (i / 4) * plotH;
    out.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#d0d7de" stroke-dasharray="2,3"/>`);
    out.push(`<text x="${left - 4}" y="${y + 4}" text-anchor="end" fill="#0969da">${fmt((yMaxT * i) / 4, 2)}</text>`);
    out.push(`<text x="${left + plotW + 4}" y="${y + 4}" fill="#cf222e">${fmt((yMaxR * i) / 4, 2)}</text>`);
  }
  out.push(`<text x="${left - 4}" y="${plotTop - 6}" text-anchor="end" fill="#0969da">Mbit/s</text>`);
  out.push(`<text x="${left + plotW + 4}" y="${plotTop - 6}" fill="#cf222e">RTT ms</text>`);
  const ticks = 8;
  for (let i = 0; i <= ticks; i++) {
    const t = tMin + ((tMax - tMin) * i) / ticks;
    out.push(`<text x="${x(t).toFixed(1)}" y="${plotTop + plotH + 14}" text-anchor="middle" fill="#57606a">${fmt(t, 0)}</text>`);
  }
  out.push(`<text x="${left + plotW / 2}" y="${plotTop + plotH + 28}" text-anchor="middle" fill="#57606a">ms since the migration started</text>`);
  // Throughput bars.
  for (const b of tp) {
    const v = mbit(b.rxBytes + b.txBytes);
    const bw = Math.max(1, x(b.tMs + bucketMs) - x(b.tMs) - 1);
    out.push(`<rect class="throughput" x="${x(b.tMs).toFixed(1)}" y="${yT(v).toFixed(1)}" width="${bw.toFixed(1)}" height="${(plotTop + plotH - yT(v)).toFixed(1)}" fill="#54aeff" fill-opacity="0.7"><title>${fmt(b.tMs, 0)} ms: ${fmt(v, 3)} Mbit/s</title></rect>`);
  }
  // RTT samples.
  if (rtt.length > 0) {
    const pts = rtt.map((s) => `${x(s.tMs).toFixed(1)},${yR(s.rttMs).toFixed(1)}`).join(' ');
    out.push(`<polyline class="rtt" points="${pts}" fill="none" stroke="#cf222e" stroke-width="1"/>`);
  }
  // Step lanes.
  lanes.forEach((lane, i) => {
    const y = laneTop + i * (laneH + 4);
    out.push(`<text x="${left - 4}" y="${y + 12}" text-anchor="end" fill="#24292f">${esc(lane)}</text>`);
    for (const s of steps.filter((st) => st.name.replace(/-\d+$/, '') === lane)) {
      const w = Math.max(1.5, x(s.endMs) - x(s.startMs));
      const colour = s.ok === false ? '#cf222e' : (STEP_COLOUR[lane] ?? '#6e7781');
      out.push(`<rect class="step" x="${x(s.startMs).toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${laneH}" fill="${colour}"><title>${esc(s.name)}: ${fmt(s.startMs, 3)}-${fmt(s.endMs, 3)} ms (${fmt(s.endMs - s.startMs, 3)} ms)${s.ok === false ? ' FAILED' : ''}</title></rect>`);
    }
  });
  out.push('</svg>');
  return out.join('\n');
}

export function renderReportHtml(r: VerificationReport): string {
  const colour = VERDICT_COLOUR[r.verdict] ?? '#6e7781';
  const row = (k: string, v: string): string => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`;
  const rows = [
    row('migration', esc(r.migrationId)),
    row('service', esc(`${r.service ?? '?'}: ${r.source ?? '?'} → ${r.destination ?? '?'}`)),
    row('executor / strategy', esc(`${r.executor} / ${r.strategy}`)),
    row('state', esc(r.state) + (r.failedStep ? esc(` (failed at ${r.failedStep}${r.error ? `: ${r.error.code}: ${r.error.message}` : ''})`) : '')),
    row('downtime (client’s largest gap)', `${fmt(r.downtimeMs, 3)} ms <small>(predicted ≤ ${fmt(r.predicted.downtimeMs, 1)} ms)</small>`),
    row('total migration time', `${fmt(r.totalMs, 3)} ms <small>(predicted ≤ ${fmt(r.predicted.totalMs, 1)} ms)</small>`),
    ...(r.switchMs !== undefined ? [row('switch (bundle commit → last barrier)', `${fmt(r.switchMs, 3)} ms`)] : []),
    row('bytes sent to the client / received / verified', esc(`${r.client.bytesSent} / ${r.client.bytesReceived} / ${r.client.bytesVerified}`)),
    row('TCP retransmissions of lost segments / resets (capture, during the migration)', esc(`${r.client.retransmissions} / ${r.client.resets}`)),
    row('spurious retransmissions (receiver had the data: acknowledged or D-SACKed)', esc(`${r.client.spuriousRetransmissions ?? 0}`)),
    row('hold: held / replayed / dropped', esc(`${r.hold.held} / ${r.hold.replayed} / ${r.hold.dropped}`)),
    ...(r.capture ? [row('capture', esc(`${r.capture.packets} packets, ${r.capture.connections} connection(s)${r.capture.retransmissions !== undefined ? `; whole capture: ${r.capture.retransmissions} retransmissions of lost segments, ${r.capture.spuriousRetransmissions ?? 0} spurious` : ''}${r.capture.kernelDropped ? `, ${r.capture.kernelDropped} missed by the kernel` : ''}`))] : []),
  ];
  const reasons = r.verdictReasons.length > 0 ? `<ul class="reasons">${r.verdictReasons.map((x) => `<li>${esc(x)}</li>`).join('')}</ul>` : '';
  const steps = r.steps
    .map((s) => `<tr${s.ok === false ? ' class="failed"' : ''}><td>${esc(s.name)}</td><td>${fmt(s.startMs, 3)}</td><td>${fmt(s.endMs, 3)}</td><td>${fmt(s.endMs - s.startMs, 3)}</td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>coat migration ${esc(r.migrationId)}: ${esc(r.verdict)}</title>
<style>
body { font-family: sans-serif; margin: 24px; color: #24292f; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
.verdict { display: inline-block; padding: 4px 12px; border-radius: 12px; color: #fff; background: ${colour}; font-weight: bold; }
table { border-collapse: collapse; } th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid #eaeef2; font-size: 13px; }
th { font-weight: normal; color: #57606a; } tr.failed td { color: #cf222e; } small { color: #57606a; }
.legend span { display: inline-block; margin-right: 16px; font-size: 12px; }
.sw { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: middle; }
</style>
</head>
<body>
<h1>coat migration <code>${esc(r.migrationId)}</code> <span class="verdict" id="verdict">${esc(r.verdict)}</span></h1>
${reasons}
<table class="summary">
${rows.join('\n')}
</table>
<h2>Timeline</h2>
<div class="legend"><span><i class="sw" style="background:#54aeff"></i>client throughput per ${esc(r.timeline?.bucketMs ?? 100)} ms</span><span><i class="sw" style="background:#cf222e"></i>RTT samples (capture)</span><span><i class="sw" style="background:#bf8700;opacity:.3"></i>hold window</span></div>
${timelineSvg(r)}
<h2>Steps</h2>
<table class="steps"><tr><th>step</th><th>start ms</th><th>end ms</th><th>duration ms</th></tr>
${steps}
</table>
<p><small>Report version ${esc(r.reportVersion)}; started ${esc(new Date(r.startedAtMs).toISOString())}. Verdict rule: docs/migration.md.</small></p>
</body>
</html>
`;
}
