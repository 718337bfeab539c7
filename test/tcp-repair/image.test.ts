/**
 * The socket image codec (src/tcp-repair/image.ts): round trip, exact length, every truncation,
 * every single-byte corruption, version mismatch, and random bytes (dns-packet / mqtt-packet
 * discipline: decode either succeeds or throws our typed error, never anything else).
 */
import t from 'tap';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { decode, encode, encodingLength, IMAGE_CODES, SocketImageError, addressBytes, addressText, type SocketImage } from '../../src/tcp-repair/image.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
const v6 = fc.ipV6().map((a) => addressText(addressBytes(a, 6), 6, 0));
const imageArb: fc.Arbitrary<SocketImage> = fc
  .tuple(fc.boolean(), fc.uint8Array({ maxLength: 3000 }), fc.uint8Array({ maxLength: 3000 }), fc.nat(), fc.tuple(v4, v4, v6, v6))
  .chain(([is6, sendQueue, recvQueue, unsentSeed, [l4, r4, l6, r6]]) =>
    fc.record({
      family: fc.constant(is6 ? (6 as const) : (4 as const)),
      state: fc.constant(1),
      local: fc.record({ address: fc.constant(is6 ? l6 : l4), port: fc.nat(65535) }),
      remote: fc.record({ address: fc.constant(is6 ? r6 : r4), port: fc.nat(65535) }),
      sendSeq: u32,
      recvSeq: u32,
      mss: fc.integer({ min: 0, max: 65535 }),
      options: fc.nat(7),
      sndWscale: fc.nat(14),
      rcvWscale: fc.nat(14),
      timestamp: u32,
      window: fc.option(fc.record({ sndWl1: u32, sndWnd: u32, maxWindow: u32, rcvWnd: u32, rcvWup: u32 }), { nil: null }),
      sndbuf: u32,
      rcvbuf: u32,
      streamWritten: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      streamRead: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      sendQueue: fc.constant(sendQueue),
      unsentLength: fc.constant(sendQueue.length === 0 ? 0 : unsentSeed % (sendQueue.length + 1)),
      recvQueue: fc.constant(recvQueue),
    }),
  );

const norm = (img: SocketImage) =>
  JSON.stringify({ ...img, sendQueue: Buffer.from(img.sendQueue).toString('hex'), recvQueue: Buffer.from(img.recvQueue).toString('hex') }, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));

t.test('round trip and exact length', async (t) => {
  fc.assert(
    fc.property(imageArb, (img) => {
      const b = encode(img);
      if (b.length !== encodingLength(img)) throw new Error(`length ${b.length} != encodingLength ${encodingLength(img)}`);
      if (norm(decode(b)) !== norm(img)) throw new Error(`round trip differs: ${norm(decode(b))} vs ${norm(img)}`);
      // inside a larger buffer, at an offset
      const big = Buffer.concat([Buffer.alloc(7, 0xee), b]);
      if (norm(decode(big.subarray(7))) !== norm(img)) throw new Error('decode at an offset differs');
    }),
    { numRuns: 300 },
  );
  t.pass('300 random images survive encode -> decode unchanged');
});

const sample: SocketImage = {
  family: 4,
  state: 1,
  local: { address: '10.0.0.2', port: 7000 },
  remote: { address: '10.0.0.1', port: 40000 },
  sendSeq: 1000,
  recvSeq: 2000,
  mss: 1448,
  options: 7,
  sndWscale: 7,
  rcvWscale: 7,
  timestamp: 123456,
  window: { sndWl1: 1, sndWnd: 2, maxWindow: 3, rcvWnd: 4, rcvWup: 5 },
  sndbuf: 87040,
  rcvbuf: 131072,
  streamWritten: 5000n,
  streamRead: 77n,
  sendQueue: Buffer.from('sent-unacked|never-sent'),
  unsentLength: 10,
  recvQueue: Buffer.from('unread'),
};

t.test('every truncation is SKIMG_TRUNCATED with the offset', async (t) => {
  const b = encode(sample);
  for (let n = 0; n < b.length; n++) {
    try {
      decode(b.subarray(0, n));
      t.fail(`decoded a ${n}-byte prefix`);
    } catch (err) {
      if (!(err instanceof SocketImageError)) throw err;
      if (err.code !== 'SKIMG_TRUNCATED') t.fail(`prefix ${n}: ${err.code}`);
    }
  }
  t.pass(`all ${b.length} prefixes refused`);
});

t.test('every single-byte corruption is refused with a typed error', async (t) => {
  const b = encode(sample);
  const seen = new Set<string>();
  for (let i = 0; i < b.length; i++) {
    const c = Buffer.from(b);
    c[i] = c[i]! ^ 0x5a;
    try {
      decode(c);
      t.fail(`corruption at ${i} decoded`);
    } catch (err) {
      if (!(err instanceof SocketImageError)) throw err;
      seen.add(err.code);
    }
  }
  t.ok(seen.has('SKIMG_CHECKSUM') && seen.has('SKIMG_BAD_MAGIC') && seen.has('SKIMG_VERSION') && seen.has('SKIMG_LENGTH'), `codes seen: ${[...seen].join(', ')}`);
});

t.test('version mismatch is SKIMG_VERSION even with a valid checksum', async (t) => {
  const b = encode(sample);
  b.writeUInt16BE(2, 8);
  createHash('sha256').update(b.subarray(0, b.length - 32)).digest().copy(b, b.length - 32);
  t.throws(() => decode(b), { code: 'SKIMG_VERSION', offset: 8 });
});

t.test('trailing bytes and inconsistent lengths are refused', async (t) => {
  const b = encode(sample);
  t.throws(() => decode(Buffer.concat([b, Buffer.from([0])])), { code: 'SKIMG_LENGTH' });
  const c = Buffer.from(b);
  c.writeUInt32BE(sample.sendQueue.length + 1, 124); // unsent > send queue
  createHash('sha256').update(c.subarray(0, c.length - 32)).digest().copy(c, c.length - 32);
  t.throws(() => decode(c), { code: 'SKIMG_LENGTH', offset: 124 });
});

t.test('random bytes: decoded or our error, never anything else', async (t) => {
  let ours = 0;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (bytes, withMagic) => {
      const b = Buffer.from(bytes);
      if (withMagic && b.length >= 8) Buffer.from('COATSKIM').copy(b, 0);
      try {
        decode(b);
      } catch (err) {
        if (!(err instanceof SocketImageError) || !(err.code in IMAGE_CODES)) throw err;
        ours++;
      }
    }),
    { numRuns: 20_000 },
  );
  t.equal(ours, 20_000);
});

t.test('IPv6 text forms', async (t) => {
  t.equal(addressText(addressBytes('2001:db8::1', 6), 6, 0), '2001:db8::1');
  t.equal(addressText(addressBytes('::ffff:10.0.0.1', 6), 6, 0), '::ffff:a00:1');
  t.equal(addressText(addressBytes('::', 6), 6, 0), '::');
  t.throws(() => addressBytes('1::2::3', 6));
  t.throws(() => addressBytes('300.1.1.1', 4));
});
