/**
 * Bad input to the tcp-repair boundary and executor: a pid that is gone, a descriptor that is not
 * a TCP socket, and truncated / corrupted / wrong-version images at restore. Each is a typed error,
 * nothing is left behind at the destination, and the source service (a real workload server with
 * a verifying client on loopback) still runs, verified byte by byte, afterwards.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logger } from '../../src/log.js';
import { createExecutor, type TcpRepairExecutor } from '../../src/executors/tcp-repair.js';
import type { ExecutorContext } from '../../src/migration/executor.js';
import { RepairSocket, TcpRepairError, SocketImageError } from '../../src/tcp-repair/index.js';
import { alive, coat, readStats, serverArgv, waitFor } from '../tcp-repair/fixture.js';

const log = logger('test-tcp-repair-errors');
log.level = process.env.COAT_TEST_LOG ?? 'silent';

async function gonePid(): Promise<number> {
  const c = spawn('true');
  await new Promise((r) => c.once('exit', r));
  return c.pid!;
}

t.test('a pid that is gone', async (t) => {
  const pid = await gonePid();
  t.throws(() => RepairSocket.take(pid, 3), { code: 'TCPR_NO_PROCESS' });
  const exe = createExecutor({});
  const ctx: ExecutorContext = { migrationId: 'gone', imageDir: '/nonexistent', stepDir: '/nonexistent/dump', stepName: 'dump', log, service: { name: 'svc', netns: '', ip: '', mac: '', pid } };
  await t.rejects(exe.prepare(ctx, 'source'), { code: 'TREX_NO_PROCESS' });
  await t.rejects(exe.dump(ctx), { code: 'TREX_NO_PROCESS' });
  await t.rejects(exe.preDump(ctx, 0), { code: 'TREX_NO_PROCESS' });
});

t.test('descriptors that are not TCP sockets', async (t) => {
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  t.teardown(() => udp.close());
  const udpFd = (udp as unknown as { _handle: { fd: number } })._handle.fd;
  const err = t.throws(() => RepairSocket.take(process.pid, udpFd), { code: 'TCPR_NOT_TCP' }) as unknown as TcpRepairError;
  t.match(err?.message ?? '', /type 2/, 'says it is a datagram socket');
  const dir = await mkdtemp(join(tmpdir(), 'coat-notsock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const fh = await (await import('node:fs/promises')).open(join(dir, 'f'), 'w');
  t.teardown(() => fh.close());
  t.throws(() => RepairSocket.take(process.pid, fh.fd), { code: 'TCPR_NOT_SOCKET' });
  t.throws(() => RepairSocket.take(process.pid, 100_000), { code: 'TCPR_NO_FD' });
});

t.test('bad images at restore: typed errors, nothing left at the destination, source thawed and running', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'coat-badimg-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const stateA = join(dir, 'state-a');
  await mkdir(stateA);
  const port = 20000 + Math.floor(Math.random() * 20000);
  const server = coat(t, ['workload', 'server', '--host', '127.0.0.1', '--port', String(port), '--state-dir', stateA, '--state-bytes', '256K', '--stream-rate', '1M']);
  await waitFor('server listening', () => server.stdout().includes('"listening"'));
  const statsPath = join(dir, 'client.json');
  const client = coat(t, ['workload', 'client', '--host', '127.0.0.1', '--port', String(port), '--ping-rate', '100', '--stats-file', statsPath]);
  await waitFor('client traffic', async () => ((await readStats(statsPath))?.stream.bytesVerified ?? 0) > 200_000);

  // The service's own descriptors that are not TCP: its stdout (a pipe or unix socket) and state file.
  for (const fd of await readdir(`/proc/${server.pid}/fd`)) {
    const link = await readlink(`/proc/${server.pid}/fd/${fd}`).catch(() => '');
    if (link.endsWith('state.bin')) t.throws(() => RepairSocket.take(server.pid, Number(fd)), { code: 'TCPR_NOT_SOCKET' }, 'the state file is not a socket');
    if (fd === '1') {
      let code = '';
      try {
        RepairSocket.take(server.pid, 1);
      } catch (e) {
        if (e instanceof TcpRepairError) code = e.code;
      }
      t.ok(code === 'TCPR_NOT_TCP' || code === 'TCPR_NOT_SOCKET', `stdout (${link}) is refused: ${code}`);
    }
  }

  const exe = createExecutor({});
  const imageDir = join(dir, 'image');
  const src: ExecutorContext = { migrationId: 'badimg', imageDir, stepDir: join(imageDir, 'dump'), stepName: 'dump', log, service: { name: 'svc', netns: '', ip: '127.0.0.1', mac: '', pid: server.pid, stateDir: stateA } };
  const freezerOf = async (pid: number) => /^\d+:freezer:(.*)$/m.exec(await readFile(`/proc/${pid}/cgroup`, 'utf8'))?.[1];
  const homeCgroup = await freezerOf(server.pid);
  await exe.prepare(src, 'source');
  if (homeCgroup !== undefined) t.equal(await freezerOf(server.pid), '/coat-badimg', 'prepare moved the source into its freezer cgroup (outside the downtime)');
  const dump = await exe.dump(src);
  t.equal(dump.sockets, 2, 'stream and ping connections dumped');

  const image0 = join(imageDir, 'dump', 'sockets', '000.skimg');
  const good = await readFile(image0);
  const versioned = Buffer.from(good);
  versioned.writeUInt16BE(9, 8);
  createHash('sha256').update(versioned.subarray(0, versioned.length - 32)).digest().copy(versioned, versioned.length - 32);
  const corrupted = Buffer.from(good);
  corrupted[150] = corrupted[150]! ^ 0x01;
  const cases: [string, Buffer, string][] = [
    ['truncated', good.subarray(0, good.length - 40), 'SKIMG_TRUNCATED'],
    ['corrupted', corrupted, 'SKIMG_CHECKSUM'],
    ['version mismatch', versioned, 'SKIMG_VERSION'],
  ];
  for (const [name, bytes, code] of cases) {
    const copy = join(dir, `image-${code}`);
    await cp(imageDir, copy, { recursive: true });
    await writeFile(join(copy, 'dump', 'sockets', '000.skimg'), bytes);
    const stateB = join(dir, `state-${code}`);
    const dst: ExecutorContext = { migrationId: `badimg-${code}`, imageDir: copy, stepDir: join(copy, 'restore'), stepName: 'restore', log, service: { name: 'svc', netns: '', ip: '127.0.0.1', mac: '', stateDir: stateB, command: serverArgv(stateB) } };
    await exe.prepare(dst, 'destination');
    const standby = (exe as TcpRepairExecutor).standbyPid(dst.migrationId);
    t.ok(standby !== undefined && alive(standby), `${name}: prepare started a standby service`);
    const err = await exe.restore(dst).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof SocketImageError && err.code === code, `${name}: ${(err as Error)?.message}`);
    t.notOk(existsSync(join(stateB, 'state.bin')), `${name}: no state written at the destination`);
    t.ok(alive(standby!), `${name}: the standby still waits (restore failed before any handover)`);
    await exe.abort(dst, 'destination');
    await waitFor(`${name}: standby ${standby} killed by abort`, () => !alive(standby!), 5000);
    t.pass(`${name}: abort killed the standby by its pid`);
  }

  // Without pre-copy the state file goes whole: a hard link to the frozen service's own file.
  const wholePath = join(imageDir, 'dump', 'state', 'state.bin.whole');
  t.equal((await stat(wholePath)).ino, (await stat(join(stateA, 'state.bin'))).ino, 'the dump links the frozen state file (same inode), no copy');
  t.notOk(existsSync(join(imageDir, 'dump', 'state', 'state.bin.pages')), 'and writes no page delta for it');
  const wholeBytes = await readFile(wholePath);
  const stateCases: [string, (copy: string) => Promise<void>, string][] = [
    ['whole state file truncated', (copy) => writeFile(join(copy, 'dump', 'state', 'state.bin.whole'), wholeBytes.subarray(0, wholeBytes.length - 4096)), 'TREX_IMAGE_INVALID'],
    ['whole state file missing', (copy) => rm(join(copy, 'dump', 'state', 'state.bin.whole')), 'TREX_IMAGE_MISSING'],
    ['whole state file corrupted', (copy) => writeFile(join(copy, 'dump', 'state', 'state.bin.whole'), Buffer.from(wholeBytes).fill(0xee, 1000, 1064)), 'TREX_IMAGE_INVALID'],
  ];
  for (const [name, spoil, code] of stateCases) {
    const copy = join(dir, `image-${name.replaceAll(' ', '-')}`);
    await cp(imageDir, copy, { recursive: true });
    await spoil(copy);
    const stateB = join(dir, `state-${name.replaceAll(' ', '-')}`);
    const dst: ExecutorContext = { migrationId: `badimg-${code}-${name.length}`, imageDir: copy, stepDir: join(copy, 'restore'), stepName: 'restore', log, service: { name: 'svc', netns: '', ip: '127.0.0.1', mac: '', stateDir: stateB, command: serverArgv(stateB) } };
    const err = await exe.restore(dst).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.equal((err as { code?: string })?.code, code, `${name}: ${(err as Error)?.message}`);
    t.notOk(existsSync(join(stateB, 'state.bin')), `${name}: no state written at the destination`);
    await exe.abort(dst, 'destination');
  }

  // A missing dump step is a typed error too.
  const empty = join(dir, 'image-empty');
  await mkdir(empty);
  await t.rejects(exe.restore({ ...src, imageDir: empty, service: { ...src.service, command: ['true'], stateDir: join(dir, 'x') } }), { code: 'TREX_IMAGE_MISSING' });

  // The source comes back untouched.
  await exe.abort(src, 'source');
  t.equal(await freezerOf(server.pid), homeCgroup, 'abort moved the source back to its own freezer cgroup');
  t.notOk(existsSync('/sys/fs/cgroup/freezer/coat-badimg'), 'and removed the migration cgroup');
  const before = (await readStats(statsPath))!;
  const after = await waitFor('source serves again after abort', async () => {
    const s = await readStats(statsPath);
    return s && s.stream.bytesVerified > before.stream.bytesVerified + 200_000 && s.ping.answered > before.ping.answered + 20 ? s : undefined;
  }, 15_000);
  t.equal(after.stream.firstBadOffset, null, 'every byte still verified');
  t.equal(after.ping.errors, 0);
  t.equal(after.resets, 0, 'no reset');
  t.same(after.closed, { stream: false, ping: false });

  // An agent that restarted between dump and abort has no memory of the migration: a fresh
  // executor instance must still take the sockets out of repair mode and thaw the cgroup.
  const again = { ...src, migrationId: 'badimg-2', stepDir: join(dir, 'image2', 'dump') };
  await exe.dump(again);
  await createExecutor({}).abort(again, 'source');
  const before2 = (await readStats(statsPath))!;
  const after2 = await waitFor('source serves again after an abort by a fresh executor', async () => {
    const s = await readStats(statsPath);
    return s && s.stream.bytesVerified > before2.stream.bytesVerified + 200_000 && s.ping.answered > before2.ping.answered + 20 ? s : undefined;
  }, 15_000);
  t.equal(after2.stream.firstBadOffset, null, 'still every byte verified');
  t.equal(after2.resets + after2.ping.errors, 0, 'no reset, no ping error');
  client.kill('SIGTERM');
  await client.exited;
});
