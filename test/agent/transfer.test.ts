/**
 * Image streaming on loopback: the frame codec (round trips, byte-at-a-time, truncation, fuzz), the
 * token bucket, and a real receiver against the real sender and against hand-made hostile streams
 * (wrong token, corrupt chunk, truncated stream, bad trailer, path escape, silence). Every refused
 * stream must leave nothing in the image root.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { newTag } from '../../lab/tag.js';
import { logger } from '../../src/log.js';
import { TransferError } from '../../src/transfer/errors.js';
import { FrameSocket } from '../../src/transfer/frame-socket.js';
import { CHUNK_BYTES, encodeChunkHeader, encodeFrame, FrameDecoder, isSafeRelativePath, type Frame, type HelloFrame } from '../../src/transfer/frames.js';
import { digestImageDir, listImage } from '../../src/transfer/image-dir.js';
import { ImageReceiver, SMALL_IMAGE_BYTES, type ReceivedImage } from '../../src/transfer/receiver.js';
import { sendImage, SYNC_READ_BYTES } from '../../src/transfer/sender.js';
import { TokenBucket } from '../../src/transfer/token-bucket.js';

process.env.COAT_LOG_LEVEL ??= 'silent';
const tag = newTag();

const sha = (b: Buffer) => createHash('sha256').update(b).digest();

t.test('frame codec', async (t) => {
  const hello: HelloFrame = { type: 'HELLO', version: 1, kind: 'image', migrationId: 'm1', token: 'tk', stepName: 'dump', compression: 'deflate', files: [{ path: 'a/b.bin', size: 5, mode: 0o644 }] };
  const data = Buffer.from('hello');
  const frames: Frame[] = [
    hello,
    { type: 'ACCEPT' },
    { type: 'CHUNK', fileIndex: 7, offset: 2n ** 40n + 3n, rawLength: 5, sha256: sha(data), data },
    { type: 'TRAILER', totalBytes: 5n, imageSha256: sha(Buffer.from('x')) },
    { type: 'DONE', bytes: 5, imageSha256: 'ab', elapsedMs: 1.5 },
    { type: 'ERROR', code: 'TRANSFER_REFUSED', message: 'no', file: 'a', offset: 3 },
  ];
  const wire = Buffer.concat(frames.map(encodeFrame));
  t.same(new FrameDecoder().push(wire), frames, 'all frames round trip in one push');
  const d = new FrameDecoder();
  const oneByOne: Frame[] = [];
  for (const b of wire) oneByOne.push(...d.push(Buffer.from([b])));
  t.same(oneByOne, frames, 'and fed one byte at a time');
  t.equal(d.pending, 0);
  t.equal(d.offset, wire.length);

  const truncated = new FrameDecoder();
  t.same(truncated.push(wire.subarray(0, wire.length - 1)), frames.slice(0, -1), 'a truncated frame is not emitted');
  t.equal(truncated.pending > 0, true);

  t.throws(() => new FrameDecoder().push(Buffer.from([99, 0, 0, 0, 0])), { code: 'TRANSFER_BAD_FRAME', message: /unknown frame type 99 \(stream offset 0\)/ });
  t.throws(() => new FrameDecoder(1024).push(Buffer.from([3, 0, 0, 8, 0])), { code: 'TRANSFER_BAD_FRAME', message: /exceeds 1024/ });
  const shortChunk = Buffer.from([3, 0, 0, 0, 4, 1, 2, 3, 4]);
  t.throws(() => new FrameDecoder().push(Buffer.concat([encodeFrame({ type: 'ACCEPT' }), shortChunk])), { message: /shorter than its 48-byte header \(stream offset 7\)/ }, 'errors name the stream offset');
  const evil = encodeFrame({ ...hello, files: [{ path: '../../etc/passwd', size: 1, mode: 0o644 }] });
  t.throws(() => new FrameDecoder().push(evil), { code: 'TRANSFER_BAD_HEADER', message: /escapes the image/ });
  const chunkHead = encodeChunkHeader({ fileIndex: 7, offset: 2n ** 40n + 3n, rawLength: 5, sha256: sha(data) }, 5);
  t.same(Buffer.concat([chunkHead, data]), encodeFrame(frames[2]!), 'header-only chunk encoding matches');

  for (const p of ['a', 'a/b', 'x.y/z-1']) t.ok(isSafeRelativePath(p), `${p} is safe`);
  for (const p of ['', '/a', '..', 'a/../b', 'a//b', './a', 'a/.']) t.notOk(isSafeRelativePath(p), `${JSON.stringify(p)} is not`);

  // Random bytes decode to frames or to our typed error, never anything else, never a hang.
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      try {
        new FrameDecoder(4096).push(Buffer.from(bytes));
      } catch (e) {
        if (!(e instanceof TransferError)) throw e;
      }
    }),
    { numRuns: 20_000 },
  );
});

t.test('token bucket', async (t) => {
  // 8000 bit/s = 1000 bytes/s = 1 byte/ms, burst 100 bytes.
  const b = new TokenBucket(8000, 100, 0);
  t.equal(b.reserve(100, 0), 0, 'the burst goes at once');
  t.equal(b.reserve(50, 0), 50, 'then 50 bytes wait 50 ms');
  t.equal(b.reserve(50, 50), 50, 'the debt is carried');
  t.equal(b.reserve(10, 1000), 0, 'after a long pause the bucket is full again');
  // Long-run rate: sending 1000-byte frames as soon as allowed takes 1 s per 1000 bytes.
  const c = new TokenBucket(8000, 1000, 0);
  let now = 0;
  for (let i = 0; i < 10; i++) now += c.reserve(1000, now);
  t.equal(now, 9000, '10 kB at 1 kB/s after a 1 kB burst: 9 s');
  t.throws(() => new TokenBucket(0, 1, 0), RangeError);
});

interface Harness {
  root: string;
  receiver: ImageReceiver;
  port: number;
  results: ReceivedImage[];
  failures: TransferError[];
}

async function harness(t: { teardown(fn: () => unknown): void }, idleTimeoutMs = 5000): Promise<Harness> {
  const root = await mkdtemp(join(tmpdir(), `coat-${tag}-rx-`));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const receiver = new ImageReceiver({ imageRoot: (id) => join(root, id), log: logger('test-receiver'), idleTimeoutMs });
  const addr = await receiver.listen('127.0.0.1', 0);
  t.teardown(() => receiver.close());
  const h: Harness = { root, receiver, port: addr.port, results: [], failures: [] };
  receiver.on('received', (r) => h.results.push(r));
  receiver.on('failed', (e) => h.failures.push(e));
  return h;
}

async function makeImage(dir: string): Promise<void> {
  await mkdir(join(dir, 'pages'), { recursive: true });
  await writeFile(join(dir, 'pages', 'big.bin'), randomBytes(700 * 1024 + 13)); // several chunks
  await writeFile(join(dir, 'pages', 'zeros.bin'), Buffer.alloc(300 * 1024)); // compressible
  await writeFile(join(dir, 'empty'), '');
  await writeFile(join(dir, 'meta.json'), '{"pid":42}');
  await chmod(join(dir, 'meta.json'), 0o600);
}

/** Everything under the image root, recursively: must be empty after a refused stream. */
async function leftovers(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      out.push(rel + e.name);
      if (e.isDirectory()) await walk(join(d, e.name), rel + e.name + '/');
    }
  };
  await walk(root, '');
  return out.filter((p) => p.includes('/') || p.startsWith('.')); // the per-migration dir itself may exist
}

/** A raw client speaking the codec by hand, for streams the real sender would never send. */
async function rawClient(port: number) {
  const s = connect({ host: '127.0.0.1', port });
  await new Promise((r) => s.once('connect', r));
  const fs = new FrameSocket(s, 'raw client');
  return { s, fs, send: (f: Frame | Buffer) => fs.write(Buffer.isBuffer(f) ? f : encodeFrame(f)) };
}

function helloFor(files: HelloFrame['files'], token = 'right-token'): HelloFrame {
  return { type: 'HELLO', version: 1, kind: 'image', migrationId: 'mig-1', token, stepName: 'dump', compression: 'none', files };
}

t.test('sender to receiver on loopback', async (t) => {
  for (const compression of ['none', 'deflate', 'brotli'] as const) {
    await t.test(`image arrives whole (${compression})`, async (t) => {
      const h = await harness(t);
      const src = await mkdtemp(join(tmpdir(), `coat-${tag}-src-`));
      t.teardown(() => rm(src, { recursive: true, force: true }));
      await makeImage(src);
      h.receiver.expect('mig-1', 'right-token');
      const r = await sendImage(src, { host: '127.0.0.1', port: h.port, migrationId: 'mig-1', token: 'right-token', stepName: 'dump', compression });
      const want = await digestImageDir(src);
      const got = await digestImageDir(join(h.root, 'mig-1', 'dump'));
      t.equal(got.sha256, want.sha256, 'same image sha256 at both ends');
      t.equal(r.imageSha256, want.sha256, 'the sender computed the same digest');
      t.same(got.files, want.files, 'same paths, sizes and modes');
      t.equal(r.bytes, want.bytes);
      if (compression !== 'none') t.ok(r.wireBytes < want.bytes, `compression shrank the wire bytes (${r.wireBytes} < ${want.bytes})`);
      t.equal(h.results.length, 1);
      t.same((await leftovers(h.root)).filter((p) => p.startsWith('mig-1/dump/') && !p.endsWith('/pages')).sort(), want.files.map((f) => `mig-1/dump/${f.path}`).sort(), 'exactly the image, in place')
      t.notOk((await leftovers(h.root)).some((p) => p.includes('.incoming')), 'no .incoming directory left');
      // The same step again (a retry after a lost DONE) replaces it whole.
      await writeFile(join(src, 'meta.json'), '{"pid":43}');
      const again = await sendImage(src, { host: '127.0.0.1', port: h.port, migrationId: 'mig-1', token: 'right-token', stepName: 'dump', compression });
      t.equal((await digestImageDir(join(h.root, 'mig-1', 'dump'))).sha256, again.imageSha256, 'a resent step replaces the old copy');
      t.not(again.imageSha256, want.sha256);
      t.same((await readdir(join(h.root, 'mig-1'))), ['dump'], 'nothing set aside remains');
    });
  }

  // makeImage is small: it takes the in-memory receive path and whole-file reads. A final dump
  // is small, pre-copy rounds are not: this image is big enough for the streamed paths on both ends.
  await t.test('an image above SMALL_IMAGE_BYTES arrives whole through the streamed paths', async (t) => {
    const h = await harness(t);
    const src = await mkdtemp(join(tmpdir(), `coat-${tag}-src-`));
    t.teardown(() => rm(src, { recursive: true, force: true }));
    await makeImage(src);
    await writeFile(join(src, 'pages', 'large.bin'), randomBytes(SMALL_IMAGE_BYTES + 3 * CHUNK_BYTES + 7));
    const want = await digestImageDir(src);
    t.ok(want.bytes > SMALL_IMAGE_BYTES && want.files.some((f) => f.size > SYNC_READ_BYTES), 'the image is over both thresholds');
    h.receiver.expect('mig-1', 'right-token');
    const r = await sendImage(src, { host: '127.0.0.1', port: h.port, migrationId: 'mig-1', token: 'right-token', stepName: 'pre-1' });
    const got = await digestImageDir(join(h.root, 'mig-1', 'pre-1'));
    t.equal(got.sha256, want.sha256, 'same image sha256 at both ends');
    t.equal(r.imageSha256, want.sha256);
    t.same(got.files, want.files, 'same paths, sizes and modes');
    t.notOk((await leftovers(h.root)).some((p) => p.includes('.incoming')), 'no .incoming directory left');
  });

  await t.test('the next step to the same receiver goes on the kept connection; a closed one is replaced', async (t) => {
    const h = await harness(t);
    const connections: string[] = [];
    h.receiver.on('received', (r: ReceivedImage) => connections.push(r.peer));
    const src = await mkdtemp(join(tmpdir(), `coat-${tag}-src-`));
    t.teardown(() => rm(src, { recursive: true, force: true }));
    await makeImage(src);
    h.receiver.expect('mig-1', 'right-token');
    const send = (stepName: string) => sendImage(src, { host: '127.0.0.1', port: h.port, migrationId: 'mig-1', token: 'right-token', stepName });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    t.teardown(() => process.off('warning', onWarning));
    const first = await send('pre-1');
    for (let i = 2; i <= 12; i++) await send(`pre-${i}`); // many steps on one kept connection
    const second = await send('dump');
    t.equal(connections.length, 13);
    t.ok(connections.every((c, i) => i > 12 || c === connections[0]), 'every step came on the connection of the first round (same client port)');
    t.equal(second.imageSha256, first.imageSha256);
    t.equal((await digestImageDir(join(h.root, 'mig-1', 'dump'))).sha256, first.imageSha256, 'the second image arrived whole');
    // The receiver side goes away (an agent restart): the kept connection is dead, a new one is made.
    for (const s of [...(h.receiver as unknown as { sockets: Set<import('node:net').Socket> }).sockets]) s.destroy();
    await new Promise((r) => setTimeout(r, 50));
    const third = await send('dump');
    t.equal(third.imageSha256, first.imageSha256);
    t.equal(connections.length, 14);
    t.not(connections[13], connections[0], 'a fresh connection after the kept one was closed');
    await new Promise((r) => setImmediate(r));
    t.notOk(warnings.includes('MaxListenersExceededWarning'), 'reusing a connection adds no listener per step');
  });

  await t.test('wrong token and unannounced migration are refused; nothing written', async (t) => {
    const h = await harness(t);
    const src = await mkdtemp(join(tmpdir(), `coat-${tag}-src-`));
    t.teardown(() => rm(src, { recursive: true, force: true }));
    await makeImage(src);
    h.receiver.expect('mig-1', 'right-token');
    const wrong = await sendImage(src, { host: '127.0.0.1', port: h.port, migrationId: 'mig-1', token: 'wrong-token', stepName: 'dump' }).catch((e: unknown) => e);
    t.type(wrong, TransferError);
    t.match(wrong, { code: 'TRANSFER_REFUSED', remote: true, message: /wrong token/ });
    const unknown = await sendImage(src, { host: '127.0.0.1', port: h.port, migrationId: 'mig-2', token: 'right-token', stepName: 'dump' }).catch((e: unknown) => e);
    t.match(unknown, { code: 'TRANSFER_REFUSED', message: /not announced/ });
    t.same(h.failures.map((e) => e.code), ['TRANSFER_REFUSED', 'TRANSFER_REFUSED'], 'the receiver refused both');
    t.same(await readdir(h.root).catch(() => []), [], 'the image root is untouched');
  });

  await t.test('a refused stream of a large image: the sender, which does not wait for ACCEPT, stops at the ERROR', async (t) => {
    const h = await harness(t);
    const src = await mkdtemp(join(tmpdir(), `coat-${tag}-src-`));
    t.teardown(() => rm(src, { recursive: true, force: true }));
    const size = 16 * 1024 * 1024;
    await writeFile(join(src, 'large.bin'), randomBytes(size));
    const server = (h.receiver as unknown as { server: import('node:net').Server }).server;
    const read: Promise<number>[] = [];
    server.on('connection', (s) => read.push(new Promise((r) => s.once('close', () => r(s.bytesRead)))));
    // Paced at 200 Mbit/s: all of it would take ~670 ms; the ERROR comes back in one round trip.
    const err = await sendImage(src, { host: '127.0.0.1', port: h.port, migrationId: 'mig-1', token: 'x', stepName: 'dump', rateBitsPerSecond: 200e6 }).catch((e: unknown) => e);
    t.match(err, { code: 'TRANSFER_REFUSED', remote: true, message: /not announced/ }, "the receiver's reason, not a reset");
    const bytes = (await Promise.all(read)).reduce((a, b) => a + b, 0);
    t.ok(bytes < size / 4, `the sender stopped early: the receiver read ${bytes} of ${size} bytes`);
    t.same(await leftovers(h.root), [], 'nothing written');
  });

  await t.test('a corrupted chunk is refused; no partial image', async (t) => {
    const h = await harness(t);
    h.receiver.expect('mig-1', 'right-token');
    const c = await rawClient(h.port);
    t.teardown(() => c.s.destroy());
    const a = randomBytes(CHUNK_BYTES);
    const b = randomBytes(1000);
    await c.send(helloFor([{ path: 'mem.bin', size: CHUNK_BYTES + 1000, mode: 0o644 }]));
    t.match(await c.fs.next(2000), { type: 'ACCEPT' });
    await c.send({ type: 'CHUNK', fileIndex: 0, offset: 0n, rawLength: CHUNK_BYTES, sha256: sha(a), data: a });
    const flipped = Buffer.from(b);
    flipped[500] = flipped[500]! ^ 0x40;
    await c.send({ type: 'CHUNK', fileIndex: 0, offset: BigInt(CHUNK_BYTES), rawLength: 1000, sha256: sha(b), data: flipped });
    const answer = await c.fs.next(2000);
    t.match(answer, { type: 'ERROR', code: 'TRANSFER_CHUNK_CORRUPT', file: 'mem.bin', offset: CHUNK_BYTES });
    await new Promise((r) => setTimeout(r, 50));
    t.match(h.failures[0], { code: 'TRANSFER_CHUNK_CORRUPT', file: 'mem.bin', offset: CHUNK_BYTES, migrationId: 'mig-1' });
    t.same(await leftovers(h.root), [], 'neither the step dir nor a temporary dir remains');
    await t.rejects(stat(join(h.root, 'mig-1', 'dump')));
  });

  await t.test('a chunk off the protocol boundaries is refused', async (t) => {
    const h = await harness(t);
    h.receiver.expect('mig-1', 'right-token');
    const c = await rawClient(h.port);
    t.teardown(() => c.s.destroy());
    const a = randomBytes(1000);
    await c.send(helloFor([{ path: 'mem.bin', size: 2000, mode: 0o644 }]));
    await c.fs.next(2000);
    await c.send({ type: 'CHUNK', fileIndex: 0, offset: 0n, rawLength: 1000, sha256: sha(a), data: a });
    t.match(await c.fs.next(2000), { type: 'ERROR', code: 'TRANSFER_BAD_FRAME', message: /holds 1000 bytes, expected 2000/ });
    t.same(await leftovers(h.root), []);
  });

  await t.test('a truncated stream is refused; no partial image', async (t) => {
    const h = await harness(t);
    h.receiver.expect('mig-1', 'right-token');
    const c = await rawClient(h.port);
    const a = randomBytes(CHUNK_BYTES);
    await c.send(helloFor([{ path: 'mem.bin', size: 2 * CHUNK_BYTES, mode: 0o644 }]));
    t.match(await c.fs.next(2000), { type: 'ACCEPT' });
    await c.send({ type: 'CHUNK', fileIndex: 0, offset: 0n, rawLength: CHUNK_BYTES, sha256: sha(a), data: a });
    const next = encodeFrame({ type: 'CHUNK', fileIndex: 0, offset: BigInt(CHUNK_BYTES), rawLength: CHUNK_BYTES, sha256: sha(a), data: a });
    await c.send(next.subarray(0, 60_000)); // cut mid-chunk
    c.s.end();
    for (let i = 0; i < 100 && h.failures.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    t.match(h.failures[0], { code: 'TRANSFER_TRUNCATED', migrationId: 'mig-1' });
    t.same(await leftovers(h.root), []);
    c.s.destroy();
  });

  await t.test('a stream that stops after whole chunks, without a trailer, is refused', async (t) => {
    const h = await harness(t);
    h.receiver.expect('mig-1', 'right-token');
    const c = await rawClient(h.port);
    const a = randomBytes(1000);
    await c.send(helloFor([{ path: 'mem.bin', size: 1000, mode: 0o644 }]));
    await c.fs.next(2000);
    await c.send({ type: 'CHUNK', fileIndex: 0, offset: 0n, rawLength: 1000, sha256: sha(a), data: a });
    c.s.end();
    for (let i = 0; i < 100 && h.failures.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    t.match(h.failures[0], { code: 'TRANSFER_TRUNCATED' });
    t.same(await leftovers(h.root), []);
    c.s.destroy();
  });

  await t.test('a trailer whose image sha256 does not match is refused', async (t) => {
    const h = await harness(t);
    h.receiver.expect('mig-1', 'right-token');
    const c = await rawClient(h.port);
    t.teardown(() => c.s.destroy());
    const a = randomBytes(1000);
    await c.send(helloFor([{ path: 'mem.bin', size: 1000, mode: 0o644 }]));
    await c.fs.next(2000);
    await c.send({ type: 'CHUNK', fileIndex: 0, offset: 0n, rawLength: 1000, sha256: sha(a), data: a });
    await c.send({ type: 'TRAILER', totalBytes: 1000n, imageSha256: sha(Buffer.from('something else')) });
    t.match(await c.fs.next(2000), { type: 'ERROR', code: 'TRANSFER_IMAGE_CORRUPT' });
    t.same(await leftovers(h.root), []);
  });

  await t.test('a silent sender times out; nothing left', async (t) => {
    const h = await harness(t, 300);
    h.receiver.expect('mig-1', 'right-token');
    const c = await rawClient(h.port);
    t.teardown(() => c.s.destroy());
    await c.send(helloFor([{ path: 'mem.bin', size: 1000, mode: 0o644 }]));
    await c.fs.next(2000);
    t.match(await c.fs.next(2000), { type: 'ERROR', code: 'TRANSFER_TIMEOUT' });
    t.same(await leftovers(h.root), []);
  });

  await t.test('a file list that escapes the image is refused before anything is written', async (t) => {
    const h = await harness(t);
    h.receiver.expect('mig-1', 'right-token');
    const c = await rawClient(h.port);
    t.teardown(() => c.s.destroy());
    const hello = encodeFrame(helloFor([{ path: 'ok', size: 1, mode: 0o644 }]));
    const evil = Buffer.from(hello.toString('latin1').replace('"ok"', '"../x"'), 'latin1');
    evil.writeUInt32BE(evil.length - 5, 1);
    await c.send(evil);
    t.match(await c.fs.next(2000), { type: 'ERROR', code: 'TRANSFER_BAD_HEADER' });
    t.same(await readdir(h.root).catch(() => []), []);
  });

  await t.test('the sender reports the receiver\'s reason when it stops mid-stream', async (t) => {
    // A fake receiver on the real codec: accepts, reads one chunk, then refuses it and closes.
    const server = createServer((sock) => {
      const fs = new FrameSocket(sock, 'fake receiver');
      void (async () => {
        await fs.next(2000);
        await fs.write(encodeFrame({ type: 'ACCEPT' }));
        await fs.next(2000);
        await fs.write(encodeFrame({ type: 'ERROR', code: 'TRANSFER_CHUNK_CORRUPT', message: 'chunk of big.bin at offset 0 is bad', file: 'big.bin', offset: 0 }));
        fs.lingerClose();
      })().catch(() => sock.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.teardown(() => new Promise((r) => server.close(r)));
    const src = await mkdtemp(join(tmpdir(), `coat-${tag}-src-`));
    t.teardown(() => rm(src, { recursive: true, force: true }));
    await writeFile(join(src, 'big.bin'), randomBytes(8 * 1024 * 1024));
    const err = await sendImage(src, { host: '127.0.0.1', port: (server.address() as AddressInfo).port, migrationId: 'mig-1', token: 'x', stepName: 'dump', idleTimeoutMs: 3000 }).catch((e: unknown) => e);
    t.match(err, { code: 'TRANSFER_CHUNK_CORRUPT', remote: true, file: 'big.bin', offset: 0 }, 'the receiver\'s code, not a connection reset');
  });

  await t.test('file list order is canonical', async (t) => {
    const src = await mkdtemp(join(tmpdir(), `coat-${tag}-src-`));
    t.teardown(() => rm(src, { recursive: true, force: true }));
    await makeImage(src);
    t.same((await listImage(src)).map((f) => f.path), ['empty', 'meta.json', 'pages/big.bin', 'pages/zeros.bin']);
  });
});
