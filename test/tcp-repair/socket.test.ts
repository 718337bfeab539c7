/**
 * The RepairSocket handle against the real kernel, in this process over loopback: pause -> save ->
 * silent close -> restore -> resume keeps the byte streams intact in both directions (unread
 * bytes in the receive queue come back, the stream offsets are exact), and out-of-sequence use is
 * a typed error.
 */
import t from 'tap';
import net from 'node:net';
import { RepairSocket, decodeSocketImage, encodeSocketImage, restoreBuffers, streamOffsets, type SocketImage } from '../../src/tcp-repair/index.js';

interface HandleLike {
  fd: number;
  readStop(): void;
  close(): void;
}
const handle = (s: net.Socket) => (s as unknown as { _handle: HandleLike })._handle;

async function pair(t: { teardown(fn: () => unknown): void }) {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const client = net.connect(port, '127.0.0.1');
  const server = await accepted;
  t.teardown(() => {
    client.destroy();
    server.destroy();
    srv.close();
  });
  return { client, server };
}

t.test('save, silent close, restore, resume: both streams continue exactly', async (t) => {
  const { client, server } = await pair(t);
  let atClient = '';
  client.on('data', (d: Buffer) => (atClient += d.toString()));
  server.write('hello ');
  client.write('ping1 ');
  await new Promise((r) => setTimeout(r, 100));
  server.on('error', () => {}); // reads in repair mode fail; this socket is being retired
  handle(server).readStop();
  const h = RepairSocket.take(process.pid, handle(server).fd);
  t.throws(() => h.save(), { code: 'TCPR_STATE' }, 'save before pause is refused');
  h.pause();
  client.write('unread ');
  await new Promise((r) => setTimeout(r, 100));
  const img = decodeSocketImage(encodeSocketImage(h.save()));
  t.equal(Buffer.from(img.recvQueue).toString(), 'unread ', 'the unread bytes are in the receive queue image');
  t.equal(img.streamWritten, 6n, 'written offset = 6 bytes the server wrote');
  t.equal(img.streamRead, 6n, 'read offset = 6 bytes the server read ("ping1 ")');
  h.closeSilently();
  handle(server).close();
  t.throws(() => h.save(), { code: 'TCPR_STATE' }, 'a closed handle is refused');

  const r = RepairSocket.restore(img);
  t.ok(r.inRepair, 'restored in repair mode');
  const origin = r.resume();
  const s2 = new net.Socket({ fd: r.fd, readable: true, writable: true });
  let atServer = '';
  s2.on('data', (d: Buffer) => (atServer += d.toString()));
  s2.write('after');
  client.write('more');
  await new Promise((res) => setTimeout(res, 300));
  t.equal(atClient, 'hello after', 'the client got the old and the new bytes, nothing twice');
  t.equal(atServer, 'unread more', 'the restored socket delivered the saved receive queue first');
  // Stream offsets from the origin resume() returned: 6 + 5 written, 6 + 11 read.
  const n = (await import('../../src/tcp-repair/native.js')).native();
  const c = n.counters(r.fd);
  t.same(streamOffsets(origin, c), { written: 11n, read: 17n }, 'offsets after the move continue from the image');
  s2.destroy();
});

t.test('restore into a namespace that does not exist is TCPR_NO_NETNS', async (t) => {
  const { client } = await pair(t);
  void client;
  const img = {
    family: 4 as const, state: 1, local: { address: '127.0.0.1', port: 1 }, remote: { address: '127.0.0.1', port: 2 }, sendSeq: 1, recvSeq: 1, mss: 1400, options: 0,
    sndWscale: 0, rcvWscale: 0, timestamp: 0, window: null, sndbuf: 0, rcvbuf: 0, streamWritten: 0n, streamRead: 0n, sendQueue: new Uint8Array(0), unsentLength: 0, recvQueue: new Uint8Array(0),
  };
  t.throws(() => RepairSocket.restore(img, { netns: 'coat-no-such-netns-x' }), { code: 'TCPR_NO_NETNS' });
});

t.test('restoreBuffers: both saved queues fit with room for skb overhead, never below the image', async (t) => {
  const img = (sndbuf: number, rcvbuf: number, send: number, recv: number) => ({ sndbuf, rcvbuf, sendQueue: new Uint8Array(send), recvQueue: new Uint8Array(recv) });
  t.same(restoreBuffers(img(87380, 131072, 0, 0)), { sndbuf: 87380, rcvbuf: 131072 }, 'empty queues: the image values');
  t.same(restoreBuffers(img(4608, 2304, 1_000_000, 50_000)), { sndbuf: 2_065_536, rcvbuf: 165_536 }, 'small image buffers: twice each queue plus 64 KiB');
  t.same(restoreBuffers(img(4_000_000, 6_000_000, 1_000_000, 50_000)), { sndbuf: 4_000_000, rcvbuf: 6_000_000 }, 'larger image buffers are kept');
});

t.test('silence: a zero send window while the source is saved; unpause gives it back (rollback)', async (t) => {
  const { client, server } = await pair(t);
  let atClient = '';
  client.on('data', (d: Buffer) => (atClient += d.toString()));
  server.write('before ');
  await new Promise((r) => setTimeout(r, 100));
  const h = RepairSocket.take(process.pid, handle(server).fd);
  t.throws(() => h.silence({ ...dummyImage(), window: { sndWl1: 0, sndWnd: 1, maxWindow: 1, rcvWnd: 1, rcvWup: 0 } }), { code: 'TCPR_STATE' }, 'silence before pause is refused');
  h.pause();
  const img = h.save();
  t.ok(img.window && img.window.sndWnd > 0, `the saved window is open: ${img.window?.sndWnd}`);
  h.silence(img);
  t.equal(h.save().window?.sndWnd, 0, 'the kernel now holds a send window of 0: nothing new leaves');
  h.unpause();
  h.pause();
  t.ok((h.save().window?.sndWnd ?? 0) > 0, 'unpause gave the window back');
  h.unpause();
  h.close();
  server.write('after');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(atClient, 'before after', 'the thawed source sends again, nothing lost or doubled');
});

function dummyImage(): SocketImage {
  return { family: 4 as const, state: 1, local: { address: '127.0.0.1', port: 1 }, remote: { address: '127.0.0.1', port: 2 }, sendSeq: 0, recvSeq: 0, mss: 1460, options: 0, sndWscale: 0, rcvWscale: 0, timestamp: 0, window: null, sndbuf: 0, rcvbuf: 0, streamWritten: 0n, streamRead: 0n, sendQueue: new Uint8Array(0), unsentLength: 0, recvQueue: new Uint8Array(0) };
}
