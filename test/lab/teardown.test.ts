/**
 * Teardown without a full lab: what `lab down` must clean when `lab up` died early (no state file,
 * lock held) or its processes were killed, by the sweep of the tag, also what a tagged run left
 * outside its namespaces; and the one-lab lock.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDown, labDownTag } from '../../lab/down.js';
import { labNames } from '../../lab/names.js';
import { OvsInstance } from '../../lab/ovs-daemons.js';
import { acquireLock, activeTag, releaseLock } from '../../lab/state.js';
import { newTag } from '../../lab/tag.js';
import { exec } from '../../src/exec.js';
import { createNetns, deleteNetns, listNetns, openNetns } from '../../src/netns/index.js';
import { defaultTopology, parseTopology } from '../../src/vxlan/topology.js';
import { coat, leftovers } from './helpers.js';

t.test('the lock admits one lab at a time', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'coat-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await acquireLock(dir, 'caaaaa');
  await t.rejects(acquireLock(dir, 'cbbbbb'), { code: 'LAB_ALREADY_UP', message: /tag caaaaa/ });
  t.equal(await activeTag(dir), 'caaaaa');
  await releaseLock(dir, 'cbbbbb'); // not the holder: no effect
  t.equal(await activeTag(dir), 'caaaaa');
  await releaseLock(dir, 'caaaaa');
  await acquireLock(dir, 'cbbbbb');
  t.equal(await activeTag(dir), 'cbbbbb');
});

t.test('lab names fit interface names and never collide, for the largest allowed names', async (t) => {
  const hosts = Array.from({ length: 10 }, (_, i) => `  - { name: host-name-max-${i}x, underlay: { ip: 192.168.100.${10 + i} } }`).join('\n');
  const topo = parseTopology(`overlay: { subnet: 10.0.0.0/24, vni: 1 }\nhosts:\n${hosts}\nendpoints:\n  - { name: endpoint-name-mx, host: host-name-max-0x, ip: 10.0.0.1, mac: "02:00:00:00:00:01" }\n`);
  const n = labNames('c3k9x1', topo, '/tmp/x');
  const ifs = [n.fabricBridge, n.mgmtBridge, ...n.hosts.flatMap((h) => [h.fabricIf, h.uplinkIf, h.fabricIfb, h.ctlIf, h.mgmtIf]), ...n.endpoints.map((e) => e.hostIf)];
  for (const i of ifs) t.ok(Buffer.byteLength(i) <= 15, `${i} <= 15 bytes`);
  t.equal(new Set(ifs).size, ifs.length, 'interface names distinct');
  const ns = [n.fabricNetns, n.ctlNetns, ...n.hosts.map((h) => h.netns), ...n.endpoints.map((e) => e.netns)];
  t.equal(new Set(ns).size, ns.length, 'namespace names distinct');
  t.equal(labNames('c3k9x1', defaultTopology(), '/tmp/x').ctlIp, '172.31.0.1');
});

t.test('lab down sweeps a half-built lab by its tag: processes, namespaces, links, run dir, lock', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'coat-sweep-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const tag = newTag();
  t.teardown(async () => {
    for (const n of (await listNetns()).filter((x) => x.startsWith(tag))) await deleteNetns(n);
  });
  // what a `lab up` killed after its first steps leaves: the lock, a run dir, namespaces with a
  // process in one, a veth in our own namespace, and no state file
  await acquireLock(dir, tag);
  await mkdir(join(dir, tag, 'ovs-edge-a'), { recursive: true });
  await writeFile(join(dir, tag, 'ovs-edge-a', 'conf.db'), '');
  await createNetns(`${tag}-fabric`);
  await createNetns(`${tag}-h-edge-a`);
  const sleeper = spawn('ip', ['netns', 'exec', `${tag}-h-edge-a`, 'sleep', '300'], { stdio: 'ignore', detached: true });
  sleeper.unref();
  const root = await openNetns();
  t.teardown(() => root.close());
  await root.createVeth({ name: `${tag}-x0`, peer: `${tag}-x1` });
  await new Promise((r) => setTimeout(r, 200));
  t.not((await leftovers(tag, [join(dir, tag)])).length, 0, 'there is something to clean');

  const [report] = await labDown(dir);
  t.equal(report!.tag, tag);
  t.ok(report!.killed.includes(sleeper.pid!), 'the process in the lab namespace was killed by pid');
  t.same(report!.namespaces.sort(), [`${tag}-fabric`, `${tag}-h-edge-a`]);
  t.ok(report!.links.includes(`${tag}-x0`) || report!.links.includes(`${tag}-x1`));
  t.same(await leftovers(tag, [join(dir, tag), join(dir, 'active')]), []);
  t.equal(await activeTag(dir), undefined);
});

t.test('the sweep by tag removes what a tagged run left outside its namespaces: netdev taps in this namespace, OVS run dirs in the temp dir', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'coat-sweep-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const tag = newTag();
  // the persistent taps an ovs-vswitchd with the netdev datapath leaves for its bridges when it ran
  // in this namespace (what earlier runs left: `TAG-int`, `TAG-phy`)
  for (const n of [`${tag}-int`, `${tag}-phy`]) {
    await exec('ip', ['tuntap', 'add', 'mode', 'tap', 'name', n], { timeoutMs: 5000 });
    t.teardown(() => exec('ip', ['link', 'del', n], { timeoutMs: 5000, allowFailure: true }));
  }
  // a tagged OVS run directory under the temp dir with its ovsdb-server still running
  const ovs = new OvsInstance({ dir: join(tmpdir(), `coat-${tag}-ovs-left`), vswitchd: false });
  t.teardown(() => ovs.destroy());
  await ovs.start();
  const dbPid = (await ovs.pid('ovsdb-server'))!;
  // and a pidfile there naming a process that is not ours: its command line does not name the dir
  const bystander = spawn('sleep', ['300'], { stdio: 'ignore' });
  t.teardown(() => bystander.kill('SIGKILL'));
  await writeFile(join(ovs.dir, 'other.pid'), `${bystander.pid}\n`);
  t.same((await leftovers(tag, [ovs.dir])).length, 4, 'two taps, a process and a directory to clean');

  const out = await coat(['lab', 'down', '--tag', tag, '--state-dir', dir, '--json']);
  t.equal(out.code, 0, out.stderr);
  const [report] = JSON.parse(out.stdout) as { killed: number[]; links: string[]; removed: string[]; errors: string[] }[];
  t.same(report!.links.sort(), [`${tag}-int`, `${tag}-phy`], 'the taps were deleted');
  t.same(report!.killed, [dbPid], 'the ovsdb-server of the tagged run dir was killed by its pidfile');
  t.ok(report!.removed.includes(ovs.dir), 'its run dir was removed');
  t.same(report!.errors, []);
  t.equal(bystander.exitCode, null, 'a pid whose command line does not name the dir was left alone');
  t.same(await leftovers(tag, [ovs.dir]), [], 'nothing with the tag is left');
});

t.test('a sweep needs a well-formed tag: a prefix like "c" would match other runs', async (t) => {
  for (const bad of ['', 'c', 'c3k9x', 'c3k9x1-', 'C3K9X1', '../c3k9x1']) {
    await t.rejects(labDownTag('/nonexistent-coat-dir', bad), { code: 'LAB_BAD_TAG' }, JSON.stringify(bad));
  }
  const r = await coat(['lab', 'down', '--tag', 'c', '--state-dir', '/nonexistent-coat-dir']);
  t.equal(r.code, 64);
  t.match(r.stderr, /--tag: "c" is not a lab tag/);
});
