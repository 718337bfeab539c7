/**
 * `npm run bench -- repair [SOCKETS] [STATE_MB]`: the TCP_REPAIR boundary and the tcp-repair
 * executor's state path, measured on this machine (2 shared cores: figures are noisy).
 *
 * - save / restore time per socket: loopback connections in this process with data in both
 *   queues; save = pidfd_getfd + TCP_REPAIR on + save + image encode; restore = image decode +
 *   socket in repair mode + resume (repair off, never-sent tail written). No peer is measurable
 *   here: CRIU 3.17 fails on this kernel (vDSO [vvar_vclock]), so its per-socket cost cannot be
 *   run, and it publishes no per-socket figure to quote.
 * - state per MB: a full pre-dump round (read + page digests + page-delta encode), a dirty round,
 *   and the destination's rebuild (decode + apply + write), against a plain file copy of the same
 *   state (fs.copyFile) in the same run.
 * - dirty tracking: hash vs compare (read + compare while the service runs, and in place through a
 *   mapping as the dump does it) on the same file; soft-dirty only where the kernel has it.
 * - executor downtime, dump start -> resume done (dump + image copy + restore + resume, the
 *   executor's part of hold -> ... -> resume): a real `coat workload server` with 10 MiB of state
 *   and a live client, moved between two namespaces of this run by the real executor; cold with no
 *   standby (the service started inside restore: the path before the standby), cold with the
 *   standby started at prepare, and with 2 pre-copy rounds (applied at the destination as they
 *   arrive). Peer: COAT's Podman checkpoint + restore as PUBLISHED in its logs (background.md §5:
 *   657-852 + 217-231 ms), not measured here: Podman cannot checkpoint on this kernel.
 * - service process start (spawn -> "standby", code loaded): compiled CLI vs from source under tsx.
 *
 * `npm run bench -- repair [SOCKETS] [STATE_MB] [--no-downtime | --downtime-only] [--runs=N]`; the
 * downtime rows (median of N migrations each, default 3) need root.
 */
import net from 'node:net';
import { mkdir, mkdtemp, rm, writeFile, copyFile, readFile } from 'node:fs/promises';
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bench, BenchRow } from './harness.js';
import { exec } from '../src/exec.js';
import { logger } from '../src/log.js';
import { createExecutor, type TcpRepairExecutor } from '../src/executors/tcp-repair.js';
import { startStandby } from '../src/executors/tcp-repair/handover.js';
import type { ExecutorContext } from '../src/migration/executor.js';
import { coat, readStats, REPO, SERVICE_IP, SERVICE_MAC, serverArgv, threeNamespaces, waitFor } from '../test/tcp-repair/fixture.js';
import { percentile } from './harness.js';
import { RepairSocket, encodeSocketImage, decodeSocketImage } from '../src/tcp-repair/index.js';
import { CompareTracker, HashTracker, PAGE_SIZE, softDirtyAvailable } from '../src/executors/tcp-repair/dirty-pages.js';
import { applyDeltas, decodePageDelta, encodePageDelta } from '../src/executors/tcp-repair/page-delta.js';

interface HandleLike {
  fd: number;
  readStop(): void;
  close(): void;
}
const handle = (s: net.Socket) => (s as unknown as { _handle: HandleLike })._handle;
const ms = (t0: number) => performance.now() - t0;
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));

async function socketRows(n: number, progress: (l: string) => void): Promise<BenchRow[]> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const servers: net.Socket[] = [];
  srv.on('connection', (s) => servers.push(s));
  const clients: net.Socket[] = [];
  for (let i = 0; i < n; i++) clients.push(net.connect(port, '127.0.0.1'));
  while (servers.length < n) await sleep(5);
  // Data in both queues: 16 KiB unread at each server socket, 16 KiB the client has not read.
  for (const s of servers) {
    s.on('error', () => {});
    handle(s).readStop();
    s.write(randomBytes(16 * 1024));
  }
  for (const c of clients) {
    c.pause();
    c.write(randomBytes(16 * 1024));
  }
  await sleep(200);
  const saveMs: number[] = [];
  const images: Buffer[] = [];
  for (const s of servers) {
    const t0 = performance.now();
    const h = RepairSocket.take(process.pid, handle(s).fd);
    h.pause();
    const img = encodeSocketImage(h.save());
    saveMs.push(ms(t0));
    images.push(img);
    h.closeSilently();
    handle(s).close();
  }
  const restoreMs: number[] = [];
  const restored: RepairSocket[] = [];
  for (const b of images) {
    const t0 = performance.now();
    const r = RepairSocket.restore(decodeSocketImage(b));
    r.resume();
    restoreMs.push(ms(t0));
    restored.push(r);
  }
  const queued = images.reduce((a, b) => a + b.length, 0) / images.length;
  progress(`${n} sockets, ${Math.round(queued)} image bytes each`);
  for (const r of restored) r.close();
  for (const c of clients) c.destroy();
  srv.close();
  const note = `${n} loopback sockets, ~${Math.round(queued / 1024)} KiB queued each; CRIU not runnable on this kernel`;
  return [
    { metric: 'socket save (getfd+repair+save+encode), median', unit: 'ms/socket', coat: percentile(saveMs, 50), peer: null, note },
    { metric: 'socket save, p99', unit: 'ms/socket', coat: percentile(saveMs, 99), peer: null },
    { metric: 'socket restore (decode+repair restore+resume), median', unit: 'ms/socket', coat: percentile(restoreMs, 50), peer: null, note },
    { metric: 'socket restore, p99', unit: 'ms/socket', coat: percentile(restoreMs, 99), peer: null },
  ];
}

async function stateRows(mb: number, progress: (l: string) => void): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'coat-bench-repair-'));
  try {
    const file = join(dir, 'state.bin');
    const content = randomBytes(mb * 1024 * 1024);
    await writeFile(file, content);
    const tracker = new HashTracker();
    const compare = new CompareTracker();
    await compare.round(file, 'state.bin');
    let t0 = performance.now();
    const full = encodePageDelta((await tracker.round(file, 'state.bin')).delta);
    const fullMs = ms(t0);
    await writeFile(join(dir, 'full.pages'), full);
    // Dirty 1 % of the pages, then a round: still reads and hashes everything (the cost of hash tracking).
    const before = Buffer.from(content);
    const pages = content.length / PAGE_SIZE;
    for (let i = 0; i < pages; i += 100) content.writeUInt32BE(i + 1, i * PAGE_SIZE);
    await writeFile(file, content);
    t0 = performance.now();
    const dirty = encodePageDelta((await tracker.round(file, 'state.bin')).delta);
    const dirtyMs = ms(t0);
    t0 = performance.now();
    const dirtyCompare = encodePageDelta((await compare.round(file, 'state.bin')).delta);
    const dirtyCompareMs = ms(t0);
    if (!dirtyCompare.equals(dirty)) throw new Error('bench: compare and hash trackers disagree');
    // The dump's round (service frozen): compared in place through a read-only mapping.
    const inPlace = new CompareTracker();
    await writeFile(file, before);
    inPlace.roundNow(file, 'state.bin');
    await writeFile(file, content);
    t0 = performance.now();
    const dirtyInPlace = encodePageDelta(inPlace.roundNow(file, 'state.bin').delta);
    const dirtyInPlaceMs = ms(t0);
    if (!dirtyInPlace.equals(dirty)) throw new Error('bench: in-place compare and hash trackers disagree');
    t0 = performance.now();
    const rebuilt = applyDeltas([decodePageDelta(full), decodePageDelta(dirty)]);
    await writeFile(join(dir, 'restored.bin'), rebuilt);
    const restoreMs = ms(t0);
    if (!rebuilt.equals(await readFile(file))) throw new Error('bench: rebuilt state differs');
    t0 = performance.now();
    await copyFile(file, join(dir, 'copy.bin'));
    const copyMs = ms(t0);
    progress(`state ${mb} MiB: full round ${fullMs.toFixed(1)} ms, 1% dirty round ${dirtyMs.toFixed(1)} ms (compare ${dirtyCompareMs.toFixed(1)} ms, in place ${dirtyInPlaceMs.toFixed(1)} ms), rebuild ${restoreMs.toFixed(1)} ms, copyFile ${copyMs.toFixed(1)} ms`);
    const sd = softDirtyAvailable();
    return [
      { metric: 'state save, full round (read+digest+encode)', unit: 'ms/MiB', coat: fullMs / mb, peer: copyMs / mb, peerName: 'fs.copyFile of the same file', note: `${mb} MiB` },
      { metric: 'state save, 1% dirty round, hash tracking', unit: 'ms/MiB', coat: dirtyMs / mb, peer: copyMs / mb, peerName: 'fs.copyFile of the same file', note: `${(dirty.length / 1024).toFixed(0)} KiB delta` },
      { metric: 'state save, 1% dirty round, compare tracking (default here), pre-dump (read + compare)', unit: 'ms/MiB', coat: dirtyCompareMs / mb, peer: copyMs / mb, peerName: 'fs.copyFile of the same file', note: 'same delta as hash, checked' },
      { metric: 'state save, 1% dirty round, compare tracking, dump (frozen: in place, mapped)', unit: 'ms/MiB', coat: dirtyInPlaceMs / mb, peer: copyMs / mb, peerName: 'fs.copyFile of the same file', note: 'same delta as hash, checked' },
      { metric: 'state save, 1% dirty round, soft-dirty tracking', unit: 'ms/MiB', coat: null, peer: null, note: sd.ok ? 'available: not measured in this build' : `unavailable here: ${sd.reason}` },
      { metric: 'state restore (decode+apply+write)', unit: 'ms/MiB', coat: restoreMs / mb, peer: copyMs / mb, peerName: 'fs.copyFile of the same file' },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const DIST_MAIN = join(REPO, 'dist', 'src', 'cli', 'main.js');
const DIST_BIN = join(REPO, 'bin', 'coat.js');

/** The workload server's argv: the compiled CLI when dist/ is built (no tsx), else from source. */
function serviceArgv(stateDir: string, extra: string[]): string[] {
  if (!existsSync(DIST_MAIN)) return serverArgv(stateDir, extra);
  return [process.execPath, DIST_BIN, 'workload', 'server', '--host', SERVICE_IP, '--port', '7000', '--state-dir', stateDir, ...extra];
}

/** Spawn -> "standby" of the workload server, compiled and under tsx, 5 starts each. */
async function startRows(progress: (l: string) => void): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'coat-bench-start-'));
  try {
    const measure = async (argv: string[]) => {
      const xs: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        const s = startStandby({ command: argv, logPath: join(dir, 'service.log') });
        try {
          await s.standby(30_000);
          xs.push(ms(t0));
        } finally {
          s.kill();
        }
      }
      return percentile(xs, 50);
    };
    const args = ['workload', 'server', '--host', '127.0.0.1', '--port', '7000', '--state-dir', join(dir, 'state')];
    const tsx = await measure(serverArgv(join(dir, 'state')).slice(0, 4).concat(args));
    const compiled = existsSync(DIST_MAIN) ? await measure([process.execPath, DIST_BIN, ...args]) : null;
    const bare = await measure([process.execPath, '-e', "require('node:net').Socket && new (require('node:net').Socket)({ fd: 3 }).write('standby\\n'); setInterval(() => {}, 1000)"]);
    progress(`service start to standby: compiled ${compiled?.toFixed(0) ?? '(dist not built)'} ms, tsx ${tsx.toFixed(0)} ms, bare node ${bare.toFixed(0)} ms`);
    return [
      { metric: 'service process start (spawn -> standby), compiled CLI, median of 5', unit: 'ms', coat: compiled, peer: tsx, peerName: 'same from source under tsx', note: `bare \`node -e\` to its first line: ${bare.toFixed(0)} ms` },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Recursive synchronous copy of a step directory (files and subdirectories only). */
function copyTreeSync(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const e of readdirSync(from, { withFileTypes: true })) {
    if (e.isDirectory()) copyTreeSync(join(from, e.name), join(to, e.name));
    else if (e.isFile()) copyFileSync(join(from, e.name), join(to, e.name));
  }
}

interface Scenario {
  label: string;
  preRounds: number;
  standby: boolean;
  /** Dirty pages per second of the service (issue 10's goal: R = 5 with 10 MiB). */
  dirtyRate: number;
}

/** One migration of a 10 MiB workload server between two namespaces; the executor's downtime. */
async function migrateOnce(sc: Scenario, progress: (l: string) => void): Promise<{ downtime: number; steps: Record<string, number>; dump: Record<string, number>; restore: Record<string, number>; verified: boolean }> {
  const cleanups: (() => unknown)[] = [];
  const td = { teardown: (fn: () => unknown) => void cleanups.push(fn) };
  const log = logger('bench-repair');
  log.level = 'silent';
  try {
    const topo = await threeNamespaces(td);
    // B holds the address from the start; its bridge port stays down until the switch.
    await exec('ip', ['link', 'set', topo.portB, 'down'], { netns: topo.client });
    await exec('ip', ['addr', 'add', `${SERVICE_IP}/24`, 'dev', topo.ifB], { netns: topo.b });
    const dirA = join(topo.dir, 'state-a');
    const dirB = join(topo.dir, 'state-b');
    const srcImage = join(topo.dir, 'image-src');
    const dstImage = join(topo.dir, 'image-dst');
    await mkdir(dirA, { recursive: true });
    const svc = ['--state-bytes', '10M', '--dirty-rate', String(sc.dirtyRate), '--stream-rate', '1M'];
    const server = coat(td, ['workload', 'server', '--host', SERVICE_IP, '--port', '7000', '--state-dir', dirA, ...svc], topo.a);
    await waitFor('server listening', () => server.stdout().includes('"listening"'), 30_000);
    const statsPath = join(topo.dir, 'client.json');
    coat(td, ['workload', 'client', '--host', SERVICE_IP, '--port', '7000', '--ping-rate', '100', '--stats-file', statsPath], topo.client);
    await waitFor('client traffic', async () => ((await readStats(statsPath))?.stream.bytesVerified ?? 0) > 500_000, 30_000);

    const exe = createExecutor({}) as TcpRepairExecutor;
    const id = `bench-${topo.tag}`;
    const src = (step: string): ExecutorContext => ({ migrationId: id, imageDir: srcImage, stepDir: join(srcImage, step), stepName: step, log, service: { name: 'svc', netns: topo.a, ip: SERVICE_IP, mac: SERVICE_MAC, pid: server.pid, stateDir: dirA } });
    const dst: ExecutorContext = { migrationId: id, imageDir: dstImage, stepDir: dstImage, stepName: 'restore', log, service: { name: 'svc', netns: topo.b, ip: SERVICE_IP, mac: SERVICE_MAC, stateDir: dirB, command: serviceArgv(dirB, svc) } };
    // Stands for the agents' image stream (measured on its own by \`npm run bench -- transfer\`): the
    // step lands whole at the destination, written aside and renamed in as the receiver does; a
    // synchronous local copy, so that this row measures the executor and not libuv's thread pool.
    const stream = async (step: string) => {
      mkdirSync(dstImage, { recursive: true });
      copyTreeSync(join(srcImage, step), join(dstImage, `.incoming-${step}`));
      renameSync(join(dstImage, `.incoming-${step}`), join(dstImage, step));
    };
    await exe.prepare(src('prepare'), 'source');
    if (sc.standby) await exe.prepare(dst, 'destination');
    else await mkdir(dstImage, { recursive: true });
    let restoredPid: number | undefined;
    cleanups.push(() => {
      if (restoredPid) process.kill(restoredPid, 'SIGKILL');
    });
    for (let r = 1; r <= sc.preRounds; r++) {
      await exe.preDump(src(`pre-${r}`), r);
      await stream(`pre-${r}`);
    }
    await exec('ip', ['link', 'set', topo.portA, 'down'], { netns: topo.client }); // the hold
    const steps: Record<string, number> = {};
    let t = performance.now();
    const dumped = await exe.dump(src('dump'));
    steps.dump = ms(t);
    t = performance.now();
    await stream('dump');
    steps.stream = ms(t);
    t = performance.now();
    const restored = await exe.restore(dst);
    restoredPid = restored.pid;
    steps.restore = ms(t);
    await exec('ip', ['link', 'set', topo.portB, 'up'], { netns: topo.client }); // the switch (not counted)
    t = performance.now();
    await exe.resume(dst);
    steps.resume = ms(t);
    await exe.release(src('release'));
    const at = (await readStats(statsPath))?.stream.bytesVerified ?? 0;
    const verified = await waitFor('traffic after the move', async () => ((await readStats(statsPath))?.stream.bytesVerified ?? 0) > at + 200_000, 15_000).then(
      () => true,
      () => false,
    );
    const downtime = steps.dump! + steps.stream! + steps.restore! + steps.resume!;
    progress(`${sc.label}: downtime ${downtime.toFixed(1)} ms (${Object.entries(steps).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}); dump: ${Object.entries(dumped.timings).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}; restore: ${Object.entries(restored.timings).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}; traffic after: ${verified ? 'verified' : 'NOT verified'}`);
    return { downtime, steps, dump: dumped.timings, restore: restored.timings, verified };
  } finally {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch {
        // best effort: the rest must still run
      }
    }
  }
}

async function downtimeRows(progress: (l: string) => void, runs: number): Promise<BenchRow[]> {
  if (process.getuid?.() !== 0) return [{ metric: 'executor downtime: dump start -> resume done', unit: 'ms', coat: null, peer: null, note: 'needs root (namespaces)' }];
  const published = { peer: (657 + 217 + 852 + 231) / 2, peerName: 'Podman checkpoint+restore, PUBLISHED (COAT logs, background §5: 874-1083 ms), not measured' };
  const rows: BenchRow[] = [];
  const R = 5;
  for (const sc of [
    { label: 'cold, no standby (service started in restore)', preRounds: 0, standby: false, dirtyRate: R },
    { label: 'cold, standby started at prepare', preRounds: 0, standby: true, dirtyRate: R },
    { label: '2 pre-copy rounds, standby started at prepare', preRounds: 2, standby: true, dirtyRate: R },
  ]) {
    const results = [];
    for (let i = 0; i < runs; i++) results.push(await migrateOnce(sc, progress));
    // The run with the median downtime, whole (its parts add up).
    const r = [...results].sort((a, b) => a.downtime - b.downtime)[Math.floor((results.length - 1) / 2)]!;
    const fmt = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
    const all = results.map((x) => x.downtime.toFixed(1)).join(', ');
    const own = r.downtime - r.steps.stream!;
    rows.push({ metric: `executor downtime: dump start -> resume done, 10 MiB state, R = ${sc.dirtyRate} pages/s, ${sc.label}, median of ${runs}`, unit: 'ms', coat: r.downtime, ...published, goal: '<= 10 (issue 10, with pre-copy)', note: `runs: ${all}; median run: ${fmt(r.steps)} (without the image copy: ${own.toFixed(1)}); dump: ${fmt(r.dump)}; restore: ${fmt(r.restore)}${results.every((x) => x.verified) ? '' : '; TRAFFIC NOT VERIFIED AFTER A MOVE'}` });
  }
  return rows;
}

export const bench: Bench = {
  summary: 'TCP_REPAIR save/restore per socket and tcp-repair state save/restore per MiB',
  async run(ctx) {
    const args = ctx.args.filter((a) => !a.startsWith('--'));
    const n = Number(args[0] ?? 50);
    const mb = Number(args[1] ?? 64);
    const runsArg = ctx.args.find((a) => a.startsWith('--runs='));
    const runs = runsArg ? Number(runsArg.slice('--runs='.length)) : 3;
    const only = ctx.args.includes('--downtime-only');
    const rows = only ? [] : [...(await socketRows(n, ctx.progress)), ...(await stateRows(mb, ctx.progress))];
    if (!ctx.args.includes('--no-downtime')) rows.push(...(only ? [] : await startRows(ctx.progress)), ...(await downtimeRows(ctx.progress, runs)));
    return rows;
  },
};
