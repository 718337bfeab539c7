/**
 * The orchestrator's AgentPort over NATS (LiveAgentPort): the whole agent side of one migration's
 * timeline, in the orchestrator's order, against two real in-process agents, a real nats-server and
 * the test file executor; the plan's rate on the stream; then abandoning a step through the
 * AbortSignal.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { newTag } from '../../lab/tag.js';
import { Agent } from '../../src/agent/agent.js';
import { AgentRegistry } from '../../src/agent/client.js';
import { AgentAbortedError, AgentGoneError, AgentRemoteError, AgentTimeoutError } from '../../src/agent/errors.js';
import { exec } from '../../src/exec.js';
import { logger } from '../../src/log.js';
import { LiveAgentPort, nothingResumed, type ServicePlacement } from '../../src/migration/live/agent-port.js';
import type { MigrationRef } from '../../src/migration/ports.js';
import { digestImageDir } from '../../src/transfer/image-dir.js';
import { startNats } from '../fixtures/nats.js';
import { createExecutor } from './helpers/file-executor.js';

process.env.COAT_LOG_LEVEL ??= 'silent';
const tag = newTag();
const secret = Buffer.from(randomBytes(32).toString('hex'));

t.test('LiveAgentPort drives a migration\'s agent steps', async (t) => {
  const nats = await startNats(t, { tag });
  const work = await mkdtemp(join(tmpdir(), `coat-${tag}-port-`));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const hosts = { src: `${tag}-s`, dst: `${tag}-d`, cli: `${tag}-c` };
  const agents = new Map<string, Agent>();
  const startAgent = async (h: string) => {
    const agent = new Agent({ host: h, nats: { servers: nats.url }, secret, dataDir: join(work, h), listen: { host: '127.0.0.1', port: 0 }, executorFactory: async (_n, o) => createExecutor(o), log: logger('agent', { host: h }) });
    await agent.start();
    t.teardown(() => agent.stop());
    agents.set(h, agent);
  };
  for (const h of Object.values(hosts)) await startAgent(h);
  const reg = await AgentRegistry.connect({ nats: { servers: nats.url }, secret });
  t.teardown(() => reg.close());
  for (const h of Object.values(hosts)) await reg.waitFor(h, 5000);

  const clientNs = `${tag}-cl`;
  await exec('ip', ['netns', 'add', clientNs]);
  t.teardown(() => exec('ip', ['netns', 'del', clientNs], { allowFailure: true }));
  const svcNs = `${tag}-svc`;
  t.teardown(() => exec('ip', ['netns', 'del', svcNs], { allowFailure: true }));

  const stateSrc = join(work, 'state-src');
  const stateDst = join(work, 'state-dst');
  await mkdir(stateSrc);
  await writeFile(join(stateSrc, 'db'), randomBytes(3 * 1024 * 1024));
  const m: MigrationRef = {
    migrationId: `${tag}-mig`,
    service: { name: 'svc', netns: svcNs, ip: '10.11.0.10', mac: '02:00:00:11:00:10', stateDir: stateSrc },
    source: hosts.src,
    destination: hosts.dst,
    clientHost: hosts.cli,
    executor: 'hooks',
  };
  // The destination's executor writes to its own state dir: same service, other host.
  const placementOf = (host: string): ServicePlacement => ({
    netns: svcNs,
    hostIf: `${tag}-sv`,
    prefixLength: 24,
    ...(host === hosts.dst ? { stateDir: stateDst } : {}),
    ...(host === hosts.cli ? { clientNetns: clientNs } : {}),
  });
  const port = new LiveAgentPort({ registry: reg, placementOf });
  const signal = new AbortController().signal;

  await port.prepareNamespace(m.destination, m, signal);
  const [link] = JSON.parse((await exec('ip', ['-n', svcNs, '-j', 'link', 'show', 'dev', 'eth0'])).stdout) as { address: string }[];
  t.equal(link!.address, m.service.mac, 'destination namespace with the service MAC');
  await port.prepare(m.source, m, 'source', signal);
  await port.prepare(m.destination, m, 'destination', signal);
  const pre = await port.preDump(m.source, m, 1, signal);
  t.equal(pre.bytes, 3 * 1024 * 1024);
  // the plan's L: 3 MiB at 100 Mbit/s takes about 250 ms (the agent's token bucket)
  const ts = performance.now();
  const s1 = await port.streamImage(m.source, m.destination, m, 'pre-1', signal, 100e6);
  const streamMs = performance.now() - ts;
  t.equal(s1.bytes, 3 * 1024 * 1024);
  t.ok(streamMs >= 200, `the stream kept to the plan's rate: ${streamMs.toFixed(0)} ms for 3 MiB at 100 Mbit/s`);
  await port.settle(m.destination, m, signal); // an executor without background work: nothing to do
  t.ok((await reg.agent(hosts.dst).request('timings', { migrationId: m.migrationId }, { deadlineMs: 5000 })).steps.some((x) => x.step === 'settle' && x.ok), 'the destination ran and recorded the settle step');
  // coat's order: the final image is announced before the freeze, the dump command streams it.
  const ticket = await port.expectImage(m.destination, m, 'dump', signal);
  // Restore on arrival: asked for before the dump; the destination's agent waits for the image.
  const restoring = port.restoreOnArrival(m.destination, m, ticket, signal);
  const forged = { ...ticket, token: 'not-the-announced-token' };
  await t.rejects(port.dumpAndSend(m.source, m, forged, signal), { code: 'AGENT_REMOTE_FAILURE', remoteCode: 'TRANSFER_REFUSED' }, 'a stream the receiver did not announce is refused, and the dump command fails with it');
  await t.rejects(
    reg.agent(hosts.src).request('executor.step', { migrationId: m.migrationId, executor: 'hooks', service: m.service, role: 'source', step: 'restore', sendTo: { peer: ticket.peer, token: ticket.token } }, { deadlineMs: 5000 }),
    { code: 'AGENT_REFUSED', message: /sendTo is for the dump step only/ },
  );
  // The resume, asked for before the image exists: the agent holds it until its restore is done.
  const resuming = port.resume(m.destination, m, signal);
  const early = await Promise.race([restoring.then(() => 'restored', (e: Error) => e), new Promise((r) => setTimeout(() => r('waiting'), 100))]);
  t.equal(early, 'waiting', "the restore waits for the image; a stranger's refused stream does not end the wait");
  const notYet = await Promise.race([resuming.then(() => 'resumed', (e: Error) => e), new Promise((r) => setTimeout(() => r('waiting'), 50))]);
  t.equal(notYet, 'waiting', 'the resume waits for the restore');
  await t.rejects(access(join(stateDst, 'resumed.marker')), 'nothing resumed yet');
  const dump = await port.dumpAndSend(m.source, m, ticket, signal);
  t.ok(dump.bytes > 3 * 1024 * 1024);
  t.ok(dump.sent.bytes > 3 * 1024 * 1024 && dump.sent.ms > 0, `the dump was streamed in the same command: ${dump.sent.bytes} bytes in ${dump.sent.ms.toFixed(1)} ms`);
  t.equal(dump.sent.sha256, (await digestImageDir(join(work, hosts.dst, 'images', m.migrationId, 'dump'))).sha256, 'the stream result carries the image sha256 that landed');
  const srcSteps = (await reg.agent(hosts.src).request('timings', { migrationId: m.migrationId }, { deadlineMs: 5000 })).steps;
  t.same(srcSteps.slice(-2).map((x) => [x.step, x.stepName, x.ok]), [['stream.send', 'dump', true], ['dump', 'dump', true]], "the dump's stream is journaled with the dump's record");
  const restored = await restoring;
  t.ok(restored, 'restored on arrival, without another request');
  const dstSteps = (await reg.agent(hosts.dst).request('timings', { migrationId: m.migrationId }, { deadlineMs: 5000 })).steps.map((x) => x.step);
  t.ok(dstSteps.indexOf('stream.receive') < dstSteps.indexOf('restore'), 'the restore started after the image was received');
  const sha = async (p: string) => createHash('sha256').update(await readFile(p)).digest('hex');
  t.equal(await sha(join(stateDst, 'db')), await sha(join(stateSrc, 'db')), 'restored state equals the source state');
  await exec('ip', ['-n', clientNs, 'link', 'set', 'lo', 'up']);
  await exec('ip', ['-n', clientNs, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
  await exec('ip', ['-n', clientNs, 'link', 'set', 'd0', 'up']);
  await exec('ip', ['-n', clientNs, 'neigh', 'replace', '10.11.0.10', 'lladdr', '02:00:00:11:00:99', 'dev', 'd0', 'nud', 'stale']);
  t.match((await exec('ip', ['-n', clientNs, 'neigh', 'show', 'to', '10.11.0.10'])).stdout, '02:00:00:11:00:99', 'the client host has the old entry');
  await port.flushNeighbour(m.clientHost!, m, signal);
  t.equal((await exec('ip', ['-n', clientNs, 'neigh', 'show', 'to', '10.11.0.10'])).stdout.trim(), '', 'the client host forgot the old neighbour entry');
  await resuming;
  const order = (await reg.agent(hosts.dst).request('timings', { migrationId: m.migrationId }, { deadlineMs: 5000 })).steps.map((x) => x.step);
  t.ok(order.indexOf('restore') < order.indexOf('resume'), 'resumed after the restore');
  await t.rejects(port.abort(m.destination, m, 'destination', signal), { code: 'AGENT_REMOTE_FAILURE', remoteCode: 'AGENT_RESUMED' }, 'a destination that resumed refuses to be aborted');
  // Restarted, it still refuses: its journal says the resume started (the service may run).
  await agents.get(hosts.dst)!.stop();
  await startAgent(hosts.dst);
  await reg.waitFor(hosts.dst, 5000);
  await t.rejects(port.abort(m.destination, m, 'destination', signal), { code: 'AGENT_REMOTE_FAILURE', remoteCode: 'AGENT_RESUMED' }, 'and so does the agent restarted after it');
  await port.release(m.source, m, signal);
  await access(join(stateDst, 'resumed.marker'));
  await access(join(stateSrc, 'released.marker'));
  await port.clearNamespace(m.destination, m, signal);
  t.notMatch((await exec('ip', ['netns', 'list'])).stdout, svcNs, 'namespace cleared');
  await port.clearNamespace(m.destination, m, signal); // idempotent, as ports.ts requires
  await port.abort(m.source, m, 'source', signal); // idempotent too
  await port.forget(m);
  t.same((await reg.agent(hosts.src).status()).holds, [], 'both agents forgot the migration');
  t.same((await reg.agent(hosts.dst).status()).holds, []);

  await t.test('an abort at the destination ends a restore still waiting for its image', async (t) => {
    const m3 = { ...m, migrationId: `${tag}-mig3` };
    const tk = await port.expectImage(m3.destination, m3, 'dump', signal);
    const t0 = performance.now();
    const waiting = port.restoreOnArrival(m3.destination, m3, tk, signal).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    await port.abort(m3.destination, m3, 'destination', signal);
    t.match(await waiting, { code: 'AGENT_REMOTE_FAILURE', remoteCode: 'AGENT_CANCELLED' });
    t.ok(performance.now() - t0 < 5000, 'at the abort, not at the deadline');
    await t.rejects(port.restoreOnArrival(m3.destination, m3, tk, signal), { code: 'AGENT_REMOTE_FAILURE', remoteCode: 'AGENT_CANCELLED' }, 'a restore asked for after the abort never starts');
    const refused = await port.resume(m3.destination, m3, signal).catch((e: unknown) => e);
    t.match(refused, { code: 'MIGRATION_NOT_RESUMED', cause: { remoteCode: 'AGENT_NOT_RESTORED' } }, 'nothing to resume: the port says it provably did not resume');
    t.ok(nothingResumed((refused as Error).cause));
    await port.forget(m3);
  });

  await t.test('which failed resumes prove that nothing resumed', async (t) => {
    const gone = await reg.agent(`${tag}-nobody`).request('status', {}, { deadlineMs: 1000 }).catch((e: unknown) => e);
    t.match(gone, { code: 'AGENT_UNKNOWN' });
    t.ok(nothingResumed(gone), 'an agent that never registered got nothing');
    t.ok(nothingResumed(new AgentGoneError('h', 'nobody serves its command subject', 'executor.step', false)), 'no responders: not delivered');
    t.notOk(nothingResumed(new AgentGoneError('h', 'said goodbye', 'executor.step')), 'gone while the command was out: unknown');
    t.notOk(nothingResumed(new AgentTimeoutError('h', 'executor.step', 1000)), 'a timeout proves nothing');
    t.notOk(nothingResumed(new AgentRemoteError('h', 'executor.step', 'HANDOVER_NO_ACK', 'no ack', {})), 'a failure while resuming proves nothing');
  });

  await t.test('the orchestrator\'s signal abandons a step', async (t) => {
    const slow = new LiveAgentPort({ registry: reg, placementOf, executorOptions: { delayMs: { prepare: 5000 } } });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const t0 = performance.now();
    const err = await slow.prepare(m.source, { ...m, migrationId: `${tag}-mig2` }, 'source', ac.signal).catch((e: unknown) => e);
    t.type(err, AgentAbortedError);
    t.ok(performance.now() - t0 < 1000, 'at once, not at the deadline');
  });
});
