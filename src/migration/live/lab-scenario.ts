/**
 * One lab migration run, end to end, inside the lab's `ctl` namespace (where the switches' OpenFlow
 * connections and the agents' NATS arrive): it is the controller for the run.
 *
 *   controller   Controller listening where the lab points OVS, OverlayController (OVSDB per host,
 *                overlay flows, ARP responder), AgentRegistry on the lab's nats-server, and the
 *                Orchestrator over the live ports (flow-port.ts, agent-port.ts, planner-port.ts);
 *   agents       one `coat agent` per host, in the host's namespace;
 *   workload     `coat workload server` in the service's namespace on its host, `coat workload
 *                client` in the client's namespace, with a stream (and pings for ping-pong);
 *   capture      libpcap (src/capture) on the client's interface, from before the first byte to after
 *                the last, analysed as it streams, also written as client.pcap for tshark.
 *
 * Then N migrations back and forth (each waits for the traffic to flow again), and at the end the
 * service is paused so the client can read every byte it sent, the capture is stopped, and one
 * report per migration is built from its journal, the capture and the client (../report.ts, the
 * same path as `coat verify --journal`). Every process started here is stopped here, by pid.
 *
 * The lab must be up without its own controller (`labUp(..., { controller: false })`).
 */
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setPriority } from 'node:os';
import { coatArgv } from '../../../lab/up.js';
import { readState } from '../../../lab/state.js';
import { AgentRegistry } from '../../agent/client.js';
import type { Controller } from '../../controller/index.js';
import { exec } from '../../exec.js';
import { logger as rootLogger, type Logger } from '../../log.js';
import { parseCidr } from '../../packet/address.js';
import { endpointHostIf, endpointNetns, hostLayout } from '../../vxlan/layout.js';
import type { OverlayController } from '../../vxlan/overlay-controller.js';
import type { Topology } from '../../vxlan/topology.js';
import type { ExecutorName } from '../executor.js';
import { Orchestrator, type MigrationEvent, type MigrationOutcome, type OrchestratorOptions } from '../orchestrator.js';
import type { AgentPort, FlowPort, MigrationRef, Objective } from '../ports.js';
import { LiveAgentPort } from './agent-port.js';
import { startCapture } from '../../capture/index.js';
import { LiveMigrationError } from './errors.js';
import { LiveFlowPort } from './flow-port.js';
import { connectLabController, labLivePorts } from './lab-ports.js';
import type { ForcedPlan } from './planner-port.js';
import { startIn, sleep, waitFor, type Child } from './processes.js';
import { journalPath, readJournal, summarizeJournal } from '../journal.js';
import { buildReport, recordFromJournal, type VerificationReport, type WorkloadClientStats } from '../report.js';
import type { RetransmissionEvent } from '../../capture/tcp-analysis.js';
import { ScenarioStoppedError, type ScenarioStopCode } from './lab-run.js';

export const FAULTS = ['kill-destination-agent', 'disconnect-switch', 'corrupt-image', 'restore-fails', 'deadline'] as const;
export type FaultName = (typeof FAULTS)[number];

export interface ScenarioOptions {
  stateDir: string;
  tag: string;
  /** `stream`: a continuous stream; `ping-pong`: request/response pings beside a slow stream. */
  traffic?: 'stream' | 'ping-pong';
  migrations?: number;
  objective?: Objective;
  executor?: ExecutorName;
  /** Service state size (`1M`), dirty pages per second, stream rate (bytes/s, `2M`). */
  stateBytes?: string;
  dirtyRate?: number;
  streamRate?: string;
  /** How often the service's stream writes, ms (the workload's default: 1). */
  streamTickMs?: number;
  /**
   * Run the control plane (this process: controller and orchestrator; the agents) at SCHED_RR 1,
   * below the datapath's 2 (default false). See the comment where it is applied.
   */
  realtimeControl?: boolean;
  newMac?: string;
  /**
   * `coat` (default): hold, staged flows, one bundle per bridge, replay, the planner's strategy.
   * `coat-baseline`: the orchestrator's `coat-baseline` mode, COAT's published procedure with the
   * same parts: a new MAC per move (GARP and a neighbour flush at the client), no hold, the
   * destination built after the freeze, flows changed at switch time one flow-mod at a time
   * (delete, then add), cold (no pre-copy), every step after the previous one.
   */
  strategy?: 'coat' | 'coat-baseline';
  /** Inject one fault into the (first) migration. */
  fault?: FaultName;
  /** Bytes the client verifies before the first migration and after each (default 200 KB). */
  settleBytes?: number;
  /**
   * How long the client's traffic may take to flow again (`settleBytes` more verified) after a
   * migration before the run stops with `LIVE_TRAFFIC_STALLED` (default 20 s).
   */
  resumeTimeoutMs?: number;
  /**
   * After this migration (1-based) the service stops serving, as a hung service would: SIGSTOP by
   * its pid. The traffic cannot resume, so the run stops there (tests of a stopped run).
   */
  stopServiceAfter?: number;
  /**
   * Pin the strategy of `coat` migrations (cold, or pre-copy with N rounds) instead of MOSE's
   * choice; PAM still predicts it (benches, calibration runs: docs/planner.md).
   */
  plan?: ForcedPlan;
  progress?: (line: string) => void;
  onEvent?: (e: MigrationEvent) => void;
  log?: Logger;
}

/** The workload client's final statistics, as far as the scenario's callers use them. */
export interface ClientFigures {
  bytesReceived: number;
  bytesVerified: number;
  firstBadOffset: string | null;
  maxGapMs: number;
  resets: number;
  closed: { stream: boolean; ping: boolean };
  ping?: { answered: number; errors: number; rtt: { p50: number | null; p99: number | null; max: number | null } };
}

export interface ScenarioResult {
  tag: string;
  /** One verification report per migration (src/migration/report.ts). */
  reports: VerificationReport[];
  outcomes: MigrationOutcome[];
  client: ClientFigures & { raw: unknown };
  /** Where the service runs at the end, and whether it still serves its client. */
  finalHost: string;
  serviceAlive: boolean;
  /** The service's overlay address (the reports count the capture's connections to it). */
  serviceIp: string;
  /** Namespaces, ports and migration flows left behind (empty when clean). */
  leftovers: string[];
  /**
   * The whole capture, the service's connections: retransmissions (spurious ones included), resets,
   * the stream bytes the service put on the wire, and the packets libpcap dropped (kernel).
   */
  capture: { file: string; retransmissions: number; spuriousRetransmissions: number; resets: number; serviceBytesOnWire: number; kernelDropped: number };
  /**
   * Every pre-copy round's executor call as the source agent answered it (the orchestrator's
   * `precopy` step also streams the round): for PAM's calibration (docs/planner.md).
   */
  preDumps: PreDumpRecord[];
  /**
   * Where each migration's retransmissions of lost segments fell: the orchestrator step running
   * when the capture saw the retransmission (`after` past the last step, inside the report's
   * window). Empty lists when nothing was lost. What tells a loss in coat's hold/switch/replay
   * from one while the service ran normally beside a migration's CPU work.
   */
  losses: LossPlacement[];
}

export interface LossPlacement {
  migrationId: string;
  /** Each lost segment's retransmission: ms from the migration's start and the step it fell in. */
  lost: { tMs: number; step: string }[];
}

export interface PreDumpRecord {
  migrationId: string;
  round: number;
  /** The preDump request, sent to answered, ms. */
  ms: number;
  frozenMs: number;
  bytes: number;
  pages: number;
  timings: Record<string, number>;
}

const SERVICE_PORT = 7000;

/**
 * pid of the workload server whose state dir is `stateDir`. By /proc, not by `ss` in the service's
 * namespace: a namespace an agent made under `ip netns exec` lives in that agent's mount namespace
 * (`ip netns exec` makes / a slave mount), so its /run/netns entry is not visible from here.
 */
async function servicePid(stateDir: string): Promise<number | undefined> {
  for (const d of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(d)) continue;
    const argv = (await readFile(`/proc/${d}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv.includes('workload') && argv.includes('server') && argv[argv.indexOf('--state-dir') + 1] === stateDir) {
      const st = await readFile(`/proc/${d}/stat`, 'utf8').catch(() => '');
      if (!/\) [ZX] /.test(st)) return Number(d);
    }
  }
  return undefined;
}

export async function runLabScenario(opts: ScenarioOptions): Promise<ScenarioResult> {
  const progress = opts.progress ?? (() => {});
  const log = opts.log ?? rootLogger('lab-scenario');
  const state = await readState(opts.stateDir, opts.tag);
  if (!state || state.status !== 'up') throw new LiveMigrationError('LIVE_LAB', `lab ${opts.tag} is not up in ${opts.stateDir}`);
  const topo = state.topology as Topology;
  const tag = state.tag;
  const runDir = state.runDir;
  const svc = topo.endpoints.find((e) => e.role === 'service');
  const cli = topo.endpoints.find((e) => e.role === 'client');
  if (!svc || !cli) throw new LiveMigrationError('LIVE_LAB', 'the topology needs a service and a client endpoint');
  const svcIndex = topo.endpoints.indexOf(svc);
  const firstHost = svc.host;
  const other = topo.hosts.find((h) => h.name !== svc.host && h.name !== cli.host);
  if (!other) throw new LiveMigrationError('LIVE_LAB', 'the topology needs a second edge host for the service');
  const hostOf = (name: string) => state.hosts.find((h) => h.name === name)!;
  const ctlIp = state.controller?.ip ?? parseCidr(topo.management.subnet).address.replace(/\.\d+$/, '.1');
  const natsUrl = state.nats?.url;
  if (!natsUrl) throw new LiveMigrationError('LIVE_LAB', 'the lab has no nats-server');
  const executor = opts.executor ?? 'tcp-repair';
  const objective = opts.objective ?? 'min-downtime';
  const traffic = opts.traffic ?? 'stream';
  const stateBytes = opts.stateBytes ?? '1M';
  const dirtyRate = String(opts.dirtyRate ?? 50);
  const streamRate = opts.streamRate ?? (traffic === 'stream' ? '2M' : '64K');
  const settle = opts.settleBytes ?? 200_000;
  const serverArgs = (dir: string) => ['workload', 'server', '--host', svc.ip, '--port', String(SERVICE_PORT), '--state-dir', dir, '--state-bytes', stateBytes, '--dirty-rate', dirtyRate, '--stream-rate', streamRate, ...(opts.streamTickMs !== undefined ? ['--stream-tick-ms', String(opts.streamTickMs)] : [])];
  const stateDirOf = (host: string) => join(runDir, `svc-${host}`);
  /** The service's namespace on `host`: the lab's own on its first host, a tagged sibling elsewhere. */
  const netnsOf = (host: string) => (host === firstHost ? endpointNetns(tag, svc.name) : `${endpointNetns(tag, svc.name)}-${topo.hosts.findIndex((h) => h.name === host)}`);

  const children: Child[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  /** This process was raised to SCHED_RR: put it back when the scenario ends, whatever runs next. */
  let realtimeSelf = false;
  let connected: { controller: Controller; overlay: OverlayController } | undefined;
  let registry: AgentRegistry | undefined;
  try {
    // --- the userspace datapath first: ovs-vswitchd (netdev) is this lab's network, where a real
    // host forwards in the kernel's softirq, ahead of any process. On 2 shared cores the CPU work
    // beside a migration (a standby service compiling its code in prepare, the pre-copy image
    // stream, other processes on the machine) otherwise delays its polling thread past what the
    // ports' packet-socket receive buffers hold (~200 KB: tens of ms of the stream, less during a
    // pre-copy) and the kernel drops the service's segments (seen as retransmissions of lost
    // segments in plan, prepare and precopy, never from hold to replay). nice -10 lowered but did
    // not remove them: every ovs-vswitchd thread gets SCHED_RR priority 2 (sched(7)), which runs
    // ahead of every normal process when it has work and sleeps in poll() when it has none; the
    // kernel's RT throttling (sched_rt_runtime_us, 95 %) still bounds it. nice -10 when RT is refused.
    // 2: above the control plane's 1 (below), so no agent's CPU work can delay the datapath.
    for (const h of state.hosts) {
      const pid = Number((await readFile(join(h.ovsDir, 'ovs-vswitchd.pid'), 'utf8').catch(() => '')).trim());
      if (!(pid > 0)) continue;
      const rt = await setScheduling(pid, ['--rr'], 2);
      if (rt === undefined) continue;
      try {
        setPriority(pid, -10);
        progress(`ovs-vswitchd of ${h.name} (pid ${pid}): no SCHED_RR (${rt}); nice -10`);
      } catch (e) {
        progress(`ovs-vswitchd of ${h.name} (pid ${pid}) keeps its priority: ${rt}; ${(e as Error).message}`);
      }
    }

    // --- the controller for this run
    progress(`controller: listening on ${ctlIp}:${topo.controller.port}`);
    connected = await connectLabController(topo, tag, ctlIp, log);
    const { controller, overlay } = connected;
    progress(`controller: ${topo.hosts.length * 2} bridges connected and programmed`);

    // --- agents: the lab's own (one per host, NATS with a token), else started here
    const token = state.nats?.tokenFile ? (await readFile(state.nats.tokenFile, 'utf8')).trim() : undefined;
    const nats = { servers: natsUrl, ...(token ? { token } : {}) };
    let secret = randomBytes(32).toString('hex');
    const agentPids = new Map<string, number>();
    if (state.agents.length > 0 && state.agentSecretFile) {
      secret = (await readFile(state.agentSecretFile, 'utf8')).trim();
      for (const a of state.agents) agentPids.set(a.host, a.pid);
    } else {
      for (const h of state.hosts) {
        const a = startIn(h.namespace, [...coatArgv(), 'agent', '--host', h.name, '--nats', natsUrl, ...(token ? ['--token', token] : []), '--data-dir', join(runDir, `agent-${h.name}`), '--listen', `${h.underlayIp}:0`], { name: `agent-${h.name}`, env: { COAT_AGENT_SECRET: secret, COAT_LOG_LEVEL: process.env.COAT_LOG_LEVEL ?? 'warn' } });
        children.push(a);
        agentPids.set(h.name, a.pid);
      }
    }
    // 5 s, not the 1.5 s default: on a loaded 2-core machine a restoring agent misses heartbeats.
    registry = await AgentRegistry.connect({ nats, secret: Buffer.from(secret, 'utf8'), deadAfterMs: 5000, log: log.child({ part: 'registry' }) });
    await Promise.all(state.hosts.map((h) => registry!.waitFor(h.name, 30_000)));
    progress(`agents: ${state.hosts.map((h) => h.name).join(', ')} registered`);
    // --- optionally, the control plane at SCHED_RR 1, below the datapath. Inside the downtime a
    // migration is a chain of controller <-> agent round trips (dump, restore, resume) and barrier
    // replies; on 2 shared cores each can wait behind the workload, the capture and the standby
    // service for a time slice. Measured (1 and 10 MiB pre-copy, 2 x 10 and 2 x 6 runs each way):
    // switch p90 2.4-3.2 -> 1.4-1.6 ms and dump start to resume end ~41 -> ~36 ms, but the client's
    // gap median 26-27 -> 29-31 ms with outliers to 89 ms: the restored service is an ordinary
    // process, and it now waits behind the control plane's own work (replay, journal, capture) to
    // send again. The client's gap is what a user sees, so this is off unless asked for.
    if (opts.realtimeControl === true) {
      for (const pid of [...agentPids.values(), process.pid]) {
        // --reset-on-fork: what they start (the standby service, ovs-vsctl, ...) runs as normal.
        const refused = await setScheduling(pid, ['--reset-on-fork', '--rr'], 1);
        if (refused !== undefined) progress(`control plane pid ${pid} keeps its scheduling: ${refused}`);
        else if (pid === process.pid) realtimeSelf = true;
      }
    }

    // --- workload and capture
    await mkdir(stateDirOf(firstHost), { recursive: true });
    const server = startIn(netnsOf(firstHost), [...coatArgv(), ...serverArgs(stateDirOf(firstHost))], { name: 'server' });
    children.push(server);
    await waitFor('workload server listening', () => server.stdout().includes('"listening"') || (!server.running && Promise.reject(new Error(`server exited: ${server.stderr()}`))), 20_000);
    const pcapFile = join(runDir, 'client.pcap');
    const capture = await startCapture({
      iface: 'eth0',
      netns: endpointNetns(tag, cli.name),
      filter: `tcp port ${SERVICE_PORT} or tcp port ${SERVICE_PORT + 1}`,
      file: pcapFile,
      analysis: { bucketMs: 10, clientIp: cli.ip },
      log: log.child({ part: 'capture' }),
    });
    cleanups.push(async () => void (await capture.stop()));
    const statsPath = join(runDir, 'client-stats.json');
    const client = startIn(endpointNetns(tag, cli.name), [...coatArgv(), 'workload', 'client', '--host', svc.ip, '--port', String(SERVICE_PORT), '--ping-rate', traffic === 'ping-pong' ? '200' : '0', '--stats-file', statsPath], { name: 'client' });
    children.push(client);
    const stats = async () => JSON.parse(await readFile(statsPath, 'utf8').catch(() => 'null')) as (ClientFigures & { stream: { bytesVerified: number; bytesReceived: number; firstBadOffset: string | null }; ping: { answered: number }; durationMs: number }) | null;
    /**
     * The client's figures as of now: the file is rewritten every 200 ms, so the one on disk may be
     * 200 ms old (400 KB of a 2 MB/s stream), and bytes verified before now would later look like
     * traffic that flows again. Waits for the first rewrite after the call.
     */
    const freshStats = async () => {
      const seen = (await stats())?.durationMs ?? -1;
      return waitFor('a fresh client stats file', async () => {
        const s = await stats();
        return s && s.durationMs > seen ? s : undefined;
      }, 5_000);
    };
    const flowing = async (sinceVerified: number, sincePings: number, timeoutMs: number) =>
      waitFor('client traffic', async () => {
        const s = await stats();
        if (!client.running) throw new Error(`client exited: ${client.stderr().slice(-500)}`);
        return s && s.stream.bytesVerified >= sinceVerified + settle && (traffic !== 'ping-pong' || s.ping.answered >= sincePings + 50) ? s : undefined;
      }, timeoutMs);
    let s0 = await flowing(0, 0, 20_000);
    progress(`workload: ${svc.name}@${firstHost} serving ${cli.name}@${cli.host} (${traffic}); ${s0.stream.bytesVerified} bytes verified`);

    // --- the orchestrator over the live ports
    const baseline = opts.strategy === 'coat-baseline';
    const { flows, agents: agentPort, planner } = labLivePorts({
      state,
      topo,
      controller,
      overlay,
      registry,
      service: svc.name,
      netnsOf,
      stateDirOf,
      commandOf: (host) => [...coatArgv(), ...serverArgs(stateDirOf(host))],
      client: { host: cli.host, netns: endpointNetns(tag, cli.name) },
      coatBaseline: baseline,
      ...(opts.plan ? { force: opts.plan } : {}),
    });
    const orchestratorOpts: OrchestratorOptions = {
      dataDir: join(runDir, 'controller'),
      log: log.child({ part: 'orchestrator' }),
      stepTimeoutMs: 30_000,
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    };

    // Pre-copy rounds as the executor timed them (the step's detail keeps only sizes).
    const preDumps: PreDumpRecord[] = [];
    const preDump = agentPort.preDump.bind(agentPort);
    agentPort.preDump = async (host, m, round, signal) => {
      const t0 = performance.now();
      const d = await preDump(host, m, round, signal);
      preDumps.push({ migrationId: m.migrationId, round, ms: performance.now() - t0, frozenMs: d.frozenMs, bytes: d.bytes, pages: d.pages, timings: d.timings });
      return d;
    };

    const outcomes: MigrationOutcome[] = [];
    const count = opts.migrations ?? 1;
    let at = firstHost;
    let mac = svc.mac;
    // Why the run stopped before its last migration: it still ends (capture, reports) and throws
    // a ScenarioStoppedError carrying the reports of the migrations that ran.
    let stopped: { code: ScenarioStopCode; message: string; afterMigration: number } | undefined;
    for (let i = 0; i < count; i++) {
      const to = at === firstHost ? other.name : firstHost;
      const pid = await servicePid(stateDirOf(at));
      if (pid === undefined) {
        if (i === 0) throw new LiveMigrationError('LIVE_LAB', `no workload server with state dir ${stateDirOf(at)}`);
        stopped = { code: 'LIVE_SERVICE_GONE', message: `after migration ${i}: no workload server with state dir ${stateDirOf(at)} on ${at}`, afterMigration: i };
        break;
      }
      const ref: MigrationRef = {
        migrationId: `m-${tag}-${i + 1}`,
        service: { name: svc.name, netns: netnsOf(at), ip: svc.ip, mac, pid, stateDir: stateDirOf(at) },
        source: at,
        destination: to,
        clientHost: cli.host,
        executor,
        ...(baseline ? { newMac: `02:c0:a7:01:00:${(i + 1).toString(16).padStart(2, '0')}` } : opts.newMac ? { newMac: opts.newMac } : {}),
      };
      const fault = i === 0 ? opts.fault : undefined;
      const restartAgent = (host: string) => {
        // The agent's supervisor: the same command line as the lab's, its journal in the same dir.
        const h = hostOf(host);
        const a = startIn(h.namespace, [...coatArgv(), 'agent', '--host', host, '--nats', natsUrl, ...(token ? ['--token', token] : []), '--data-dir', join(runDir, `agent-${host}`), '--listen', `${h.underlayIp}:0`], { name: `agent-${host}`, env: { COAT_AGENT_SECRET: secret, COAT_LOG_LEVEL: process.env.COAT_LOG_LEVEL ?? 'warn' } });
        children.push(a);
        agentPids.set(host, a.pid);
      };
      const ports = fault ? withFault(fault, { flows, agents: agentPort, controller, agentPids, restartAgent, destination: to, destAgentDir: join(runDir, `agent-${to}`), destStateDir: stateDirOf(to), ref, topo, tag, orchestratorOpts }) : { flows, agents: agentPort, extra: {} };
      progress(`migration ${i + 1}/${count}: ${svc.name} ${at} -> ${to}${fault ? ` (fault: ${fault})` : ''}`);
      const orch = new Orchestrator({ flows: ports.flows, agents: ports.agents, planner }, { ...orchestratorOpts, ...ports.extra });
      const outcome = await orch.migrate({ ref, objective, mode: baseline ? 'coat-baseline' : 'coat' });
      outcomes.push(outcome);
      progress(`migration ${i + 1}/${count}: ${outcome.state}${outcome.failedStep ? ` at ${outcome.failedStep}: ${outcome.error?.message}` : ''} in ${(outcome.endedAtMs - outcome.startedAtMs).toFixed(0)} ms`);
      // Past resume the service runs at the destination, even when a later step failed.
      if (outcome.steps.some((st) => st.name === 'resume' && st.ok)) {
        at = to;
        if (ref.newMac) mac = ref.newMac;
      }
      if (opts.stopServiceAfter === i + 1) {
        const hung = await servicePid(stateDirOf(at));
        if (hung !== undefined) process.kill(hung, 'SIGSTOP');
        progress(`service pid ${hung ?? 'none'} on ${at} stopped (SIGSTOP): it no longer serves`);
      }
      const resumeMs = opts.resumeTimeoutMs ?? 20_000;
      try {
        // Counted from the migration's end: bytes the client verified while the service still ran
        // at the source (plan, prepare, pre-copy) do not show that it serves again.
        const after = await freshStats();
        s0 = await flowing(after.stream.bytesVerified, after.ping.answered, resumeMs);
      } catch (e) {
        stopped = { code: 'LIVE_TRAFFIC_STALLED', message: `after migration ${i + 1} (${outcome.state}): the client's traffic did not resume within ${resumeMs} ms: ${(e as Error).message}`, afterMigration: i + 1 };
        break;
      }
    }
    if (stopped) progress(`stopped: ${stopped.message}`);

    // --- the end: pause the service so the client reads every byte it sent, then stop everything
    const finalPid = await servicePid(stateDirOf(at));
    const serviceAlive = finalPid !== undefined && client.running;
    if (finalPid !== undefined) process.kill(finalPid, 'SIGSTOP');
    progress(`end: service pid ${finalPid ?? 'none'} on ${at} paused; waiting for the client to read everything`);
    // Stable = the client's count did not move across three stats-file rewrites (200 ms each).
    let last = -1;
    let stable = 0;
    await waitFor('client drained', async () => {
      const v = (await stats())?.stream.bytesReceived ?? 0;
      stable = v === last ? stable + 1 : 0;
      last = v;
      await sleep(200);
      return stable >= 3 ? true : undefined;
    }, 15_000).catch((e: Error) => progress(`end: ${e.message}; the report will show what was not read`));
    const captured = await capture.stop();
    cleanups.length = 0;
    await client.stop();
    const finalJson = client.stdout().trim();
    type RawClientStats = WorkloadClientStats & {
      stream: { bytesReceived: number; bytesVerified: number; firstBadOffset: string | null; maxGapMs: number };
      ping: NonNullable<ClientFigures['ping']>;
      resets: number;
      closed: ClientFigures['closed'];
      maxGapMs: number;
    };
    // A client that died (a stopped run) printed no final figures: its last stats file has the same shape.
    const rawFinal = (() => {
      try {
        return JSON.parse(finalJson.slice(finalJson.lastIndexOf('\n{') + 1) || 'null') as RawClientStats | null;
      } catch {
        return null;
      }
    })();
    const raw = rawFinal ?? ((await stats()) as RawClientStats | null);
    if (!raw) throw new LiveMigrationError('LIVE_LAB', `the workload client left no statistics (exit: ${client.stderr().slice(-300)})`);
    if (finalPid !== undefined) {
      process.kill(finalPid, 'SIGCONT');
      process.kill(finalPid, 'SIGKILL');
    }
    const figures: ClientFigures = {
      bytesReceived: raw.stream.bytesReceived,
      bytesVerified: raw.stream.bytesVerified,
      firstBadOffset: raw.stream.firstBadOffset,
      maxGapMs: raw.maxGapMs,
      resets: raw.resets,
      closed: raw.closed,
      ...(raw.ping ? { ping: raw.ping } : {}),
    };
    // The report's witness: the client's bytes over both connections (stream and ping answers), as
    // the capture counts the service's bytes on both.
    const witness: WorkloadClientStats = {
      bytesSent: raw.bytesSent,
      bytesReceived: raw.bytesReceived,
      bytesVerified: raw.bytesVerified,
      maxGapMs: raw.maxGapMs,
      resets: raw.resets,
      errors: raw.errors ?? [],
      stream: { firstBadOffset: raw.stream.firstBadOffset },
      ping: { errors: raw.ping?.errors ?? 0 },
    };
    const analysis = captured.analysis;
    const kernelDropped = captured.kernel?.dropped ?? 0;
    const reports = outcomes.map((o, i) =>
      buildReport({
        // A migration's window ends 1 s after it, or where the next one starts: a loss is counted
        // once, in the migration it happened in (or, past its end, the next one).
        ...(outcomes[i + 1] ? { marginMs: Math.max(0, Math.min(1000, outcomes[i + 1]!.startedAtMs - o.endedAtMs)) } : {}),
        migration: recordFromJournal(summarizeJournal(readJournal(journalPath(orchestratorOpts.dataDir, o.migrationId)).records)),
        capture: { ...analysis, file: pcapFile, kernelDropped },
        client: witness,
        serviceIp: svc.ip,
        complete: true,
        // One migration: the client's own largest gap; several: each one's gap at the client's interface.
        downtimeFrom: outcomes.length > 1 ? 'capture' : 'client',
      }),
    );
    const losses: LossPlacement[] = reports.map((rep, i) => ({
      migrationId: rep.migrationId,
      lost: placeLosses(rep, analysis.retransmissionEvents, svc.ip, outcomes[i]!.endedAtMs + (outcomes[i + 1] ? Math.max(0, Math.min(1000, outcomes[i + 1]!.startedAtMs - outcomes[i]!.endedAtMs)) : 1000)),
    }));
    for (const l of losses) {
      if (l.lost.length === 0) continue;
      const byStep = new Map<string, number>();
      for (const x of l.lost) byStep.set(x.step, (byStep.get(x.step) ?? 0) + 1);
      progress(`${l.migrationId}: lost segments retransmitted during ${[...byStep].map(([st, n]) => `${st} ${n}`).join(', ')} (first at ${l.lost[0]!.tMs} ms)`);
    }
    const svcStream = analysis.connections.flatMap((c) => c.directions).filter((d) => d.src === `${svc.ip}:${SERVICE_PORT}`);
    const svcConns = analysis.connections.filter((c) => c.directions.some((d) => d.src.startsWith(`${svc.ip}:`)));
    const svcEvents = analysis.retransmissionEvents.filter((e) => e.src.startsWith(`${svc.ip}:`) || e.dst.startsWith(`${svc.ip}:`));

    // --- leftovers: namespaces of the service on hosts where it does not run, hold/staged flows
    const leftovers: string[] = [];
    // The service's port must be gone from the bridge of the host it left (the agent cleared it).
    // A bridge that is away (a fault disconnected it) is waited for: an unchecked bridge is not a clean one.
    const bridgeOf = (h: string) => controller.waitForSwitch(hostLayout(topo, tag, h).integrationDpid, 20_000).catch(() => undefined);
    for (const h of [firstHost, other.name]) {
      if (h === at) continue;
      const sw = await bridgeOf(h);
      const portsNow = sw ? (await sw.multipart({ type: 'port_desc' })).flatMap((b) => b.ports) : [];
      if (portsNow.some((p) => p.name === endpointHostIf(tag, svcIndex))) leftovers.push(`${h}: port ${endpointHostIf(tag, svcIndex)} still on the bridge`);
      // No standby or restored service may be left where the service does not run.
      const stray = await servicePid(stateDirOf(h));
      if (stray !== undefined) leftovers.push(`${h}: a service process (pid ${stray}) still runs with state dir ${stateDirOf(h)}`);
    }
    for (const h of topo.hosts) {
      const sw = await bridgeOf(h.name);
      if (!sw) {
        leftovers.push(`${h.name}: integration bridge not connected: its flows could not be checked`);
        continue;
      }
      for (const f of await sw.dumpCoatFlows()) {
        const band = Number((f.cookie >> 40n) & 0xffn);
        if (band === 2 || band === 4 || band === 5) leftovers.push(`${h.name}: flow priority ${f.priority} cookie 0x${f.cookie.toString(16)} (migration band)`);
      }
    }
    const result: ScenarioResult = {
      tag,
      reports,
      outcomes,
      client: { ...figures, raw },
      finalHost: at,
      serviceAlive,
      serviceIp: svc.ip,
      leftovers,
      capture: {
        file: pcapFile,
        retransmissions: svcEvents.length,
        spuriousRetransmissions: svcEvents.filter((e) => e.spurious).length,
        resets: svcConns.reduce((n, c) => n + c.resets, 0),
        serviceBytesOnWire: svcStream.reduce((n, d) => n + (d.streamBytes ?? 0), 0),
        kernelDropped,
      },
      preDumps,
      losses,
    };
    if (stopped) throw new ScenarioStoppedError(stopped.code, stopped.message, stopped.afterMigration, result);
    return result;
  } finally {
    if (realtimeSelf) await setScheduling(process.pid, ['--other'], 0);
    for (const c of cleanups) await c().catch(() => undefined);
    for (const c of children.reverse()) await c.stop(2000).catch(() => undefined);
    // the restored service is the destination agent's child: stop whatever still listens
    for (const h of [firstHost, other.name]) {
      const pid = await servicePid(stateDirOf(h)).catch(() => undefined);
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    await registry?.close().catch(() => undefined);
    await registry?.nc.close().catch(() => undefined);
    await connected?.overlay.close().catch(() => undefined);
    await connected?.controller.close().catch(() => undefined);
  }
}

/**
 * The lost segments' retransmissions on the service's connections between the migration's start
 * and `windowEndMs` (epoch), each placed in the step that ran then (the report's steps, ms from the
 * start; the last step that began before it when steps overlap none).
 */
export function placeLosses(rep: VerificationReport, events: readonly RetransmissionEvent[], serviceIp: string, windowEndMs: number): LossPlacement['lost'] {
  const lost: LossPlacement['lost'] = [];
  for (const e of events) {
    if (e.spurious || !(e.src.startsWith(`${serviceIp}:`) || e.dst.startsWith(`${serviceIp}:`))) continue;
    const atMs = e.tsUs / 1000;
    if (atMs < rep.startedAtMs || atMs > windowEndMs) continue;
    const tMs = +(atMs - rep.startedAtMs).toFixed(1);
    const during = rep.steps.filter((st) => st.startMs <= tMs);
    const inside = during.find((st) => tMs <= st.endMs);
    const step = inside?.name ?? (tMs > Math.max(0, ...rep.steps.map((st) => st.endMs)) ? 'after' : (during.at(-1)?.name ?? 'before'));
    lost.push({ tMs, step });
  }
  return lost;
}

interface FaultContext {
  flows: LiveFlowPort;
  agents: LiveAgentPort;
  controller: Controller;
  agentPids: Map<string, number>;
  restartAgent: (host: string) => void;
  destination: string;
  destAgentDir: string;
  destStateDir: string;
  ref: MigrationRef;
  topo: Topology;
  tag: string;
  orchestratorOpts: OrchestratorOptions;
}

/**
 * Wraps the ports so that one step fails the way the fault says, for real: the destination agent
 * process is killed, the destination bridge's OpenFlow connection is cut, the streamed image is
 * corrupted on the destination's disk, the destination's restore command does not exist, or the
 * restore step's deadline is too short to finish.
 */
function withFault(fault: FaultName, c: FaultContext): { flows: FlowPort; agents: AgentPort; extra: Partial<OrchestratorOptions> } {
  const agents: AgentPort = Object.create(c.agents) as AgentPort;
  const flows: FlowPort = Object.create(c.flows) as FlowPort;
  const extra: Partial<OrchestratorOptions> = {};
  switch (fault) {
    case 'kill-destination-agent': {
      // The agent dies with what it started (the standby service), as under a supervisor that
      // kills the unit's whole process group (systemd's KillMode=control-group); the supervisor
      // starts it again a second later; the restore was lost with it. coat asks for the restore
      // with the dump: the agent dies while the image is on its way (the dump's stream fails) or
      // just after it landed (the restore fails); both happen here; coat-baseline, at its restore.
      const kill = async () => {
        const pid = c.agentPids.get(c.destination);
        if (pid !== undefined) for (const p of await processTree(pid)) killQuietly(p);
        setTimeout(() => c.restartAgent(c.destination), 1000);
      };
      agents.restoreOnArrival = async (host, m, ticket, signal) => {
        await kill();
        return c.agents.restoreOnArrival(host, m, ticket, signal);
      };
      agents.restore = async (host, m, signal) => {
        await kill();
        return c.agents.restore(host, m, signal);
      };
      break;
    }
    case 'disconnect-switch': {
      // The destination's bridge drops its OpenFlow connection as the flows move to it (coat: the
      // hold bundle, which is the switch; coat-baseline: its switch step).
      const cut = () => c.controller.switches.get(hostLayout(c.topo, c.tag, c.destination).integrationDpid)?.close({ code: 'OFC_LOCAL', message: 'fault injection: switch disconnected' });
      flows.holdAndSwitch = async (m, signal) => {
        cut();
        return c.flows.holdAndSwitch(m, signal);
      };
      flows.switchTo = async (m, side, signal) => {
        if (side === 'destination') cut();
        return c.flows.switchTo(m, side, signal);
      };
      break;
    }
    case 'corrupt-image': {
      // The final image (the `dump` step) is corrupted on the destination's disk after the
      // receiver checked it, before restore reads it: pre-copy rounds are applied in the
      // background as they arrive, so a corrupted round file would be read by nobody.
      const dumpDir = (m: MigrationRef) => join(c.destAgentDir, 'images', m.migrationId, 'dump');
      agents.restoreOnArrival = async (host, m, _ticket, signal) => {
        // In place of the agent's own wait: the image lands, is corrupted, then restore runs.
        await waitFor('the final image at the destination', async () => ((await stat(dumpDir(m)).catch(() => undefined)) ? true : undefined), 30_000);
        await corruptImage(dumpDir(m));
        return c.agents.restore(host, m, signal);
      };
      agents.restore = async (host, m, signal) => {
        await corruptImage(dumpDir(m));
        return c.agents.restore(host, m, signal);
      };
      break;
    }
    case 'restore-fails': {
      // The service cannot start at the destination: the standby that prepare started dies
      // (killed by its pid) and the command restore would start instead does not exist.
      const broken = async () => {
        const standby = await servicePid(c.destStateDir);
        if (standby !== undefined) process.kill(standby, 'SIGKILL');
        await sleep(200);
        const real = c.agents.serviceFor.bind(c.agents);
        const patched = Object.create(c.agents) as LiveAgentPort;
        patched.serviceFor = (h, mm, role) => ({ ...real(h, mm, role), ...(role === 'destination' ? { command: ['/nonexistent/coat-service'] } : {}) });
        return patched;
      };
      agents.restoreOnArrival = async (host, m, ticket, signal) => LiveAgentPort.prototype.restoreOnArrival.call(await broken(), host, m, ticket, signal);
      agents.restore = async (host, m, signal) => LiveAgentPort.prototype.restore.call(await broken(), host, m, signal);
      break;
    }
    case 'deadline':
      // The dump step's deadline passes while the image is on its way and (coat) the destination
      // restores it on arrival: the rollback waits for both.
      extra.stepTimeouts = { dump: 1 };
      break;
  }
  return { flows, agents, extra };
}

/**
 * `chrt --all-tasks POLICY... --pid PRIORITY PID` (sched(7)): every thread of `pid`. Resolves with
 * why it was refused (no CAP_SYS_NICE, RT throttling settings), undefined when it took.
 */
async function setScheduling(pid: number, policy: string[], priority: number): Promise<string | undefined> {
  return exec('chrt', ['--all-tasks', ...policy, '--pid', String(priority), String(pid)], { timeoutMs: 5000 }).then(
    () => undefined,
    (e: Error) => e.message,
  );
}

/** `pid` and its descendants (by /proc/PID/stat's ppid), the root first. */
async function processTree(pid: number): Promise<number[]> {
  const parentOf = new Map<number, number>();
  for (const d of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(d)) continue;
    const st = await readFile(`/proc/${d}/stat`, 'utf8').catch(() => '');
    // The fields after the command name, which may itself hold spaces and parentheses.
    const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
    if (Number.isFinite(ppid)) parentOf.set(Number(d), ppid);
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) for (const [p, pp] of parentOf) if (pp === out[i]) out.push(p);
  return out;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Flips bytes in the middle of the largest file of the image (after it was streamed and checked). */
async function corruptImage(dir: string): Promise<void> {
  const r = await exec('find', [dir, '-type', 'f', '-size', '+0', '-printf', '%s %p\\n'], { timeoutMs: 5000 });
  const files = r.stdout.split('\n').filter(Boolean).map((l) => ({ size: Number(l.split(' ')[0]), path: l.slice(l.indexOf(' ') + 1) })).sort((a, b) => b.size - a.size);
  const f = files[0];
  if (!f) throw new LiveMigrationError('LIVE_LAB', `no image file to corrupt under ${dir}`);
  const buf = await readFile(f.path);
  const from = Math.max(0, Math.floor(buf.length / 2) - 32);
  for (let i = from; i < Math.min(buf.length, from + 64); i++) buf[i] = buf[i]! ^ 0xff;
  await writeFile(f.path, buf);
}
