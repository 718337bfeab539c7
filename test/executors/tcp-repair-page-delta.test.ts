/** Page deltas (src/executors/tcp-repair/page-delta.ts) and the hash tracker, pure parts. */
import t from 'tap';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyDeltas, decodePageDelta, encodePageDelta, PageDeltaError } from '../../src/executors/tcp-repair/page-delta.js';
import { CompareTracker, HashTracker, mappingsOf, PAGE_SIZE } from '../../src/executors/tcp-repair/dirty-pages.js';

t.test('rounds of the hash tracker rebuild the file exactly, copying only changed pages', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 12 }), fc.array(fc.array(fc.nat(11), { maxLength: 5 }), { minLength: 1, maxLength: 5 }), (pages, rounds) => {
      const tracker = new HashTracker();
      const file = Buffer.alloc(pages * PAGE_SIZE);
      const deltas = [decodePageDelta(encodePageDelta(tracker.roundOver(file, 'state.bin').delta))];
      if (deltas[0]!.pages.length !== pages) throw new Error('first round must copy every page');
      let v = 1;
      for (const writes of rounds) {
        const touched = new Set<number>();
        for (const p of writes.filter((x) => x < pages)) {
          file.writeUInt32BE(v++, p * PAGE_SIZE + 100);
          touched.add(p);
        }
        const d = tracker.roundOver(file, 'state.bin').delta;
        if (JSON.stringify(d.pages.map((x) => x.index)) !== JSON.stringify([...touched].sort((a, b) => a - b))) throw new Error(`round copied ${d.pages.map((x) => x.index)} for writes to ${[...touched]}`);
        deltas.push(decodePageDelta(encodePageDelta(d)));
      }
      if (!applyDeltas(deltas).equals(file)) throw new Error('rebuilt file differs');
    }),
    { numRuns: 200 },
  );
  t.pass('200 random write histories');
});

t.test('the compare tracker copies exactly the pages the hash tracker copies, file size changes included', async (t) => {
  // Files up to 40 pages: whole 16-page blocks compared at once, partial last blocks page by page.
  // The compare tracker runs twice: over buffers (roundOver) and reading a real file with its
  // reused buffers (roundNow, the dump's path).
  const dir = mkdtempSync(join(tmpdir(), 'coat-cmp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'state.bin');
  const MAX = 40 * PAGE_SIZE;
  fc.assert(
    fc.property(fc.array(fc.record({ size: fc.integer({ min: 0, max: MAX }), writes: fc.array(fc.record({ at: fc.nat(MAX - 1), v: fc.integer({ min: 1, max: 255 }) }), { maxLength: 6 }) }), { minLength: 1, maxLength: 6 }), (rounds) => {
      const hash = new HashTracker();
      const cmp = new CompareTracker();
      const fromFile = new CompareTracker();
      let file = Buffer.alloc(0);
      const deltas = [];
      for (const r of rounds) {
        const next = Buffer.alloc(r.size);
        file.copy(next, 0, 0, Math.min(file.length, r.size));
        for (const w of r.writes) if (w.at < r.size) next[w.at] = w.v;
        file = next;
        writeFileSync(path, file);
        const h = hash.roundOver(Buffer.from(file), 'state.bin').delta;
        const c = cmp.roundOver(Buffer.from(file), 'state.bin').delta;
        const f = fromFile.roundNow(path, 'state.bin').delta;
        for (const [name, d] of [['compare', c], ['compare from the file', f]] as const) {
          if (JSON.stringify(d.pages.map((p) => p.index)) !== JSON.stringify(h.pages.map((p) => p.index))) throw new Error(`${name} copied ${d.pages.map((p) => p.index)}, hash ${h.pages.map((p) => p.index)}`);
          if (!d.pages.every((p, i) => Buffer.from(p.data).equals(Buffer.from(h.pages[i]!.data)))) throw new Error(`${name}: page content differs`);
        }
        deltas.push(decodePageDelta(encodePageDelta(f)));
      }
      if (!applyDeltas(deltas).equals(file)) throw new Error('rebuilt file differs');
    }),
    { numRuns: 300 },
  );
  t.pass('300 random histories');
});

t.test('bad deltas are typed errors', async (t) => {
  const good = encodePageDelta({ name: 'state.bin', pageSize: PAGE_SIZE, fileSize: BigInt(2 * PAGE_SIZE), pages: [{ index: 1, data: Buffer.alloc(PAGE_SIZE, 7) }] });
  t.throws(() => decodePageDelta(good.subarray(0, 100)), { code: 'PGDELTA_TRUNCATED' });
  const c = Buffer.from(good);
  c[200] = c[200]! ^ 1;
  t.throws(() => decodePageDelta(c), { code: 'PGDELTA_CHECKSUM' });
  const m = Buffer.from(good);
  m[0] = 0x41;
  t.throws(() => decodePageDelta(m), { code: 'PGDELTA_BAD_MAGIC' });
  let ours = 0;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      try {
        decodePageDelta(b);
      } catch (err) {
        if (!(err instanceof PageDeltaError)) throw err;
        ours++;
      }
    }),
    { numRuns: 5000 },
  );
  t.equal(ours, 5000, 'random bytes: only our error');
});

t.test('mappings of a file in /proc/PID/maps', async (t) => {
  const maps = `7f0000000000-7f0000004000 rw-s 00000000 00:2a 1234                       /tmp/x/state.bin
7f0000004000-7f0000005000 r--p 00000000 00:2a 99                         /usr/lib/libc.so
`;
  t.same(mappingsOf(maps, '/tmp/x/state.bin'), [{ start: 0x7f0000000000n, end: 0x7f0000004000n, fileOffset: 0n }]);
});
