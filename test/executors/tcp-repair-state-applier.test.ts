/**
 * The destination's state applier (src/executors/tcp-repair/state-applier.ts): rounds written into
 * the temp files give exactly what `applyDeltas` gives, and pre-copy rounds renamed into the image
 * directory (as the agent's receiver does) are applied in the background, in order, before restore.
 */
import t from 'tap';
import fc from 'fast-check';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logger } from '../../src/log.js';
import { applyDeltas, encodePageDelta, type PageDelta } from '../../src/executors/tcp-repair/page-delta.js';
import { StateApplier, TMP_SUFFIX } from '../../src/executors/tcp-repair/state-applier.js';
import { waitFor } from '../tcp-repair/fixture.js';

const log = logger('test-state-applier');
log.level = process.env.COAT_TEST_LOG ?? 'silent';
const PAGE = 4096;

function delta(name: string, pages: number, indexes: number[], fill: number): PageDelta {
  return { name, pageSize: PAGE, fileSize: BigInt(pages * PAGE - (fill % 3) * 100), pages: [...new Set(indexes)].sort((a, b) => a - b).filter((i) => i < pages).map((index) => ({ index, data: new Uint8Array(PAGE).fill((fill + index) % 251) })) };
}

t.test('applying rounds into the temp file equals applyDeltas, shrinking and growing files included', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'coat-applier-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(fc.record({ pages: fc.integer({ min: 1, max: 40 }), idx: fc.array(fc.nat(45), { maxLength: 30 }) }), { minLength: 1, maxLength: 5 }), async (rounds) => {
      const stateDir = join(dir, `s${run++}`);
      await mkdir(stateDir);
      const applier = new StateApplier(join(dir, 'none'), stateDir, log);
      const deltas = rounds.map((r, i) => delta('state.bin', r.pages, r.idx, i * 7 + 1));
      for (const d of deltas) await applier.apply([d]);
      const made = await applier.finish(['state.bin']);
      if (made.length !== 1) throw new Error(`made ${made.length} files`);
      const got = await readFile(join(stateDir, 'state.bin'));
      if (!got.equals(applyDeltas(deltas))) throw new Error('applied file differs from applyDeltas');
      if (existsSync(join(stateDir, 'state.bin' + TMP_SUFFIX))) throw new Error('temp file left');
    }),
    { numRuns: 60 },
  );
  t.pass('60 random round histories');
});

t.test('a file the dump sent whole replaces what earlier rounds built for it, and is moved, not copied', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'coat-applier-whole-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const stateDir = join(dir, 'state');
  await mkdir(stateDir);
  const applier = new StateApplier(join(dir, 'none'), stateDir, log);
  applier.applyNow([delta('state.bin', 8, [0, 1, 2, 3, 4, 5, 6, 7], 3), delta('other.bin', 2, [0, 1], 5)]);
  const whole = join(dir, 'state.bin.whole');
  const content = Buffer.alloc(5 * PAGE + 123, 0x42);
  await writeFile(whole, content);
  applier.placeWhole('state.bin', whole, content.length);
  t.notOk(existsSync(whole), 'the image file was renamed into place (restore consumes it)');
  t.same(applier.finish(['state.bin', 'other.bin']).sort(), [join(stateDir, 'other.bin'), join(stateDir, 'state.bin')]);
  t.ok((await readFile(join(stateDir, 'state.bin'))).equals(content), 'state.bin is the whole file, not the 8 pages of the earlier round');
  t.ok((await readFile(join(stateDir, 'other.bin'))).equals(applyDeltas([delta('other.bin', 2, [0, 1], 5)])), 'other files keep their rounds');
});

/**
 * A fresh image directory and state directory, and `land`: a pre-copy step landing whole, as
 * src/transfer/receiver.ts does it (written aside, renamed in).
 */
async function applierDirs(t: { teardown(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'coat-applier-bg-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const imageDir = join(dir, 'image');
  const stateDir = join(dir, 'state');
  await mkdir(imageDir);
  await mkdir(stateDir);
  const land = async (name: string, round: number, deltas: PageDelta[]) => {
    const tmp = join(dir, `.incoming-${name}`);
    await mkdir(join(tmp, 'state'), { recursive: true });
    for (const d of deltas) await writeFile(join(tmp, 'state', `${d.name}.pages`), encodePageDelta(d));
    await writeFile(join(tmp, 'round.json'), JSON.stringify({ kind: 'pre', round, files: deltas.map((d) => d.name) }));
    await rename(tmp, join(imageDir, name));
  };
  return { imageDir, stateDir, land };
}

t.test('pre-copy rounds arriving in the image directory are applied in order before restore', async (t) => {
  const { imageDir, stateDir, land } = await applierDirs(t);
  await writeFile(join(stateDir, 'old.bin' + TMP_SUFFIX), 'left by an earlier migration');
  const applier = new StateApplier(imageDir, stateDir, log);
  const r1 = [delta('a.bin', 64, [...Array(64).keys()], 1), delta('b.bin', 8, [...Array(8).keys()], 2)];
  await land('pre-1', 1, r1); // before the applier starts: picked up by the first look
  await applier.start();
  t.notOk(existsSync(join(stateDir, 'old.bin' + TMP_SUFFIX)), 'a stale temp file is removed at start');
  await waitFor('round 1 applied', () => applier.applied.includes(1), 5000, 10);
  // The temp file is sized only at finish: compare the bytes the rounds define.
  const upTo = (b: Buffer, n: Buffer) => b.subarray(0, n.length);
  const want1 = applyDeltas([r1[0]!]);
  t.same(upTo(await readFile(join(stateDir, 'a.bin' + TMP_SUFFIX)), want1), want1, 'round 1 is in the temp file');
  t.notOk(existsSync(join(stateDir, 'a.bin')), 'the state file itself is not there before restore');

  // A step written in place (not renamed in) with a torn round.json is not applied meanwhile.
  await mkdir(join(imageDir, 'pre-3'));
  await writeFile(join(imageDir, 'pre-3', 'round.json'), '{"kind":"pre","rou');
  const r2 = [delta('a.bin', 64, [3, 4, 5, 60], 9)];
  await land('pre-2', 2, r2);
  await waitFor('round 2 applied', () => applier.applied.includes(2), 5000, 10);
  const want2 = applyDeltas([r1[0]!, r2[0]!]);
  t.same(upTo(await readFile(join(stateDir, 'a.bin' + TMP_SUFFIX)), want2), want2, 'round 2 is on top of round 1');
  await applier.stop();
  t.same(applier.applied, [1, 2], 'rounds applied in order; the torn step left for restore');
  t.ok(applier.backgroundMs > 0, `background application took ${applier.backgroundMs.toFixed(1)} ms, outside restore`);

  // Restore applies the dump's delta only and renames; b.bin is gone at the dump.
  const dump = delta('a.bin', 64, [10], 20);
  await applier.apply([dump]);
  const made = await applier.finish(['a.bin']);
  t.same(made, [join(stateDir, 'a.bin')]);
  t.same(await readFile(join(stateDir, 'a.bin')), applyDeltas([r1[0]!, r2[0]!, dump]), 'final state = every round in order');
  t.same((await readdir(stateDir)).sort(), ['a.bin'], 'no temp file, and no file the dump did not name');
});

t.test('settle applies a round that just landed before it returns, watched or not', async (t) => {
  const { imageDir, stateDir, land } = await applierDirs(t);
  const applier = new StateApplier(imageDir, stateDir, log);
  await applier.start();
  t.teardown(() => applier.stop());
  // A large round renamed in (as the receiver lands it), then settle at once: no waiting for the
  // directory watch to notice.
  const r1 = [delta('a.bin', 2048, [...Array(2048).keys()], 5)];
  await land('pre-1', 1, r1);
  await applier.settle();
  t.same(applier.applied, [1], 'the round is applied when settle returns');
  const want = applyDeltas(r1);
  t.same((await readFile(join(stateDir, 'a.bin' + TMP_SUFFIX))).subarray(0, want.length), want, '8 MiB of pages in the temp file');
  await applier.settle();
  t.same(applier.applied, [1], 'settling again applies nothing twice');
});
