/**
 * Pre-dump rounds copy only the pages dirtied since the previous round: a real workload server
 * with M = 4 MiB (1024 pages) dirtying R = 200 pages/s in rotating order (src/workload/server.ts)
 * is pre-dumped by the real executor; round 0 copies all 1024 pages, later rounds R x interval
 * (+1: page 0 holds the mutator's cursor), as one contiguous run of the rotation.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mkdtemp, rm } from 'node:fs/promises';
import { logger } from '../../src/log.js';
import { createExecutor } from '../../src/executors/tcp-repair.js';
import { softDirtyAvailable } from '../../src/executors/tcp-repair/dirty-pages.js';
import { applyDeltas, decodePageDelta } from '../../src/executors/tcp-repair/page-delta.js';
import type { ExecutorContext } from '../../src/migration/executor.js';
import { coat, sleep, waitFor } from '../tcp-repair/fixture.js';

const log = logger('test-tcp-repair-predump');
log.level = process.env.COAT_TEST_LOG ?? 'silent';

const R = 200;
const PAGES = 1024;

// Every tracker this kernel has: soft-dirty only where CONFIG_MEM_SOFT_DIRTY is set (not here:
// /proc/config.gz), so compare (the default here) and hash.
const TRACKERS = ['compare', 'hash', ...(softDirtyAvailable().ok ? ['soft-dirty'] : [])] as const;

for (const tracking of TRACKERS) t.test(`pre-dump rounds copy only dirtied pages (${tracking} tracking)`, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'coat-predump-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const stateDir = join(dir, 'state');
  await mkdir(stateDir);
  const port = String(20000 + Math.floor(Math.random() * 20000));
  const server = coat(t, ['workload', 'server', '--host', '127.0.0.1', '--port', port, '--state-dir', stateDir, '--state-bytes', String(PAGES * 4096), '--dirty-rate', String(R)]);
  await waitFor('server listening', () => server.stdout().includes('"listening"'));
  await sleep(300); // the mutator is running

  const sd = softDirtyAvailable();
  t.comment(`soft-dirty: ${sd.ok ? 'available' : 'unavailable'} (${sd.reason}); tracking used: ${tracking}`);
  const exe = createExecutor({ dirtyTracking: tracking });
  const imageDir = join(dir, 'image');
  const ctx = (step: string): ExecutorContext => ({ migrationId: 'predump', imageDir, stepDir: join(imageDir, step), stepName: step, log, service: { name: 'svc', netns: '', ip: '127.0.0.1', mac: '', pid: server.pid, stateDir } });
  await exe.prepare(ctx('pre-0'), 'source');

  const rounds: { pages: number[]; at: number }[] = [];
  for (const [i, gapMs] of [[0, 0], [1, 500], [2, 1000], [3, 250]] as const) {
    await sleep(gapMs);
    const t0 = performance.now();
    const r = await exe.preDump(ctx(`pre-${i}`), i);
    const at = (t0 + performance.now()) / 2;
    const delta = decodePageDelta(await readFile(join(imageDir, `pre-${i}`, 'state', 'state.bin.pages')));
    t.equal(r.pages, delta.pages.length, `round ${i}: result counts the pages written (${r.pages})`);
    rounds.push({ pages: delta.pages.map((p) => p.index), at });
  }
  t.equal(rounds[0]!.pages.length, PAGES, 'round 0 copies every page');
  for (let i = 1; i < rounds.length; i++) {
    const dt = (rounds[i]!.at - rounds[i - 1]!.at) / 1000;
    const expected = R * dt + 1;
    const n = rounds[i]!.pages.length;
    t.ok(n >= expected * 0.6 && n <= expected * 1.4 + 4, `round ${i}: ${n} pages after ${dt.toFixed(3)} s, expected about ${expected.toFixed(0)} (R = ${R}/s)`);
    t.ok(n < PAGES / 2, `round ${i} copies a fraction of the ${PAGES} pages`);
    // The dirtied pages are a contiguous run of the rotation (plus page 0, the cursor).
    const run = rounds[i]!.pages.filter((p) => p !== 0);
    const gaps = run.slice(1).filter((p, k) => p !== run[k]! + 1).length;
    t.ok(gaps <= 1, `round ${i}: dirtied pages form one rotating run (${gaps} wrap)`);
  }
  // The dump's round (service frozen; the compare tracker compares in place through a mapping):
  // again only what was dirtied since round 3, and all rounds rebuild the frozen state exactly.
  await sleep(250);
  // A state file that appeared after the rounds: no round copied it, so the dump sends it whole.
  const late = Buffer.alloc(3 * 4096 + 17, 0x5a);
  await writeFile(join(stateDir, 'late.bin'), late);
  const t0 = performance.now();
  const dump = await exe.dump(ctx('dump'));
  const dt = ((t0 + performance.now()) / 2 - rounds.at(-1)!.at) / 1000;
  const expected = R * dt + 1;
  const dumpPages = dump.pages! - 4; // late.bin's 4 pages
  t.ok(dumpPages >= expected * 0.6 && dumpPages <= expected * 1.4 + 4, `dump: ${dumpPages} pages of state.bin after ${dt.toFixed(3)} s, expected about ${expected.toFixed(0)}`);
  const meta = JSON.parse(await readFile(join(imageDir, 'dump', 'round.json'), 'utf8')) as { files: string[]; whole: { name: string; size: number; sha256: string }[] };
  const sha256 = createHash('sha256').update(late).digest('hex');
  t.same([meta.files, meta.whole], [['state.bin'], [{ name: 'late.bin', size: late.length, sha256 }]], 'state.bin as a delta (earlier rounds copied it), late.bin whole with its SHA-256');
  t.ok((await readFile(join(imageDir, 'dump', 'state', 'late.bin.whole'))).equals(late), 'late.bin whole, byte for byte');
  const deltas = [];
  for (const step of ['pre-0', 'pre-1', 'pre-2', 'pre-3', 'dump']) deltas.push(decodePageDelta(await readFile(join(imageDir, step, 'state', 'state.bin.pages'))));
  t.ok(applyDeltas(deltas).equals(await readFile(join(stateDir, 'state.bin'))), 'the rounds and the dump rebuild the frozen state byte for byte');
  await exe.abort(ctx('dump'), 'source');
  t.ok(server.child.exitCode === null, 'the service still runs after the rounds');
});
