/**
 * Fault tests with a fake switch speaking coat's codec: for each fault the controller survives,
 * closes only the faulty connection, and says why (CloseReason code and message). A second,
 * healthy fake switch stays connected throughout.
 */
import t, { type Test } from 'tap';

process.env.COAT_LOG_LEVEL ??= 'silent';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Controller, type CloseReason } from '../../src/controller/index.js';
import { OFPET, flowMod, type FlowStats } from '../../src/openflow/index.js';
import { FakeSwitch } from './fake-switch.js';

async function setup(t: Test, opts: { echoIntervalMs?: number; deadAfterMs?: number; requestTimeoutMs?: number } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'coat-faults-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ctl = new Controller({ echoIntervalMs: opts.echoIntervalMs ?? 5000, deadAfterMs: opts.deadAfterMs ?? 15000, requestTimeoutMs: opts.requestTimeoutMs ?? 2000 });
  t.teardown(() => ctl.close());
  const path = join(dir, 'ctl.sock');
  await ctl.listen(`punix:${path}`);
  const fakes: FakeSwitch[] = [];
  t.teardown(() => fakes.forEach((f) => f.close()));
  const attach = async (dpid: bigint, extra: Partial<Parameters<typeof FakeSwitch.connect>[1]> = {}) => {
    const up = ctl.waitForSwitch(dpid, 5000);
    const fake = await FakeSwitch.connect(path, { dpid, ...extra });
    fakes.push(fake);
    return { fake, sw: await up };
  };
  const healthy = await attach(0x99n);
  return { ctl, path, attach, healthy, fakes };
}


function downReason(ctl: Controller, dpid: bigint): Promise<CloseReason> {
  return new Promise((resolve) => ctl.on('switch_down', (sw, reason) => sw.dpid === dpid && resolve(reason)));
}

/** Runs one fault on a fresh fake switch and checks the controller's reaction. */
async function fault(t: Test, name: string, inject: (fake: FakeSwitch) => void, expect: { code: string; message: RegExp }, opts?: Parameters<typeof setup>[1]) {
  t.test(name, async (t) => {
    const { ctl, attach, healthy } = await setup(t, opts);
    const { fake, sw } = await attach(0x1n);
    const down = downReason(ctl, 0x1n);
    inject(fake);
    const reason = await down;
    t.equal(reason.code, expect.code, reason.message);
    t.match(reason.message, expect.message);
    t.equal(sw.closed, true, 'the faulty connection is closed');
    await fake.closed;
    t.notOk(ctl.switches.has(0x1n));
    t.equal(ctl.switches.get(0x99n), healthy.sw, 'the healthy switch is still connected');
    t.ok((await healthy.sw.echo()) >= 0, 'and answers');
    const again = await attach(0x2n);
    t.equal(again.sw.state, 'up', 'the controller still accepts switches');
  });
}

const header = (version: number, type: number, length: number, xid: number) => {
  const b = Buffer.alloc(8);
  b[0] = version;
  b[1] = type;
  b.writeUInt16BE(length, 2);
  b.writeUInt32BE(xid, 4);
  return b;
};

t.test('faults', async (t) => {
  await fault(t, 'garbage bytes (framing lost)', (f) => f.sendRaw(Buffer.from('dead0003cafebabe0011223344556677', 'hex')), {
    code: 'OFC_PROTOCOL',
    message: /framing error: .*ofp_header.length >= 8/,
  });
  await fault(t, 'garbage with a plausible length (wrong version)', (f) => f.sendRaw(Buffer.concat([header(0x99, 2, 16, 5), Buffer.alloc(8, 0xaa)])), {
    code: 'OFC_PROTOCOL',
    message: /OFP_BAD_VERSION/,
  });
  await fault(t, 'a message cut mid-header', (f) => (f.sendRaw(header(4, 2, 8, 7).subarray(0, 4)), f.socket.end()), {
    code: 'OFC_PROTOCOL',
    message: /inside a message \(4 bytes .*cut inside the header/,
  });
  await fault(t, 'a length field larger than the data', (f) => (f.sendRaw(Buffer.concat([header(4, 2, 64, 8), Buffer.alloc(12)])), f.socket.end()), {
    code: 'OFC_PROTOCOL',
    message: /inside a message \(20 bytes/,
  });
  t.test('an unknown message type is answered with BAD_REQUEST/BAD_TYPE, then closed', async (t) => {
    const { ctl, attach, healthy } = await setup(t);
    const { fake } = await attach(0x1n);
    const down = downReason(ctl, 0x1n);
    fake.sendRaw(header(4, 99, 8, 0x4242));
    const reason = await down;
    t.equal(reason.code, 'OFC_PROTOCOL');
    t.match(reason.message, /type 99.*OFP_BAD_TYPE/);
    const err = await fake.waitFor((m) => m.type === 'error');
    t.match(err, { type: 'error', xid: 0x4242, errorType: OFPET.bad_request, code: 1 });
    t.equal(healthy.sw.state, 'up');
  });
  await fault(t, 'a reply with an xid nobody asked for', (f) => f.send({ type: 'barrier_reply', xid: 0xdeadbeef }), {
    code: 'OFC_PROTOCOL',
    message: /barrier_reply with xid 3735928559 answers no request/,
  });
  await fault(t, 'silence (keepalive timeout)', (f) => (f.silent = true), { code: 'OFC_KEEPALIVE', message: /no message from the switch for \d+ ms/ }, { echoIntervalMs: 100, deadAfterMs: 400 });
});

t.test('a switch offering only OpenFlow 1.0 gets HELLO_FAILED/INCOMPATIBLE and is closed', async (t) => {
  const { ctl, path, healthy } = await setup(t);
  const failed = new Promise<CloseReason>((resolve) => ctl.once('connection_failed', (_peer, reason) => resolve(reason)));
  const fake = await FakeSwitch.connect(path, { dpid: 0x10n, helloVersion: 1, versions: [] });
  t.teardown(() => fake.close());
  const reason = await failed;
  t.equal(reason.code, 'OFC_HANDSHAKE');
  t.match(reason.message, /version negotiation failed.*peer offered version 1/);
  const err = await fake.waitFor((m) => m.type === 'error');
  t.match(err, { type: 'error', errorType: OFPET.hello_failed, code: 0 });
  t.match((err as { data: Buffer }).data.toString(), /OpenFlow 1.3/);
  await fake.closed;
  t.equal(healthy.sw.state, 'up');

  const f2 = await FakeSwitch.connect(path, { dpid: 0x11n, helloVersion: 6, versions: [1, 4, 6] });
  t.teardown(() => f2.close());
  t.equal((await ctl.waitForSwitch(0x11n)).dpid, 0x11n, 'a bitmap containing 1.3 negotiates 1.3 whatever the header version');
});

t.test('deadlines, late replies and multipart reassembly', async (t) => {
  const stats = (i: number): FlowStats => ({
    tableId: 0, durationSec: 0, durationNsec: 0, priority: i, idleTimeout: 0, hardTimeout: 0, flags: 0,
    cookie: (0xc0a7n << 48n) | BigInt(i), packetCount: 0n, byteCount: 0n, match: [], instructions: [],
  });
  const { attach } = await setup(t, { requestTimeoutMs: 200 });
  const { fake, sw } = await attach(0x1n, { flows: Array.from({ length: 10 }, (_, i) => stats(i)), flowReplyParts: 3 });
  const flows = await sw.dumpCoatFlows();
  t.same(flows.map((f) => f.priority), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'three REPLY_MORE parts reassembled in order');

  fake.ignore.add('barrier_request');
  const err = await sw.barrier().catch((e: unknown) => e);
  t.match(err, { code: 'OFC_TIMEOUT', requestType: 'barrier_request', timeoutMs: 200, dpid: '0000000000000001' });
  const xid = (err as { xid: number }).xid;
  fake.send({ type: 'barrier_reply', xid });
  fake.ignore.delete('barrier_request');
  await sw.barrier();
  t.equal(sw.state, 'up', 'a late reply is not a protocol violation');
});

t.test('bundles: a switch that refuses them gets plain flow-mods, with a warning, once', async (t) => {
  const { attach } = await setup(t);
  const { fake, sw } = await attach(0x1n);
  fake.refuseBundles = true;
  const warnings: unknown[] = [];
  const origWarn = sw.log.warn.bind(sw.log);
  sw.log.warn = ((obj: unknown, ...rest: unknown[]) => (warnings.push(obj), origWarn(obj as object, ...(rest as [string])))) as typeof sw.log.warn;
  const mods = [1, 2, 3].map((i) => flowMod({ cookie: 0xc0a7n << 48n, priority: i }));
  t.equal(await sw.bundle(mods), 'plain');
  t.equal(sw.bundlesSupported, false);
  t.same(fake.received.filter((m) => m.type === 'flow_mod').map((m) => (m as { priority: number }).priority), [1, 2, 3], 'the flow-mods were sent plainly');
  t.ok(warnings.some((w) => (w as { event?: string }).event === 'bundle_fallback'), 'a warning was logged');
  t.equal(await sw.bundle(mods), 'plain', 'later bundles fall back without asking again');
  t.equal(fake.received.filter((m) => m.type === 'bundle_control').length, 1);
  await t.rejects(sw.bundle(mods, { fallback: 'throw' }), { code: 'OFC_BUNDLE' }, 'or fail when the caller needs atomicity');

  fake.refuseBundles = false;
  const { fake: f2, sw: sw2 } = await attach(0x2n);
  t.equal(await sw2.bundle(mods), 'bundle');
  t.same(f2.received.filter((m) => m.type === 'bundle_control').map((m) => (m as { controlType: string }).controlType), ['open_request', 'commit_request']);
  t.same(f2.received.filter((m) => m.type === 'bundle_add').map((m) => (m as { message: { xid: number }; xid: number }).message.xid === m.xid), [true, true, true], 'inner xid = outer xid');
});

t.test('reconciliations of one switch run one after the other; the last desired set wins', async (t) => {
  const { coatFlowMods } = await import('../../src/controller/index.js');
  const { match } = await import('../../src/openflow/index.js');
  const { attach } = await setup(t);
  const { fake, sw } = await attach(0x1n);
  const a = coatFlowMods([{ band: 'forward', match: match({ in_port: 1 }), instructions: [] }]);
  const b = coatFlowMods([{ band: 'forward', match: match({ in_port: 2 }), instructions: [] }]);
  const order: string[] = [];
  const p1 = sw.reconcile(a).then(() => order.push('a'));
  const p2 = sw.reconcile(b).then(() => order.push('b'));
  await Promise.all([p1, p2]);
  t.same(order, ['a', 'b']);
  const dumps = fake.received.filter((m) => m.type === 'multipart_request' && m.body.type === 'flow');
  const bundles = fake.received.filter((m) => m.type === 'bundle_control' && (m as { controlType: string }).controlType === 'commit_request');
  t.equal(dumps.length, 2);
  t.equal(bundles.length, 2);
  t.ok(fake.received.indexOf(dumps[1]!) > fake.received.indexOf(bundles[0]!), 'the second dump waits for the first commit');
});

t.test('a bundle whose adds are never confirmed is discarded, not left open', async (t) => {
  const { attach } = await setup(t, { requestTimeoutMs: 200 });
  const { fake, sw } = await attach(0x1n);
  fake.ignore.add('barrier_request');
  const err = await sw.bundle([flowMod({ priority: 1 })]).catch((e: unknown) => e);
  t.match(err, { code: 'OFC_TIMEOUT', requestType: 'barrier_request' });
  const controls = fake.received.filter((m) => m.type === 'bundle_control').map((m) => (m as { controlType: string }).controlType);
  t.same(controls, ['open_request', 'discard_request'], 'opened, then discarded; never committed');
});
