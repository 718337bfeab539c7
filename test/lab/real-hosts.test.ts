/**
 * Real hosts, without the lab: two "hosts" simulated as namespaces, each running Open vSwitch the
 * way a distribution starts it (ovsdb-server taking its remotes and SSL settings from the
 * database, ovs-vswitchd), set up by this test with the commands of docs/real-hosts.md: host a
 * exposes OVSDB with `ovs-vsctl set-manager ptcp:6640:IP`, host b over TLS with `set-ssl` and
 * `set-manager pssl:6640:IP`; both reach the controller over OpenFlow on TLS (`ssl:` target, the
 * controller listening on `pssl:`). Nothing here comes from lab/up.ts. Then `coat controller --topology
 * FILE` (a child process in a `ctl` namespace, as on a controller machine) configures both hosts'
 * OVS over OVSDB (bridges, uplink, VXLAN port, endpoint ports, controller target) and programs
 * their flows; the endpoints reach each other over the overlay; `coat agent` runs on each host
 * against the controller machine's nats-server.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labDownTag } from '../../lab/down.js';
import { NatsServer } from '../../lab/nats-server.js';
import { isAlive } from '../../lab/process.js';
import { newTag } from '../../lab/tag.js';
import { isCoatCookie } from '../../src/controller/cookies.js';
import { exec } from '../../src/exec.js';
import { createNetns } from '../../src/netns/index.js';
import { coat, inNs, leftovers } from './helpers.js';

const entry = fileURLToPath(new URL('../../lab/coat-entry.ts', import.meta.url));
const SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';
const CTL_IP = '10.99.0.1';

/** Open vSwitch started as Debian's ovs-ctl starts it: remotes and SSL keys read from the database. */
async function startHostOvs(netns: string, dir: string): Promise<{ vsctl: (args: string[]) => Promise<string>; ofctl: (args: string[]) => Promise<string>; pids: () => Promise<number[]> }> {
  await mkdir(dir, { recursive: true });
  const env = { OVS_RUNDIR: dir, OVS_DBDIR: dir, OVS_LOGDIR: dir, OVS_SYSCONFDIR: dir };
  const sock = join(dir, 'db.sock');
  const o = { netns, env, timeoutMs: 10_000 };
  await exec('ovsdb-tool', ['create', join(dir, 'conf.db'), SCHEMA], { timeoutMs: 10_000 });
  await exec('ovsdb-server', [
    join(dir, 'conf.db'), `--remote=punix:${sock}`, '--remote=db:Open_vSwitch,Open_vSwitch,manager_options',
    '--private-key=db:Open_vSwitch,SSL,private_key', '--certificate=db:Open_vSwitch,SSL,certificate', '--ca-cert=db:Open_vSwitch,SSL,ca_cert',
    `--pidfile=${join(dir, 'ovsdb-server.pid')}`, `--log-file=${join(dir, 'ovsdb-server.log')}`, `--unixctl=${join(dir, 'ovsdb-server.ctl')}`,
    '-vconsole:off', '--detach', '--no-chdir',
  ], o);
  const vsctl = async (args: string[]) => (await exec('ovs-vsctl', [`--db=unix:${sock}`, '--timeout=10', ...args], o)).stdout;
  await vsctl(['--no-wait', 'init']);
  await exec('ovs-vswitchd', [
    `unix:${sock}`, `--pidfile=${join(dir, 'ovs-vswitchd.pid')}`, `--log-file=${join(dir, 'ovs-vswitchd.log')}`, `--unixctl=${join(dir, 'ovs-vswitchd.ctl')}`,
    '-vconsole:off', '--detach', '--no-chdir',
  ], o);
  return {
    vsctl,
    ofctl: async (args) => (await exec('ovs-ofctl', ['-O', 'OpenFlow13', ...args], o)).stdout,
    pids: async () => {
      const out: number[] = [];
      for (const d of ['ovs-vswitchd', 'ovsdb-server']) {
        const p = Number((await readFile(join(dir, `${d}.pid`), 'utf8').catch(() => '')).trim());
        if (p > 0) out.push(p);
      }
      return out;
    },
  };
}

/** A throwaway CA and two certificates it signed (controller, switch), EC P-256, valid a day. */
async function makePki(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const ossl = (args: string[]) => exec('openssl', args, { timeoutMs: 20_000 });
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await ossl(['req', '-x509', ...key, '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-days', '1', '-subj', '/CN=coat-test-ca']);
  for (const name of ['ctl', 'sw']) {
    await ossl(['req', ...key, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.csr`), '-subj', `/CN=${name}`]);
    await ossl(['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', join(dir, `${name}.crt`), '-days', '1']);
  }
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, detail: () => Promise<string> = async () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}. ${await detail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Spawns a long-running `coat ...` in `netns`, output to `log`; returns its pid (ip netns exec execs node). */
function spawnCoat(netns: string, args: string[], log: string, out?: string): Promise<number> {
  return (async () => {
    const { openSync, closeSync } = await import('node:fs');
    const lf = openSync(log, 'a');
    const of = out ? openSync(out, 'w') : lf;
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '--import', 'tsx', entry, ...args], { stdio: ['ignore', of, lf], detached: true, env: { ...process.env, COAT_LOG_LEVEL: 'info' } });
    closeSync(lf);
    if (out) closeSync(of);
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start coat ${args[0]}`);
    return child.pid;
  })();
}

t.test('coat controller --topology configures two real hosts\' OVS over OVSDB (tcp: and ssl:) and OpenFlow over TLS, and their endpoints talk over the overlay', async (t) => {
  const tag = newTag();
  const dir = await mkdtemp(join(tmpdir(), `coat-${tag}-realhosts-`));
  const ctlNs = `${tag}-ctl`;
  const hosts = [
    { name: 'edge-a', ns: `${tag}-h-a`, mgmtIp: '10.99.0.10', underlayIp: '192.168.200.1', uplink: `${tag}-u0`, ctlIf: `${tag}-c0`, mgmtIf: `${tag}-m0` },
    { name: 'edge-b', ns: `${tag}-h-b`, mgmtIp: '10.99.0.11', underlayIp: '192.168.200.2', uplink: `${tag}-u1`, ctlIf: `${tag}-c1`, mgmtIf: `${tag}-m1` },
  ];
  const endpoints = [
    { name: 'service', host: 0, ns: `${tag}-e-service`, ip: '10.10.0.10', mac: '02:c0:a7:00:00:10', hostIf: `${tag}-e0` },
    { name: 'client', host: 1, ns: `${tag}-e-client`, ip: '10.10.0.20', mac: '02:c0:a7:00:00:20', hostIf: `${tag}-e1` },
  ];
  const pids: number[] = [];
  const ovsPids: Array<() => Promise<number[]>> = [];
  t.teardown(async () => {
    // our own processes by pid first (controller, agents, OVS), then the sweep by tag as a net
    for (const p of pids) if (isAlive(p)) process.kill(p, 'SIGTERM');
    for (const f of ovsPids) for (const p of await f()) if (isAlive(p)) process.kill(p, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    await labDownTag(dir, tag).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  // --- the machines: a controller machine and two hosts, a management network, an underlay link
  const ip = (args: string[], netns?: string) => exec('ip', args, { timeoutMs: 5000, ...(netns ? { netns } : {}) });
  for (const ns of [ctlNs, ...hosts.map((h) => h.ns), ...endpoints.map((e) => e.ns)]) await createNetns(ns);
  await ip(['link', 'add', `${tag}-mg`, 'type', 'bridge'], ctlNs);
  await ip(['addr', 'add', `${CTL_IP}/24`, 'dev', `${tag}-mg`], ctlNs);
  await ip(['link', 'set', `${tag}-mg`, 'up'], ctlNs);
  for (const h of hosts) {
    await ip(['link', 'add', h.ctlIf, 'type', 'veth', 'peer', 'name', h.mgmtIf, 'netns', h.ns], ctlNs);
    await ip(['link', 'set', h.ctlIf, 'master', `${tag}-mg`, 'up'], ctlNs);
    await ip(['addr', 'add', `${h.mgmtIp}/24`, 'dev', h.mgmtIf], h.ns);
    await ip(['link', 'set', h.mgmtIf, 'up'], h.ns);
  }
  // the underlay NIC of each host, its address on it as on any host before coat
  await ip(['link', 'add', hosts[0]!.uplink, 'type', 'veth', 'peer', 'name', hosts[1]!.uplink, 'netns', hosts[1]!.ns], hosts[0]!.ns);
  for (const h of hosts) {
    await ip(['addr', 'add', `${h.underlayIp}/24`, 'dev', h.uplink], h.ns);
    await ip(['link', 'set', h.uplink, 'up'], h.ns);
    await exec('ethtool', ['-K', h.uplink, 'tx', 'off'], { netns: h.ns, timeoutMs: 5000 });
  }
  // step 4 of the guide: an endpoint namespace per endpoint, its veth's host end named PREFIX-eK
  for (const e of endpoints) {
    const h = hosts[e.host]!;
    await ip(['link', 'add', e.hostIf, 'mtu', '1400', 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', '1400', 'address', e.mac, 'netns', e.ns], h.ns);
    await ip(['link', 'set', e.hostIf, 'up'], h.ns);
    await ip(['addr', 'add', `${e.ip}/24`, 'dev', 'eth0'], e.ns);
    await ip(['link', 'set', 'eth0', 'up'], e.ns);
    await ip(['link', 'set', 'lo', 'up'], e.ns);
    await exec('ethtool', ['-K', 'eth0', 'tx', 'off'], { netns: e.ns, timeoutMs: 5000 });
    await exec('ethtool', ['-K', e.hostIf, 'tx', 'off'], { netns: h.ns, timeoutMs: 5000 });
  }

  // --- step 1: Open vSwitch on each host, OVSDB reachable by the controller (a: TCP, b: TLS)
  const pki = join(dir, 'pki');
  await makePki(pki);
  const ovs = [];
  for (const [i, h] of hosts.entries()) {
    const o = await startHostOvs(h.ns, join(dir, `ovs-${h.name}`));
    ovsPids.push(o.pids);
    ovs.push(o);
    // the switch's key, certificate and CA: for OpenFlow over TLS on both, for OVSDB over TLS on b
    await o.vsctl(['set-ssl', join(pki, 'sw.key'), join(pki, 'sw.crt'), join(pki, 'ca.crt')]);
    await o.vsctl(['set-manager', `${i === 0 ? 'ptcp' : 'pssl'}:6640:${h.mgmtIp}`]);
  }
  const [ovsA, ovsB] = ovs as [Awaited<ReturnType<typeof startHostOvs>>, Awaited<ReturnType<typeof startHostOvs>>];

  // --- step 2: the topology file, without any lab
  const topoFile = join(dir, 'hosts.yaml');
  await writeFile(
    topoFile,
    `name: two-real-hosts
datapath: netdev
tunnel: ovs
overlay: { subnet: 10.10.0.0/24, vni: 5001, mtu: 1400 }
underlay: { subnet: 192.168.200.0/24 }
controller: { port: 6653, openflow: "ssl:${CTL_IP}:6653", nats: "nats://${CTL_IP}:4222" }
hosts:
  - { name: edge-a, underlay: { ip: ${hosts[0]!.underlayIp} }, ovsdb: "tcp:${hosts[0]!.mgmtIp}:6640", uplink: ${hosts[0]!.uplink} }
  - { name: edge-b, underlay: { ip: ${hosts[1]!.underlayIp} }, ovsdb: "ssl:${hosts[1]!.mgmtIp}:6640", uplink: ${hosts[1]!.uplink} }
endpoints:
  - { name: service, host: edge-a, ip: 10.10.0.10, mac: "02:c0:a7:00:00:10", role: service }
  - { name: client,  host: edge-b, ip: 10.10.0.20, mac: "02:c0:a7:00:00:20", role: client }
`,
  );

  // --- step 3: NATS on the controller machine, `coat agent` on every host
  const token = randomBytes(16).toString('hex');
  const nats = new NatsServer({ dir: join(dir, 'nats'), netns: ctlNs, host: CTL_IP, port: 4222, token });
  t.teardown(() => nats.stop());
  await nats.start();
  const secretFile = join(dir, 'agent.secret');
  await writeFile(secretFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  const agentOut = hosts.map((h) => join(dir, `agent-${h.name}.json`));
  for (const [i, h] of hosts.entries()) {
    pids.push(
      await spawnCoat(h.ns, ['agent', '--host', h.name, '--nats', `nats://${CTL_IP}:4222`, '--token', token, '--secret-file', secretFile, '--data-dir', join(dir, `agent-${h.name}`), '--listen', `${h.underlayIp}:0`, '--json'], join(dir, `agent-${h.name}.log`), agentOut[i]),
    );
  }

  // --- step 5: the controller
  const statusFile = join(dir, 'controller-status.json');
  const ctlLog = join(dir, 'controller.log');
  const ctlPid = await spawnCoat(ctlNs, ['controller', '--topology', topoFile, '--prefix', tag, '--listen', 'pssl:6653', '--status', statusFile, '--tls-key', join(pki, 'ctl.key'), '--tls-cert', join(pki, 'ctl.crt'), '--tls-ca', join(pki, 'ca.crt'), '--nats', `nats://${CTL_IP}:4222`, '--token', token, '--secret-file', secretFile], ctlLog);
  pids.push(ctlPid);
  const status = await waitFor(
    'the controller to configure both hosts and program 4 bridges',
    async () => {
      if (!isAlive(ctlPid)) throw new Error('controller exited');
      const s = JSON.parse(await readFile(statusFile, 'utf8')) as { hostsConfigured: string[]; switches: { reconciled: boolean; flows: number }[]; arp: { replies: number }; errors: string[] };
      return s.hostsConfigured.length === 2 && s.switches.filter((x) => x.reconciled).length === 4 ? s : undefined;
    },
    60_000,
    async () => `controller log: ${(await readFile(ctlLog, 'utf8').catch(() => '')).slice(-1500)}`,
  );
  t.same([...status.hostsConfigured].sort(), ['edge-a', 'edge-b'], 'both hosts configured over OVSDB (edge-a tcp:, edge-b ssl:)');
  t.same(status.errors, [], 'no configuration errors');

  // what the controller made on each host, read back from that host's own OVSDB
  for (const [i, o] of [ovsA, ovsB].entries()) {
    const peer = hosts[1 - i]!;
    const brs = (await o.vsctl(['list-br'])).trim().split('\n').sort();
    t.same(brs, [`${tag}-int`, `${tag}-phy`], `${hosts[i]!.name}: integration and underlay bridges`);
    for (const br of brs) {
      t.match(await o.vsctl(['get', 'Bridge', br, 'fail_mode']), /secure/, `${br}: fail_mode secure`);
      t.match(await o.vsctl(['get', 'Bridge', br, 'datapath_type']), /netdev/, `${br}: the topology's datapath`);
      t.match(await o.vsctl(['get-controller', br]), new RegExp(`ssl:${CTL_IP.replaceAll('.', '\\.')}:6653`), `${br}: coat is its controller, over TLS`);
    }
    const vx = `${tag}-vx${1 - i}`;
    t.match(await o.vsctl(['get', 'Interface', vx, 'type']), /vxlan/, `${vx}: an OVS vxlan port`);
    t.match(await o.vsctl(['get', 'Interface', vx, 'options']), new RegExp(`key="5001".*remote_ip="${peer.underlayIp.replaceAll('.', '\\.')}"`), `${vx}: VNI 5001 to ${peer.name}`);
    t.match(await o.vsctl(['list-ports', `${tag}-phy`]), new RegExp(hosts[i]!.uplink), 'the uplink is on the underlay bridge');
    t.match(await o.vsctl(['list-ports', `${tag}-int`]), new RegExp(`${tag}-e${i}`), 'the endpoint is on the integration bridge');
  }

  // step 3 of the guide (netdev + OVS tunnels): the underlay address moves to the underlay bridge's internal port
  for (const h of hosts) {
    await waitFor(`${tag}-phy in ${h.ns}`, async () => ((await ip(['link', 'show', `${tag}-phy`], h.ns)).code === 0 ? true : undefined), 10_000);
    await ip(['addr', 'del', `${h.underlayIp}/24`, 'dev', h.uplink], h.ns);
    await ip(['addr', 'add', `${h.underlayIp}/24`, 'dev', `${tag}-phy`], h.ns);
    await ip(['link', 'set', `${tag}-phy`, 'up'], h.ns);
  }

  // the endpoints reach each other over the overlay (the first packets may go to resolving the
  // remote VTEP on the underlay, so wait for the first answer, then require no loss)
  const [svc, cli] = endpoints as [(typeof endpoints)[0], (typeof endpoints)[0]];
  await waitFor('a first ping over the overlay', async () => ((await exec('ping', ['-c', '1', '-W', '1', svc.ip], { netns: cli.ns, timeoutMs: 5000, allowFailure: true })).code === 0 ? true : undefined), 20_000);
  const ping = await inNs(cli.ns, 'ping', ['-c', '5', '-i', '0.2', '-W', '2', svc.ip]);
  t.match(ping.stdout, /5 packets transmitted, 5 received, 0% packet loss/, 'client -> service over VXLAN');
  const back = await inNs(svc.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', cli.ip]);
  t.match(back.stdout, / 0% packet loss/, 'service -> client');

  // a TCP transfer, checksummed
  const data = randomBytes(4 * 1024 * 1024);
  await writeFile(join(dir, 'in'), data);
  const server = inNs(svc.ns, 'sh', ['-c', `nc -l -N 5001 > ${join(dir, 'out')}`], 60_000);
  await new Promise((r) => setTimeout(r, 300));
  await inNs(cli.ns, 'sh', ['-c', `nc -N -w 10 ${svc.ip} 5001 < ${join(dir, 'in')}`], 60_000);
  await server;
  const got = await readFile(join(dir, 'out'));
  t.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(data).digest('hex'), '4 MiB over TCP, sha256 matches');

  // only coat's flows on the bridges; ARP for the service answered by coat
  for (const [i, o] of [ovsA, ovsB].entries()) {
    for (const br of [`${tag}-int`, `${tag}-phy`]) {
      const flows = (await o.ofctl(['dump-flows', `unix:${join(dir, `ovs-${hosts[i]!.name}`, `${br}.mgmt`)}`])).split('\n').filter((l) => l.includes('cookie='));
      t.ok(flows.length >= 3, `${hosts[i]!.name}/${br}: ${flows.length} flows`);
      t.ok(flows.every((f) => isCoatCookie(BigInt(/cookie=(0x[0-9a-f]+)/.exec(f)![1]!)) && !/NORMAL|FLOOD/.test(f)), `${hosts[i]!.name}/${br}: all in coat's cookie space, no NORMAL or flooding`);
    }
  }
  const after = JSON.parse(await readFile(statusFile, 'utf8')) as { arp: { replies: number } };
  t.ok(after.arp.replies >= 2, `coat answered the endpoints' ARP requests (${after.arp.replies} replies)`);

  // the agents run on the hosts, connected to the controller machine's NATS
  for (const [i, h] of hosts.entries()) {
    const a = await waitFor(`agent on ${h.name}`, async () => {
      const txt = (await readFile(agentOut[i]!, 'utf8')).trim();
      return txt.endsWith('}') ? (JSON.parse(txt) as { host: string; stream: unknown }) : undefined;
    }, 30_000, async () => (await readFile(join(dir, `agent-${h.name}.log`), 'utf8').catch(() => '')).slice(-800));
    t.equal(a.host, h.name, `coat agent announced itself on ${h.name}`);
    t.match(JSON.stringify(a.stream), new RegExp(h.underlayIp.replaceAll('.', '\\.')), 'streams on the host\'s underlay address');
  }
  // and the controller's registry knows them (over NATS, with the shared command secret)
  const agents = await waitFor(
    'the controller to list both agents',
    async () => {
      const s = JSON.parse(await readFile(statusFile, 'utf8')) as { agents?: { host: string; alive: boolean; stream: string | null }[] };
      return s.agents?.filter((a) => a.alive).length === 2 ? s.agents : undefined;
    },
    20_000,
    async () => `controller log: ${(await readFile(ctlLog, 'utf8').catch(() => '')).slice(-1000)}`,
  );
  t.same(agents.map((a) => [a.host, a.alive, a.stream?.split(':')[0]]).sort(), [['edge-a', true, hosts[0]!.underlayIp], ['edge-b', true, hosts[1]!.underlayIp]], 'controller status: both agents alive, streaming on the underlay');

  // stop everything by pid; then nothing with the tag is left
  for (const p of pids) process.kill(p, 'SIGTERM');
  await waitFor('controller and agents to exit', async () => (pids.some(isAlive) ? undefined : true), 10_000);
  await nats.stop();
  for (const f of ovsPids) for (const p of await f()) process.kill(p, 'SIGTERM');
  await waitFor('OVS to exit', async () => ((await Promise.all(ovsPids.map((f) => f()))).flat().some(isAlive) ? undefined : true), 10_000);
  const report = await labDownTag(dir, tag);
  t.same(report.killed, [], 'the sweep found no process left to kill');
  t.same(await leftovers(tag, [join(dir, tag)]), [], 'no namespace, link or process with the tag is left');
});

t.test('coat controller refuses incomplete real-host settings, naming what is missing', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'coat-ctlargs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'hosts.yaml');
  const hostsYaml = (ipB: string) =>
    `overlay: { subnet: 10.10.0.0/24, vni: 1 }\nunderlay: { subnet: 192.168.1.0/24 }\nhosts:\n` +
    `  - { name: a, underlay: { ip: 192.168.1.1 }, ovsdb: "tcp:192.0.2.1:6640", uplink: eth1 }\n` +
    `  - { name: b, underlay: { ip: ${ipB} }, ovsdb: "tcp:192.0.2.2:6640", uplink: eth1 }\nendpoints: []\n`;
  const badFile = join(dir, 'bad.yaml');
  await writeFile(file, hostsYaml('192.168.1.2'));
  await writeFile(badFile, hostsYaml('192.168.1.300'));
  const run = (args: string[]) => coat(['controller', ...args], 30_000);
  // five CLI starts at once: each is a Node process through tsx
  const [noSecret, tokenAlone, twoAuths, halfTls, bad] = await Promise.all([
    run(['--topology', file, '--nats', 'nats://127.0.0.1:1']),
    run(['--topology', file, '--token', 'x']),
    run(['--topology', file, '--nats', 'nats://127.0.0.1:1', '--token', 'x', '--creds', 'y']),
    run(['--topology', file, '--tls-key', 'k']),
    run(['--topology', badFile]),
  ]);
  t.equal(noSecret!.code, 64, 'usage error');
  t.match(noSecret!.stderr, /--nats needs the agents' command secret: --secret-file FILE or COAT_AGENT_SECRET/);
  t.equal(tokenAlone!.code, 64);
  t.match(tokenAlone!.stderr, /go with --nats/);
  t.match(twoAuths!.stderr, /at most one of --token, --user\/--password, --creds/);
  t.match(halfTls!.stderr, /--tls-key, --tls-cert and --tls-ca go together/);
  t.equal(bad!.code, 2, 'bad input');
  t.match(bad!.stderr, /hosts\[1\]\.underlay\.ip: .*192\.168\.1\.300/, 'the bad key is named');
});
