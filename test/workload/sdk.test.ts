/** The service SDK (src/workload/sdk.ts): handover parsing, fresh-start listening, StateFile persistence, handover layout. */
import t from 'tap';
import net from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenOrRestore, parseHandover, StateFile, HANDOVER_ENV } from '../../src/workload/sdk.js';
import { handoverLayout } from '../../src/executors/tcp-repair/handover.js';

t.test('parseHandover refuses what is not a version-1 handover', async (t) => {
  t.throws(() => parseHandover('{'), { code: 'SDK_HANDOVER_INVALID' });
  t.throws(() => parseHandover('{"version":2}'), { code: 'SDK_HANDOVER_INVALID' });
  t.throws(() => parseHandover('{"version":1,"control":3,"listeners":[],"connections":[{"fd":4,"written":"-1","read":"0"}]}'), { code: 'SDK_HANDOVER_INVALID' });
  const h = handoverLayout({ migrationId: 'm', listeners: [{ fd: 40, family: 4, address: '10.0.0.2', port: 7000 }], connections: [{ fd: 41, family: 4, local: { address: '10.0.0.2', port: 7000 }, remote: { address: '10.0.0.1', port: 5 }, written: 12345678901234567890n, read: 7n }] });
  t.same(parseHandover(JSON.stringify(h)), h, 'the executor layout parses back');
  t.equal(h.control, 3);
  t.same([h.listeners[0]!.fd, h.connections[0]!.fd], [4, 5], 'child descriptors follow the control channel in order');
  t.equal(h.connections[0]!.written, '12345678901234567890', '64-bit offsets as decimal strings');
});

t.test('a fresh start listens on every port', async (t) => {
  delete process.env[HANDOVER_ENV];
  const s = await listenOrRestore({ host: '127.0.0.1', ports: [0] });
  t.teardown(() => [...s.servers.values()].forEach((x) => x.close()));
  t.equal(s.restored.length, 0);
  const port = (s.servers.get(0)!.address() as net.AddressInfo).port;
  const c = net.connect(port, '127.0.0.1');
  await new Promise((r) => c.once('connect', r));
  c.destroy();
  t.pass('accepts connections');
});

t.test('StateFile: shared mapping persists to the file and reopens with its content', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'coat-sdk-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const f = StateFile.open(dir, 'state.bin', 10_000);
  t.equal(f.size, 12_288, 'rounded up to whole pages');
  f.bytes[5000] = 42;
  t.equal((await readFile(join(dir, 'state.bin')))[5000], 42, 'a write through the mapping is in the file at once');
  f.close();
  const g = StateFile.open(dir, 'state.bin', 10_000);
  t.equal(g.bytes[5000], 42, 'reopened with its content');
  g.close();
  t.throws(() => StateFile.open(dir, '../x', 1), { code: 'SDK_STATE_FILE' });
});
