/**
 * `coat migrate` against a lab brought up with `coat lab up`: the MigrationBackend (cli/commands/
 * migrate.ts) that runs one migration of a service that already runs in the lab, with the lab's
 * own agents and NATS.
 *
 * The lab's `coat controller` holds the switches and has no API to run a migration, so for the
 * migration's duration this process is the lab's controller: it stops the lab's one (SIGTERM by
 * the pid in the lab state), listens where the switches look for it (they reconnect within their
 * back-off), drives the orchestrator over the live ports, then writes the service's new host into
 * the lab's topology (runDir/topology.json and the state) and starts the lab's controller again
 * with it, so the flows it reconciles are the migrated ones. It runs in the lab's `ctl` namespace
 * (a child process, like lab-run.ts): only there do the switches and NATS reach it.
 *
 * The service is found by what it is: the process that listens on the service endpoint's address
 * (/proc/PID/net/tcp of each network namespace, then the fd that holds that socket), in the
 * namespace `coat lab up` made for it, or after a move the one with the state directory recorded
 * in RUNDIR/coat-services.json. The tcp-repair executor needs its `--state-dir` (the workload
 * SDK's); the destination runs the same command line with the state directory `DIR-HOST`.
 */
import { readlink, readdir, readFile, writeFile, stat } from 'node:fs/promises';
import { closeSync, openSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { coatArgv } from '../../../lab/up.js';
import { readState, writeState, type LabState } from '../../../lab/state.js';
import { AgentRegistry } from '../../agent/client.js';
import type { Controller } from '../../controller/index.js';
import { logger as rootLogger, type Logger } from '../../log.js';
import { parseCidr } from '../../packet/address.js';
import { endpointNetns } from '../../vxlan/layout.js';
import type { OverlayController } from '../../vxlan/overlay-controller.js';
import type { Topology } from '../../vxlan/topology.js';
import { Orchestrator, type MigrationEvent, type MigrationOutcome } from '../orchestrator.js';
import type { MigrationRef } from '../ports.js';
import { orchestratorOptionsOf, type MigrateRequest } from '../../cli/commands/migrate.js';
import { parseProcNetTcp, socketInode, TCP_STATE } from '../../tcp-repair/proc.js';
import { LiveMigrationError } from './errors.js';
import { connectLabController, labLivePorts } from './lab-ports.js';
import { sleep, waitFor } from './processes.js';

export interface LabMigrateOptions {
  stateDir: string;
  tag: string;
  request: MigrateRequest;
  onEvent?: (e: MigrationEvent) => void;
  progress?: (line: string) => void;
  log?: Logger;
}

/** The service as found running: its pid, command line and state directory. */
export interface FoundService {
  pid: number;
  argv: string[];
  stateDir: string;
}

/** A process listening on an address, and its network namespace ("net:[INODE]", /proc/PID/ns/net). */
export interface Listener {
  pid: number;
  argv: string[];
  netns: string;
}

/**
 * The processes listening on `ip`, in whatever network namespace: per namespace (one pid each) the
 * LISTEN sockets of /proc/PID/net/tcp (state 0A), then the process holding that socket's inode.
 */
export async function findListeningProcesses(ip: string): Promise<Listener[]> {
  const byNs = new Map<string, number[]>();
  for (const d of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(d)) continue;
    const ns = await readlink(`/proc/${d}/ns/net`).catch(() => undefined);
    if (ns) byNs.set(ns, [...(byNs.get(ns) ?? []), Number(d)]);
  }
  const out: Listener[] = [];
  for (const [netns, pids] of byNs) {
    const table = await readFile(`/proc/${pids[0]}/net/tcp`, 'utf8').catch(() => '');
    const inodes = new Set(parseProcNetTcp(table, 4).filter((e) => e.local.address === ip && e.state === TCP_STATE.LISTEN).map((e) => e.inode));
    if (inodes.size === 0) continue;
    search: for (const pid of pids.sort((a, b) => a - b)) {
      for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
        const inode = socketInode(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''));
        if (inode !== undefined && inodes.has(inode)) {
          const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
          if (argv.at(-1) === '') argv.pop(); // cmdline ends with a NUL
          out.push({ pid, argv, netns });
          break search;
        }
      }
    }
  }
  return out;
}

/** Where a lab's services run after `coat migrate` moved them (RUNDIR/coat-services.json). */
type ServiceRecord = Record<string, { host: string; stateDir: string }>;
const servicesFile = (runDir: string) => join(runDir, 'coat-services.json');

async function readServices(runDir: string): Promise<ServiceRecord> {
  return JSON.parse(await readFile(servicesFile(runDir), 'utf8').catch(() => '{}')) as ServiceRecord;
}

/**
 * The lab's service process: several labs (or leftovers) may use the same overlay address, so the
 * listener must be the one in this lab: after a move, the one with the state directory recorded
 * then; before any, the one in the namespace `coat lab up` made for the endpoint.
 */
export async function findLabService(state: LabState, service: string): Promise<Listener | undefined> {
  const e = state.topology.endpoints.find((x) => x.name === service);
  if (!e) return undefined;
  const all = await findListeningProcesses(e.ip);
  const moved = (await readServices(state.runDir))[service];
  if (moved) return all.find((l) => l.argv[l.argv.indexOf('--state-dir') + 1] === moved.stateDir);
  const ns = state.endpoints.find((x) => x.name === service)?.namespace;
  const ino = ns ? await stat(`/run/netns/${ns}`).then((st) => st.ino).catch(() => undefined) : undefined;
  return all.find((l) => ino !== undefined && l.netns === `net:[${ino}]`);
}

/** The state directory a host gets: the source's without its host suffix, plus `-HOST`. */
export function stateDirFor(sourceDir: string, hosts: readonly string[], host: string): string {
  const base = hosts.reduce((d, h) => (d.endsWith(`-${h}`) ? d.slice(0, -h.length - 1) : d), sourceDir);
  return `${base}-${host}`;
}

function withStateDir(argv: readonly string[], dir: string): string[] {
  const i = argv.indexOf('--state-dir');
  return argv.map((a, j) => (j === i + 1 ? dir : a));
}

async function stopByPid(pid: number, what: string, timeoutMs = 10_000): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return; // not running
  }
  await waitFor(`${what} (pid ${pid}) to exit`, () => {
    try {
      process.kill(pid, 0);
      return undefined;
    } catch {
      return true;
    }
  }, timeoutMs).catch(() => process.kill(pid, 'SIGKILL'));
}

/** Starts the lab's controller as `coat lab up` does (same argv, log and status file); returns its pid. */
function startLabController(state: LabState, port: number): number {
  const c = state.controller!;
  const log = openSync(c.log, 'a');
  const argv = [...coatArgv(), 'controller', '--topology', join(state.runDir, 'topology.json'), '--prefix', state.tag, '--listen', `ptcp:${port}:${c.ip}`, '--status', c.status];
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', log, log], env: { ...process.env, COAT_LOG_LEVEL: process.env.COAT_LOG_LEVEL ?? 'info' } });
  closeSync(log);
  child.unref();
  if (child.pid === undefined) throw new LiveMigrationError('LIVE_LAB', 'could not start the lab controller again');
  return child.pid;
}

export async function migrateInLab(opts: LabMigrateOptions): Promise<MigrationOutcome> {
  const progress = opts.progress ?? (() => {});
  const log = opts.log ?? rootLogger('lab-migrate');
  const req = opts.request;
  const state = await readState(opts.stateDir, opts.tag);
  if (!state || state.status !== 'up') throw new LiveMigrationError('LIVE_LAB', `lab ${opts.tag} is not up in ${opts.stateDir}`);
  const topo = state.topology;
  const tag = state.tag;
  const svc = topo.endpoints.find((e) => e.name === req.service);
  if (!svc) throw new LiveMigrationError('LIVE_LAB', `no endpoint ${req.service} in lab ${tag} (endpoints: ${topo.endpoints.map((e) => e.name).join(', ')})`);
  if (!topo.hosts.some((h) => h.name === req.to)) throw new LiveMigrationError('LIVE_LAB', `no host ${req.to} in lab ${tag} (hosts: ${topo.hosts.map((h) => h.name).join(', ')})`);
  if (svc.host === req.to) throw new LiveMigrationError('LIVE_LAB', `${svc.name} already runs on ${req.to}`);
  const natsUrl = state.nats?.url;
  if (!natsUrl || state.agents.length === 0 || !state.agentSecretFile) throw new LiveMigrationError('LIVE_LAB', `lab ${tag} has no agents (brought up with --no-agents?)`);
  const found = await findLabService(state, svc.name);
  if (!found) throw new LiveMigrationError('LIVE_LAB', `nothing in lab ${tag} listens on ${svc.ip}: start the service in its namespace first (e.g. ip netns exec ${endpointNetns(tag, svc.name)} coat workload server --host ${svc.ip} --state-dir DIR)`);
  const sourceStateDir = found.argv[found.argv.indexOf('--state-dir') + 1];
  if (!found.argv.includes('--state-dir') || !sourceStateDir) throw new LiveMigrationError('LIVE_LAB', `the service (pid ${found.pid}) has no --state-dir in its command line; the tcp-repair executor needs one`);
  const hosts = topo.hosts.map((h) => h.name);
  const firstHost = state.endpoints.find((e) => e.name === svc.name)?.host ?? svc.host;
  const netnsOf = (host: string) => (host === firstHost ? endpointNetns(tag, svc.name) : `${endpointNetns(tag, svc.name)}-${hosts.indexOf(host)}`);
  const stateDirOf = (host: string) => (host === svc.host ? sourceStateDir : stateDirFor(sourceStateDir, hosts, host));
  const ctl = state.controller;
  const ctlIp = ctl?.ip ?? parseCidr(topo.management.subnet).address.replace(/\.\d+$/, '.1');
  const clientHost = topo.endpoints.find((e) => e.role === 'client')?.host;

  // The lab's controller steps aside for the migration.
  if (ctl?.pid) {
    progress(`lab controller (pid ${ctl.pid}) stopped for the migration`);
    await stopByPid(ctl.pid, 'lab controller');
  }
  let connected: { controller: Controller; overlay: OverlayController } | undefined;
  let registry: AgentRegistry | undefined;
  let finalTopo: Topology = topo;
  try {
    connected = await connectLabController(topo, tag, ctlIp, log);
    progress(`controller: ${hosts.length * 2} bridges connected`);
    const token = state.nats?.tokenFile ? (await readFile(state.nats.tokenFile, 'utf8')).trim() : undefined;
    const secret = (await readFile(state.agentSecretFile, 'utf8')).trim();
    registry = await AgentRegistry.connect({ nats: { servers: natsUrl, ...(token ? { token } : {}) }, secret: Buffer.from(secret, 'utf8'), deadAfterMs: 5000, log: log.child({ part: 'registry' }) });
    await Promise.all(hosts.map((h) => registry!.waitFor(h, 30_000)));
    progress(`agents: ${hosts.join(', ')} registered; service ${svc.name} is pid ${found.pid} on ${svc.host}`);
    const client = topo.endpoints.find((e) => e.role === 'client');
    const { flows, agents, planner } = labLivePorts({
      state,
      topo,
      ...connected,
      registry,
      service: svc.name,
      netnsOf,
      stateDirOf,
      commandOf: (host) => withStateDir(found.argv, stateDirOf(host)),
      ...(client ? { client: { host: client.host, netns: endpointNetns(tag, client.name) } } : {}),
      onTopologyChange: (t) => (finalTopo = t),
      // COAT's procedure: flow-mods one at a time, deletes first, the switch the last flow change.
      coatBaseline: req.mode === 'coat-baseline',
    });
    const ref: MigrationRef = {
      migrationId: req.migrationId,
      service: { name: svc.name, netns: netnsOf(svc.host), ip: svc.ip, mac: svc.mac, pid: found.pid, stateDir: sourceStateDir },
      source: svc.host,
      destination: req.to,
      ...(clientHost ? { clientHost } : {}),
      executor: req.executor ?? 'tcp-repair',
      ...(req.newMac ? { newMac: req.newMac } : {}),
    };
    const dataDir = join(state.runDir, 'controller');
    progress(`journal: ${join(dataDir, 'migrations', `${req.migrationId}.jsonl`)} (coat verify --journal ${req.migrationId} --data-dir ${dataDir})`);
    const orch = new Orchestrator({ flows, agents, planner }, { dataDir, log: log.child({ part: 'orchestrator' }), stepTimeoutMs: 30_000, ...orchestratorOptionsOf(req), ...(opts.onEvent ? { onEvent: opts.onEvent } : {}) });
    return await orch.migrate({ ref, objective: req.objective, mode: req.mode });
  } finally {
    await registry?.close().catch(() => undefined);
    await registry?.nc.close().catch(() => undefined);
    await connected?.overlay.close().catch(() => undefined);
    await connected?.controller.close().catch(() => undefined);
    // The lab's topology now says where the service runs; its controller takes the switches back.
    if (finalTopo !== topo) {
      await writeFile(join(state.runDir, 'topology.json'), JSON.stringify(finalTopo, null, 2) + '\n');
      state.topology = finalTopo;
      const services = await readServices(state.runDir);
      services[svc.name] = { host: req.to, stateDir: stateDirOf(req.to) };
      await writeFile(servicesFile(state.runDir), JSON.stringify(services, null, 2) + '\n');
    }
    if (ctl?.pid) {
      await sleep(200); // the listening socket is closed: the restarted controller can bind it
      ctl.pid = startLabController(state, topo.controller.port);
      progress(`lab controller started again (pid ${ctl.pid})`);
    }
    await writeState(opts.stateDir, state);
  }
}
