/**
 * The agent control plane against a real nats-server on loopback (tagged run dir, random port,
 * user/password auth with per-role permissions) and a real `coat agent` child process.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, mkdir, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { connect, JSONCodec } from 'nats';
import { newTag } from '../../lab/tag.js';
import { AgentRegistry } from '../../src/agent/client.js';
import { AgentGoneError, AgentRefusedError, AgentRemoteError, AgentTimeoutError, AgentUnknownError } from '../../src/agent/errors.js';
import { agentNatsPermissions, subjects, type MigrationEvent } from '../../src/agent/protocol.js';
import { signCommand } from '../../src/agent/auth.js';
import { startNats } from '../fixtures/nats.js';
import { spawnAgent } from './helpers/spawn-agent.js';

process.env.COAT_LOG_LEVEL ??= 'silent';

const tag = newTag();
const secret = randomBytes(32).toString('hex');
const ctlPass = randomBytes(12).toString('hex');
const agentPass = randomBytes(12).toString('hex');

t.test('control plane over a real nats-server', async (t) => {
  const nats = await startNats(t, {
    tag,
    users: [
      { user: 'controller', password: ctlPass },
      { user: 'agent', password: agentPass, ...agentNatsPermissions('*') },
    ],
  });
  const work = await mkdtemp(join(tmpdir(), `coat-${tag}-agent-`));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const stateDir = join(work, 'svc-state');
  await mkdir(stateDir);
  await writeFile(join(stateDir, 'counter'), '41\n');

  const reg = await AgentRegistry.connect({ nats: { servers: nats.url, user: 'controller', pass: ctlPass }, secret: Buffer.from(secret) });
  t.teardown(() => reg.close());
  const events: MigrationEvent[] = [];
  reg.on('event', (e) => events.push(e));

  const host = `${tag}-a`;
  const dataDir = join(work, 'data-a');
  const start = () => spawnAgent(t, { host, nats: nats.url, user: 'agent', password: agentPass, secret, dataDir, listen: '127.0.0.1:0' });
  let agent = start();

  const info = await reg.waitFor(host, 20_000);
  t.equal(info.pid, agent.pid, 'registered with the child process pid');
  t.ok(info.stream && info.stream.port > 0, 'announces its stream listener');
  t.same(info.holds, [], 'holds nothing at first start');

  const client = reg.agent(host);
  await t.test('command round trip', async (t) => {
    const r = await client.ping({ deadlineMs: 2000 });
    t.equal(r.host, host);
    t.equal(r.pid, agent.pid);
  });

  await t.test('a restarted controller learns the agents at once (discover)', async (t) => {
    const fresh = new AgentRegistry(reg.nc, { secret: Buffer.from(secret), events: false });
    t.teardown(() => fresh.close());
    const announced = new Promise<number>((resolve) => fresh.on('registered', (a) => a.host === host && resolve(performance.now())));
    const t0 = performance.now();
    await fresh.start();
    const at = await announced;
    t.ok(at - t0 < 400, `full announcement after ${Math.round(at - t0)} ms, without waiting for heartbeats`);
    t.same(fresh.info(host)?.holds, [], 'with the holds from the journal');
    t.same((await fresh.agent(host).ping()).host, host);
  });

  await t.test('unknown agent is a typed error', async (t) => {
    await t.rejects(reg.agent(`${tag}-nobody`).ping(), AgentUnknownError);
  });

  await t.test('a command signed with the wrong secret is refused and logged', async (t) => {
    const wrong = new AgentRegistry(reg.nc, { secret: Buffer.from('not the secret'), events: false });
    await wrong.start();
    t.teardown(() => wrong.close());
    await wrong.waitFor(host, 3000);
    const err = await wrong.agent(host).ping({ deadlineMs: 2000 }).catch((e: unknown) => e);
    t.type(err, AgentRefusedError);
    t.match((err as AgentRefusedError).reason, /bad mac/);
    // pino writes asynchronously: give the line a moment to reach the pipe.
    for (let i = 0; i < 50 && !agent.stderr().includes('"msg":"command refused"'); i++) await new Promise((r) => setTimeout(r, 20));
    t.match(agent.stderr(), /"msg":"command refused".*|"reason":"bad mac/, 'the refusal is logged');
    const line = agent.stderr().split('\n').find((l) => l.includes('"msg":"command refused"')) ?? '{}';
    t.match(JSON.parse(line), { host, command: 'ping', reason: /bad mac/ }, 'with the host, the command and the reason');
  });

  await t.test('a replayed command is refused', async (t) => {
    const subject = subjects.command(host, 'ping');
    const req = JSONCodec().encode(signCommand(Buffer.from(secret), subject, {}, 2000, Date.now()));
    const first = JSONCodec().decode((await reg.nc.request(subject, req, { timeout: 2000 })).data) as { ok: boolean };
    const second = JSONCodec().decode((await reg.nc.request(subject, req, { timeout: 2000 })).data) as { ok: boolean; refused: boolean; error: { message: string } };
    t.equal(first.ok, true);
    t.equal(second.ok, false);
    t.equal(second.refused, true);
    t.match(second.error.message, /replay/);
  });

  await t.test('an agent identity cannot send commands (NATS permissions)', async (t) => {
    const nc = await connect({ servers: nats.url, user: 'agent', pass: agentPass });
    t.teardown(() => nc.close());
    const subject = subjects.command(host, 'ping');
    const req = JSONCodec().encode(signCommand(Buffer.from(secret), subject, {}, 500, Date.now()));
    const err = await nc.request(subject, req, { timeout: 500 }).catch((e: Error) => e);
    t.type(err, Error, 'the request gets no answer');
    t.match(await readFile(nats.logFile, 'utf8'), /Publish Violation|Permissions Violation for Publish/i, 'the server logged the violation');
  });

  const service = { name: 'svc', netns: `${tag}-svc`, ip: '10.0.0.10', mac: '02:00:00:00:00:10', stateDir };
  const base = { migrationId: `${tag}-m1`, executor: 'hooks' as const, service, role: 'source' as const };

  await t.test('executor steps run through the agent and report timings', async (t) => {
    await client.request('executor.step', { ...base, step: 'prepare' }, { deadlineMs: 5000 });
    const pre = await client.request('executor.step', { ...base, step: 'preDump', round: 1 }, { deadlineMs: 5000 });
    t.equal(pre.stepName, 'pre-1');
    t.equal(pre.dump?.bytes, 3, 'the pre-dump copied the 3-byte state file');
    t.equal(await readFile(join(dataDir, 'images', base.migrationId, 'pre-1', 'counter'), 'utf8'), '41\n', 'into the step directory');
    const timings = await client.request('timings', { migrationId: base.migrationId });
    t.same(timings.steps.map((s) => s.step), ['prepare', 'preDump']);
    t.ok(timings.steps.every((s) => s.ok && s.durationMs >= 0));
    const mine = events.filter((e) => e.migrationId === base.migrationId).map((e) => `${e.event}:${String(e.step)}`);
    t.ok(mine.includes('step.end:preDump'), 'events published on coat.migration.ID.events');
  });

  await t.test('a failing step is a remote failure carrying the executor code', async (t) => {
    const err = await client.request('executor.step', { ...base, migrationId: `${tag}-m2`, service: { ...service, stateDir: undefined }, step: 'dump' }, { deadlineMs: 5000 }).catch((e: unknown) => e);
    t.type(err, AgentRemoteError);
    t.equal((err as AgentRemoteError).remoteCode, 'TEST_EXECUTOR_NO_STATE');
  });

  await t.test('malformed arguments are refused', async (t) => {
    const err = await client.request('executor.step', { ...base, step: 'teleport' as 'dump' }, { deadlineMs: 2000 }).catch((e: unknown) => e);
    t.type(err, AgentRefusedError);
    t.match((err as AgentRefusedError).reason, /step "teleport"/);
    const bad = await client.request('stream.send', { migrationId: base.migrationId, token: 'x', peer: { host: '127.0.0.1', port: 1 }, stepName: 'pre-1', compression: 'zstd' as 'none' }).catch((e: unknown) => e);
    t.match(bad, { code: 'AGENT_REFUSED', reason: /compression "zstd"/ });
    await t.rejects(client.request('stream.send', { migrationId: base.migrationId, token: 'x', peer: { host: '127.0.0.1', port: 1 }, stepName: '../etc' }), AgentRefusedError, 'a step name that is a path is refused');
  });

  await t.test('deadline expiry gives a typed timeout error', async (t) => {
    const slow = { ...base, migrationId: `${tag}-m3`, executorOptions: { delayMs: { prepare: 3000 } } };
    const t0 = performance.now();
    const err = await client.request('executor.step', { ...slow, step: 'prepare' }, { deadlineMs: 300 }).catch((e: unknown) => e);
    const waited = performance.now() - t0;
    t.type(err, AgentTimeoutError);
    t.equal((err as AgentTimeoutError).command, 'executor.step');
    t.equal((err as AgentTimeoutError).deadlineMs, 300);
    t.equal((err as AgentTimeoutError).migrationId, `${tag}-m3`);
    t.ok(waited >= 290 && waited < 1500, `rejected at the deadline (${Math.round(waited)} ms)`);
    // The agent aborted the step at its deadline too: the journal records a failed prepare.
    await new Promise((r) => setTimeout(r, 200));
    const st = await client.status();
    t.equal(st.holds.find((h) => h.migrationId === `${tag}-m3`)?.lastStep?.ok, false);
  });

  await t.test('agent killed mid-command is detected within 2 s; restarted, it reports what it holds', async (t) => {
    const mid = `${tag}-m4`;
    const step = client.request('executor.step', { ...base, migrationId: mid, executorOptions: { delayMs: { dump: 20_000 } }, step: 'dump' }, { deadlineMs: 30_000 });
    step.catch(() => {});
    // Wait until the agent journaled the dump as in flight, then kill it by its pid.
    const journal = join(dataDir, 'journal.json');
    for (let i = 0; i < 100; i++) {
      const j = await readFile(journal, 'utf8').catch(() => '');
      if (j.includes(mid) && j.includes('inFlight')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const gone = reg.waitGone(host);
    const killedAt = performance.now();
    agent.kill('SIGKILL');
    const err = await step.catch((e: unknown) => e);
    const detectMs = performance.now() - killedAt;
    t.type(err, AgentGoneError, 'the pending command fails with AgentGoneError');
    t.ok(detectMs < 2000, `detected ${Math.round(detectMs)} ms after the kill`);
    t.match(await gone, /no heartbeat/);
    await t.rejects(client.ping(), AgentGoneError, 'new commands to a gone agent fail at once');
    t.equal(await agent.exited, 'SIGKILL');

    agent = start();
    const back = await reg.waitFor(host, 20_000);
    t.equal(back.pid, agent.pid);
    const held = back.holds.find((h) => h.migrationId === mid);
    t.ok(held, 'the restarted agent announces the migration it holds');
    t.equal(held?.inFlight?.step, 'dump', 'with the step it died in');
    t.equal(held?.role, 'source');
    // Roll back: abort at the source, then forget.
    await client.request('executor.step', { ...base, migrationId: mid, step: 'abort' }, { deadlineMs: 5000 });
    await access(join(stateDir, 'aborted-source.marker'));
    const after = (await client.status()).holds.find((h) => h.migrationId === mid);
    t.equal(after?.lastStep?.step, 'abort');
    t.equal(after?.inFlight, undefined);
    t.same(await client.request('forget', { migrationId: mid, removeImage: true }), { forgotten: true });
    t.notOk((await client.status()).holds.some((h) => h.migrationId === mid));
  });

  await t.test('a clean stop says goodbye', async (t) => {
    const gone = reg.waitGone(host);
    agent.kill('SIGTERM');
    t.match(await gone, /goodbye/);
    t.equal(await agent.exited, 'exit 0');
  });
});
