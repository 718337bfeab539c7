import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildReport, recordFromJournal } from '../../src/migration/report.js';
import { renderReportHtml, timelineSvg } from '../../src/report/html.js';
import { exec } from '../../src/exec.js';
import { finishedJournal, syntheticCapture, SERVICE_IP } from './helpers.js';

async function sampleReport(t: Parameters<typeof finishedJournal>[0], id = 'h-1') {
  const { summary } = await finishedJournal(t, id);
  const rec = recordFromJournal(summary);
  const cap = syntheticCapture(rec.startedAtMs * 1000 - 100_000, { holeFromMs: 200, holeMs: 120 });
  return buildReport({
    migration: rec,
    capture: cap.analysis,
    client: { bytesSent: 10, bytesReceived: 50_000, bytesVerified: 50_000, maxGapMs: 130 },
    serviceIp: SERVICE_IP,
  });
}

t.test('the page is self-contained: no script, no external reference', async (t) => {
  const html = renderReportHtml(await sampleReport(t));
  t.notMatch(html, /<script/i);
  t.notMatch(html, /\b(src|href)\s*=/i, 'nothing loaded from anywhere');
  t.notMatch(html, /url\(/i);
  t.notMatch(html, /@import/i);
  t.match(html, /^<!doctype html>/);
  t.match(html, /<span class="verdict" id="verdict">zero-loss<\/span>/);
  t.match(html, /<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
});

t.test('the timeline draws every step, the throughput buckets, the RTT samples and the hold window where they are', async (t) => {
  const r = await sampleReport(t, 'h-2');
  const svg = timelineSvg(r, 960);
  t.equal((svg.match(/class="step"/g) ?? []).length, r.steps.length, 'one rectangle per step');
  t.equal((svg.match(/class="throughput"/g) ?? []).length, r.timeline!.throughput.length);
  t.equal((svg.match(/class="hold-window"/g) ?? []).length, 1);
  const points = /class="rtt" points="([^"]+)"/.exec(svg)![1]!.split(' ');
  t.equal(points.length, r.timeline!.rtt.length);
  // The hold window starts where the hold step's rectangle starts and ends where replay ends.
  const hold = r.steps.find((s) => s.name === 'hold')!;
  const replay = r.steps.find((s) => s.name === 'replay')!;
  const win = /class="hold-window" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"/.exec(svg)!;
  const holdRect = new RegExp(`<rect class="step" x="([\\d.]+)"[^>]*><title>hold: `).exec(svg)!;
  t.equal(win[1], holdRect[1]);
  const replayRect = new RegExp(`<rect class="step" x="([\\d.]+)" y="[\\d.]+" width="([\\d.]+)"[^>]*><title>replay: `).exec(svg)!;
  t.ok(Math.abs(Number(win[1]) + Number(win[2]) - (Number(replayRect[1]) + Number(replayRect[2]))) < 2, 'window ends with the replay');
  t.ok(hold.startMs < replay.endMs);
  // Buckets in the hole have zero height.
  t.match(svg, /<title>100 ms: 0 Mbit\/s<\/title>/, 'the bucket inside the hole is empty');
});

t.test('text from the report is escaped', async (t) => {
  const r = await sampleReport(t, 'h-3');
  const evil = { ...r, migrationId: '<script>alert(1)</script>', failedStep: 'x"y', state: 'failed', error: { code: 'E', message: '<img src=x>' } };
  const html = renderReportHtml(evil);
  t.notMatch(html, /<script>alert/);
  t.notMatch(html, /<img src=x>/);
  t.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
});

t.test('headless Chromium renders it: the SVG has a size and the verdict shows', { skip: existsSync('/usr/bin/chromium') ? false : 'Debian chromium not installed (optional: apt-get install chromium)' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'coat-html-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'report.html');
  writeFileSync(file, renderReportHtml(await sampleReport(t, 'h-4')));
  const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${join(dir, 'profile')}`];
  const dom = await exec('/usr/bin/chromium', [...flags, '--dump-dom', `file://${file}`], { timeoutMs: 60_000 });
  t.match(dom.stdout, /id="verdict">zero-loss</, 'the DOM Chromium built has the verdict');
  t.match(dom.stdout, /<svg[^>]+width="960"/);
  const png = join(dir, 'report.png');
  await exec('/usr/bin/chromium', [...flags, `--screenshot=${png}`, '--window-size=1100,900', `file://${file}`], { timeoutMs: 60_000 });
  const img = readFileSync(png);
  t.equal(img.subarray(1, 4).toString(), 'PNG');
  t.ok(img.length > 10_000, `a screenshot of ${img.length} bytes`);
  if (process.env.COAT_KEEP_SCREENSHOT) writeFileSync(process.env.COAT_KEEP_SCREENSHOT, img);
});
