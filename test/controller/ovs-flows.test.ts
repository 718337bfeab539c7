/**
 * Flow programming against a real ovs-vswitchd: ONF EXT-230 bundles seen all-or-nothing by a
 * concurrent dump-flows loop, a bundle with one invalid flow-mod that changes nothing, a prepared
 * bundle that changes nothing until its commit, resync
 * after ovs-vswitchd is killed and restarted, and coexistence with ovs-testcontroller.
 */
import t, { type Test } from 'tap';

process.env.COAT_LOG_LEVEL ??= 'silent';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { writeFile, readFile } from 'node:fs/promises';
import { newTag } from '../../lab/tag.js';
import { OvsInstance } from '../../lab/ovs-daemons.js';
import { Controller, coatFlowMods, BundleError, COAT_COOKIE, type FlowSpec } from '../../src/controller/index.js';
import { applyActions, output, match, flowMod } from '../../src/openflow/index.js';
import { addBridge, dumpFlows, startSwitchOvs } from './helpers.js';

const DPID = 0x00000000c0a70002n;

/** 1000 flows on distinct IPv4 destinations, all sending to `port`. */
function flowSet(port: number, n = 1000): FlowSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    band: 'forward',
    rank: 10,
    match: match({ eth_type: 0x0800, ipv4_dst: `10.1.${i >> 8}.${i & 255}` }),
    instructions: [applyActions(output(port))],
  }));
}

async function setup(t: Test, opts: { controllers?: (ourSock: string) => string[] } = {}) {
  const tag = newTag();
  const ovs = await startSwitchOvs(t, tag);
  const br = await addBridge(ovs, { dpid: DPID.toString(16).padStart(16, '0') });
  const ctl = new Controller({ echoIntervalMs: 500, deadAfterMs: 3000 });
  t.teardown(() => ctl.close());
  const sock = join(ovs.dir, 'coat-ctl.sock');
  await ctl.listen(`punix:${sock}`);
  const up = ctl.waitForSwitch(DPID, 10_000);
  await ovs.vsctl(['set-controller', br, ...(opts.controllers?.(sock) ?? [`unix:${sock}`])]);
  const sw = await up;
  return { tag, ovs, br, ctl, sw, sock };
}


/** Counts, in one dump, the flows of our 1000 that output to port 1 and to port 2. */
function countOutputs(dump: string): { p1: number; p2: number } {
  let p1 = 0;
  let p2 = 0;
  for (const line of dump.split('\n')) {
    if (!line.includes('nw_dst=10.1.')) continue;
    if (line.endsWith('actions=output:1')) p1++;
    else if (line.endsWith('actions=output:2')) p2++;
  }
  return { p1, p2 };
}

t.test('a bundle replacing 1000 flows is all-or-nothing; a bundle with one bad flow-mod changes nothing', async (t) => {
  const { ovs, br, ctl, sw } = await setup(t);
  const setA = coatFlowMods(flowSet(1));
  const setB = coatFlowMods(flowSet(2));
  const first = await ctl.setDesiredFlows(DPID, setA);
  t.match(first, { added: 1000, mode: 'bundle' });
  t.same(countOutputs((await dumpFlows(ovs, br)).join('\n')), { p1: 1000, p2: 0 });

  // A shell loop dumping flows as fast as it can while the bundle is applied, each dump framed.
  const loop = spawn('sh', ['-c', `while :; do ovs-ofctl -O OpenFlow13 dump-flows --no-stats ${ovs.bridgeMgmt(br)}; echo '=====' ; done`], {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, OVS_RUNDIR: ovs.dir },
  });
  t.teardown(() => loop.kill('SIGKILL'));
  let out = '';
  loop.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => setTimeout(r, 300));
  const r = await ctl.setDesiredFlows(DPID, setB);
  t.match(r, { added: 1000, deleted: 1000, kept: 0, mode: 'bundle' });
  await new Promise((r) => setTimeout(r, 300));
  loop.kill('SIGKILL');
  const dumps = out.split('=====\n').slice(0, -1).map(countOutputs);
  const mixed = dumps.filter((d) => !((d.p1 === 1000 && d.p2 === 0) || (d.p1 === 0 && d.p2 === 1000)));
  t.ok(dumps.length >= 5, `${dumps.length} concurrent dumps`);
  t.same(mixed, [], 'no dump saw a half-applied bundle');
  t.ok(dumps.some((d) => d.p1 === 1000) && dumps.some((d) => d.p2 === 1000), 'dumps saw the state before and after');
  t.same(countOutputs((await dumpFlows(ovs, br)).join('\n')), { p1: 0, p2: 1000 });
  const coatFlows = await sw.dumpCoatFlows();
  t.equal(coatFlows.length, 1000, 'exactly the desired flows remain (old cookies gone)');
  t.ok(coatFlows.every((f) => setB.some((b) => b.cookie === f.cookie)));

  // 999 good changes and one flow-mod whose match lacks its prerequisite (tcp_dst without ip_proto).
  const before = (await dumpFlows(ovs, br)).sort();
  const bad = flowMod({ priority: 7, cookie: COAT_COOKIE | 7n, match: match({ tcp_dst: 80 }), instructions: [applyActions(output(1))] });
  const changes = [...setA.slice(0, 999), bad];
  const err = await sw.bundle(changes).catch((e: unknown) => e);
  t.ok(err instanceof BundleError, 'BundleError');
  t.match(err, { code: 'OFC_BUNDLE', phase: 'add' });
  const failed = (err as BundleError).errors;
  t.equal(failed.length, 1, 'one flow-mod failed');
  t.equal(failed[0]!.request?.type, 'bundle_add');
  t.match(failed[0]!.errorName, /^bad_match\//);
  t.same((await dumpFlows(ovs, br)).sort(), before, 'the table is unchanged');
  t.equal(sw.bundlesSupported, true);
});

t.test('a prepared bundle changes nothing until its commit; a discarded one never does', async (t) => {
  const { ovs, br, sw } = await setup(t);
  const mods = coatFlowMods(flowSet(1, 20));
  let committedAt: number | undefined;
  const prepared = await sw.prepareBundle(mods, { confirm: true, onCommit: (at) => (committedAt = at) });
  t.equal(prepared.mode, 'bundle');
  t.same(countOutputs((await dumpFlows(ovs, br)).join('\n')), { p1: 0, p2: 0 }, 'prepared: the table is unchanged');
  t.equal(committedAt, undefined, 'onCommit waits for the commit');
  t.equal(await prepared.commit(), 'bundle');
  t.type(committedAt, 'number');
  t.same(countOutputs((await dumpFlows(ovs, br)).join('\n')), { p1: 20, p2: 0 }, 'committed: every flow is in');
  await t.rejects(prepared.commit(), { code: 'OFC_BUNDLE' }, 'a bundle commits once');

  const other = await sw.prepareBundle(coatFlowMods(flowSet(2, 20)));
  await other.discard();
  await other.discard();
  await t.rejects(other.commit(), { code: 'OFC_BUNDLE' }, 'a discarded bundle cannot be committed');
  t.same(countOutputs((await dumpFlows(ovs, br)).join('\n')), { p1: 20, p2: 0 }, 'discarded: the table is unchanged');

  // A bad add is refused at prepare, before anything could be committed.
  const bad = flowMod({ priority: 7, cookie: COAT_COOKIE | 7n, match: match({ tcp_dst: 80 }), instructions: [applyActions(output(1))] });
  await t.rejects(sw.prepareBundle([...coatFlowMods(flowSet(2, 5)), bad]), { code: 'OFC_BUNDLE', phase: 'add' });
  t.same(countOutputs((await dumpFlows(ovs, br)).join('\n')), { p1: 20, p2: 0 });
});

t.test('after ovs-vswitchd is killed and restarted, coat resyncs its flows', async (t) => {
  const { ovs, br, ctl } = await setup(t);
  const desired = coatFlowMods(flowSet(1, 50));
  await ctl.setDesiredFlows(DPID, desired);
  t.equal((await dumpFlows(ovs, br)).length, 50);
  const down = new Promise((resolve) => ctl.once('switch_down', (_sw, reason) => resolve(reason)));
  await ovs.stopDaemon('ovs-vswitchd', 'SIGKILL');
  t.match(await down, { code: 'OFC_EOF' }, 'switch_down on the lost connection');
  const up = new Promise<{ reconnect: boolean; resync?: { added: number } }>((resolve) => ctl.once('switch_up', (_sw, info) => resolve(info)));
  await ovs.startVswitchd();
  const info = await up;
  t.equal(info.reconnect, true, 'recognised by dpid');
  t.match(info.resync, { added: 50, deleted: 0, mode: 'bundle' }, 'resynced before switch_up');
  const flows = await dumpFlows(ovs, br);
  t.equal(flows.length, 50, 'exactly coat\'s flows');
  t.ok(flows.every((f) => f.includes('cookie=0xc0a7')));
});

t.test('recorded desired flows: nothing is sent now, and a reconnect reconciles to them', async (t) => {
  const { ovs, br, ctl } = await setup(t);
  await ctl.setDesiredFlows(DPID, coatFlowMods(flowSet(1, 50)));
  ctl.recordDesiredFlows(DPID, coatFlowMods(flowSet(2, 30)));
  await new Promise((r) => setTimeout(r, 200));
  t.same(countOutputs((await dumpFlows(ovs, br)).join('\n')), { p1: 50, p2: 0 }, 'the switch still holds what it had');
  const up = new Promise<{ resync?: { added: number } }>((resolve) => ctl.once('switch_up', (_sw, info) => resolve(info)));
  await ovs.stopDaemon('ovs-vswitchd', 'SIGKILL');
  await ovs.startVswitchd();
  t.match((await up).resync, { added: 30 });
  t.same(countOutputs((await dumpFlows(ovs, br)).join('\n')), { p1: 0, p2: 30 }, 'after the reconnect: the recorded set');
});

t.test('coexistence: ovs-testcontroller keeps its flows while coat reconciles its own', async (t) => {
  const tag = newTag();
  const ovs0 = await startSwitchOvs(t, tag);
  const tcSock = join(ovs0.dir, 'testcontroller.sock');
  const tcFlows = join(ovs0.dir, 'testcontroller.flows');
  // Flows the other controller pushes on connect: one with cookie 0, one with its own cookie.
  await writeFile(tcFlows, 'priority=10,in_port=2,actions=output:1\ncookie=0x1234,priority=20,dl_type=0x88b5,actions=drop\n');
  const pidfile = join(ovs0.dir, 'testcontroller.pid');
  await import('../../src/exec.js').then(({ exec }) =>
    exec('ovs-testcontroller', ['-O', 'OpenFlow13', '--with-flows', tcFlows, `--pidfile=${pidfile}`, `--unixctl=${join(ovs0.dir, 'tc.ctl')}`,
      `--log-file=${join(ovs0.dir, 'testcontroller.log')}`, '-vconsole:off', '--detach', '--no-chdir', `punix:${tcSock}`], { timeoutMs: 10_000 }),
  );
  t.teardown(async () => {
    const pid = Number((await readFile(pidfile, 'utf8').catch(() => '')).trim());
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
  const br = await addBridge(ovs0, { dpid: DPID.toString(16).padStart(16, '0') });
  await ovs0.vsctl(['set-controller', br, `unix:${tcSock}`]);
  // Its own flows plus the table-miss flow it adds (priority=0 actions=CONTROLLER:128).
  await OvsInstance.waitFor('the other controller\'s flows', async () => (await dumpFlows(ovs0, br)).length === 3, 10_000);

  const ctl = new Controller();
  t.teardown(() => ctl.close());
  const sock = join(ovs0.dir, 'coat-ctl.sock');
  await ctl.listen(`punix:${sock}`);
  const upP = ctl.waitForSwitch(DPID, 10_000);
  await ovs0.vsctl(['set-controller', br, `unix:${tcSock}`, `unix:${sock}`]);
  const sw = await upP;
  const theirs = (await dumpFlows(ovs0, br)).filter((f) => !f.includes('cookie=0xc0a7')).sort();
  t.equal(theirs.length, 3, theirs.join('\n'));
  t.ok(theirs.some((f) => f.startsWith('cookie=0x1234, priority=20,dl_type=0x88b5 actions=drop')), theirs.join('\n'));
  t.ok(theirs.includes('priority=10,in_port=2 actions=output:1'), theirs.join('\n'));

  const desired = coatFlowMods(flowSet(1, 20));
  t.match(await ctl.setDesiredFlows(DPID, desired), { added: 20 });
  // Disturb coat's space: one stale coat flow added, one desired flow removed behind coat's back.
  await ovs0.ofctl(['add-flow', ovs0.bridgeMgmt(br), `cookie=${COAT_COOKIE | 0xdeadn},priority=1500,dl_type=0x0806,actions=drop`]);
  await ovs0.ofctl(['del-flows', ovs0.bridgeMgmt(br), `cookie=0x${desired[3]!.cookie.toString(16)}/-1`]);
  const r = await sw.reconcile(desired);
  t.match(r, { added: 1, deleted: 1, kept: 19 });
  const after = await dumpFlows(ovs0, br);
  t.same(after.filter((f) => !f.includes('cookie=0xc0a7')).sort(), theirs, 'the other controller\'s flows are untouched');
  t.equal(after.filter((f) => f.includes('cookie=0xc0a7')).length, 20, 'coat owns exactly its desired flows');
  t.notOk(after.some((f) => f.includes('0xdead')), 'the stale coat flow is gone');
  // Removing every coat flow still leaves theirs.
  t.match(await ctl.setDesiredFlows(DPID, []), { deleted: 20 });
  t.same((await dumpFlows(ovs0, br)).sort(), theirs);
});
