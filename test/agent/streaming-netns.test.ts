/**
 * Image streaming between two host namespaces created by this test (veth underlay, tagged names),
 * driven the way the orchestrator drives it: over NATS, through two real `coat agent` processes
 * (one per namespace), straight from the source agent to the destination agent.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { newTag } from '../../lab/tag.js';
import { AgentRegistry } from '../../src/agent/client.js';
import { AgentRemoteError } from '../../src/agent/errors.js';
import { agentNatsPermissions } from '../../src/agent/protocol.js';
import { digestImageDir } from '../../src/transfer/image-dir.js';
import { startNats } from '../fixtures/nats.js';
import { createNsPair } from './helpers/netns-pair.js';
import { spawnAgent } from './helpers/spawn-agent.js';

process.env.COAT_LOG_LEVEL ??= 'silent';
const tag = newTag();
const secret = randomBytes(32).toString('hex');
const ctlPass = randomBytes(12).toString('hex');
const agentPass = randomBytes(12).toString('hex');

async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const b of createReadStream(path)) h.update(b as Buffer);
  return h.digest('hex');
}

t.test('streaming between two namespaces', async (t) => {
  const pair = await createNsPair(t, tag);
  const nats = await startNats(t, {
    tag,
    netns: pair.a,
    host: '0.0.0.0',
    users: [
      { user: 'controller', password: ctlPass },
      { user: 'agent', password: agentPass, ...agentNatsPermissions('*') },
    ],
  });
  const work = await mkdtemp(join(tmpdir(), `coat-${tag}-stream-`));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const hostA = `${tag}-a`;
  const hostB = `${tag}-b`;
  const dataA = join(work, 'data-a');
  const dataB = join(work, 'data-b');
  const stateA = join(work, 'state-a');
  const stateB = join(work, 'state-b');
  await mkdir(stateA);
  await writeFile(join(stateA, 'table.bin'), randomBytes(20 * 1024 * 1024));

  const common = { user: 'agent', password: agentPass, secret };
  spawnAgent(t, { ...common, host: hostA, netns: pair.a, nats: nats.url, dataDir: dataA, listen: `${pair.aIp}:0` });
  spawnAgent(t, { ...common, host: hostB, netns: pair.b, nats: `nats://${pair.aIp}:${nats.port}`, dataDir: dataB, listen: `${pair.bIp}:0` });

  const reg = await AgentRegistry.connect({ nats: { servers: `nats://${pair.aMgmtIp}:${nats.port}`, user: 'controller', pass: ctlPass }, secret: Buffer.from(secret) });
  t.teardown(() => reg.close());
  await reg.waitFor(hostA, 20_000);
  const infoB = await reg.waitFor(hostB, 20_000);
  t.equal(infoB.stream?.host, pair.bIp, 'B announces its underlay address for streams');
  const a = reg.agent(hostA);
  const b = reg.agent(hostB);

  const mid = `${tag}-m1`;
  const token = randomBytes(16).toString('hex');
  const source = { migrationId: mid, executor: 'hooks' as const, executorOptions: { dumpBytes: 50 * 1024 * 1024 }, service: { name: 'svc', netns: 'n/a', ip: '10.0.0.10', mac: '02:00:00:00:00:10', stateDir: stateA }, role: 'source' as const };
  const dest = { ...source, service: { ...source.service, stateDir: stateB }, role: 'destination' as const };
  await b.request('stream.expect', { migrationId: mid, token });

  await t.test('a 50 MB image arrives with the same sha256', async (t) => {
    await a.request('executor.step', { ...source, step: 'dump' }, { deadlineMs: 30_000 });
    const sent = await a.request('stream.send', { migrationId: mid, token, peer: infoB.stream!, stepName: 'dump' }, { deadlineMs: 60_000 });
    const src = await digestImageDir(join(dataA, 'images', mid, 'dump'));
    const dst = await digestImageDir(join(dataB, 'images', mid, 'dump'));
    t.ok(src.bytes > 70 * 1024 * 1024, `the dump is ${src.bytes} bytes (50 MB memory + 20 MB state)`);
    t.equal(dst.sha256, src.sha256, 'image sha256 equal at both ends');
    t.equal(sent.imageSha256, src.sha256);
    t.equal(await fileSha256(join(dataB, 'images', mid, 'dump', 'memory.bin')), await fileSha256(join(dataA, 'images', mid, 'dump', 'memory.bin')), 'and the 50 MB file itself');
    t.same(await readdir(join(dataB, 'images', mid)), ['dump'], 'no temporary directory beside it');
    t.comment(`unshaped veth: ${(sent.bitsPerSecond / 8 / 1e6).toFixed(1)} MB/s`);
    // The destination's executor restores from what arrived (it checks its own file hashes).
    await b.request('executor.step', { ...dest, step: 'restore' }, { deadlineMs: 30_000 });
    t.equal(await fileSha256(join(stateB, 'table.bin')), await fileSha256(join(stateA, 'table.bin')), 'restored state equals the source state');
    const timings = await b.request('timings', { migrationId: mid });
    t.same(timings.steps.map((s) => s.step), ['stream.receive', 'restore'], 'B reports its step timings');
  });

  await t.test('a wrong token is refused with a typed error; nothing lands', async (t) => {
    await a.request('executor.step', { ...source, step: 'preDump', round: 1 }, { deadlineMs: 30_000 });
    const err = await a.request('stream.send', { migrationId: mid, token: 'not-the-token', peer: infoB.stream!, stepName: 'pre-1' }, { deadlineMs: 20_000 }).catch((e: unknown) => e);
    t.type(err, AgentRemoteError);
    t.equal((err as AgentRemoteError).remoteCode, 'TRANSFER_REFUSED');
    t.same(await readdir(join(dataB, 'images', mid)), ['dump'], 'B holds no pre-1, partial or whole');
  });

  await t.test('with a limit of 50 Mbit/s the measured rate is within 10 %', async (t) => {
    const limit = 50e6;
    const t0 = performance.now();
    const sent = await a.request('stream.send', { migrationId: mid, token, peer: infoB.stream!, stepName: 'pre-1', rateBitsPerSecond: limit }, { deadlineMs: 60_000 });
    const wallMs = performance.now() - t0;
    const senderRate = sent.bitsPerSecond;
    const receiverRate = (sent.wireBytes * 8 * 1000) / sent.receiverElapsedMs;
    const wallRate = (sent.wireBytes * 8 * 1000) / wallMs;
    t.comment(`limit 50 Mbit/s: sender ${(senderRate / 1e6).toFixed(2)}, receiver ${(receiverRate / 1e6).toFixed(2)}, wall clock incl. NATS ${(wallRate / 1e6).toFixed(2)} Mbit/s over ${sent.wireBytes} bytes`);
    t.ok(Math.abs(senderRate - limit) / limit <= 0.1, `sender-measured ${(senderRate / 1e6).toFixed(2)} Mbit/s within 10 %`);
    t.ok(Math.abs(receiverRate - limit) / limit <= 0.1, `receiver-measured ${(receiverRate / 1e6).toFixed(2)} Mbit/s within 10 %`);
    t.ok(wallRate <= limit * 1.1, 'the test\'s own clock never sees more than the limit');
    const src = await digestImageDir(join(dataA, 'images', mid, 'pre-1'));
    const dst = await digestImageDir(join(dataB, 'images', mid, 'pre-1'));
    t.equal(dst.sha256, src.sha256);
  });

  await t.test('bandwidth L to the peer by a timed transfer', async (t) => {
    const p = await a.request('profile', { migrationId: mid, windowMs: 0, stateDir: stateA, peer: { ...infoB.stream!, token }, probeBytes: 16 * 1024 * 1024 }, { deadlineMs: 30_000 });
    t.ok(p.bandwidthBitsPerSecond! > 50e6, `L = ${(p.bandwidthBitsPerSecond! / 1e6).toFixed(0)} Mbit/s over an unshaped veth`);
    t.equal(p.stateDirBytes, 20 * 1024 * 1024, 'M counts the state directory');
    t.same((await readdir(join(dataB, 'images', mid))).sort(), ['dump', 'pre-1'], 'a probe writes nothing');
    // B journals the probe right after answering DONE: poll briefly.
    const probed = async () => JSON.parse(await readFile(join(dataB, 'journal.json'), 'utf8')).migrations[mid].steps.some((s: { stepName: string }) => s.stepName === 'probe') as boolean;
    for (let i = 0; i < 50 && !(await probed()); i++) await new Promise((r) => setTimeout(r, 20));
    t.ok(await probed(), 'B journaled the probe it received');
  });
});
