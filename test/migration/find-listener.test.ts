import net from 'node:net';
import t from 'tap';
import { findListeningProcesses } from '../../src/migration/live/lab-backend.js';

t.test('findListeningProcesses: the process listening on an address, found through /proc', async (t) => {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.77', r));
  t.teardown(() => srv.close());
  const found = await findListeningProcesses('127.0.0.77');
  t.same(found.map((l) => l.pid), [process.pid], 'this process, once');
  t.equal(found[0]!.argv[0], process.execPath);
  t.match(found[0]!.netns, /^net:\[\d+\]$/);
  t.same(await findListeningProcesses('127.0.0.78'), [], 'nobody listens there');
});
