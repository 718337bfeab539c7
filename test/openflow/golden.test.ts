/**
 * Golden vectors from /work/shared/testdata/openflow13 (Ryu's OpenFlow 1.3 test data), one test per
 * file in the directory listing: decode, agree field by field with the JSON twin, re-encode to the
 * same bytes (lengths re-derived), and reject truncations with a typed error.
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeAll, decodeMessage, encodeMessage, encodingLength, OfpError, type OfpMessage } from '../../src/openflow/index.js';
import { agree, readRyuJson } from './ryu-json.js';

const DIR = '/work/shared/testdata/openflow13';
const files = readdirSync(DIR).sort();
const packets = files.filter((f) => f.endsWith('.packet'));

function firstDiff(a: Buffer, b: Buffer): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Every key of the decoded tree: lengths must never be stored (the encoder derives them). */
function keysOf(v: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) for (const x of v) keysOf(x, out);
  else if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v)) {
    for (const [k, x] of Object.entries(v)) {
      out.add(k);
      keysOf(x, out);
    }
  }
  return out;
}

t.ok(packets.length >= 80, `found ${packets.length} .packet files`);

for (const name of packets) {
  t.test(name, async (t) => {
    const bytes = readFileSync(join(DIR, name));
    const msgs = decodeAll(bytes);
    t.ok(msgs.length >= 1, 'holds at least one message');

    // Re-encode: identical bytes, and encodingLength agrees.
    const again = Buffer.concat(msgs.map((m) => encodeMessage(m)));
    t.equal(firstDiff(again, bytes), -1, 're-encodes byte-identical (first differing offset, -1 = none)');
    t.same(msgs.map(encodingLength), msgs.map((m) => encodeMessage(m).length), 'encodingLength matches');

    // Lengths are derived on encode: no length field survives decoding, and a structural clone
    // (no hidden state) encodes to the same bytes.
    const lengthKeys = [...keysOf(msgs)].filter((k) => /^(len|length|.*_len|.*Len)$/.test(k) && k !== 'totalLen' && k !== 'maxLen' && k !== 'missSendLen');
    t.same(lengthKeys, [], 'decoded objects carry no length fields');
    const cloned = structuredClone(msgs).map((m: OfpMessage) => revive(m));
    t.equal(firstDiff(Buffer.concat(cloned.map((m) => encodeMessage(m))), bytes), -1, 'a structural clone re-encodes identically');

    // Field by field against Ryu's JSON twin.
    const jsonPath = join(DIR, 'json', `${name}.json`);
    if (existsSync(jsonPath)) {
      const ryu = readRyuJson(readFileSync(jsonPath, 'utf8'));
      const problems = agree(msgs[0]!, ryu);
      t.same(problems, [], 'agrees with the JSON twin');
    } else {
      t.fail(`no JSON twin at ${jsonPath}`);
    }

    // Every proper prefix of the first message is rejected with a typed error, never a crash.
    const first = bytes.subarray(0, bytes.readUInt16BE(2));
    for (const cut of new Set([0, 1, 7, 8, Math.floor(first.length / 2), first.length - 1])) {
      if (cut < 0 || cut >= first.length) continue;
      t.equal(errorCode(() => decodeMessage(first.subarray(0, cut))), 'OFP_TRUNCATED', `prefix of ${cut} bytes -> OFP_TRUNCATED`);
    }
  });
}

/** The OfpError code `fn` throws; 'no error' or the foreign error's name otherwise. */
function errorCode(fn: () => unknown): string {
  try {
    fn();
    return 'no error';
  } catch (err) {
    return err instanceof OfpError ? err.code : `foreign ${String(err)}`;
  }
}

/** structuredClone turns Buffers into Uint8Arrays; the encoder needs Buffers back. */
function revive<T>(v: T): T {
  if (v instanceof Uint8Array) return Buffer.from(v) as T;
  if (Array.isArray(v)) return v.map(revive) as T;
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revive(x)])) as T;
  return v;
}

t.test('truncated files are rejected with a typed error', async (t) => {
  const truncated = files.filter((f) => f.includes('truncated'));
  t.ok(truncated.length >= 1, 'the listing has a truncated file');
  for (const name of truncated) {
    const bytes = readFileSync(join(DIR, name));
    t.equal(errorCode(() => decodeMessage(bytes)), 'OFP_TRUNCATED', `${name} (${bytes.length} bytes) -> OFP_TRUNCATED`);
  }
  // The shipped truncated64 file is empty; cut the full flow_mod at 64 bytes as Ryu's test does.
  const full = readFileSync(join(DIR, 'libofproto-OFP13-flow_mod.packet'));
  const err = t.throws(() => decodeMessage(full.subarray(0, 64))) as OfpError;
  t.equal(err.code, 'OFP_TRUNCATED');
  t.equal(err.offset, 0, 'names the offset of the header whose length points past the end');
  t.match(err.check, /ofp_header\.length/);
});
