/**
 * `coat lab up`: builds, on this machine, the hosts of a topology file as network namespaces.
 *
 *   TAG-fabric   Linux bridge TAG-fab: the underlay. Host i's link is the veth TAG-fI (here) /
 *                TAG-uI (in the host), shaped with tbf at the host's `underlay.mbit` both ways,
 *                here: egress of TAG-fI, and its ingress through the ifb TAG-iI; every underlay
 *                link (and the host's underlay bridge port) gets `underlay.mtu` when it is set.
 *   TAG-ctl      Linux bridge TAG-mgmt with the controller's address: the management network.
 *                Host i's link is TAG-nI (here) / TAG-mI (in the host). nats-server (token auth)
 *                and `coat controller` run here; OVS reaches the controller over TCP, as across
 *                hosts, and each host's `coat agent` reaches NATS the same way.
 *   TAG-h-HOST   one per host: its own ovsdb-server + ovs-vswitchd (OvsInstance, datapath from the
 *                topology, netdev by default; OVSDB also listening on the management address),
 *                bridges TAG-int (integration: endpoints, tunnels) and TAG-phy (underlay: uplink
 *                TAG-uI, the host's underlay IP on its internal port, where OVS's userspace VXLAN
 *                originates and ends).
 *   TAG-e-NAME   one per endpoint: `eth0` with the endpoint's IP and fixed MAC, overlay MTU, TX
 *                checksum offload off; its peer is a port of the host's integration bridge.
 *
 * Then the controller starts, configures every host's OVS over OVSDB (TCP on the management
 * network) and programs the overlay flows; `lab up` returns when every bridge holds them.
 * Progress goes to `progress()` (stderr for the CLI). Everything made is recorded in the state
 * file before it is made; on failure the partial lab is torn down.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exec } from '../src/exec.js';
import { createNetns, disableTxOffload, openNetns, shapeEgress, shapeIngress, type NetnsClient } from '../src/netns/index.js';
import { parseCidr } from '../src/packet/address.js';
import { VSwitch } from '../src/ovsdb/vswitch.js';
import { configureHost } from '../src/vxlan/ovsdb-host.js';
import { hostLayout, kernelVxlanDevice } from '../src/vxlan/layout.js';
import type { Topology } from '../src/vxlan/topology.js';
import { labDownTag } from './down.js';
import { labNames, type LabNames } from './names.js';
import { NatsServer } from './nats-server.js';
import { OvsInstance } from './ovs-daemons.js';
import { isAlive } from './process.js';
import { acquireLock, LabError, releaseLock, stateFile, writeState, type LabState } from './state.js';
import { newTag } from './tag.js';

export const OVSDB_PORT = 6640;
const WORKER_STARTS_IN_PARALLEL = 4;

async function inBatches<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}
export const NATS_PORT = 4222;

export interface LabUpOptions {
  stateDir: string;
  topologyFile?: string;
  progress?: (line: string) => void;
  /** Start nats-server in ctl (default true). */
  nats?: boolean;
  /** How long to wait for the controller to program every bridge (default 60 s). */
  controllerTimeoutMs?: number;
  /** Tag to use (tests); default a new one. */
  tag?: string;
  /** Start `coat controller` (default true); false leaves the bridges without flows (another controller may be pointed at them). */
  controller?: boolean;
  /** Start a `coat agent` in every host namespace (default true; needs nats). */
  agents?: boolean;
}

/** The controller's status file, as `coat controller --status` writes it. */
export interface ControllerStatusFile {
  pid: number;
  updatedAt: string;
  switches: { dpid: string; host: string; bridge: string; flows: number; reconciled: boolean }[];
  hostsConfigured: string[];
  arp: { requests: number; replies: number; unknownIp: number; malformed: number; other: number };
  errors: string[];
}

/** argv to run the coat CLI in a child process, from source (tsx) or from dist/. */
export function coatArgv(): string[] {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts')) return [process.execPath, '--import', import.meta.resolve('tsx'), self.replace(/up\.ts$/, 'coat-entry.ts')];
  return [process.execPath, self.replace(/up\.js$/, 'coat-entry.js')];
}

function resolvedTopology(topo: Topology, names: LabNames): Topology {
  return {
    ...topo,
    controller: { ...topo.controller, openflow: `tcp:${names.ctlIp}:${topo.controller.port}`, nats: `nats://${names.ctlIp}:${NATS_PORT}` },
    hosts: topo.hosts.map((h, i) => ({ ...h, ovsdb: `tcp:${names.hosts[i]!.mgmtIp}:${OVSDB_PORT}`, uplink: names.hosts[i]!.uplinkIf })),
  };
}

export async function labUp(topo: Topology, opts: LabUpOptions): Promise<LabState> {
  const started = Date.now();
  const progress = opts.progress ?? (() => {});
  const tag = opts.tag ?? newTag();
  await acquireLock(opts.stateDir, tag);
  const names = labNames(tag, topo, opts.stateDir);
  const resolved = resolvedTopology(topo, names);
  const state: LabState = {
    tag,
    status: 'building',
    createdAt: new Date().toISOString(),
    topologyFile: opts.topologyFile ?? null,
    topology: resolved,
    runDir: names.runDir,
    namespaces: [],
    hosts: names.hosts.map((h, i) => {
      const l = hostLayout(resolved, tag, h.name);
      return { name: h.name, namespace: h.netns, mgmtIp: h.mgmtIp, underlayIp: topo.hosts[i]!.underlay.ip, ovsDir: h.ovsDir, ovsdb: `tcp:${h.mgmtIp}:${OVSDB_PORT}`, integrationBridge: l.integrationBridge, underlayBridge: l.underlayBridge };
    }),
    endpoints: topo.endpoints.map((e) => {
      const n = names.endpoints.find((x) => x.name === e.name)!;
      return { name: e.name, host: e.host, namespace: n.netns, ip: e.ip, mac: e.mac, interface: n.nsIf, hostInterface: n.hostIf };
    }),
    controller: null,
    nats: null,
    agents: [],
    agentSecretFile: null,
  };
  const clients: NetnsClient[] = [];
  try {
    await mkdir(names.runDir, { recursive: true });
    await writeState(opts.stateDir, state);
    await writeFile(join(names.runDir, 'topology.json'), JSON.stringify(resolved, null, 2) + '\n');

    progress(`lab ${tag}: namespaces`);
    const allNs = [names.fabricNetns, names.ctlNetns, ...names.hosts.map((h) => h.netns), ...names.endpoints.map((e) => e.netns)];
    state.namespaces = allNs;
    await writeState(opts.stateDir, state);
    await Promise.all(allNs.map((n) => createNetns(n)));
    const nsClient = new Map<string, NetnsClient>();
    // One netlink worker per namespace (src/netns/client.ts); starting a Node process costs CPU,
    // so a few at a time rather than all at once on a small machine.
    await inBatches(allNs, WORKER_STARTS_IN_PARALLEL, async (n) => {
      const c = await openNetns(n, 30_000);
      clients.push(c);
      nsClient.set(n, c);
    });
    const fab = nsClient.get(names.fabricNetns)!;
    const ctl = nsClient.get(names.ctlNetns)!;

    progress(`lab ${tag}: underlay fabric and management network`);
    // Every underlay link gets the topology's MTU when it names one.
    const underlayMtu = topo.underlay.mtu !== undefined ? { mtu: topo.underlay.mtu } : {};
    await fab.createBridge(names.fabricBridge);
    await fab.setLink(names.fabricBridge, { ...underlayMtu, up: true });
    await ctl.createBridge(names.mgmtBridge);
    await ctl.addAddress(names.mgmtBridge, `${names.ctlIp}/${names.mgmtPrefix}`);
    await ctl.setLink(names.mgmtBridge, { up: true });

    await Promise.all(
      names.hosts.map(async (h, i) => {
        const spec = topo.hosts[i]!;
        const hc = nsClient.get(h.netns)!;
        // underlay link, shaped both ways when the topology gives a rate
        await fab.createVeth({ name: h.fabricIf, peer: h.uplinkIf, peerNetns: h.netns, ...underlayMtu });
        await fab.setLink(h.fabricIf, { master: names.fabricBridge, up: true });
        await hc.setLink(h.uplinkIf, { up: true });
        await disableTxOffload(h.uplinkIf, h.netns);
        if (spec.underlay.mbit !== undefined) {
          // both directions shaped in the fabric: OVS resets qdiscs on the ports it opens
          await fab.createIfb(h.fabricIfb);
          await fab.setLink(h.fabricIfb, { ...underlayMtu, up: true });
          await shapeEgress(h.fabricIf, { mbit: spec.underlay.mbit }, names.fabricNetns);
          await shapeIngress(h.fabricIf, h.fabricIfb, { mbit: spec.underlay.mbit }, names.fabricNetns);
        }
        // management link
        await ctl.createVeth({ name: h.ctlIf, peer: h.mgmtIf, peerNetns: h.netns });
        await ctl.setLink(h.ctlIf, { master: names.mgmtBridge, up: true });
        await hc.addAddress(h.mgmtIf, `${h.mgmtIp}/${names.mgmtPrefix}`);
        await hc.setLink(h.mgmtIf, { up: true });
      }),
    );

    progress(`lab ${tag}: endpoints (${topo.endpoints.map((e) => `${e.name}@${e.host}`).join(', ')})`);
    const overlayPrefix = parseCidr(topo.overlay.subnet).prefixLength;
    await Promise.all(
      topo.endpoints.map(async (e) => {
        const n = names.endpoints.find((x) => x.name === e.name)!;
        const host = names.hosts.find((h) => h.name === e.host)!;
        const hc = nsClient.get(host.netns)!;
        const ec = nsClient.get(n.netns)!;
        await hc.createVeth({ name: n.hostIf, peer: n.nsIf, peerMac: e.mac, mtu: topo.overlay.mtu, peerNetns: n.netns });
        await hc.setLink(n.hostIf, { up: true });
        await ec.addAddress(n.nsIf, `${e.ip}/${overlayPrefix}`);
        await ec.setLink(n.nsIf, { up: true });
        // TCP through a userspace (netdev) bridge stalls on partial checksums (machine fact).
        await disableTxOffload(n.nsIf, n.netns);
        await disableTxOffload(n.hostIf, host.netns);
      }),
    );

    progress(`lab ${tag}: Open vSwitch on ${names.hosts.length} hosts (${topo.datapath} datapath, ${topo.tunnel} VXLAN)`);
    await Promise.all(
      names.hosts.map(async (h, i) => {
        const ovs = new OvsInstance({ dir: h.ovsDir, netns: h.netns, remotes: [`ptcp:${OVSDB_PORT}:${h.mgmtIp}`] });
        await ovs.start();
        const layout = hostLayout(resolved, tag, h.name);
        const hc = nsClient.get(h.netns)!;
        if (topo.tunnel === 'kernel') {
          const dev = kernelVxlanDevice(tag);
          await hc.createVxlan(dev, { vni: topo.overlay.vni, local: topo.hosts[i]!.underlay.ip });
          await hc.setLink(dev, { up: true });
          for (const e of topo.endpoints) {
            if (e.host === h.name) continue;
            await hc.setFdb(dev, e.mac, topo.hosts.find((x) => x.name === e.host)!.underlay.ip);
          }
        }
        const vs = await VSwitch.connect(ovs.dbRemote);
        try {
          await configureHost(vs, resolved, layout, { controllerTarget: resolved.controller.openflow! });
        } finally {
          vs.close();
        }
        // the underlay IP lives on the underlay bridge's internal port (the br-phy pattern)
        await OvsInstance.waitFor(`${layout.underlayBridge} in ${h.netns}`, async () => (await hc.getLink(layout.underlayBridge)) !== undefined, 10_000);
        const ul = parseCidr(topo.underlay.subnet).prefixLength;
        await hc.addAddress(layout.underlayBridge, `${topo.hosts[i]!.underlay.ip}/${ul}`);
        await hc.setLink(layout.underlayBridge, { up: true });
        await hc.setLink(layout.integrationBridge, { up: true }).catch(() => undefined);
      }),
    );

    if (topo.tunnel === 'ovs') {
      // OVS's userspace tunnels resolve the remote VTEP's MAC by ARP and drop the packet that
      // triggered it; the lab knows every MAC, so it installs them (static tnl neighbours) and the
      // very first overlay packet gets through.
      progress(`lab ${tag}: tunnel neighbours`);
      const vteps = await Promise.all(
        names.hosts.map(async (h, i) => ({ ip: topo.hosts[i]!.underlay.ip, mac: (await nsClient.get(h.netns)!.getLink(hostLayout(resolved, tag, h.name).underlayBridge)).mac! })),
      );
      await Promise.all(
        names.hosts.map(async (h, i) => {
          const br = hostLayout(resolved, tag, h.name).underlayBridge;
          for (const [j, v] of vteps.entries()) {
            if (j === i) continue;
            await exec('ovs-appctl', [`--target=${join(h.ovsDir, 'ovs-vswitchd.ctl')}`, 'tnl/neigh/set', br, v.ip, v.mac], { timeoutMs: 10_000 });
          }
        }),
      );
    }

    if (opts.nats !== false) {
      progress(`lab ${tag}: nats-server in ${names.ctlNetns}`);
      const token = randomBytes(24).toString('hex');
      const tokenFile = join(names.runDir, 'nats.token');
      await writeFile(tokenFile, token + '\n', { mode: 0o600 });
      const nats = new NatsServer({ dir: join(names.runDir, 'nats'), netns: names.ctlNetns, host: names.ctlIp, port: NATS_PORT, token });
      await nats.start();
      state.nats = { url: `nats://${names.ctlIp}:${NATS_PORT}`, dir: nats.dir, tokenFile };
      await writeState(opts.stateDir, state);
      if (opts.agents !== false) {
        progress(`lab ${tag}: coat agent on ${names.hosts.length} hosts`);
        const secretFile = join(names.runDir, 'agent.secret');
        await writeFile(secretFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
        state.agentSecretFile = secretFile;
        state.agents = await Promise.all(names.hosts.map((h, i) => startAgent(h, topo.hosts[i]!.underlay.ip, state.nats!.url, tokenFile, secretFile, names.runDir)));
        await writeState(opts.stateDir, state);
      }
    }

    if (opts.controller !== false) {
    progress(`lab ${tag}: coat controller in ${names.ctlNetns} (OpenFlow ${resolved.controller.openflow})`);
    const statusPath = join(names.runDir, 'controller-status.json');
    const logPath = join(names.runDir, 'controller.log');
    // with the lab's agents, the controller keeps their registry too (listed in its status), as on real hosts
    const agentsArgs = state.nats && state.agentSecretFile ? ['--nats', state.nats.url, '--token', (await readFile(state.nats.tokenFile, 'utf8')).trim(), '--secret-file', state.agentSecretFile] : [];
    const pid = startController(names, tag, statusPath, logPath, resolved.controller.port, agentsArgs);
    state.controller = { namespace: names.ctlNetns, ip: names.ctlIp, openflow: resolved.controller.openflow!, pid, log: logPath, status: statusPath };
    await writeState(opts.stateDir, state);
    await waitForController(statusPath, logPath, resolved, opts.controllerTimeoutMs ?? 60_000, progress, pid);
    }

    state.status = 'up';
    state.buildMs = Date.now() - started;
    await writeState(opts.stateDir, state);
    progress(`lab ${tag}: up in ${(state.buildMs / 1000).toFixed(1)} s (state ${stateFile(opts.stateDir, tag)})`);
    return state;
  } catch (e) {
    state.status = 'failed';
    state.error = (e as Error).message;
    progress(`lab ${tag}: build failed: ${(e as Error).message}; removing what was made`);
    for (const c of clients) await c.close().catch(() => undefined);
    clients.length = 0;
    await labDownTag(opts.stateDir, tag).catch(() => undefined);
    await releaseLock(opts.stateDir, tag);
    throw new LabError('LAB_BUILD_FAILED', `lab ${tag} could not be built: ${(e as Error).message}`, { cause: e });
  } finally {
    for (const c of clients) await c.close().catch(() => undefined);
  }
}

/**
 * One `coat agent` in a host's namespace: NATS over the management network, image streams on the
 * host's underlay address (so a migration's transfer crosses the shaped fabric, as in COAT's
 * testbed). Resolves once the agent has announced itself (its --json line).
 */
async function startAgent(h: LabNames['hosts'][number], underlayIp: string, natsUrl: string, tokenFile: string, secretFile: string, runDir: string): Promise<LabState['agents'][number]> {
  const dataDir = join(runDir, `agent-${h.name}`);
  await mkdir(dataDir, { recursive: true });
  const logPath = join(runDir, `agent-${h.name}.log`);
  const outPath = join(runDir, `agent-${h.name}.json`);
  const token = (await readFile(tokenFile, 'utf8')).trim();
  const log = openSync(logPath, 'a');
  const out = openSync(outPath, 'w');
  const argv = ['ip', 'netns', 'exec', h.netns, ...coatArgv(), 'agent', '--host', h.name, '--nats', natsUrl, '--token', token, '--secret-file', secretFile, '--data-dir', dataDir, '--listen', `${underlayIp}:0`, '--json'];
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', out, log], env: { ...process.env, COAT_LOG_LEVEL: process.env.COAT_LOG_LEVEL ?? 'info' } });
  closeSync(log);
  closeSync(out);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new LabError('LAB_BUILD_FAILED', `could not start coat agent on ${h.name}`);
  let announced: { stream?: { host: string; port: number } | string } | undefined;
  await OvsInstance.waitFor(
    `coat agent on ${h.name} to announce itself`,
    async () => {
      if (!isAlive(pid)) throw new LabError('LAB_BUILD_FAILED', `coat agent on ${h.name} exited: ${(await readFile(logPath, 'utf8').catch(() => '')).slice(-600)}`);
      const text = await readFile(outPath, 'utf8').catch(() => '');
      if (!text.trim().endsWith('}')) return false;
      announced = JSON.parse(text) as typeof announced;
      return true;
    },
    60_000,
  ).catch(async (e: Error) => {
    throw new LabError('LAB_BUILD_FAILED', `${e.message}; log: ${(await readFile(logPath, 'utf8').catch(() => '')).slice(-600)}`);
  });
  const stream = announced?.stream === undefined ? null : typeof announced.stream === 'string' ? announced.stream : `${announced.stream.host}:${announced.stream.port}`;
  return { host: h.name, pid, namespace: h.netns, stream, dataDir, log: logPath };
}

function startController(names: LabNames, tag: string, statusPath: string, logPath: string, port: number, extraArgs: string[]): number {
  const log = openSync(logPath, 'a');
  const argv = [
    'ip', 'netns', 'exec', names.ctlNetns, ...coatArgv(), 'controller',
    '--topology', join(names.runDir, 'topology.json'),
    '--prefix', tag,
    '--listen', `ptcp:${port}:${names.ctlIp}`,
    '--status', statusPath,
    ...extraArgs,
  ];
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', log, log], env: { ...process.env, COAT_LOG_LEVEL: process.env.COAT_LOG_LEVEL ?? 'info' } });
  closeSync(log);
  child.unref();
  if (child.pid === undefined) throw new LabError('LAB_CONTROLLER', 'could not start coat controller');
  return child.pid; // `ip netns exec` execs node, so this is the controller's own pid
}

async function waitForController(statusPath: string, logPath: string, topo: Topology, timeoutMs: number, progress: (l: string) => void, pid: number): Promise<void> {
  const want = topo.hosts.length * 2;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    let st: ControllerStatusFile | undefined;
    try {
      st = JSON.parse(await readFile(statusPath, 'utf8')) as ControllerStatusFile;
    } catch {
      st = undefined;
    }
    const done = st?.switches.filter((s) => s.reconciled).length ?? 0;
    const line = `controller: ${st?.hostsConfigured.length ?? 0}/${topo.hosts.length} hosts configured, ${done}/${want} bridges programmed`;
    if (line !== last) progress(line);
    last = line;
    if (done >= want) return;
    {
      try {
        process.kill(pid, 0);
      } catch {
        throw new LabError('LAB_CONTROLLER', `coat controller exited: ${(await readFile(logPath, 'utf8').catch(() => '')).slice(-800)}`);
      }
    }
    if (Date.now() > deadline) {
      throw new LabError('LAB_CONTROLLER', `${line} after ${timeoutMs} ms; errors: ${st?.errors.join('; ') ?? 'none'}; log tail: ${(await readFile(logPath, 'utf8').catch(() => '')).slice(-800)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
