import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Orchestrator, precopyStopReason, type MigrationEvent, type OrchestratorOptions } from '../../src/migration/orchestrator.js';
import { journalPath, readJournal, summarizeJournal, unfinishedMigrations } from '../../src/migration/journal.js';
import type { AgentPort, MigrationPlan } from '../../src/migration/ports.js';
import { FakeOverlay, ManualClock, fakeAgents, fakeFlows, fakePlanner, testRef } from './fakes.js';

const silent = pino({ level: 'silent' });
const cold: MigrationPlan = { strategy: 'cold', iterations: 0, predicted: { downtimeMs: 50, totalMs: 80 } };
const precopy3: MigrationPlan = { strategy: 'precopy', iterations: 3, bandwidthMbit: 80, predicted: { downtimeMs: 10, totalMs: 300 } };

function dataDir(t: Test): string {
  const d = mkdtempSync(join(tmpdir(), 'coat-orch-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

interface Setup {
  o: FakeOverlay;
  orch: Orchestrator;
  clock: ManualClock;
  events: MigrationEvent[];
  dir: string;
}

function setup(t: Test, id: string, plan: MigrationPlan, opts: Partial<OrchestratorOptions> & { dirty?: number[]; straggler?: number; refuse?: number; newMac?: string; dir?: string } = {}): Setup {
  const ref = testRef(id, opts.newMac ? { newMac: opts.newMac } : {});
  const o = new FakeOverlay(ref);
  const clock = new ManualClock();
  const events: MigrationEvent[] = [];
  const dir = opts.dir ?? dataDir(t);
  const orch = new Orchestrator(
    { flows: fakeFlows(o, { stragglerOnRemove: opts.straggler ?? 0, refuse: opts.refuse ?? 0 }), agents: fakeAgents(o, opts.dirty), planner: fakePlanner(o, plan), clock },
    { dataDir: dir, log: silent, onEvent: (e) => events.push(e), ...opts },
  );
  return { o, orch, clock, events, dir };
}

/** Client traffic at the moments that matter: before, during the hold, during the replay. */
function withTraffic(o: FakeOverlay): void {
  o.trafficOn.set('planner.plan', 2);
  o.trafficOn.set('flows.holdAndSwitch', 1); // sent as the hold goes in: still forwarded to the source
  o.trafficOn.set('agents.dumpAndSend@edge-a->edge-b', 5);
  o.trafficOn.set('agents.restoreOnArrival:dump@edge-b', 2);
  o.trafficOn.set('agents.resume@edge-b', 1);
  o.trafficOn.set('flows.packetOut:destination', 1); // arrives during the replay: queues behind it
}

t.test('cold migration: every frame reaches the running service once, in order; held == replayed', async (t) => {
  const { o, orch, events, dir } = setup(t, 'm-cold', cold, { straggler: 1 });
  withTraffic(o);
  const out = await orch.migrate({ ref: o.ref, objective: 'min-resources' });
  t.equal(out.state, 'done');
  t.notOk(out.failedStep);
  for (let i = 0; i < 2; i++) o.clientSends(); // after the migration: straight to the destination
  t.same(o.lost, [], 'no frame reached a stopped service');
  t.same([...o.received.source, ...o.received.destination], o.sent, 'all frames, once, in order');
  t.ok(o.received.destination.length > 0 && o.received.source.length > 0);
  t.equal(out.hold.dropped, 0);
  t.equal(out.hold.held, out.hold.replayed);
  t.ok(out.hold.held >= 10, `held ${out.hold.held} packets`);
  t.ok(o.released, 'source released');
  t.notOk(o.namespaces.has('edge-a'), 'source namespace cleared');
  t.equal(out.switchMs, 0.4);
  // Hold, then the switch under it, before the freeze; replay before removing the hold, release last.
  const at = (c: string): number => o.calls.indexOf(c);
  t.ok(at('flows.onHeldPacket') < at('flows.holdAndSwitch'), 'subscribed before the hold flows exist');
  t.ok(at('agents.expectImage:dump@edge-b') < at('agents.dumpAndSend@edge-a->edge-b'), 'the final image is announced before the dump');
  t.ok(at('agents.expectImage:dump@edge-b') < at('flows.holdAndSwitch'), 'and before the hold flows go in: the switch does not share the machine with it');
  t.ok(at('flows.holdAndSwitch') < at('agents.dumpAndSend@edge-a->edge-b'), 'held and switched before the freeze');
  t.notOk(o.calls.includes('flows.switchTo:destination'), 'no switch of its own: it is in the hold bundle');
  t.notOk(o.calls.some((c) => c.startsWith('agents.streamImage:dump')), 'no second request for the final stream');
  // Restore on arrival: asked for with the dump, not one round trip after it.
  t.equal(at('agents.restoreOnArrival:dump@edge-b'), at('agents.dumpAndSend@edge-a->edge-b') - 1, 'the restore is requested together with the dump');
  t.notOk(o.calls.includes('agents.restore@edge-b'), 'no restore request after the dump');
  t.equal(summarizeJournal(readJournal(journalPath(dir, 'm-cold')).records).steps.find((s) => s.name === 'restore')?.detail?.onArrival, true);
  t.ok(at('agents.resume@edge-b') < at('flows.packetOut:destination'));
  t.ok(at('flows.packetOut:destination') < at('flows.removeHold'));
  t.ok(at('flows.removeHold') < at('agents.release@edge-a'));
  t.notOk(o.calls.some((c) => c.startsWith('agents.preDump')), 'cold: no pre-copy');
  const steps = events.filter((e) => e.type === 'step-end').map((e) => (e as { step: string }).step);
  t.same(steps, ['plan', 'prepare', 'hold', 'dump', 'restore', 'resume', 'replay', 'release', 'verify']);
  const summary = summarizeJournal(readJournal(journalPath(dir, 'm-cold')).records);
  t.equal(summary.state, 'done');
  t.same(summary.steps.map((s) => s.name), steps);
  t.ok(summary.steps.every((s) => s.ok === true && s.endMs !== undefined));
  t.same(summary.steps.find((s) => s.name === 'replay')?.detail?.held, out.hold.held);
});

t.test('pre-copy: planned rounds stream pre-N images; the stop rule ends early', async (t) => {
  const a = setup(t, 'm-pre', precopy3);
  const outA = await a.orch.migrate({ ref: a.o.ref, objective: 'min-downtime' });
  t.equal(outA.state, 'done');
  t.same(a.o.calls.filter((c) => c.startsWith('agents.preDump') || c.startsWith('agents.streamImage') || c.startsWith('agents.dumpAndSend')), [
    'agents.preDump:1@edge-a',
    'agents.streamImage:pre-1@edge-a->edge-b',
    'agents.preDump:2@edge-a',
    'agents.streamImage:pre-2@edge-a->edge-b',
    'agents.preDump:3@edge-a',
    'agents.streamImage:pre-3@edge-a->edge-b',
    'agents.dumpAndSend@edge-a->edge-b',
  ]);
  t.same(a.o.streamRates, [80e6, 80e6, 80e6, 80e6], "every image stream is limited to the plan's bandwidth L");
  const rounds = a.o.calls.filter((c) => /^agents\.(preDump|streamImage|settle)/.test(c));
  t.same(rounds.slice(0, 3), ['agents.preDump:1@edge-a', 'agents.streamImage:pre-1@edge-a->edge-b', 'agents.settle@edge-b'], 'each round is settled at the destination after its stream');
  t.equal(rounds.filter((c) => c === 'agents.settle@edge-b').length, 3);
  t.ok(a.o.calls.lastIndexOf('agents.settle@edge-b') < a.o.calls.indexOf('flows.holdAndSwitch'), 'all before the hold');
  t.same(outA.steps.filter((s) => s.name === 'precopy').map((s) => s.round), [1, 2, 3]);
  const b = setup(t, 'm-pre-stop', precopy3, { precopyStopPages: 64, dirty: [500, 40, 10] });
  const outB = await b.orch.migrate({ ref: b.o.ref, objective: 'min-downtime' });
  t.equal(outB.state, 'done');
  t.same(outB.steps.filter((s) => s.name === 'precopy').map((s) => s.round), [1, 2], 'round 2 left 40 <= 64 dirty pages');
  const c = setup(t, 'm-pre-grow', precopy3, { dirty: [500, 560, 300] });
  const outC = await c.orch.migrate({ ref: c.o.ref, objective: 'min-downtime' });
  t.equal(outC.state, 'done');
  t.same(outC.steps.filter((s) => s.name === 'precopy').map((s) => s.round), [1, 2], 'round 2 grew the dirty set by 12 % (> 10 %): stop, by default');
  t.ok(c.o.calls.includes('agents.dumpAndSend@edge-a->edge-b'), 'then the final dump');
  const d = setup(t, 'm-pre-exact', precopy3, { precopyStopRule: false, dirty: [500, 40, 10] });
  const outD = await d.orch.migrate({ ref: d.o.ref, objective: 'min-downtime' });
  t.same(outD.steps.filter((s) => s.name === 'precopy').map((s) => s.round), [1, 2, 3], 'precopyStopRule false: the plan\'s three rounds');
});

t.test("p.haul's stop rule: small rounds and growing dirty sets stop; undefined counts never do", async (t) => {
  t.equal(precopyStopReason(undefined, 10, {}), undefined);
  t.match(precopyStopReason(64, undefined, {}), /64 dirty pages <= 64/);
  t.equal(precopyStopReason(65, undefined, {}), undefined, 'first round, above the floor: go on');
  t.equal(precopyStopReason(110, 100, {}), undefined, 'grew by exactly 10 %: go on');
  t.match(precopyStopReason(111, 100, {}), /grew from 100 to 111/);
  t.equal(precopyStopReason(90, 100, {}), undefined, 'shrinking: go on');
  t.equal(precopyStopReason(10, undefined, { precopyStopPages: 0 }), undefined, 'floor configurable');
  t.equal(precopyStopReason(120, 100, { precopyStopGrowth: 0.25 }), undefined, 'growth limit configurable');
  t.match(precopyStopReason(130, 100, { precopyStopGrowth: 0.25 }), /> 25 %/);
  t.equal(precopyStopReason(0, 100, { precopyStopRule: false }), undefined, 'the rule off: never');
});

t.test('new-MAC mode: gratuitous ARP and neighbour flush on the client host, after the switch', async (t) => {
  const { o, orch } = setup(t, 'm-mac', cold, { newMac: '02:00:00:00:00:99' });
  const out = await orch.migrate({ ref: o.ref, objective: 'min-resources' });
  t.equal(out.state, 'done');
  const at = (c: string): number => o.calls.indexOf(c);
  t.ok(at('flows.holdAndSwitch') < at('flows.announce'));
  t.ok(at('flows.announce') < at('agents.flushNeighbour@client'));
  t.ok(at('agents.flushNeighbour@client') < at('agents.dumpAndSend@edge-a->edge-b'));
});

t.test('new-MAC mode: a rollback after the switch announces the old MAC again and flushes the client', async (t) => {
  const { o, orch } = setup(t, 'm-mac-back', cold, { newMac: '02:00:00:00:00:99' });
  o.failOn.set('agents.restoreOnArrival:dump@edge-b', 'throw');
  const out = await orch.migrate({ ref: o.ref, objective: 'min-resources' });
  t.equal(out.state, 'rolled-back');
  const after = o.calls.slice(o.calls.indexOf('agents.restoreOnArrival:dump@edge-b'));
  const at = (c: string): number => after.indexOf(c);
  t.ok(at('flows.switchTo:source') >= 0 && at('flows.switchTo:source') < at('flows.announce:source'), 'flows back first, then the old MAC announced');
  t.ok(at('flows.announce:source') < at('agents.flushNeighbour@client'), "then the client's stale (new-MAC) entry flushed");
  t.ok(at('agents.flushNeighbour@client') < at('flows.removeHold'), 'all before the hold is lifted');
});

// One failure per step before resume: the service keeps running at the source with every frame.
const failures: [string, string, string[]][] = [
  ['plan', 'planner.plan', []],
  ['prepare', 'flows.stageDestination', ['abort-destination', 'thaw-source', 'unstage-destination', 'clear-destination']],
  ['precopy', 'agents.preDump:2@edge-a', ['abort-destination', 'thaw-source', 'unstage-destination', 'clear-destination']],
  ['hold', 'flows.holdAndSwitch', ['switch-back', 'abort-destination', 'thaw-source', 'replay-to-source', 'remove-hold', 'unstage-destination', 'clear-destination']],
  ['dump', 'agents.dumpAndSend@edge-a->edge-b', ['switch-back', 'abort-destination', 'thaw-source', 'replay-to-source', 'remove-hold', 'unstage-destination', 'clear-destination']],
  ['restore', 'agents.restoreOnArrival:dump@edge-b', ['switch-back', 'abort-destination', 'thaw-source', 'replay-to-source', 'remove-hold', 'unstage-destination', 'clear-destination']],
];
for (const [step, call, undo] of failures) {
  t.test(`failure at ${step} rolls back: source runs, held frames replayed to it, destination cleared`, async (t) => {
    const { o, orch, events, dir } = setup(t, `m-fail-${step}`, precopy3, { straggler: 1 });
    withTraffic(o);
    o.failOn.set(call, 'throw');
    const out = await orch.migrate({ ref: o.ref, objective: 'min-downtime' });
    t.equal(out.state, 'rolled-back');
    t.equal(out.failedStep, step, 'names the failed step');
    t.match(out.error?.message, /injected failure/, 'and why');
    const rb = events.find((e) => e.type === 'rollback');
    t.same(rb && rb.type === 'rollback' ? rb.actions : undefined, undo);
    o.clientSends();
    t.same(o.lost, [], 'no frame reached a stopped service');
    t.same(o.received.destination, [], 'the destination never ran');
    t.same(o.received.source, o.sent, 'every frame reached the source once, in order');
    t.equal(o.pointsAt, 'source');
    t.notOk(o.holding, 'hold removed');
    t.notOk(o.frozen, 'source thawed');
    t.notOk(o.namespaces.has('edge-b'), 'destination namespace gone');
    t.notOk(o.staged, 'staged flows gone');
    t.notOk(o.released);
    t.equal(out.hold.held, out.hold.replayed);
    t.equal(out.hold.dropped, 0);
    const s = summarizeJournal(readJournal(journalPath(dir, `m-fail-${step}`)).records);
    t.equal(s.state, 'rolled-back');
    t.equal(s.failedStep, step);
    t.same(s.undone, undo);
    t.same(unfinishedMigrations(dir), []);
  });
}

t.test('an image announcement that fails in hold: no hold flow ever went in, and it rolls back', async (t) => {
  const { o, orch } = setup(t, 'm-fail-announce', precopy3, { straggler: 1 });
  withTraffic(o);
  o.failOn.set('agents.expectImage:dump@edge-b', 'throw');
  const out = await orch.migrate({ ref: o.ref, objective: 'min-downtime' });
  t.equal(out.state, 'rolled-back');
  t.equal(out.failedStep, 'hold');
  t.notOk(o.calls.includes('flows.holdAndSwitch'), 'the switch never started');
  o.clientSends();
  t.same(o.received.source, o.sent, 'every frame reached the source once, in order');
  t.equal(out.hold.held, 0);
  t.notOk(o.frozen);
});

t.test('a dump that fails while the destination waits for its image: the rollback ends the wait', async (t) => {
  const { o, orch } = setup(t, 'm-dump-wait', cold);
  o.failOn.set('agents.dumpAndSend@edge-a->edge-b', 'throw');
  let unhandled: unknown;
  const onUnhandled = (e: unknown) => void (unhandled = e);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => void process.off('unhandledRejection', onUnhandled));
  const out = await orch.migrate({ ref: o.ref, objective: 'min-resources' });
  await new Promise((r) => setImmediate(r));
  t.equal(out.state, 'rolled-back');
  t.equal(out.failedStep, 'dump');
  t.ok(o.calls.includes('agents.restoreOnArrival:dump@edge-b'), 'the restore was waiting for the image');
  t.ok(o.calls.includes('agents.abort:destination@edge-b'), 'the abort at the destination ended its wait');
  t.notOk(o.restored, 'nothing was restored');
  t.equal(unhandled, undefined, 'the abandoned restore is no unhandled rejection');
  t.ok(o.signals.get('agents.restoreOnArrival:dump@edge-b')?.aborted, "the restore's request is abandoned when the run ends");
});

t.test('a step past its deadline is aborted and rolled back (MIGRATION_DEADLINE)', async (t) => {
  const { o, orch, clock } = setup(t, 'm-deadline', cold, { stepTimeouts: { restore: 200 } });
  o.failOn.set('agents.restoreOnArrival:dump@edge-b', 'hang');
  const running = orch.migrate({ ref: o.ref, objective: 'min-resources' });
  while (!o.calls.includes('agents.restoreOnArrival:dump@edge-b')) await new Promise((r) => setImmediate(r));
  clock.advance(199);
  await new Promise((r) => setImmediate(r));
  t.notOk(o.calls.includes('agents.abort:destination@edge-b'), 'not yet at 199 ms');
  clock.advance(1);
  const out = await running;
  t.equal(out.state, 'rolled-back');
  t.equal(out.failedStep, 'restore');
  t.equal(out.error?.code, 'MIGRATION_DEADLINE');
  const restoreSignal = o.signals.get('agents.restoreOnArrival:dump@edge-b');
  t.ok(restoreSignal?.aborted, 'the hung step saw its signal aborted');
});

t.test('the whole-migration deadline bounds every step before resume', async (t) => {
  const { o, orch, clock } = setup(t, 'm-total', cold, { deadlineMs: 1000, stepTimeoutMs: 60_000 });
  o.failOn.set('agents.dumpAndSend@edge-a->edge-b', 'hang');
  const running = orch.migrate({ ref: o.ref, objective: 'min-resources' });
  while (!o.calls.includes('agents.dumpAndSend@edge-a->edge-b')) await new Promise((r) => setImmediate(r));
  clock.advance(1000);
  const out = await running;
  t.equal(out.state, 'rolled-back');
  t.equal(out.error?.code, 'MIGRATION_DEADLINE');
});

/** An orchestrator over the fakes whose agents the test changes first. */
function custom(t: Test, id: string, change: (o: FakeOverlay, agents: AgentPort) => void): { o: FakeOverlay; orch: Orchestrator; dir: string } {
  const o = new FakeOverlay(testRef(id));
  const agents = fakeAgents(o);
  change(o, agents);
  const dir = dataDir(t);
  const orch = new Orchestrator({ flows: fakeFlows(o), agents, planner: fakePlanner(o, cold), clock: new ManualClock() }, { dataDir: dir, log: silent });
  return { o, orch, dir };
}

/** The destination's restore answers when the test says: `finish()` or `fail()`. */
function slowRestore(o: FakeOverlay): { finish(): void; fail(): void } {
  const ctl = { finish: () => {}, fail: () => {} };
  o.restoreWork = new Promise<void>((resolve, reject) => Object.assign(ctl, { finish: resolve, fail: () => reject(Object.assign(new Error('restore failed'), { code: 'TREX_IMAGE_INVALID' })) }));
  return ctl;
}

const until = async (cond: () => boolean) => {
  while (!cond()) await new Promise((r) => setImmediate(r));
};

t.test('the resume request leaves when the dump is done, before the restore answers, journaled first', async (t) => {
  let restore!: { finish(): void };
  const { o, orch, dir } = custom(t, 'm-early', (o) => (restore = slowRestore(o)));
  const running = orch.migrate({ ref: o.ref, objective: 'min-resources' });
  await until(() => o.calls.includes('agents.resume@edge-b'));
  t.ok(o.calls.indexOf('agents.dumpAndSend@edge-a->edge-b') < o.calls.indexOf('agents.resume@edge-b'), 'after the dump');
  const records = readJournal(journalPath(dir, 'm-early')).records;
  const armed = records.findIndex((r) => r.type === 'resume-armed' && r.host === 'edge-b');
  const holdStart = records.findIndex((r) => r.type === 'step-start' && r.step === 'hold');
  t.ok(armed >= 0 && armed < holdStart, "armed before the hold's step-start, whose fsync makes it durable before the freeze");
  t.equal(summarizeJournal(records).state, 'restore', 'while the restore step still waits');
  await new Promise((r) => setImmediate(r));
  t.notOk(o.running.destination, 'the destination does not run before its restore is done');
  restore.finish();
  const out = await running;
  t.equal(out.state, 'done');
  t.ok(o.running.destination);
});

t.test('a restore that fails after the resume request left still rolls back: nothing resumed there', async (t) => {
  let restore!: { fail(): void };
  const { o, orch } = custom(t, 'm-early-fail', (o) => (restore = slowRestore(o)));
  withTraffic(o);
  const running = orch.migrate({ ref: o.ref, objective: 'min-resources' });
  await until(() => o.calls.includes('agents.resume@edge-b'));
  restore.fail();
  const out = await running;
  t.equal(out.state, 'rolled-back');
  t.equal(out.failedStep, 'restore');
  t.equal(out.error?.code, 'TREX_IMAGE_INVALID');
  t.ok(o.running.source && !o.frozen, 'source thawed');
  t.notOk(o.running.destination);
  t.same(o.lost, [], 'held frames replayed to the source');
});

t.test('a resume that failed before anything ran rolls back: the abort at the destination proves it', async (t) => {
  const { o, orch } = setup(t, 'm-resume-refused', cold);
  withTraffic(o);
  o.failOn.set('agents.resume@edge-b', 'throw'); // fails without running: the fake destination never starts
  const out = await orch.migrate({ ref: o.ref, objective: 'min-resources' });
  t.equal(out.state, 'rolled-back');
  t.equal(out.failedStep, 'resume');
  t.ok(o.running.source && !o.frozen, 'source thawed');
  t.same(o.calls.filter((c) => c.startsWith('agents.abort:destination')), ['agents.abort:destination@edge-b'], 'asked once; the rollback does not repeat it');
  t.same(o.lost, []);
});

t.test('no answer from the destination within a step\'s time: it may have resumed, so roll forward', async (t) => {
  const { o, orch, clock } = setup(t, 'm-resume-silent', cold, { stepTimeoutMs: 100 });
  o.failOn.set('agents.resume@edge-b', 'hang');
  o.failOn.set('agents.abort:destination@edge-b', 'hang');
  const running = orch.migrate({ ref: o.ref, objective: 'min-resources' });
  await until(() => o.calls.includes('agents.resume@edge-b'));
  clock.advance(100); // the resume step's limit
  await until(() => o.calls.includes('agents.abort:destination@edge-b'));
  await new Promise((r) => setImmediate(r));
  t.notOk(o.calls.includes('flows.removeHold'), 'still waiting for an answer');
  clock.advance(100); // the question's limit
  const out = await running;
  t.equal(out.state, 'failed');
  t.equal(out.failedStep, 'resume');
  t.ok(o.frozen, 'source left frozen');
  t.notOk(o.calls.includes('agents.abort:source@edge-a'), 'never thawed');
  t.ok(o.signals.get('agents.abort:destination@edge-b')?.aborted, 'the unanswered question was abandoned');
});

t.test('failure while resuming rolls forward: held frames go to the destination, hold removed, source left frozen', async (t) => {
  const { o, orch } = custom(t, 'm-resume', (o, agents) => {
    // The destination starts, then its resume fails (e.g. the service never acknowledges).
    agents.resume = (h, _m, s) =>
      o.call(`agents.resume@${h}`, s, () => {
        o.running.destination = true;
        throw Object.assign(new Error('service did not acknowledge'), { code: 'HANDOVER_NO_ACK' });
      });
  });
  withTraffic(o);
  const out = await orch.migrate({ ref: o.ref, objective: 'min-resources' });
  t.equal(out.state, 'failed');
  t.equal(out.failedStep, 'resume');
  t.notOk(o.holding, 'hold removed');
  t.notOk(o.released, 'source not released: an operator decides');
  t.ok(o.frozen, 'source still frozen, not thawed behind the destination');
  t.equal(out.hold.held, out.hold.replayed + out.hold.dropped);
  t.ok(o.calls.includes('agents.abort:destination@edge-b'), 'the destination was asked (its abort refused: it runs)');
  t.notOk(o.calls.includes('agents.abort:source@edge-a'), 'no rollback after the destination may have run');
});

t.test('a failing undo action does not stop the others; the migration ends failed, naming it', async (t) => {
  const { o, orch, dir } = setup(t, 'm-undo-fail', cold);
  o.failOn.set('agents.restoreOnArrival:dump@edge-b', 'throw');
  o.failOn.set('agents.abort:destination@edge-b', 'throw');
  const out = await orch.migrate({ ref: o.ref, objective: 'min-resources' });
  t.equal(out.state, 'failed');
  t.equal(out.failedStep, 'restore');
  t.equal(out.error?.code, 'MIGRATION_ROLLBACK_FAILED');
  t.match(out.error?.message, /abort-destination/);
  t.same(out.undoFailures.map((u) => u.action), ['abort-destination']);
  t.notOk(o.frozen, 'source thawed all the same');
  t.notOk(o.holding);
  const s = summarizeJournal(readJournal(journalPath(dir, 'm-undo-fail')).records);
  t.equal(s.state, 'failed');
  t.notOk(s.undone.includes('abort-destination'));
  t.ok(s.undone.includes('thaw-source'));
});

t.test('hold overflow is counted as dropped, never silent; refused packet-outs too', async (t) => {
  const { o, orch } = setup(t, 'm-overflow', cold, { holdLimits: { maxPackets: 3 }, refuse: 1 });
  o.trafficOn.set('agents.dumpAndSend@edge-a->edge-b', 5);
  const out = await orch.migrate({ ref: o.ref, objective: 'min-resources' });
  t.equal(out.state, 'done');
  t.equal(out.hold.held, 5);
  t.equal(out.hold.dropped, 2 + 1, '2 over the bound, 1 refused by the switch');
  t.equal(out.hold.replayed, 2);
  t.equal(out.hold.held, out.hold.replayed + out.hold.dropped);
  t.same(o.received.destination, [0, 1], 'the accepted ones, in order');
});

t.test('crash before resume: a new orchestrator finds the journal and rolls back', async (t) => {
  const dir = dataDir(t);
  const first = setup(t, 'm-crash', cold, { dir });
  first.o.failOn.set('agents.restoreOnArrival:dump@edge-b', 'hang');
  void first.orch.migrate({ ref: first.o.ref, objective: 'min-resources' }); // never ends: "crashed"
  while (!first.o.calls.includes('agents.restoreOnArrival:dump@edge-b')) await new Promise((r) => setImmediate(r));
  // Tear the last line, as a crash in the middle of a write would.
  appendFileSync(journalPath(dir, 'm-crash'), '{"type":"step-end","step":"rest');
  const pending = unfinishedMigrations(dir);
  t.same(pending.map((p) => [p.migrationId, p.state]), [['m-crash', 'restore']]);

  const second = setup(t, 'm-crash', cold, { dir });
  second.o.frozen = true; // the world as the crash left it
  second.o.running.source = false;
  second.o.holding = true;
  second.o.namespaces.add('edge-b');
  const outs = await second.orch.recover();
  t.equal(outs.length, 1);
  t.equal(outs[0]!.state, 'rolled-back');
  t.equal(outs[0]!.failedStep, 'restore');
  t.equal(outs[0]!.error?.code, 'MIGRATION_INTERRUPTED');
  t.same(second.o.calls.filter((c) => c.startsWith('agents.abort')), ['agents.abort:destination@edge-b', 'agents.abort:source@edge-a']);
  t.ok(second.o.calls.includes('flows.removeHold'));
  t.ok(second.o.calls.includes('flows.unstageDestination'));
  t.ok(second.o.calls.includes('agents.clearNamespace@edge-b'));
  t.notOk(second.o.frozen, 'source thawed');
  t.notOk(second.o.holding);
  t.same(unfinishedMigrations(dir), [], 'nothing left to recover');
  const text = readFileSync(journalPath(dir, 'm-crash'), 'utf8');
  t.ok(text.endsWith('\n'));
  t.equal(summarizeJournal(readJournal(journalPath(dir, 'm-crash')).records).state, 'rolled-back');
});

t.test('crash during a rollback: recovery finishes it without repeating what was undone', async (t) => {
  const dir = dataDir(t);
  const first = setup(t, 'm-crash-rb', cold, { dir });
  first.o.failOn.set('agents.restoreOnArrival:dump@edge-b', 'throw');
  first.o.failOn.set('agents.abort:source@edge-a', 'hang'); // crash while thawing
  void first.orch.migrate({ ref: first.o.ref, objective: 'min-resources' });
  while (!first.o.calls.includes('agents.abort:source@edge-a')) await new Promise((r) => setImmediate(r));
  t.equal(unfinishedMigrations(dir)[0]?.state, 'rolling-back');
  const second = setup(t, 'm-crash-rb', cold, { dir });
  const [out] = await second.orch.recover();
  t.equal(out?.state, 'rolled-back');
  t.equal(out?.failedStep, 'restore', 'the step whose failure started the rollback');
  t.notOk(second.o.calls.includes('agents.abort:destination@edge-b'), 'done before the crash: not repeated');
  t.ok(second.o.calls.includes('agents.abort:source@edge-a'), 'the interrupted action runs again');
  t.ok(second.o.calls.includes('agents.clearNamespace@edge-b'));
});

t.test('crash after resume: recovery rolls forward and ends failed (MIGRATION_INTERRUPTED)', async (t) => {
  const dir = dataDir(t);
  const first = setup(t, 'm-crash-fwd', cold, { dir });
  first.o.failOn.set('flows.packetOut:destination', 'hang');
  first.o.trafficOn.set('agents.dumpAndSend@edge-a->edge-b', 2);
  void first.orch.migrate({ ref: first.o.ref, objective: 'min-resources' });
  while (!first.o.calls.includes('flows.packetOut:destination')) await new Promise((r) => setImmediate(r));
  const second = setup(t, 'm-crash-fwd', cold, { dir });
  const [out] = await second.orch.recover();
  t.equal(out?.state, 'failed');
  t.equal(out?.failedStep, 'replay');
  t.equal(out?.error?.code, 'MIGRATION_INTERRUPTED');
  t.ok(second.o.calls.includes('flows.removeHold'), 'hold removed');
  t.notOk(second.o.calls.some((c) => c.startsWith('agents.abort')), 'no rollback after resume');
});

t.test('a second migration with the same id is refused (MIGRATION_JOURNAL_EXISTS)', async (t) => {
  const dir = dataDir(t);
  const a = setup(t, 'm-dup', cold, { dir });
  await a.orch.migrate({ ref: a.o.ref, objective: 'min-resources' });
  const b = setup(t, 'm-dup', cold, { dir });
  await t.rejects(b.orch.migrate({ ref: b.o.ref, objective: 'min-resources' }), { code: 'MIGRATION_JOURNAL_EXISTS' });
  writeFileSync(join(dir, 'migrations', 'junk.jsonl'), 'not json\n{"type":"begin"}\n');
  t.throws(() => unfinishedMigrations(dir), { code: 'MIGRATION_JOURNAL_CORRUPT' });
});

t.test('crash inside the downtime window with the unsynced step starts lost: recovery still undoes them all', async (t) => {
  const dir = dataDir(t);
  const first = setup(t, 'm-lost', cold, { dir });
  first.o.failOn.set('agents.restoreOnArrival:dump@edge-b', 'hang');
  void first.orch.migrate({ ref: first.o.ref, objective: 'min-resources' });
  while (!first.o.calls.includes('agents.restoreOnArrival:dump@edge-b')) await new Promise((r) => setImmediate(r));
  // What a power cut leaves: the records after the last fsync (hold's start) are gone.
  const p = journalPath(dir, 'm-lost');
  const lines = readFileSync(p, 'utf8').split('\n').filter(Boolean);
  const holdAt = lines.findIndex((l) => l.includes('"step-start","step":"hold"'));
  writeFileSync(p, lines.slice(0, holdAt + 1).join('\n') + '\n');
  t.equal(unfinishedMigrations(dir)[0]?.state, 'hold');
  const second = setup(t, 'm-lost', cold, { dir });
  const [out] = await second.orch.recover();
  t.equal(out?.state, 'rolled-back');
  const undo = second.o.calls.filter((c) => !c.startsWith('flows.onHeld'));
  t.same(undo, [
    'flows.switchTo:source',
    'agents.abort:destination@edge-b',
    'agents.abort:source@edge-a',
    'flows.removeHold',
    'flows.unstageDestination',
    'agents.clearNamespace@edge-b',
  ], 'switch-back and thaw are done although their steps left no record');
});

t.test('a port that throws synchronously fails its step and leaves no timer behind', async (t) => {
  const { o, orch, clock } = setup(t, 'm-sync-throw', cold);
  const flows = (orch as unknown as { ports: { flows: { holdAndSwitch: unknown } } }).ports.flows;
  flows.holdAndSwitch = () => {
    throw new Error('not connected');
  };
  const out = await orch.migrate({ ref: o.ref, objective: 'min-resources' });
  t.equal(out.state, 'rolled-back');
  t.equal(out.failedStep, 'hold');
  t.equal(out.error?.message, 'not connected');
  t.equal(clock.pendingTimers, 0);
});

t.test('coat-baseline: COAT’s Stop&Copy with the same parts; no hold, so frames reaching the frozen source are lost', async (t) => {
  const ref = testRef('m-base', { newMac: '02:00:00:00:00:99' });
  const o = new FakeOverlay(ref);
  const dir = dataDir(t);
  o.trafficOn.set('agents.streamImage:dump@edge-a->edge-b', 3);
  const orch = new Orchestrator(
    { flows: fakeFlows(o), agents: fakeAgents(o), planner: fakePlanner(o, precopy3), clock: new ManualClock() },
    { dataDir: dir, log: silent },
  );
  const out = await orch.migrate({ ref, objective: 'min-downtime', mode: 'coat-baseline' });
  t.equal(out.state, 'done');
  t.equal(out.mode, 'coat-baseline');
  t.equal(out.plan?.strategy, 'cold', 'always Stop&Copy');
  t.same(o.calls, [
    'planner.plan',
    'agents.prepare:source@edge-a',
    'agents.dump@edge-a',
    'agents.streamImage:dump@edge-a->edge-b',
    'agents.prepareNamespace@edge-b',
    'agents.prepare:destination@edge-b',
    'flows.stageDestination',
    'agents.restore@edge-b',
    'flows.switchTo:destination',
    'flows.announce',
    'agents.flushNeighbour@client',
    'agents.resume@edge-b',
    'agents.release@edge-a',
    'agents.clearNamespace@edge-a',
  ]);
  t.same(o.lost, [0, 1, 2], 'the frames sent during the freeze went to the frozen source');
  t.same(out.steps.map((s) => s.name), ['plan', 'prepare', 'dump', 'stream', 'restore', 'switch', 'resume', 'release', 'verify']);
  const s = summarizeJournal(readJournal(journalPath(dir, 'm-base')).records);
  t.equal(s.request.mode, 'coat-baseline');
});

t.test('coat-baseline rolls back too: a failed restore thaws the source and clears the destination', async (t) => {
  const o = new FakeOverlay(testRef('m-base-rb'));
  o.failOn.set('agents.restore@edge-b', 'throw');
  const orch = new Orchestrator({ flows: fakeFlows(o), agents: fakeAgents(o), planner: fakePlanner(o, cold), clock: new ManualClock() }, { dataDir: dataDir(t), log: silent });
  const out = await orch.migrate({ ref: o.ref, objective: 'min-resources', mode: 'coat-baseline' });
  t.equal(out.state, 'rolled-back');
  t.equal(out.failedStep, 'restore');
  t.notOk(o.frozen);
  t.notOk(o.namespaces.has('edge-b'));
  t.notOk(o.calls.includes('flows.removeHold'), 'no hold to remove');
});
