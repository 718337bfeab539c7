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
 * - dirty tracking: hash vs soft-dirty on the same file; soft-dirty only where the kernel has it.
 */
import net from 'node:net';
import { mkdtemp, rm, writeFile, copyFile, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bench, BenchRow } from './harness.js';
import { percentile } from './harness.js';
import { RepairSocket, encodeSocketImage, decodeSocketImage } from '../src/tcp-repair/index.js';
import { HashTracker, PAGE_SIZE, softDirtyAvailable } from '../src/executors/tcp-repair/dirty-pages.js';
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
    let t0 = performance.now();
    const full = encodePageDelta((await tracker.round(file, 'state.bin')).delta);
    const fullMs = ms(t0);
    await writeFile(join(dir, 'full.pages'), full);
    // Dirty 1 % of the pages, then a round: still reads and hashes everything (the cost of hash tracking).
    const pages = content.length / PAGE_SIZE;
    for (let i = 0; i < pages; i += 100) content.writeUInt32BE(i + 1, i * PAGE_SIZE);
    await writeFile(file, content);
    t0 = performance.now();
    const dirty = encodePageDelta((await tracker.round(file, 'state.bin')).delta);
    const dirtyMs = ms(t0);
    t0 = performance.now();
    const rebuilt = applyDeltas([decodePageDelta(full), decodePageDelta(dirty)]);
    await writeFile(join(dir, 'restored.bin'), rebuilt);
    const restoreMs = ms(t0);
    if (!rebuilt.equals(await readFile(file))) throw new Error('bench: rebuilt state differs');
    t0 = performance.now();
    await copyFile(file, join(dir, 'copy.bin'));
    const copyMs = ms(t0);
    progress(`state ${mb} MiB: full round ${fullMs.toFixed(1)} ms, 1% dirty round ${dirtyMs.toFixed(1)} ms, rebuild ${restoreMs.toFixed(1)} ms, copyFile ${copyMs.toFixed(1)} ms`);
    const sd = softDirtyAvailable();
    return [
      { metric: 'state save, full round (read+digest+encode)', unit: 'ms/MiB', coat: fullMs / mb, peer: copyMs / mb, peerName: 'fs.copyFile of the same file', note: `${mb} MiB` },
      { metric: 'state save, 1% dirty round, hash tracking', unit: 'ms/MiB', coat: dirtyMs / mb, peer: copyMs / mb, peerName: 'fs.copyFile of the same file', note: `${(dirty.length / 1024).toFixed(0)} KiB delta` },
      { metric: 'state save, 1% dirty round, soft-dirty tracking', unit: 'ms/MiB', coat: null, peer: null, note: sd.ok ? 'available: not measured in this build' : `unavailable here: ${sd.reason}` },
      { metric: 'state restore (decode+apply+write)', unit: 'ms/MiB', coat: restoreMs / mb, peer: copyMs / mb, peerName: 'fs.copyFile of the same file' },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const bench: Bench = {
  summary: 'TCP_REPAIR save/restore per socket and tcp-repair state save/restore per MiB',
  async run(ctx) {
    const n = Number(ctx.args[0] ?? 50);
    const mb = Number(ctx.args[1] ?? 64);
    return [...(await socketRows(n, ctx.progress)), ...(await stateRows(mb, ctx.progress))];
  },
};
