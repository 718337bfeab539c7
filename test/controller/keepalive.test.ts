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
  const settle = () => new Promise((r) => setTimeout(r, 50)); // let real socket I/O happen

  clock.advance(999);
  await settle();
  t.equal(echoes(), 0, 'no echo before the interval');
  clock.advance(1);
  await settle();
  t.equal(echoes(), 1, 'one echo at the interval');
  // The fake answered (real I/O): the silence timer restarted at t=1000.
  clock.advance(2500);
  await settle();
  t.equal(conn.state, 'up', 'a reply keeps the connection');
  t.equal(echoes(), 2, 'and the next echo follows the next interval of silence');

  fake!.silent = true;
  const closed = new Promise<{ code: string; message: string }>((r) => conn.once('close', r));
  // The last message (the reply to the second echo) was read at the current fake time.
  clock.advance(2999);
  await settle();
  t.equal(echoes(), 3, 'an echo went out after an interval of silence, unanswered');
  t.equal(conn.state, 'up', 'alive until the dead-peer timeout');
  clock.advance(1);
  const reason = await closed;
  t.equal(reason.code, 'OFC_KEEPALIVE');
  t.match(reason.message, /no message from the switch for 3000 ms \(echo every 1000 ms, dead after 3000 ms\)/);
});
