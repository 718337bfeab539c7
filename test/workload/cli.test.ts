/** `coat workload` CLI: help, usage errors, and a short real server/client run over loopback whose JSON is checked. */
import t from 'tap';
import { PassThrough } from 'node:stream';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { coat, waitFor } from '../tcp-repair/fixture.js';

function io() {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (d: Buffer) => (o += d.toString()));
  err.on('data', (d: Buffer) => (e += d.toString()));
  return { io: { stdout: out, stderr: err }, out: () => o, err: () => e };
}

t.test('help and usage errors', async (t) => {
  const a = io();
  t.equal(await main(['workload', '--help'], a.io), 0);
  t.match(a.out(), /--dirty-rate R/);
  const b = io();
  t.equal(await main(['workload', 'server'], b.io), 64, 'server without --state-dir is a usage error');
  t.match(b.err(), /--state-dir/);
  const c = io();
  t.equal(await main(['workload', 'client', '--host', '127.0.0.1', '--record-size', '8'], c.io), 64, 'record size below the minimum');
  const d = io();
  t.equal(await main(['workload', 'server', '--state-dir', '/tmp/x', '--state-bytes', '12Q'], d.io), 64, 'bad size');
  const e = io();
  t.equal(await main(['workload', 'dance'], e.io), 64, 'unknown verb');
  const f = io();
  t.equal(await main(['workload', 'server', '--state-dir', '/tmp/x', '--stream-tick-ms', '0'], f.io), 64, 'a tick of 0 ms');
  t.match(f.err(), /--stream-tick-ms: 0 is not a whole number of ms in 1\.\.1000/);
});

t.test('a short run prints verified statistics as JSON', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'coat-wlcli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = String(20000 + Math.floor(Math.random() * 20000));
  const server = coat(t, ['workload', 'server', '--host', '127.0.0.1', '--port', port, '--state-dir', dir, '--stream-rate', '2M', '--record-size', '64']);
  await waitFor('server listening', () => server.stdout().includes('"listening"'));
  const client = coat(t, ['workload', 'client', '--host', '127.0.0.1', '--port', port, '--record-size', '64', '--ping-rate', '100', '--duration', '1000']);
  t.equal(await client.exited, 0, 'client exits 0 when everything verified');
  const stats = JSON.parse(client.stdout()) as { stream: { bytesVerified: number; firstBadOffset: string | null }; ping: { answered: number; rttMs: number[] }; bytesVerified: number; bytesReceived: number };
  t.ok(stats.stream.bytesVerified > 500_000, `${stats.stream.bytesVerified} stream bytes verified in 1 s at 2 MB/s`);
  t.ok(stats.stream.bytesVerified < 2.5 * 1024 * 1024, 'and not faster than the rate (the credit follows the clock)');
  t.equal(stats.stream.firstBadOffset, null);
  t.ok(stats.ping.answered >= 50 && stats.ping.rttMs.length === stats.ping.answered, `${stats.ping.answered} pings with an RTT each`);
  t.equal(stats.bytesVerified, stats.bytesReceived);
  server.kill('SIGTERM');
  t.equal(await server.exited, 0, 'server stops cleanly on SIGTERM');
});
