/** The service SDK (src/workload/sdk.ts): handover parsing, fresh-start listening, StateFile persistence, the executor's handover message. */
import t from 'tap';
import net from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenOrRestore, parseHandover, StateFile, STANDBY_ENV } from '../../src/workload/sdk.js';
import { handoverFor } from '../../src/executors/tcp-repair/handover.js';

t.test('parseHandover refuses what is not a version-1 handover', async (t) => {
  t.throws(() => parseHandover('{'), { code: 'SDK_HANDOVER_INVALID' });
  t.throws(() => parseHandover('{"version":2}'), { code: 'SDK_HANDOVER_INVALID' });
  t.throws(() => parseHandover('{"version":1,"listeners":[],"connections":[]}'), { code: 'SDK_HANDOVER_INVALID' }, 'no fromPid');
  t.throws(() => parseHandover('{"version":1,"fromPid":0,"listeners":[],"connections":[]}'), { code: 'SDK_HANDOVER_INVALID' }, 'fromPid 0');
  t.throws(() => parseHandover('{"version":1,"fromPid":7,"listeners":[],"connections":[{"fd":4,"written":"-1","read":"0"}]}'), { code: 'SDK_HANDOVER_INVALID' }, 'negative offset');
  t.throws(() => parseHandover('{"version":1,"fromPid":7,"listeners":[{"fd":-1,"port":1}],"connections":[]}'), { code: 'SDK_HANDOVER_INVALID' }, 'negative listener fd');
  const h = handoverFor({ migrationId: 'm', listeners: [{ fd: 40, family: 4, address: '10.0.0.2', port: 7000 }], connections: [{ fd: 41, family: 4, local: { address: '10.0.0.2', port: 7000 }, remote: { address: '10.0.0.1', port: 5 }, written: 12345678901234567890n, read: 7n }] }, 4242);
  t.same(parseHandover(JSON.stringify(h)), h, 'the executor message parses back');
  t.equal(h.fromPid, 4242, 'names the process that holds the descriptors');
  t.same([h.listeners[0]!.fd, h.connections[0]!.fd], [40, 41], "descriptors are the executor's own numbers (taken with pidfd_getfd)");
  t.equal(h.connections[0]!.written, '12345678901234567890', '64-bit offsets as decimal strings');
});

t.test('a fresh start listens on every port', async (t) => {
  delete process.env[STANDBY_ENV];
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
