/**
 * The capture and its analysis against the real kernel and tshark: two namespaces this test
 * creates (veth pair), a TCP stream from A to B, a capture on A's interface inside A; then B's
 * ACKs are dropped for 400 ms (a `pfifo limit 0` qdisc on B's egress: no netem, no iptables on
 * this machine) so A retransmits on its timer, and B ends the connection with a RST. The
 * analyser's retransmitted frames must be exactly the frames tshark flags
 * `tcp.analysis.retransmission` in the same pcap file, and the resets the same.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newTag } from '../../lab/tag.js';
import { exec } from '../../src/exec.js';
import { startCapture } from '../../src/capture/capture.js';
import { parsePcap } from '../../src/capture/pcap-format.js';
import { analyseTcp } from '../../src/capture/tcp-analysis.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function tsharkFrames(file: string, filter: string): Promise<number[]> {
  const r = await exec('tshark', ['-n', '-r', file, '-Y', filter, '-T', 'fields', '-e', 'frame.number'], { timeoutMs: 60_000 });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

t.test('retransmissions and resets agree with tshark on a real capture with forced loss', async (t) => {
  const tag = newTag();
  const nsA = `${tag}-a`;
  const nsB = `${tag}-b`;
  const dir = mkdtempSync(join(tmpdir(), `coat-${tag}-cap-`));
  t.teardown(async () => {
    await exec('ip', ['netns', 'del', nsA], { allowFailure: true });
    await exec('ip', ['netns', 'del', nsB], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  });
  await exec('ip', ['netns', 'add', nsA]);
  await exec('ip', ['netns', 'add', nsB]);
  await exec('ip', ['link', 'add', `${tag}-va`, 'netns', nsA, 'type', 'veth', 'peer', 'name', `${tag}-vb`, 'netns', nsB]);
  await exec('ip', ['-n', nsA, 'addr', 'add', '10.77.0.1/24', 'dev', `${tag}-va`]);
  await exec('ip', ['-n', nsB, 'addr', 'add', '10.77.0.2/24', 'dev', `${tag}-vb`]);
  await exec('ip', ['-n', nsA, 'link', 'set', `${tag}-va`, 'up']);
  await exec('ip', ['-n', nsB, 'link', 'set', `${tag}-vb`, 'up']);

  // Receiver in B: reads everything, then ends with a RST (resetAndDestroy) when told.
  const server = spawn('ip', ['netns', 'exec', nsB, process.execPath, '-e', `
    const net = require('node:net');
    let sock; let bytes = 0;
    net.createServer((s) => { sock = s; s.on('data', (b) => { bytes += b.length; }); s.on('error', () => {}); })
      .listen(5201, '10.77.0.2', () => console.log('ready'));
    process.stdin.on('data', () => { sock.resetAndDestroy(); console.log('bytes ' + bytes); setTimeout(() => process.exit(0), 100); });
  `], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (server.exitCode === null && server.pid) process.kill(server.pid, 'SIGKILL');
  });
  let serverOut = '';
  server.stdout!.on('data', (b: Buffer) => (serverOut += b.toString()));
  while (!serverOut.includes('ready')) {
    if (server.exitCode !== null) throw new Error('server did not start');
    await sleep(20);
  }

  const file = join(dir, 'a.pcap');
  const cap = await startCapture({ iface: `${tag}-va`, netns: nsA, file, filter: 'tcp', analysis: { clientIp: '10.77.0.1' } });
  t.teardown(() => cap.stop().catch(() => {}));

  // Sender in A: 1 KiB every 5 ms for 1.5 s.
  const client = spawn('ip', ['netns', 'exec', nsA, process.execPath, '-e', `
    const s = require('node:net').connect(5201, '10.77.0.2', () => {
      console.log('connected');
      const chunk = Buffer.alloc(1024, 7); let n = 0;
      const timer = setInterval(() => { s.write(chunk); if (++n === 300) { clearInterval(timer); setTimeout(() => console.log('sent ' + n * 1024), 800); } }, 5);
    });
    s.on('error', () => {});
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (client.exitCode === null && client.pid) process.kill(client.pid, 'SIGKILL');
  });
  let clientOut = '';
  client.stdout!.on('data', (b: Buffer) => (clientOut += b.toString()));

  while (!clientOut.includes('connected')) {
    if (client.exitCode !== null) throw new Error('client could not connect');
    await sleep(10);
  }
  await sleep(300);
  // Drop every packet B sends (its ACKs) for 400 ms: A's retransmission timer fires.
  await exec('tc', ['qdisc', 'replace', 'dev', `${tag}-vb`, 'root', 'pfifo', 'limit', '0'], { netns: nsB });
  await sleep(400);
  await exec('tc', ['qdisc', 'del', 'dev', `${tag}-vb`, 'root'], { netns: nsB });
  while (!clientOut.includes('sent')) {
    if (client.exitCode !== null) throw new Error('client ended early');
    await sleep(20);
  }
  server.stdin!.write('reset\n');
  while (!serverOut.includes('bytes')) await sleep(20);
  await sleep(100);
  const result = await cap.stop();

  t.equal(result.kernel?.dropped, 0, 'the capture kept up');
  const file_ = parsePcap(readFileSync(file));
  t.equal(file_.records.length, result.packets, 'the file holds what the stream carried');
  const offline = analyseTcp(file_.records, { clientIp: '10.77.0.1' });
  t.same(offline.retransmittedFrames, result.analysis.retransmittedFrames, 'live and offline analysis agree');

  const a = result.analysis;
  const tsharkRetrans = await tsharkFrames(file, 'tcp.analysis.retransmission');
  t.ok(tsharkRetrans.length >= 1, `tshark sees ${tsharkRetrans.length} retransmission(s)`);
  t.same(a.retransmittedFrames, tsharkRetrans, 'same frames as tshark tcp.analysis.retransmission');
  t.equal(a.retransmissions, tsharkRetrans.length);
  const tsharkRst = await tsharkFrames(file, 'tcp.flags.reset == 1');
  t.equal(a.resets, tsharkRst.length);
  t.equal(a.resets, 1, 'the one RST from B');
  t.equal(a.connections.length, 1);
  const conn = a.connections[0]!;
  t.ok(conn.sawSyn);
  t.equal(conn.id, `10.77.0.1:${conn.id.split('-')[0]!.split(':')[1]}-10.77.0.2:5201`, 'side A is the initiator');
  const sentBytes = Number(/sent (\d+)/.exec(clientOut)![1]);
  t.equal(conn.directions[0].bytes - conn.directions[0].retransmittedBytes >= sentBytes, true, 'every byte sent was captured');
  t.ok(conn.directions[0].maxGapMs >= 150, `a gap of ${conn.directions[0].maxGapMs.toFixed(1)} ms while ACKs were dropped`);
  t.ok(a.timeline.buckets.length >= 15, 'a 100 ms timeline over the ~2 s');
  t.equal(a.timeline.buckets.reduce((n, b) => n + b.txBytes, 0), conn.directions[0].bytes, 'client bytes in the timeline');
  t.ok(a.rtt.length > 10 && a.rtt.every((s) => s.rttMs >= 0 && s.rttMs < 1000), `${a.rtt.length} RTT samples`);
});
