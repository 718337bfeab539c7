/**
 * Acceptance (issue 6): a live connection between the workload client and server is frozen, its
 * socket image saved, the server killed, the socket restored in a second namespace with the same
 * IP (and MAC), and the stream continues with every byte verified, no RST or FIN on the wire, in
 * the same sequence space; with data in both queues at the moment of the dump.
 *
 * Real kernel, real processes: the server and client are `coat workload` processes in namespaces
 * this test creates; the executor is the real one, called as an agent would call it.
 */
import t from 'tap';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exec } from '../../src/exec.js';
import { logger } from '../../src/log.js';
import { createExecutor, type TcpRepairExecutor } from '../../src/executors/tcp-repair.js';
import type { ExecutorContext } from '../../src/migration/executor.js';
import { decodeSocketImage, sentUnacked, neverSent, type SocketImage } from '../../src/tcp-repair/index.js';
import { coat, readStats, serverArgv, SERVICE_IP, SERVICE_MAC, sleep, startedAtSeconds, tcpdump, threeNamespaces, uptimeSeconds, waitFor } from '../tcp-repair/fixture.js';

const log = logger('test-tcp-repair');
log.level = process.env.COAT_TEST_LOG ?? 'silent';

t.test('tcp-repair moves a live workload connection to another namespace with zero loss', async (t) => {
  const topo = await threeNamespaces(t);
  const dirA = join(topo.dir, 'state-a');
  const dirB = join(topo.dir, 'state-b');
  const imageDir = join(topo.dir, 'image');
  const statsPath = join(topo.dir, 'client.json');
  await mkdir(dirA, { recursive: true });
  // B's bridge port stays down until the switch: nothing reaches B before its socket exists.
  await exec('ip', ['link', 'set', topo.portB, 'down'], { netns: topo.client });

  const server = coat(t, ['workload', 'server', '--host', SERVICE_IP, '--port', '7000', '--state-dir', dirA, '--state-bytes', '1M', '--dirty-rate', '200', '--stream-rate', '0'], topo.a);
  await waitFor('server listening', () => server.stdout().includes('"listening"'));

  // Every FIN or RST crossing the bridge, from before the first byte to the end.
  const finRst = await tcpdump(t, topo.client, ['-i', 'br0', 'tcp[tcpflags] & (tcp-rst|tcp-fin) != 0']);
  const client = coat(t, ['workload', 'client', '--host', SERVICE_IP, '--port', '7000', '--ping-rate', '200', '--read-rate', '2M', '--stats-file', statsPath], topo.client);
  const warm = await waitFor('client traffic', async () => {
    const s = await readStats(statsPath);
    return s && s.stream.bytesVerified > 1_000_000 && s.ping.answered > 100 ? s : undefined;
  }, 20_000);
  t.equal(warm.stream.firstBadOffset, null, 'stream verified before the move');

  // Let the client's pings land unread in the server's receive queue (server stopped), then drop
  // what the service sends at the client's input (iptables in the client namespace: the client's
  // window updates still reach the server, whose kernel keeps sending into the window, and those
  // bytes stay unacknowledged), then hold the path (what the hold flows do in a real migration)
  // and dump.
  await waitFor('stream backlog in the server send queue', async () => {
    const ss = await exec('ss', ['-tnH', 'state', 'established', '( sport = :7000 )'], { netns: topo.a });
    const sendQ = Number(ss.stdout.trim().split(/\s+/)[1] ?? 0);
    return sendQ > 100_000;
  }, 20_000);
  process.kill(server.pid, 'SIGSTOP');
  await sleep(150);
  await exec('iptables', ['-w', '-A', 'INPUT', '-s', SERVICE_IP, '-j', 'DROP'], { netns: topo.client });
  await sleep(150);
  await exec('ip', ['link', 'set', topo.portA, 'down'], { netns: topo.client });

  const exe = createExecutor({}) as TcpRepairExecutor;
  const base = { migrationId: `m-${topo.tag}`, imageDir, log };
  const src: ExecutorContext = { ...base, service: { name: 'svc', netns: topo.a, ip: SERVICE_IP, mac: SERVICE_MAC, pid: server.pid, stateDir: dirA }, stepDir: join(imageDir, 'dump'), stepName: 'dump' };
  await exe.prepare(src, 'source');
  const dump = await exe.dump(src);
  process.kill(server.pid, 'SIGCONT'); // still held by the freezer cgroup
  t.equal(dump.sockets, 2, 'two established connections captured (stream + ping)');
  t.ok(dump.frozenMs >= 0 && dump.bytes > 0, `dump wrote ${dump.bytes} bytes, ${dump.pages} pages`);

  const images: SocketImage[] = [];
  for (const f of (await readdir(join(imageDir, 'dump', 'sockets'))).sort()) images.push(decodeSocketImage(await readFile(join(imageDir, 'dump', 'sockets', f))));
  const stream = images.find((i) => i.local.port === 7000)!;
  const ping = images.find((i) => i.local.port === 7001)!;
  t.ok(stream && ping, 'one image per connection');
  t.ok(sentUnacked(stream).length > 0, `stream send queue has a sent-unacked part (${sentUnacked(stream).length} bytes, restored in repair mode)`);
  t.ok(neverSent(stream).length > 0, `stream send queue has a never-sent part (${neverSent(stream).length} bytes, written after repair off)`);
  t.ok(stream.sendQueue.length > 0, `stream send queue holds ${stream.sendQueue.length} bytes (sent-unacked ${sentUnacked(stream).length}, never sent ${neverSent(stream).length})`);
  t.ok(ping.recvQueue.length > 0, `ping receive queue holds ${ping.recvQueue.length} unread bytes`);
  t.equal(stream.local.address, SERVICE_IP);

  // The source: killed while its sockets are in repair mode.
  await exe.release(src);
  await waitFor('source gone', async () => (await server.exited) !== undefined, 5000);

  // Move the address: gone from A, up on B (same MAC), restore there.
  await exec('ip', ['addr', 'del', `${SERVICE_IP}/24`, 'dev', topo.ifA], { netns: topo.a });
  await exec('ip', ['addr', 'add', `${SERVICE_IP}/24`, 'dev', topo.ifB], { netns: topo.b });
  const dst: ExecutorContext = { ...base, service: { name: 'svc', netns: topo.b, ip: SERVICE_IP, mac: SERVICE_MAC, stateDir: dirB, command: serverArgv(dirB, ['--state-bytes', '1M', '--dirty-rate', '200', '--stream-rate', '4M']) }, stepDir: join(imageDir, 'restore'), stepName: 'restore' };
  await exe.prepare(dst, 'destination');
  const standbyPid = exe.standbyPid(dst.migrationId);
  t.ok(standbyPid, `prepare started the service as a standby (pid ${standbyPid})`);
  const restoreBegan = uptimeSeconds();
  const restored = await exe.restore(dst);
  t.teardown(() => {
    try {
      process.kill(restored.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  });
  t.equal(restored.sockets, 2, 'both connections restored');
  t.equal(restored.pid, standbyPid, 'the restored service is the standby prepare started');
  t.ok(startedAtSeconds(restored.pid!) < restoreBegan, `the service process started before restore began (${startedAtSeconds(restored.pid!)} s < ${restoreBegan} s since boot)`);
  t.notOk('spawn' in restored.timings, 'restore started no process');
  t.ok(restored.timings.handover! >= 0, 'restore handed the sockets over to the waiting service');
  const fmt = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
  t.comment(`dump ms: ${fmt(dump.timings)}; restore ms: ${fmt(restored.timings)}`);
  t.same(await readFile(join(dirB, 'state.bin')), await readFile(join(dirA, 'state.bin')), 'state file at B equals the frozen source state');

  // The first data segments the restored stream socket sends: same sequence space.
  const seqs = await tcpdump(t, topo.client, ['-S', '-c', '3', '-i', 'br0', `src host ${SERVICE_IP} and tcp src port 7000 and greater 200`]);
  // The switch: the path to B opens, the client's packets flow again; then resume.
  await exec('ip', ['link', 'set', topo.portB, 'up'], { netns: topo.client });
  await exec('iptables', ['-w', '-D', 'INPUT', '-s', SERVICE_IP, '-j', 'DROP'], { netns: topo.client });
  const tResume = performance.now();
  await exe.resume(dst);
  t.comment(`resume ms: ${(performance.now() - tResume).toFixed(1)}`);
  const atResume = (await readStats(statsPath))!;
  const after = await waitFor('stream and pings continue after the move', async () => {
    const s = await readStats(statsPath);
    return s && s.stream.bytesVerified > atResume.stream.bytesVerified + 1_000_000 && s.ping.answered > atResume.ping.answered + 100 ? s : undefined;
  }, 20_000).catch(async (err: unknown) => {
    t.comment(`service log:\n${await readFile(join(imageDir, 'service.log'), 'utf8').catch(() => '(none)')}`);
    t.comment(`client stats at resume: ${JSON.stringify({ ...atResume, ping: { ...atResume.ping, rttMs: undefined } })}`);
    t.comment(`client stats now: ${JSON.stringify(await readStats(statsPath))}`.slice(0, 3000));
    throw err;
  });
  t.ok(after.stream.bytesVerified > warm.stream.bytesVerified, 'more bytes verified after the move');

  // And back: B -> A, a second migration of connections that were themselves restored. Their
  // stream offsets now come from the origins the first resume recorded (coat-sockets.json).
  t.ok((await readFile(join(dirB, 'coat-sockets.json'), 'utf8')).includes(`"migrationId": "m-${topo.tag}"`), 'resume recorded the stream origins');
  const imageDir2 = join(topo.dir, 'image-back');
  const dirA2 = join(topo.dir, 'state-a2');
  const base2 = { migrationId: `m2-${topo.tag}`, imageDir: imageDir2, log };
  process.kill(restored.pid!, 'SIGSTOP');
  await sleep(100);
  await exec('ip', ['link', 'set', topo.portB, 'down'], { netns: topo.client });
  const src2: ExecutorContext = { ...base2, service: { ...dst.service, pid: restored.pid! }, stepDir: join(imageDir2, 'dump'), stepName: 'dump' };
  await exe.prepare(src2, 'source');
  const dump2 = await exe.dump(src2);
  process.kill(restored.pid!, 'SIGCONT');
  t.equal(dump2.sockets, 2, 'second dump: both restored connections captured');
  await exe.release(src2);
  await exec('ip', ['addr', 'del', `${SERVICE_IP}/24`, 'dev', topo.ifB], { netns: topo.b });
  await exec('ip', ['addr', 'add', `${SERVICE_IP}/24`, 'dev', topo.ifA], { netns: topo.a });
  const dst2: ExecutorContext = { ...base2, service: { name: 'svc', netns: topo.a, ip: SERVICE_IP, mac: SERVICE_MAC, stateDir: dirA2, command: serverArgv(dirA2, ['--state-bytes', '1M', '--dirty-rate', '200', '--stream-rate', '4M']) }, stepDir: join(imageDir2, 'restore'), stepName: 'restore' };
  // No prepare at the destination this time (an agent that restarted after prepare, say): restore
  // falls back to starting the service itself.
  const restoreBegan2 = uptimeSeconds();
  const restored2 = await exe.restore(dst2);
  t.teardown(() => {
    try {
      process.kill(restored2.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  });
  t.ok(restored2.timings.spawn! > 0, `without a standby, restore started the service (${restored2.timings.spawn!.toFixed(0)} ms of its ${restored2.timings.total!.toFixed(0)} ms)`);
  t.ok(startedAtSeconds(restored2.pid!) >= Math.floor(restoreBegan2 * 100) / 100, 'that service process started during restore');
  await exec('ip', ['link', 'set', topo.portA, 'up'], { netns: topo.client });
  await exe.resume(dst2);
  const atResume2 = (await readStats(statsPath))!;
  await waitFor('stream and pings continue after the move back', async () => {
    const s = await readStats(statsPath);
    return s && s.stream.bytesVerified > atResume2.stream.bytesVerified + 1_000_000 && s.ping.answered > atResume2.ping.answered + 100 ? s : undefined;
  }, 20_000);

  // Before the client's own shutdown (which closes with FIN): not one FIN or RST in either
  // direction across the whole migration.
  await finRst.stop();
  t.same(finRst.lines(), [], 'no FIN and no RST on the wire across both moves');

  client.kill('SIGTERM');
  await client.exited;
  const final = JSON.parse(client.stdout()) as typeof after;
  t.equal(final.stream.firstBadOffset, null, 'every stream byte verified');
  t.equal(final.stream.bytesVerified, final.stream.bytesReceived, 'bytes verified = bytes received');
  t.equal(final.ping.errors, 0, `every ping answered correctly (${final.ping.answered} answers)`);
  t.equal(final.resets, 0, 'no reset seen by the client');
  t.same(final.errors, [], 'no socket error at the client');
  t.same(final.closed, { stream: false, ping: false }, 'no connection closed before the client stopped');
  t.comment(`client: maxGapMs ${final.maxGapMs}, ping p50 ${final.ping.rtt.p50} ms p99 ${final.ping.rtt.p99} ms max ${final.ping.rtt.max} ms`);

  await waitFor('3 segments captured', () => seqs.lines().length >= 3, 10_000);
  await seqs.stop();
  const m = /seq (\d+):(\d+)/.exec(seqs.lines()[0]!);
  t.ok(m, `first restored data segment: ${seqs.lines()[0]}`);
  const first = Number(m![1]);
  const baseSeq = (stream.sendSeq - stream.sendQueue.length) >>> 0;
  const ahead = (first - baseSeq) >>> 0;
  t.ok(ahead <= stream.sendQueue.length, `first segment after resume starts ${ahead} bytes into the saved send queue (seq ${first}, saved queue [${baseSeq}, ${stream.sendSeq}))`);

  const svcLog = await readFile(join(imageDir, 'service.log'), 'utf8');
  t.match(svcLog, /"restored":2/, 'the restored server adopted both connections');
});
