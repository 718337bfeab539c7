/**
 * The controller's pure pieces: connection-method parsing, xid allocation, the keepalive state
 * machine and the request table under a fake clock, cookie space and priority bands.
 */
import t from 'tap';
import { parseEndpoint, formatEndpoint } from '../../src/controller/endpoint.js';
import { XidAllocator } from '../../src/controller/xid.js';
import { KeepaliveState } from '../../src/controller/keepalive.js';
import { RequestTable, RequestTimeoutError } from '../../src/controller/requests.js';
import {
  BandTable, COAT_COOKIE, COAT_COOKIE_MASK, cookieBand, flowCookie, isCoatCookie,
} from '../../src/controller/cookies.js';
import { FakeClock } from './fake-clock.js';

t.test('connection methods in OVS syntax', async (t) => {
  t.same(parseEndpoint('tcp:10.0.0.1'), { passive: false, endpoint: { kind: 'tcp', tls: false, host: '10.0.0.1', port: 6653 } });
  t.same(parseEndpoint('ssl:[::1]:6654'), { passive: false, endpoint: { kind: 'tcp', tls: true, host: '::1', port: 6654 } });
  t.same(parseEndpoint('ptcp:0:127.0.0.1'), { passive: true, endpoint: { kind: 'tcp', tls: false, host: '127.0.0.1', port: 0 } });
  t.same(parseEndpoint('ptcp:'), { passive: true, endpoint: { kind: 'tcp', tls: false, host: '0.0.0.0', port: 6653 } });
  t.same(parseEndpoint('punix:/run/x.sock'), { passive: true, endpoint: { kind: 'unix', path: '/run/x.sock' } });
  t.equal(formatEndpoint(parseEndpoint('pssl:6653:[::1]')), 'pssl:6653:[::1]');
  for (const bad of ['tcp', 'udp:1.2.3.4', 'tcp:h:99999', 'tcp:h:x', 'unix:', 'tcp:']) {
    t.throws(() => parseEndpoint(bad), { code: 'OFC_ENDPOINT' }, bad);
  }
});

t.test('xids skip 0 and ids still waiting, and wrap at 2^32', async (t) => {
  const x = new XidAllocator(0xfffffffe);
  t.equal(x.allocate(), 0xfffffffe);
  t.equal(x.allocate(), 0xffffffff);
  t.equal(x.allocate(), 1, 'wraps past 0');
  t.equal(x.allocate((xid) => xid === 2 || xid === 3), 4, 'ids in use are skipped');
});

t.test('keepalive: probe after the interval, dead after the timeout, any message resets', async (t) => {
  const k = new KeepaliveState({ intervalMs: 1000, deadAfterMs: 3000 }, 0);
  t.same(k.decide(500), { action: 'wait', checkInMs: 500 });
  t.same(k.decide(1000), { action: 'probe', checkInMs: 1000 }, 'look again after an interval, not only at the deadline');
  t.same(k.decide(1500), { action: 'wait', checkInMs: 1000 }, 'one probe per silence');
  t.same(k.decide(2500), { action: 'wait', checkInMs: 500 }, 'the dead-peer deadline comes first');
  k.received(2000);
  t.same(k.decide(2500), { action: 'wait', checkInMs: 500 });
  t.same(k.decide(3000), { action: 'probe', checkInMs: 1000 });
  t.same(k.decide(4000), { action: 'wait', checkInMs: 1000 });
  t.same(k.decide(5000), { action: 'dead', silentMs: 3000 });
  // Our own stall is not the peer's silence: the first look after 10 s probes, and only a probe
  // left unanswered for deadAfter - interval kills.
  const s = new KeepaliveState({ intervalMs: 1000, deadAfterMs: 3000 }, 0);
  t.same(s.decide(10_000), { action: 'probe', checkInMs: 1000 }, 'a stall ends in a probe, not a verdict');
  s.received(10_001);
  t.same(s.decide(10_500), { action: 'wait', checkInMs: 501 }, 'answered: alive, next look one interval after the reply');
  t.same(s.decide(11_001), { action: 'probe', checkInMs: 1000 });
  t.same(s.decide(13_001), { action: 'dead', silentMs: 3000 });
  t.throws(() => new KeepaliveState({ intervalMs: 1000, deadAfterMs: 1000 }, 0), RangeError);
});

t.test('request table: replies by xid, multipart reassembly, errors, deadlines, late replies', async (t) => {
  const clock = new FakeClock();
  const timeouts: RequestTimeoutError[] = [];
  const table = new RequestTable<{ type: string; xid: number; n?: number }>(clock, (e) => timeouts.push(e));

  const single = table.add({ type: 'barrier_request', xid: 1 }, { timeoutMs: 100 });
  const multi = table.add({ type: 'multipart_request', xid: 2 }, { timeoutMs: 100, multipart: true });
  t.equal(table.deliver({ type: 'multipart_reply', xid: 2, n: 1 }, true), 'partial');
  t.equal(table.deliver({ type: 'multipart_reply', xid: 2, n: 2 }, true), 'partial');
  t.equal(table.deliver({ type: 'barrier_reply', xid: 1 }), 'done');
  t.equal(table.deliver({ type: 'multipart_reply', xid: 2, n: 3 }, false), 'done');
  t.same((await single).map((m) => m.type), ['barrier_reply']);
  t.same((await multi).map((m) => m.n), [1, 2, 3], 'all parts, in order');

  const failing = table.add({ type: 'role_request', xid: 3 }, { timeoutMs: 100 });
  t.equal(table.request(3)?.type, 'role_request');
  t.ok(table.fail(3, new Error('boom')));
  await t.rejects(failing, /boom/);
  t.notOk(table.fail(3, new Error('again')), 'nothing waits any more');

  const slow = table.add({ type: 'echo_request', xid: 4 }, { timeoutMs: 100 });
  clock.advance(99);
  t.equal(table.size, 1);
  clock.advance(1);
  await t.rejects(slow, { code: 'OFC_TIMEOUT', xid: 4, requestType: 'echo_request' });
  t.equal(timeouts.length, 1);
  t.equal(table.deliver({ type: 'echo_reply', xid: 4 }), 'late', 'a reply after its deadline is late, not unsolicited');
  t.equal(table.deliver({ type: 'echo_reply', xid: 77 }), 'unknown');

  const a = table.add({ type: 'x', xid: 5 }, { timeoutMs: 100 });
  t.throws(() => table.add({ type: 'x', xid: 5 }, { timeoutMs: 100 }), RangeError, 'one request per xid');
  table.failAll((r) => new Error(`closed while ${r.type} waited`));
  await t.rejects(a, /closed while x waited/);
  clock.advance(1000);
  t.equal(timeouts.length, 1, 'no timer left behind');
});

t.test('cookie space and priority bands', async (t) => {
  const bands = new BandTable();
  t.equal(bands.priority('hold', 0), 30000);
  t.equal(bands.bandOf(30005)?.name, 'hold');
  t.throws(() => bands.priority('hold', 10000), { code: 'OFC_BAND' });
  t.throws(() => bands.get('nope'), { code: 'OFC_BAND' });
  t.throws(() => new BandTable([{ name: 'a', id: 1, base: 0, size: 10 }, { name: 'b', id: 2, base: 5, size: 10 }]), /overlaps/);
  t.throws(() => new BandTable([{ name: 'a', id: 1, base: 0, size: 10 }, { name: 'b', id: 1, base: 50, size: 10 }]), /used twice/);

  const hold = bands.get('hold');
  const c1 = flowCookie(hold, Buffer.from('flow one'));
  const c3 = flowCookie(hold, Buffer.from('flow two'));
  t.equal(c1, flowCookie(hold, Buffer.from('flow one')), 'same content, same cookie');
  t.not(c1, c3, 'other content, other cookie');
  t.ok(isCoatCookie(c1));
  t.equal(c1 & COAT_COOKIE_MASK, COAT_COOKIE);
  t.equal(cookieBand(c1), hold.id);
  t.notOk(isCoatCookie(0n));
  t.notOk(isCoatCookie(0xc0a6n << 48n));
});

t.test('reconcile plan: diff by cookie, duplicates first, stale after, foreign cookies ignored', async (t) => {
  const { planReconcile } = await import('../../src/controller/reconcile.js');
  const { coatFlowMods } = await import('../../src/controller/flows.js');
  const { match, applyActions, output } = await import('../../src/openflow/index.js');
  const [a, b, c] = coatFlowMods([1, 2, 3].map((p) => ({ band: 'forward', match: match({ in_port: p }), instructions: [applyActions(output(9))] })));
  const stale = COAT_COOKIE | 0x1234n;
  const plan = planReconcile([a!, b!, c!], [{ cookie: a!.cookie }, { cookie: b!.cookie }, { cookie: b!.cookie }, { cookie: stale }, { cookie: 0n }, { cookie: 0x1234n }]);
  t.same(plan.deleteFirst, [b!.cookie], 'a cookie present twice is deleted before it is added back');
  t.same(plan.add.map((f) => f.cookie), [b!.cookie, c!.cookie]);
  t.same(plan.deleteAfter, [stale], 'only coat-space cookies are deleted');
  t.equal(plan.kept, 1);
  t.same(planReconcile([], [{ cookie: 0n }]), { deleteFirst: [], add: [], deleteAfter: [], kept: 0 }, 'never touches flows outside the cookie space');
  t.throws(() => planReconcile([{ ...a!, cookie: 5n }], []), RangeError);
  const twice = coatFlowMods([{ band: 'hold', match: [], instructions: [] }, { band: 'hold', match: [], instructions: [] }]);
  t.equal(twice.length, 1, 'identical specs collapse to one flow');
  t.equal(a!.priority, 1000);
  t.equal(a!.cookie >> 40n, (COAT_COOKIE >> 40n) | 3n, 'band id of "forward" in the cookie');
});

t.test('coat flow-mods: cookie from the encoding, cached bytes identical to the codec', async (t) => {
  const { coatFlowMods } = await import('../../src/controller/flows.js');
  const { encodeWithXid } = await import('../../src/controller/wire-cache.js');
  const { match, applyActions, output, encodeMessage, decodeMessage, bundleAdd, flowMod } = await import('../../src/openflow/index.js');
  const spec = { band: 'redirect', rank: 7, table: 3, match: match({ eth_type: 0x0800, ipv4_dst: '10.0.0.9' }), instructions: [applyActions(output(4))], idleTimeout: 5 };
  const [fm] = coatFlowMods([spec]);
  const [again] = coatFlowMods([{ ...spec, match: match({ ipv4_dst: '10.0.0.9', eth_type: 0x0800 }) }]);
  t.equal(fm!.cookie, again!.cookie, 'the same flow written differently has the same cookie');
  t.not(coatFlowMods([{ ...spec, idleTimeout: 6 }])[0]!.cookie, fm!.cookie, 'any field of the flow changes it');
  t.ok(Object.isFrozen(fm), 'frozen: its cached bytes cannot go stale');
  t.equal(fm!.priority, 20007);
  const fast = encodeWithXid(fm!, 0x01020304);
  t.same(fast, encodeMessage({ ...fm!, xid: 0x01020304 }), 'cached flow-mod bytes equal the codec\'s');
  const ba = bundleAdd(9, fm!, 3);
  const fastBa = encodeWithXid(ba, 77);
  t.same(fastBa, encodeMessage({ ...ba, xid: 77, message: { ...fm!, xid: 77 } }), 'cached bundle-add bytes equal the codec\'s');
  t.match(decodeMessage(fastBa), { type: 'bundle_add', xid: 77, bundleId: 9, flags: 3, message: { type: 'flow_mod', xid: 77, cookie: fm!.cookie } });
  const plain = flowMod({ priority: 1 });
  t.same(encodeWithXid(plain, 5), encodeMessage({ ...plain, xid: 5 }), 'uncached messages go through the codec');
});
