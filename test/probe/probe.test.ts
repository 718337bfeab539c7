import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { newTag } from '../../lab/tag.js';
import { exec } from '../../src/exec.js';
import { EchoLedger } from '../../src/probe/echo-stats.js';
import { decodeIcmp, encodeIcmpEcho, IcmpType } from '../../src/packet/icmp.js';
import type { EchoSummary } from '../../src/probe/echo-stats.js';

const REPO = join(fileURLToPath(import.meta.url), '..', '..', '..');
const run = promisify(execFile);

t.test('ICMP echo codec: round trip, checksum verified, other types kept', async (t) => {
  const m = encodeIcmpEcho({ type: IcmpType.ECHO_REQUEST, identifier: 0xbeef, sequence: 7, data: Buffer.from('coat') });
  t.same(decodeIcmp(m).header, { type: 8, identifier: 0xbeef, sequence: 7, data: Buffer.from('coat') });
  const bad = Buffer.from(m);
  bad.writeUInt8(bad.readUInt8(9) ^ 1, 9);
  t.throws(() => decodeIcmp(bad), { code: 'PKT_BAD_FIELD' });
  t.throws(() => decodeIcmp(m.subarray(0, 3)), { code: 'PKT_TRUNCATED' });
  const unreachable = Buffer.from([3, 1, 0, 0, 0, 0, 0, 0]);
  unreachable.writeUInt16BE(0xffff - 0x0301, 2);
  t.same(decodeIcmp(unreachable).header, { type: 3, code: 1, rest: Buffer.alloc(4) });
  t.throws(() => encodeIcmpEcho({ type: 8, identifier: 0x10000, sequence: 0, data: Buffer.alloc(0) }), { code: 'PKT_BAD_VALUE' });
});

t.test('echo ledger: lost, late, duplicates, foreign answers, longest gap', async (t) => {
  const l = new EchoLedger('10.0.0.1', 100);
  for (let s = 0; s < 5; s++) l.sent(s, s * 10);
  t.ok(l.answered(0, 1));
  t.ok(l.answered(1, 12));
  t.ok(l.answered(1, 13), 'a duplicate is ours');
  t.notOk(l.answered(99, 14), 'a sequence never sent is not ours');
  t.ok(l.answered(3, 200), 'late (167 ms > 100 ms)');
  t.ok(l.answered(4, 60));
  t.same(l.outstanding(60), [2]);
  const s = l.summary();
  t.equal(s.sent, 5);
  t.equal(s.received, 3);
  t.same(s.lost, [2, 3]);
  t.same(s.late, [3]);
  t.equal(s.duplicates, 1);
  t.same(s.rttMs, { min: 1, median: 2, p99: 20, max: 20 });
  t.equal(s.longestGapMs, 48, 'answers at 1, 12, 60');
});

t.test('coat probe in namespaces: every echo answered; a blackout is counted lost with its gap', async (t) => {
  const tag = newTag();
  const [a, b] = [`${tag}-pa`, `${tag}-pb`];
  t.teardown(async () => {
    for (const ns of [a, b]) await exec('ip', ['netns', 'del', ns], { timeoutMs: 5000 }).catch(() => undefined);
  });
  const sh = (args: string[]) => exec('ip', args, { timeoutMs: 5000 });
  await sh(['netns', 'add', a]);
  await sh(['netns', 'add', b]);
  await sh(['-n', a, 'link', 'add', `${tag}-va`, 'type', 'veth', 'peer', 'name', `${tag}-vb`, 'netns', b]);
  await sh(['-n', a, 'addr', 'add', '10.79.0.1/24', 'dev', `${tag}-va`]);
  await sh(['-n', b, 'addr', 'add', '10.79.0.2/24', 'dev', `${tag}-vb`]);
  for (const [ns, dev] of [[a, `${tag}-va`], [b, `${tag}-vb`]] as const) {
    await sh(['-n', ns, 'link', 'set', dev, 'up']);
    await sh(['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  const probeFrom = async (ns: string, args: string[]) => {
    const r = await run('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', join(REPO, 'lab', 'coat-entry.ts'), 'probe', '--json', ...args], { cwd: REPO, timeout: 60_000 }).catch((e: { code: number; signal?: string; stdout: string; stderr: string }) => e);
    const code = (r as { code?: number }).code ?? 0;
    try {
      return { code, summary: JSON.parse(r.stdout) as EchoSummary };
    } catch {
      // Say why: the exit and what the probe wrote to stderr, not a JSON parse error.
      throw new Error(`coat probe ${args.join(' ')} in ${ns} printed no summary (exit ${code}, signal ${(r as { signal?: string }).signal ?? 'none'}): ${r.stderr.slice(-2000)}`);
    }
  };

  // a ping of the system in the same namespace at the same time: its answers are not ours
  const other = exec('ping', ['-c', '40', '-i', '0.01', '10.79.0.2'], { netns: a, timeoutMs: 20_000 });
  const clean = await probeFrom(a, ['--to', '10.79.0.2', '--count', '200', '--interval-ms', '2']);
  await other;
  t.equal(clean.code, 0, 'exit 0');
  t.equal(clean.summary.sent, 200);
  t.equal(clean.summary.received, 200, 'every echo answered once');
  t.equal(clean.summary.duplicates, 0, "the other ping's answers were not taken for ours");
  t.same(clean.summary.lost, []);
  t.ok(clean.summary.rttMs!.median < 5, `median rtt ${clean.summary.rttMs!.median} ms over a veth`);

  // drop echo requests at b for ~300 ms in the middle of a 1 s run
  const blackout = (async () => {
    await new Promise((r) => setTimeout(r, 2500)); // the child's start (tsx) takes about a second; its run 5 s
    await exec('iptables', ['-A', 'INPUT', '-p', 'icmp', '--icmp-type', 'echo-request', '-j', 'DROP'], { netns: b, timeoutMs: 5000 });
    const at = performance.now();
    await new Promise((r) => setTimeout(r, 300));
    await exec('iptables', ['-D', 'INPUT', '-p', 'icmp', '--icmp-type', 'echo-request', '-j', 'DROP'], { netns: b, timeoutMs: 5000 });
    return performance.now() - at;
  })();
  const lossy = await probeFrom(a, ['--to', '10.79.0.2', '--count', '1000', '--interval-ms', '5', '--timeout-ms', '500']);
  const windowMs = await blackout;
  t.equal(lossy.code, 1, 'exit 1 when echoes were lost');
  t.equal(lossy.summary.received + lossy.summary.lost.length, 1000, 'every request is answered or lost');
  t.ok(lossy.summary.lost.length > 0, `${lossy.summary.lost.length} lost in a ${windowMs.toFixed(0)} ms blackout`);
  const seqs = lossy.summary.lost;
  t.equal(seqs[seqs.length - 1]! - seqs[0]! + 1, seqs.length, 'the lost sequences are one run');
  t.ok(lossy.summary.longestGapMs >= windowMs - 50, `longest gap ${lossy.summary.longestGapMs.toFixed(0)} ms covers the blackout`);

  const bad = await run('ip', ['netns', 'exec', a, process.execPath, '--import', 'tsx', join(REPO, 'lab', 'coat-entry.ts'), 'probe', '--to', '10.79.0.300'], { cwd: REPO, timeout: 30_000 }).catch((e: { code: number; stderr: string }) => e);
  t.equal((bad as { code?: number }).code, 69);
  t.match((bad as { stderr: string }).stderr, /PROBE_BAD_TARGET/);
});
