/**
 * Run by tail-write.test.ts inside a namespace of its own (`ip netns exec`): a loopback connection
 * whose client never acknowledges (iptables drops everything to the server's port), a server send
 * queue with a sent-unacked part and a never-sent tail, saved, silently closed and restored with a
 * send buffer that holds the queue's bytes but not their skb overhead (what a source with other skb
 * sizes would record). Prints one JSON line: how long resume took, whether it threw, what it wrote.
 */
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { RepairSocket, native, neverSent, sentUnacked } from '../../../src/tcp-repair/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const port = 7123;
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const client = net.connect(port, '127.0.0.1');
  const server = await accepted;
  client.pause();
  execFileSync('iptables', ['-w', '-A', 'INPUT', '-p', 'tcp', '--dport', String(port), '-j', 'DROP'], { timeout: 10_000 });
  server.write(Buffer.alloc(3 * 1024 * 1024, 7));
  await sleep(300);
  const h = (server as unknown as { _handle: { fd: number; readStop(): void; close(): void } })._handle;
  h.readStop();
  server.on('error', () => {});
  const rs = RepairSocket.take(process.pid, h.fd);
  rs.pause();
  const saved = rs.save();
  rs.closeSilently();
  h.close();
  // A send buffer of exactly the queue's bytes, set as is (not sized by restoreBuffers): the
  // unacked part fits in repair mode, the tail does not once skb overhead is charged.
  const img = { ...saved, sndbuf: saved.sendQueue.length };
  const r = RepairSocket.restore(img, { buffers: { sndbuf: img.sndbuf, rcvbuf: img.rcvbuf } });
  const t0 = performance.now();
  let error: string | null = null;
  try {
    r.resume();
  } catch (err) {
    error = (err as { code?: string }).code ?? String(err);
  }
  const resumeMs = performance.now() - t0;
  const c = native().counters(r.fd);
  console.log(JSON.stringify({ unacked: sentUnacked(saved).length, unsent: neverSent(saved).length, sndbuf: img.sndbuf, resumeMs, error, outq: c.outq, queued: saved.sendQueue.length }));
  process.exit(0);
}

main().catch((err: unknown) => {
  console.log(JSON.stringify({ fatal: String(err) }));
  process.exit(1);
});
