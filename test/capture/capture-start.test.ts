import t from 'tap';
import { newTag } from '../../lab/tag.js';
import { pino } from 'pino';
import { startCapture } from '../../src/capture/capture.js';

const silent = pino({ level: 'silent' });
const silentLog = (): typeof silent => silent;

t.test('a capture that cannot start fails with CAPTURE_START_FAILED and the reason', async (t) => {
  const tag = newTag();
  await t.rejects(startCapture({ iface: `${tag}-nope`, log: silentLog() }), { code: 'CAPTURE_START_FAILED', message: new RegExp(`${tag}-nope`) });
  await t.rejects(startCapture({ iface: 'lo', netns: `${tag}-nons`, log: silentLog() }), { code: 'CAPTURE_START_FAILED', message: /exited/ });
  await t.rejects(startCapture({ iface: 'lo', filter: 'this is not bpf', log: silentLog() }), { code: 'CAPTURE_START_FAILED', message: /filter|syntax/i });
});

t.test('loopback: the capture is listening when startCapture resolves (no packet of the first connection is missed)', async (t) => {
  const net = await import('node:net');
  const server = net.createServer((s) => s.end('hello'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const cap = await startCapture({ iface: 'lo', filter: `tcp port ${port}`, log: silentLog() });
  await new Promise<void>((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.on('data', () => {});
    c.on('end', () => {
      c.end();
      resolve();
    });
  });
  await new Promise((r) => setTimeout(r, 50));
  const res = await cap.stop();
  const conn = res.analysis.connections[0]!;
  t.ok(conn.sawSyn, 'the SYN was captured');
  t.equal(conn.directions[1].bytes, 5, "the server's 5 bytes");
  t.equal(res.analysis.retransmissions, 0);
  t.equal(res.analysis.resets, 0);
  t.equal(res.kernel?.dropped, 0);
  t.equal(await cap.stop(), res, 'stop is idempotent');
});

