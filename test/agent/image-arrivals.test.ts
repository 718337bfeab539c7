/**
 * ImageArrivals (restore on arrival's wait), against a real ImageReceiver whose events are raised
 * by hand: which landings and failures end a wait, and that every way out removes its listeners.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { AgentCommandError } from '../../src/agent/errors.js';
import { ImageArrivals } from '../../src/agent/image-arrivals.js';
import { logger } from '../../src/log.js';
import { TransferError } from '../../src/transfer/errors.js';
import { ImageReceiver, type ReceivedImage } from '../../src/transfer/receiver.js';

async function setup(t: Test) {
  const root = await mkdtemp(join(tmpdir(), 'coat-arrivals-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const receiver = new ImageReceiver({ imageRoot: (id) => join(root, id), log: logger('test', { level: 'silent' }) });
  return { root, receiver, arrivals: new ImageArrivals(receiver, (id) => join(root, id)) };
}

const landed = (migrationId: string, stepName: string, kind: 'image' | 'probe' = 'image'): ReceivedImage => ({ migrationId, stepName, kind, files: 1, bytes: 1, wireBytes: 1, imageSha256: '00', elapsedMs: 1, peer: 'p' });
const settled = async <T>(p: Promise<T>) => Promise.race([p.then(() => 'resolved', (e: Error) => e), new Promise((r) => setTimeout(() => r('pending'), 20))]);
const never = new AbortController().signal;

t.test('a wait ends when its own step of its own migration lands, not before', async (t) => {
  const { receiver, arrivals } = await setup(t);
  const w = arrivals.wait('m1', 'dump', never);
  receiver.emit('received', landed('m2', 'dump'));
  receiver.emit('received', landed('m1', 'pre-1'));
  receiver.emit('received', landed('m1', 'dump', 'probe'));
  t.equal(await settled(w), 'pending', 'other migrations, other steps and probes do not end it');
  receiver.emit('received', landed('m1', 'dump'));
  t.equal(await settled(w), 'resolved');
  t.equal(receiver.listenerCount('received') + receiver.listenerCount('failed'), 0, 'listeners removed');
});

t.test('an image already in place ends the wait at once', async (t) => {
  const { root, receiver, arrivals } = await setup(t);
  await mkdir(join(root, 'm1', 'dump'), { recursive: true });
  t.equal(await settled(arrivals.wait('m1', 'dump', never)), 'resolved');
  t.equal(receiver.listenerCount('received'), 0);
});

t.test("a failed stream of the step fails the wait with the receiver's error; a refused stranger does not", async (t) => {
  const { receiver, arrivals } = await setup(t);
  const w = arrivals.wait('m1', 'dump', never);
  receiver.emit('failed', new TransferError('TRANSFER_REFUSED', 'wrong token', { migrationId: 'm1' }), { migrationId: 'm1', stepName: 'dump', peer: 'p' });
  receiver.emit('failed', new TransferError('TRANSFER_TRUNCATED', 'cut', { migrationId: 'm1' }), { migrationId: 'm1', stepName: 'pre-2', peer: 'p' });
  receiver.emit('failed', new TransferError('TRANSFER_TRUNCATED', 'cut', { migrationId: 'm2' }), { migrationId: 'm2', stepName: 'dump', peer: 'p' });
  t.equal(await settled(w), 'pending');
  const corrupt = new TransferError('TRANSFER_IMAGE_CORRUPT', 'image sha256 differs', { migrationId: 'm1' });
  receiver.emit('failed', corrupt, { migrationId: 'm1', stepName: 'dump', peer: 'p' });
  t.equal(await settled(w), corrupt);
  t.equal(receiver.listenerCount('failed'), 0);
});

t.test('the deadline and a cancel end waits with typed errors', async (t) => {
  const { receiver, arrivals } = await setup(t);
  const ac = new AbortController();
  const timed = arrivals.wait('m1', 'dump', ac.signal);
  ac.abort();
  t.match(await settled(timed), { code: 'AGENT_DEADLINE' });
  const a = arrivals.wait('m1', 'dump', never);
  const b = arrivals.wait('m2', 'dump', never);
  const reason = new AgentCommandError('AGENT_CANCELLED', 'aborted');
  t.equal(arrivals.cancel('m1', reason), 1, 'one wait of m1 ended');
  t.equal(await settled(a), reason);
  t.equal(await settled(b), 'pending', "m2's wait goes on");
  t.equal(arrivals.cancel('m1', reason), 0);
  arrivals.cancel('m2', reason);
  await b.catch(() => {});
  t.equal(receiver.listenerCount('received') + receiver.listenerCount('failed'), 0);
  t.match(await settled(arrivals.wait('m3', 'dump', AbortSignal.abort())), { code: 'AGENT_DEADLINE' }, 'an already aborted signal ends it at once');
});
