/**
 * The agent's host-side commands, run in-process against a real nats-server (token auth) and the
 * real kernel: service namespace prepare/clear (same IP and MAC, tagged names) and profiling
 * (M from /proc, R from page hashes of a process that dirties a known number of pages per second).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { newTag } from '../../lab/tag.js';
import { Agent } from '../../src/agent/agent.js';
import { AgentRegistry } from '../../src/agent/client.js';
import { AgentRefusedError, AgentRemoteError } from '../../src/agent/errors.js';
import { parseMaps, parseSmapsRollup, dirtyableMappings } from '../../src/agent/profile.js';
import { exec } from '../../src/exec.js';
import { logger } from '../../src/log.js';
import { startNats } from '../fixtures/nats.js';
import { createExecutor } from './helpers/file-executor.js';

process.env.COAT_LOG_LEVEL ??= 'silent';
const tag = newTag();
const secret = Buffer.from(randomBytes(32).toString('hex'));

t.test('pure /proc parsers', async (t) => {
  const maps = parseMaps(
    [
      '55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]',
      '7f1c2e000000-7f1c2e021000 r--p 00000000 08:01 123 /usr/lib/libc.so.6',
      '7ffd1c9e0000-7ffd1ca01000 rw-p 00000000 00:00 0                          [stack]',
      '7ffd1cbe5000-7ffd1cbe9000 r--p 00000000 00:00 0                          [vvar]',
      '7f1c2e100000-7f1c2e200000 rw-s 00000000 00:05 9 /dev/shm/x',
    ].join('\n'),
  );
  t.equal(maps.length, 5);
  t.equal(maps[0]!.start, 0x55d0c0a00000n);
  t.same(dirtyableMappings(maps).map((m) => m.path), ['[heap]', '[stack]'], 'writable private only');
  t.same(parseSmapsRollup('Rss:                2048 kB\nPrivate_Dirty:        12 kB\n'), { Rss: 2048 * 1024, Private_Dirty: 12 * 1024 });
});

t.test('agent host commands', async (t) => {
  const token = randomBytes(12).toString('hex');
  const nats = await startNats(t, { tag, token });
  const dataDir = await mkdtemp(join(tmpdir(), `coat-${tag}-local-`));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const host = `${tag}-h`;
  const agent = new Agent({ host, nats: { servers: nats.url, token }, secret, dataDir, listen: { host: '127.0.0.1', port: 0 }, executorFactory: async (_n, o) => createExecutor(o), log: logger('agent', { host }) });
  await agent.start();
  t.teardown(() => agent.stop());
  const reg = await AgentRegistry.connect({ nats: { servers: nats.url, token }, secret });
  t.teardown(() => reg.close());
  await reg.waitFor(host, 5000);
  const c = reg.agent(host);

  await t.test('service namespace with the same IP and MAC', async (t) => {
    const netns = `${tag}-svc`;
    const migrationId = `${tag}-m1`;
    t.teardown(() => exec('ip', ['netns', 'del', netns], { allowFailure: true, timeoutMs: 5000 }));
    const r = await c.request('netns.prepare', { migrationId, netns, ip: '10.9.0.10/24', mac: '02:AA:00:00:00:10', mtu: 1400 }, { deadlineMs: 10_000 });
    t.same(r, { netns, hostIf: `${tag}-svc-h`, nsIf: 'eth0', ip: '10.9.0.10/24', mac: '02:aa:00:00:00:10' });
    const [link] = JSON.parse((await exec('ip', ['-n', netns, '-j', 'addr', 'show', 'dev', 'eth0'])).stdout) as { address: string; mtu: number; addr_info: { family: string; local: string; prefixlen: number }[] }[];
    t.equal(link!.address, '02:aa:00:00:00:10', 'the MAC is set');
    t.equal(link!.mtu, 1400);
    t.ok(link!.addr_info.some((a) => a.family === 'inet' && a.local === '10.9.0.10' && a.prefixlen === 24), 'the IP is set');
    t.match((await exec('ethtool', ['-k', 'eth0'], { netns })).stdout, /tx-checksumming: off/, 'TX checksum offload is off');
    t.equal((await exec('ip', ['link', 'show', 'dev', r.hostIf], { allowFailure: true })).code, 0, 'the host end exists');
    t.same((await c.status()).holds.find((h) => h.migrationId === migrationId)?.netns, { name: netns, hostIf: r.hostIf }, 'journaled');

    const again = await c.request('netns.prepare', { migrationId, netns, ip: '10.9.0.10', mac: '02:aa:00:00:00:10' }).catch((e: unknown) => e);
    t.type(again, AgentRemoteError);
    t.equal((again as AgentRemoteError).remoteCode, 'AGENT_NETNS_EXISTS');
    await t.rejects(c.request('netns.prepare', { migrationId, netns: `${tag}-x`, ip: '10.9.0.300', mac: '02:aa:00:00:00:10' }), AgentRefusedError, 'a bad address is refused');
    await t.rejects(c.request('netns.prepare', { migrationId, netns: `${tag}-x`, ip: '10.9.0.1', mac: 'zz' }), AgentRefusedError, 'a bad MAC is refused');

    t.same(await c.request('netns.clear', { migrationId, netns }, { deadlineMs: 10_000 }), { removed: true });
    t.notMatch((await exec('ip', ['netns', 'list'])).stdout, netns, 'the namespace is gone');
    t.not((await exec('ip', ['link', 'show', 'dev', r.hostIf], { allowFailure: true })).code, 0, 'and the host end');
    t.same(await c.request('netns.clear', { migrationId, netns }), { removed: false }, 'clearing twice is harmless');
  });

  await t.test('profile: M and R of a process dirtying ~1000 pages/s', async (t) => {
    // 64 MiB touched once, then 50 distinct pages changed every 50 ms.
    const dirtier = spawn('python3', ['-c', [
      'import time, sys',
      'N=16384; m=bytearray(N*4096)',
      'for i in range(N): m[i*4096]=1',
      'print("ready", flush=True)',
      'k=0',
      'while True:',
      '    for i in range(50):',
      '        j=((k*50+i)%N)*4096; m[j]=(m[j]+1)%256',
      '    k+=1; time.sleep(0.05)',
    ].join('\n')], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => void dirtier.kill('SIGKILL'));
    await new Promise((r) => dirtier.stdout!.once('data', r));
    const idle = spawn('sleep', ['60'], { stdio: 'ignore' });
    t.teardown(() => void idle.kill('SIGKILL'));

    const busy = await c.request('profile', { migrationId: `${tag}-m2`, pid: dirtier.pid!, windowMs: 1000 }, { deadlineMs: 20_000 });
    t.ok(busy.memoryBytes! >= 64 * 1024 * 1024, `M includes the 64 MiB buffer (${busy.memoryBytes})`);
    t.equal(busy.stateBytes, busy.memoryBytes);
    t.equal(busy.dirtyMethod, 'page-hash');
    // Expected a little under 1000/s (the sleep adds the loop's own time); generous for a shared 2-core box.
    t.ok(busy.dirtyPagesPerSecond! > 400 && busy.dirtyPagesPerSecond! < 1300, `R = ${Math.round(busy.dirtyPagesPerSecond!)} pages/s`);
    const still = await c.request('profile', { migrationId: `${tag}-m2`, pid: idle.pid!, windowMs: 500 }, { deadlineMs: 20_000 });
    t.ok(still.dirtyPagesPerSecond! < 20, `an idle process: R = ${still.dirtyPagesPerSecond!.toFixed(1)} pages/s`);
    await t.rejects(c.request('profile', { migrationId: `${tag}-m2`, pid: 999_999_999, windowMs: 10 }), AgentRemoteError, 'a missing pid is a remote failure');
  });

  await t.test('profile: R of a state dir (what tcp-repair moves), by content compare', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), `coat-${tag}-state-`));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'state.bin'), Buffer.alloc(2048 * 4096));
    // 20 distinct pages rewritten every 50 ms: about 400 pages/s
    let k = 0;
    const fh = await open(join(dir, 'state.bin'), 'r+');
    const timer = setInterval(() => {
      for (let i = 0; i < 20; i++) void fh.write(Buffer.from([(k & 0xff) + 1]), 0, 1, ((k * 20 + i) % 2048) * 4096);
      k++;
    }, 50);
    t.teardown(async () => {
      clearInterval(timer);
      await fh.close();
    });
    const r = await c.request('profile', { migrationId: `${tag}-m3`, stateDir: dir, dirtySource: 'state-dir', windowMs: 1000 }, { deadlineMs: 20_000 });
    t.equal(r.dirtyMethod, 'state-compare');
    t.equal(r.stateDirBytes, 2048 * 4096);
    t.ok(r.dirtyPagesPerSecond! > 200 && r.dirtyPagesPerSecond! < 500, `R = ${Math.round(r.dirtyPagesPerSecond!)} pages/s (about 400 written)`);
    clearInterval(timer);
    await new Promise((res) => setTimeout(res, 100));
    const idle = await c.request('profile', { migrationId: `${tag}-m3`, stateDir: dir, dirtySource: 'state-dir', windowMs: 300 }, { deadlineMs: 20_000 });
    t.equal(idle.dirtyPagesPerSecond, 0, 'nothing written: R = 0');
    await t.rejects(c.request('profile', { migrationId: `${tag}-m3`, dirtySource: 'state-dir', windowMs: 10 }), { message: /needs stateDir/ }, 'state-dir without stateDir is refused');
  });
});
