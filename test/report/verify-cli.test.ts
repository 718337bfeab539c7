import t from 'tap';
import { runCommand, type CliRun } from '../fixtures/cli.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { command } from '../../src/cli/commands/verify.js';
import { encodePcapFileHeader, encodePcapRecord } from '../../src/capture/pcap-format.js';
import { finishedJournal, syntheticCapture, SERVICE_IP, CLIENT_IP } from './helpers.js';

function run(argv: string[]): Promise<CliRun> {
  return runCommand(command, argv);
}

t.test('build a report from journal + pcap + client stats, then re-check it', async (t) => {
  const { dir, summary } = await finishedJournal(t, 'v-1');
  const work = mkdtempSync(join(tmpdir(), 'coat-verify-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const cap = syntheticCapture(summary.startedAtMs * 1000);
  const pcap = join(work, 'c.pcap');
  writeFileSync(pcap, Buffer.concat([encodePcapFileHeader(65535), ...cap.records.map((r) => encodePcapRecord(r.tsUs, r.data))]));
  const stats = join(work, 'client.json');
  writeFileSync(stats, JSON.stringify({ bytesSent: 1, bytesReceived: 60_000, bytesVerified: 60_000, maxGapMs: 10.2, errors: [], stream: { firstBadOffset: null }, ping: { errors: 0 } }));
  const reportFile = join(work, 'report.json');
  const html = join(work, 'report.html');
  const built = await run(['--journal', 'v-1', '--data-dir', dir, '--pcap', pcap, '--client', stats, '--client-ip', CLIENT_IP, '--service-ip', SERVICE_IP, '--out', reportFile, '--html', html]);
  t.equal(built.code, 0, built.stdout + built.stderr);
  t.match(built.stdout, /migration v-1 \(tcp-repair, precopy\): zero-loss/);
  t.match(built.stdout, /hold: held 4, replayed 4, dropped 0/);
  t.match(readFileSync(html, 'utf8'), /id="verdict">zero-loss</);

  const checked = await run(['--report', reportFile, '--pcap', pcap, '--service-ip', SERVICE_IP, '--json']);
  t.equal(checked.code, 0, checked.stderr);
  const j = JSON.parse(checked.stdout) as { report: { verdict: string }; check: { verdictMatches: boolean; problems: string[] } };
  t.equal(j.report.verdict, 'zero-loss');
  t.ok(j.check.verdictMatches);
  t.same(j.check.problems, []);

  // A capture that disagrees with the report is an inconsistency (exit 1).
  const other = syntheticCapture(summary.startedAtMs * 1000, { retransmit: true, reset: true });
  const pcap2 = join(work, 'd.pcap');
  writeFileSync(pcap2, Buffer.concat([encodePcapFileHeader(65535), ...other.records.map((r) => encodePcapRecord(r.tsUs, r.data))]));
  const mismatch = await run(['--report', reportFile, '--pcap', pcap2]);
  t.equal(mismatch.code, 1);
  t.match(mismatch.stdout, /INCONSISTENT: capture .* has 1 retransmission\(s\) of lost segments during the migration, the report says 0/);
  t.match(mismatch.stdout, /INCONSISTENT: capture .* has 1 reset\(s\), the report says 0/);

  // A report whose verdict its numbers do not support.
  const lie = JSON.parse(readFileSync(reportFile, 'utf8'));
  lie.client.resets = 2;
  writeFileSync(join(work, 'lie.json'), JSON.stringify(lie));
  const l = await run(['--report', join(work, 'lie.json')]);
  t.equal(l.code, 1);
  t.match(l.stdout, /the report says zero-loss but its numbers give loss/);
});

t.test('a rolled-back migration: verdict failed, exit 1, the failed step named', async (t) => {
  const { dir } = await finishedJournal(t, 'v-2', 'agents.restoreOnArrival:dump@edge-b');
  const r = await run(['--journal', 'v-2', '--data-dir', dir]);
  t.equal(r.code, 1);
  t.match(r.stdout, /: failed \[rolled-back at restore\]/);
  t.match(r.stdout, /why: migration ended rolled-back at step restore: injected failure/);
});

t.test('usage and bad input', async (t) => {
  t.equal((await run([])).code, 64);
  t.equal((await run(['--report', 'a', '--journal', 'b'])).code, 64);
  const help = await run(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /usage: coat verify/);
  const work = mkdtempSync(join(tmpdir(), 'coat-verify-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  writeFileSync(join(work, 'x.json'), '{"migrationId": 1}');
  const bad = await run(['--report', join(work, 'x.json')]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /MIGRATION_REPORT_INVALID: report\.migrationId: expected a string/);
  const missing = await run(['--report', join(work, 'nope.json')]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /VERIFY_INPUT: cannot read report/);
  writeFileSync(join(work, 'bad.pcap'), 'garbage garbage garbage garbage');
  writeFileSync(join(work, 'ok.json'), '{}');
  const { dir } = await finishedJournal(t, 'v-3');
  const badPcap = await run(['--journal', 'v-3', '--data-dir', dir, '--pcap', join(work, 'bad.pcap')]);
  t.equal(badPcap.code, 2);
  t.match(badPcap.stderr, /CAPTURE_BAD_PCAP: bad pcap magic/);
});
