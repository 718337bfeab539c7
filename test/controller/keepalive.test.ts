/**
 * Echo keepalive of a SwitchConnection driven by a fake clock (real sockets, fake time): an echo
 * after exactly the interval of silence, a reply that resets the timer, and the dead-peer close
 * at exactly the timeout.
 */
import t from 'tap';

process.env.COAT_LOG_LEVEL ??= 'silent';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SwitchConnection } from '../../src/controller/index.js';
import { FakeSwitch } from './fake-switch.js';
import { FakeClock } from './fake-clock.js';

t.test('echo after the interval, reset by replies, dead after the timeout', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'coat-ka-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let fake: FakeSwitch | undefined;
  const server = net.createServer((s) => (fake = FakeSwitch.over(s, { dpid: 0x42n })));
  t.teardown(() => (fake?.close(), server.close()));
  await new Promise<void>((r) => server.listen(join(dir, 'sw.sock'), r));
  const sock = net.connect(join(dir, 'sw.sock'));
  await new Promise((r) => sock.once('connect', r));
  const clock = new FakeClock();
  const conn = new SwitchConnection(sock, 'fake', { clock, echoIntervalMs: 1000, deadAfterMs: 3000 });
  t.teardown(() => conn.close());
  await conn.handshake();
  t.equal(conn.dpid, 0x42n);
  const echoes = () => fake!.received.filter((m) => m.type === 'echo_request').length;
  // Waits on events, not on sleeps: under load a fixed sleep can end before the fake's reply is
  // read, and a reply read after the clock moved on would shift the silence timer (the dead-peer
  // close would then never come and the test would hang). Each wait has a real-time guard so a
  // broken keepalive fails here, naming what it waited for.
  const within = <T>(what: string, p: Promise<T>, ms = 5000): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const guard = new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)));
    return Promise.race([p, guard]).finally(() => clearTimeout(timer));
  };
  const echoRequestNumber = (n: number) => within(`echo request #${n} at the fake switch`, new Promise<void>((resolve) => {
    const check = () => (echoes() >= n ? resolve() : fake!.waitFor((m) => m.type === 'echo_request' && echoes() >= n).then(() => resolve()));
    check();
  }));
  const echoReplyRead = () => within('echo reply read by the controller', new Promise<void>((resolve) => {
    const onMessage = (m: { type: string }) => {
      if (m.type !== 'echo_reply') return;
      conn.off('message', onMessage);
      resolve();
    };
    conn.on('message', onMessage);
  }));
  const settle = () => new Promise((r) => setTimeout(r, 20)); // room for a wrong extra echo to show

  clock.advance(999);
  await settle();
  t.equal(echoes(), 0, 'no echo before the interval');
  let replied = echoReplyRead();
  clock.advance(1);
  await echoRequestNumber(1);
  await replied;
  t.equal(echoes(), 1, 'one echo at the interval');
  // The reply was read at fake time 1000: the silence timer restarted there.
  replied = echoReplyRead();
  clock.advance(999);
  await settle();
  t.equal(echoes(), 1, 'no second echo before an interval of silence after the reply');
  clock.advance(1);
  await echoRequestNumber(2);
  await replied;
  t.equal(conn.state, 'up', 'a reply keeps the connection');
  t.equal(echoes(), 2, 'and the next echo follows the next interval of silence');

  fake!.silent = true;
  const closed = new Promise<{ code: string; message: string }>((r) => conn.once('close', r));
  // The last message (the reply to the second echo) was read at fake time 2000: echo #3 at 3000,
  // unanswered; dead at 5000.
  clock.advance(999);
  await settle();
  t.equal(echoes(), 2, 'no third echo before an interval of silence');
  clock.advance(1);
  await echoRequestNumber(3);
  t.equal(echoes(), 3, 'an echo went out after an interval of silence, unanswered');
  clock.advance(1999);
  await settle();
  t.equal(conn.state, 'up', 'alive until the dead-peer timeout');
  clock.advance(1);
  const reason = await within('close at the dead-peer timeout', closed);
  t.equal(reason.code, 'OFC_KEEPALIVE');
  t.match(reason.message, /no message from the switch for 3000 ms \(echo every 1000 ms, dead after 3000 ms\)/);
});

t.test('a stall of our own event loop is not the switch going silent', async (t) => {
  // Real clock. The process blocks for 1.5 s (as a long GC or synchronous job would), far past the
  // dead-peer timeout; the switch did nothing wrong, so the first look afterwards must probe, and
  // the answered probe must keep the connection.
  const dir = await mkdtemp(join(tmpdir(), 'coat-ka-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let fake: FakeSwitch | undefined;
  const server = net.createServer((s) => (fake = FakeSwitch.over(s, { dpid: 0x43n })));
  t.teardown(() => (fake?.close(), server.close()));
  await new Promise<void>((r) => server.listen(join(dir, 'sw.sock'), r));
  const sock = net.connect(join(dir, 'sw.sock'));
  await new Promise((r) => sock.once('connect', r));
  const conn = new SwitchConnection(sock, 'fake', { echoIntervalMs: 200, deadAfterMs: 1000 });
  t.teardown(() => conn.close());
  await conn.handshake();
  let closedWith: { code: string } | undefined;
  conn.once('close', (r: { code: string }) => (closedWith = r));
  const end = Date.now() + 1500;
  while (Date.now() < end) {
    /* the stall */
  }
  const echoesBefore = fake!.received.filter((m) => m.type === 'echo_request').length;
  await new Promise((r) => setTimeout(r, 300)); // the probe and its answer: a few ms; the verdict would need 800
  t.equal(closedWith, undefined, 'still connected after the stall');
  t.equal(conn.state, 'up');
  t.ok(fake!.received.filter((m) => m.type === 'echo_request').length > echoesBefore, 'the first look after the stall sent a probe');
  // And real silence is still caught.
  fake!.silent = true;
  const reason = await new Promise<{ code: string }>((resolve) => (closedWith ? resolve(closedWith) : conn.once('close', resolve)));
  t.equal(reason.code, 'OFC_KEEPALIVE');
});
