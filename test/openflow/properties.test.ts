/**
 * Property tests (dns-packet's and mqtt-packet's checks): round trip, encodingLength, encoding at
 * an offset inside a larger buffer, the stream parser fed one byte at a time and in random chunks,
 * and 100,000 random or mutated buffers that must each end as a message or as an OfpError.
 */
import t from 'tap';
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import {
  decodeAll, decodeMessage, encodeMessage, encodeMessageInto, encodingLength, OfpError, OfpStreamParser, type OfpMessage,
} from '../../src/openflow/index.js';
import { message } from './arbitraries.js';

const RUNS = 3000;

/** fast-check builds null-prototype records; compare as plain objects (Buffers stay Buffers). */
function plain(v: unknown): unknown {
  if (Buffer.isBuffer(v) || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(plain);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
}
const same = (a: unknown, b: unknown) => isDeepStrictEqual(plain(a), plain(b));

t.test('decode(encode(m)) equals m', async (t) => {
  fc.assert(
    fc.property(message, (m) => same(decodeMessage(encodeMessage(m)), m)),
    { numRuns: RUNS },
  );
  t.pass(`held for ${RUNS} generated cases`);
});

t.test('encode(m).length === encodingLength(m), and the header length says the same', async (t) => {
  fc.assert(
    fc.property(message, (m) => {
      const buf = encodeMessage(m);
      return buf.length === encodingLength(m) && buf.readUInt16BE(2) === buf.length && buf[0] === 4;
    }),
    { numRuns: RUNS },
  );
  t.pass(`held for ${RUNS} generated cases`);
});

t.test('encodeMessageInto at an offset writes exactly its bytes and nothing around them', async (t) => {
  fc.assert(
    fc.property(message, fc.nat(64), fc.nat(64), (m, before, after) => {
      const len = encodingLength(m);
      const big = Buffer.alloc(before + len + after, 0xa5);
      const n = encodeMessageInto(m, big, before);
      return (
        n === len &&
        big.subarray(before, before + n).equals(encodeMessage(m)) &&
        big.subarray(0, before).every((b) => b === 0xa5) &&
        big.subarray(before + n).every((b) => b === 0xa5)
      );
    }),
    { numRuns: 1000 },
  );
  // Too little room is a typed error, not a partial write.
  const m: OfpMessage = { type: 'echo_request', xid: 1, data: Buffer.alloc(10) };
  const small = Buffer.alloc(17, 0xa5);
  t.throws(() => encodeMessageInto(m, small, 0), { code: 'OFP_ENCODE_INVALID' });
  t.ok(small.every((b) => b === 0xa5), 'target untouched');
});

t.test('stream parser: one byte at a time and random chunks give the same messages', async (t) => {
  fc.assert(
    fc.property(fc.array(message, { minLength: 1, maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), (msgs, cuts) => {
      const wire = Buffer.concat(msgs.map((m) => encodeMessage(m)));
      const p1 = new OfpStreamParser();
      const byByte: OfpMessage[] = [];
      for (let i = 0; i < wire.length; i++) byByte.push(...p1.push(wire.subarray(i, i + 1)));
      if (!same(byByte, msgs) || p1.buffered !== 0) return false;

      const p2 = new OfpStreamParser();
      const byChunk: OfpMessage[] = [];
      let off = 0;
      for (let i = 0; off < wire.length; i++) {
        const n = cuts[i % cuts.length]!;
        byChunk.push(...p2.push(wire.subarray(off, off + n)));
        off += n;
      }
      return same(byChunk, msgs);
    }),
    { numRuns: 300 },
  );
  t.pass(`held for 300 generated cases`);
});

t.test('stream parser keeps leftovers and resets after a framing error', async (t) => {
  const hello = encodeMessage({ type: 'hello', xid: 1, elements: [{ type: 'versionbitmap', versions: [4] }] });
  const echo = encodeMessage({ type: 'echo_request', xid: 2, data: Buffer.from('abc') });
  const p = new OfpStreamParser();
  t.same(p.push(Buffer.concat([hello, echo.subarray(0, 5)])).map((m) => m.type), ['hello']);
  t.equal(p.buffered, 5, 'keeps the partial echo');
  const bad = Buffer.from([4, 2, 0, 3, 0, 0, 0, 9]); // length 3 < 8: framing lost
  let err: OfpError | undefined;
  try {
    p.push(Buffer.concat([echo.subarray(5), bad]));
  } catch (e) {
    err = e as OfpError;
  }
  t.ok(err instanceof OfpError, 'throws OfpError');
  t.equal(err?.code, 'OFP_BAD_LENGTH');
  t.equal(err?.check, 'ofp_header.length >= 8');
  t.equal(err?.offset, echo.length + 2, 'offset of the bad length field in the parser buffer');
  t.same(err?.messages?.map((m) => (m as OfpMessage).type), ['echo_request'], 'messages completed before the error are handed over');
  t.equal(err?.leftover?.length, 8, 'the dropped bytes');
  t.equal(p.buffered, 0, 'parser reset');
  t.same(p.push(hello).map((m) => m.type), ['hello'], 'usable after the reset');

  // A well-framed but undecodable message: with a handler, parsing continues past it.
  const badType = Buffer.from([4, 99, 0, 8, 0, 0, 0, 1]);
  const seen: string[] = [];
  const q = new OfpStreamParser({ onMessageError: (e) => seen.push(e.code) });
  t.same(q.push(Buffer.concat([badType, hello])).map((m) => m.type), ['hello']);
  t.same(seen, ['OFP_BAD_TYPE']);
});

/** Runs `fn` and reports 'ok', an OfpError code, or the foreign failure (which fails the test). */
function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof OfpError) return err.code;
    return `FOREIGN ${(err as Error)?.stack ?? String(err)}`;
  }
}

t.test('100,000 random and mutated buffers end as a message or an OfpError', async (t) => {
  const seeds: Buffer[] = [];
  const dir = '/work/shared/testdata/openflow13';
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.packet'))) {
    const b = readFileSync(join(dir, f));
    for (let off = 0; off < b.length; off += b.readUInt16BE(off + 2)) seeds.push(b.subarray(off, off + b.readUInt16BE(off + 2)));
  }
  fc.sample(message, { numRuns: 200, seed: 42 }).forEach((m) => seeds.push(encodeMessage(m)));

  // A small deterministic PRNG keeps failures reproducible (xorshift32).
  let s = 0x9e3779b9;
  const rnd = (n: number) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
  const tally: Record<string, number> = {};
  const foreign: string[] = [];
  const parser = new OfpStreamParser({ onMessageError: () => undefined });
  for (let i = 0; i < 100_000; i++) {
    let buf: Buffer;
    if (i % 4 === 0) {
      // Random bytes behind a plausible header (version 4, random type and length).
      buf = Buffer.alloc(8 + rnd(120));
      for (let j = 0; j < buf.length; j++) buf[j] = rnd(256);
      buf[0] = 4;
      if (rnd(2)) buf.writeUInt16BE(buf.length, 2);
    } else {
      // A valid message with a few bytes flipped, and sometimes cut or extended.
      const seed = seeds[rnd(seeds.length)]!;
      buf = Buffer.from(seed);
      for (let k = 1 + rnd(4); k > 0; k--) if (buf.length > 0) buf[rnd(buf.length)] = rnd(256);
      const r = rnd(8);
      if (r === 0) buf = buf.subarray(0, rnd(buf.length + 1));
      else if (r === 1) buf = Buffer.concat([buf, Buffer.alloc(rnd(16), rnd(256))]);
      if (rnd(3) === 0 && buf.length >= 4) buf.writeUInt16BE(buf.length, 2);
    }
    const o = outcome(() => decodeMessage(buf));
    tally[o] = (tally[o] ?? 0) + 1;
    if (o.startsWith('FOREIGN') && foreign.length < 5) foreign.push(`${buf.toString('hex')}: ${o}`);
    if (i % 10 === 0) {
      const o2 = outcome(() => parser.push(buf));
      if (o2.startsWith('FOREIGN') && foreign.length < 5) foreign.push(`stream ${buf.toString('hex')}: ${o2}`);
    }
  }
  t.same(foreign, [], 'no foreign exception');
  t.ok((tally.ok ?? 0) > 1000, `some inputs still decode (${tally.ok})`);
  t.ok(Object.keys(tally).filter((k) => k !== 'ok').length >= 4, `several distinct error codes: ${JSON.stringify(tally)}`);
});

t.test('decodeAll reads concatenated messages', async (t) => {
  fc.assert(
    fc.property(fc.array(message, { maxLength: 5 }), (msgs) => {
      const wire = Buffer.concat(msgs.map((m) => encodeMessage(m)));
      return same(decodeAll(wire), msgs);
    }),
    { numRuns: 200 },
  );
  t.pass(`held for 200 generated cases`);
});
