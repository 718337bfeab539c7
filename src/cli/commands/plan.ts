/**
 * `coat plan`: what MOSE's designer would do for a migration, from PAM's prediction at the worst-case
 * dirty rate. Offline (what-if) with explicit --state-bytes, --dirty-pages-per-s and --bandwidth-mbit;
 * live (--service, --to) against a running lab: the source host's agent profiles the service (M, R;
 * MOSE's profiling module) and L is the slower underlay link of the two hosts (the topology's rate,
 * which is what the lab shapes and what calibration runs record).
 *
 * The agents are reached over the lab's NATS, which lives in the lab's control-plane namespace
 * (TAG-ctl), as a controller on another machine would reach them: run elsewhere, the command runs
 * itself again inside that namespace (`ip netns exec`) and relays what it prints.
 */
import { readFile } from 'node:fs/promises';
import { coatArgv } from '../../../lab/up.js';
import { listStates, readState, stateDir, type LabState } from '../../../lab/state.js';
import { AgentRegistry } from '../../agent/client.js';
import { CoatError } from '../../errors.js';
import { exec } from '../../exec.js';
import { findLabService } from '../../migration/live/lab-backend.js';
import { movedStateBytes, profileService } from '../../migration/live/planner-port.js';
import { defaultCalibrationPath, plannerConstants } from '../../migration/pam-calibration-file.js';
import { PamInputError } from '../../migration/pam.js';
import { OBJECTIVES, plan, planFromProfile, type Objective, type Plan } from '../../migration/planner.js';
import { EXECUTOR_NAMES, type ExecutorName } from '../../migration/executor.js';
import { ExitCode, parseFlags, UsageError, writeJson, type CliIO, type Command } from '../command.js';

const HELP = `usage: coat plan --objective min-downtime|min-resources --target-downtime MS --target-total MS
                 (--state-bytes SIZE --dirty-pages-per-s R --bandwidth-mbit L
                  | --service NAME --to HOST [--from HOST] [--state-dir DIR] [--tag TAG])
                 [--max-bandwidth-mbit L] [--executor NAME] [--calibration FILE] [--max-rounds N] [--json]

Chooses cold migration or iterative pre-copy (rounds I, bandwidth L) with MOSE's rules from PAM's
prediction at the worst-case dirty-page rate, and prints the plan with the reason for each choice.

  --objective O            min-downtime: pre-copy at the maximum bandwidth with the largest I meeting
                           --target-total, else cold; min-resources: cold with the smallest L meeting
                           --target-downtime, else the maximum bandwidth
  --target-downtime MS     target downtime, ms
  --target-total MS        target total migration time, ms
  --state-bytes SIZE       offline: state size M (bytes; suffixes k M G = 10^3.., Ki Mi Gi = 2^10..)
  --dirty-pages-per-s R    offline: worst-case dirty-page rate, pages/s (4 KiB pages)
  --bandwidth-mbit L       offline: available bandwidth between the hosts, Mbit/s
  --max-bandwidth-mbit L   cap on the bandwidth the migration may use, Mbit/s (default: all of it)
  --service NAME --to HOST live, against a running lab (coat lab up, with agents): the source agent
                           profiles the service's process (M, R over 300 ms); L is the slower
                           underlay link of the two hosts in the topology (or --bandwidth-mbit)
  --from HOST              live: where the service runs now (default: its host in the topology)
  --state-dir DIR --tag T  live: which lab (default $COAT_LAB_DIR or /run/coat/labs; the only lab up)
  --executor NAME          whose constants to use: ${EXECUTOR_NAMES.join(', ')} (default tcp-repair)
  --calibration FILE       constants fitted by coat calibrate (default ${defaultCalibrationPath()})
  --max-rounds N           most pre-copy rounds considered (default 8)
  --json                   {strategy, iterations, bandwidthMbit, predicted {downtimeMs, totalMs},
                           meetsTargets, reason, ...}
`;

/** Parses "10MB", "1.5e6", "4Mi": decimal (k, M, G, T) or binary (Ki, Mi, Gi, Ti) multipliers; B optional. */
export function parseSize(text: string, flag: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(k|K|M|G|T|Ki|Mi|Gi|Ti)?B?\s*$/.exec(text);
  if (!m) throw new UsageError(`${flag}: '${text}' is not a size (e.g. 10000000, 10MB, 9.5Mi)`);
  const mult: Record<string, number> = { k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return Number(m[1]) * (m[2] ? mult[m[2]]! : 1);
}

export function parseNumber(text: string | undefined, flag: string, opts: { positive?: boolean } = {}): number {
  const v = Number(text);
  if (text === undefined || text.trim() === '' || !Number.isFinite(v) || v < 0 || (opts.positive && v === 0)) {
    throw new UsageError(`${flag}: '${text}' must be a ${opts.positive ? 'positive' : 'non-negative'} number`);
  }
  return v;
}

export class PlanUnavailableError extends CoatError {
  constructor(message: string) {
    super('PLAN_LIVE_UNAVAILABLE', message);
  }
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function formatPlan(p: Plan): string {
  const lines = [
    `strategy:   ${p.strategy}${p.strategy === 'precopy' ? ` (${p.iterations} pre-copy round${p.iterations === 1 ? '' : 's'})` : ''}`,
    `bandwidth:  ${p.bandwidthMbit} Mbit/s`,
    `predicted:  downtime ${Math.round(p.predicted.downtimeMs)} ms, total ${Math.round(p.predicted.totalMs)} ms (upper bounds at the worst-case dirty rate)`,
    `targets:    ${p.meetsTargets ? 'met' : `NOT met (downtime ${p.meets.downtime ? 'met' : 'missed'}, total ${p.meets.total ? 'met' : 'missed'})`}`,
    'why:',
    ...p.reasons.map((r) => `  - ${r}`),
    'rounds:',
    ...p.model.rounds.map(
      (r) =>
        `  ${String(r.index).padStart(2)} ${r.kind.padEnd(20)} ${(r.bytes / 1e6).toFixed(3).padStart(10)} MB  checkpoint ${Math.round(r.checkpointMs)} ms  transfer ${Math.round(r.transferMs)} ms${r.restoreMs ? `  restore ${Math.round(r.restoreMs)} ms` : ''}  = ${Math.round(r.totalMs)} ms`,
    ),
  ];
  return lines.join('\n') + '\n';
}

export const command: Command = {
  summary: 'plan a migration (PAM model + MOSE designer): cold or pre-copy, rounds, bandwidth',
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseFlags(argv, {
      service: { type: 'string' },
      to: { type: 'string' },
      from: { type: 'string' },
      'state-dir': { type: 'string' },
      tag: { type: 'string' },
      objective: { type: 'string' },
      'target-downtime': { type: 'string' },
      'target-total': { type: 'string' },
      'state-bytes': { type: 'string' },
      'dirty-pages-per-s': { type: 'string' },
      'bandwidth-mbit': { type: 'string' },
      'max-bandwidth-mbit': { type: 'string' },
      executor: { type: 'string' },
      calibration: { type: 'string' },
      'max-rounds': { type: 'string' },
    });
    if (values.help) {
      io.stdout.write(HELP);
      return ExitCode.ok;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}' (coat plan --help)`);
    const objective = str(values.objective) ?? 'min-downtime';
    if (!OBJECTIVES.includes(objective as Objective)) throw new UsageError(`--objective must be one of ${OBJECTIVES.join(', ')} (got '${objective}')`);
    const missingTargets = ['target-downtime', 'target-total'].filter((f) => values[f] === undefined);
    if (missingTargets.length > 0) throw new UsageError(`missing --${missingTargets.join(' and --')} (coat plan --help)`);
    const targetDowntimeMs = parseNumber(str(values['target-downtime']), '--target-downtime');
    const targetTotalMs = parseNumber(str(values['target-total']), '--target-total');
    const executor = str(values.executor) ?? 'tcp-repair';
    if (!(EXECUTOR_NAMES as readonly string[]).includes(executor)) throw new UsageError(`--executor must be one of ${EXECUTOR_NAMES.join(', ')}`);
    const maxRounds = values['max-rounds'] === undefined ? undefined : parseNumber(str(values['max-rounds']), '--max-rounds');
    if (maxRounds !== undefined && !Number.isInteger(maxRounds)) throw new UsageError('--max-rounds must be an integer');

    const calibrationPath = str(values.calibration) ?? defaultCalibrationPath();
    const live = values.service !== undefined || values.to !== undefined;
    if (live) {
      if (values.service === undefined || values.to === undefined) throw new UsageError('live planning needs both --service NAME and --to HOST');
      const lab = await findLab(stateDir(str(values['state-dir'])), str(values.tag));
      const ctl = `${lab.tag}-ctl`;
      if (process.env.COAT_PLAN_IN_NETNS !== ctl) return relayInNetns(ctl, argv, io);
      const capMbit = values['max-bandwidth-mbit'] === undefined ? Infinity : parseNumber(str(values['max-bandwidth-mbit']), '--max-bandwidth-mbit', { positive: true });
      const linkMbit = values['bandwidth-mbit'] === undefined ? undefined : parseNumber(str(values['bandwidth-mbit']), '--bandwidth-mbit', { positive: true });
      const { constants, calibrated } = await plannerConstants(executor, calibrationPath);
      if (!calibrated) io.stderr.write(`coat plan: no calibration for executor '${executor}' in ${calibrationPath}: using default constants (background.md §5)\n`);
      const found = await profileInLab(lab, str(values.service)!, str(values.to)!, str(values.from), executor as ExecutorName);
      found.profile.stateBytes = movedStateBytes(executor as ExecutorName, found.profile);
      const maxBandwidthMbit = Math.min(linkMbit ?? found.linkMbit ?? Infinity, capMbit);
      if (!Number.isFinite(maxBandwidthMbit)) throw new PlanUnavailableError(`the topology gives no rate for the underlay link ${found.source} - ${str(values.to)}: pass --bandwidth-mbit`);
      let result: Plan;
      try {
        result = planFromProfile(found.profile, objective as Objective, { targetDowntimeMs, targetTotalMs, maxBandwidthMbit, preCopySupported: executor !== 'hooks', ...(maxRounds !== undefined ? { maxPreDumpRounds: maxRounds } : {}) }, { constants });
      } catch (err) {
        if (err instanceof PamInputError) {
          io.stderr.write(`coat plan: ${err.code}: ${err.message}\n`);
          return ExitCode.badInput;
        }
        throw err;
      }
      // M as the executor moves it (movedStateBytes): tcp-repair's is the state dir.
      const inputs = { service: values.service, from: found.source, to: values.to, pid: found.pid, stateBytes: found.profile.stateBytes, dirtyPagesPerS: found.profile.dirtyPagesPerSecond ?? 0, maxBandwidthMbit, targetDowntimeMs, targetTotalMs, profile: found.profile };
      if (values.json) writeJson(io.stdout, { ...result, executor, calibrated, calibrationFile: calibrationPath, inputs });
      else {
        io.stdout.write(`profiled:   ${values.service} (pid ${found.pid}) on ${found.source}: M ${(found.profile.stateBytes / 1e6).toFixed(2)} MB, R ${found.profile.dirtyPagesPerSecond ?? 0} pages/s; L ${maxBandwidthMbit} Mbit/s to ${values.to}\n`);
        io.stdout.write(formatPlan(result));
      }
      return ExitCode.ok;
    }

    const offlineFlags = ['state-bytes', 'dirty-pages-per-s', 'bandwidth-mbit'] as const;
    const missingOffline = offlineFlags.filter((f) => values[f] === undefined);
    if (missingOffline.length > 0) throw new UsageError(`missing --${missingOffline.join(', --')} (offline planning) or --service and --to (live)`);
    const stateBytes = parseSize(str(values['state-bytes'])!, '--state-bytes');
    const dirtyPagesPerS = parseNumber(str(values['dirty-pages-per-s']), '--dirty-pages-per-s');
    const linkMbit = parseNumber(str(values['bandwidth-mbit']), '--bandwidth-mbit', { positive: true });
    const capMbit = values['max-bandwidth-mbit'] === undefined ? Infinity : parseNumber(str(values['max-bandwidth-mbit']), '--max-bandwidth-mbit', { positive: true });
    const maxBandwidthMbit = Math.min(linkMbit, capMbit);

    const { constants, calibrated } = await plannerConstants(executor, calibrationPath);
    if (!calibrated) io.stderr.write(`coat plan: no calibration for executor '${executor}' in ${calibrationPath}: using default constants (background.md §5)\n`);

    let result: Plan;
    try {
      result = plan(
        { objective: objective as Objective, stateBytes, dirtyPagesPerS, maxBandwidthMbit, targetDowntimeMs, targetTotalMs, ...(maxRounds !== undefined ? { maxPreDumpRounds: maxRounds } : {}) },
        { constants },
      );
    } catch (err) {
      if (err instanceof PamInputError) {
        io.stderr.write(`coat plan: ${err.code}: ${err.message}\n`);
        return ExitCode.badInput;
      }
      throw err;
    }
    if (values.json) {
      writeJson(io.stdout, {
        ...result,
        executor,
        calibrated,
        calibrationFile: calibrationPath,
        inputs: { stateBytes, dirtyPagesPerS, maxBandwidthMbit, targetDowntimeMs, targetTotalMs, ...(values.service ? { service: values.service, to: values.to } : {}) },
      });
    } else {
      io.stdout.write(formatPlan(result));
    }
    return ExitCode.ok;
  },
};

/** The lab to plan in: `tag` if given, else the only lab that is up. */
async function findLab(dir: string, tag: string | undefined): Promise<LabState> {
  const tags = tag ? [tag] : await listStates(dir);
  const up: LabState[] = [];
  for (const t of tags) {
    const st = await readState(dir, t);
    if (st?.status === 'up') up.push(st);
  }
  if (up.length === 0) throw new PlanUnavailableError(`live planning needs a running lab (coat lab up): ${tag ? `lab ${tag} is not up` : 'no lab is up'} in ${dir}; plan offline with --state-bytes, --dirty-pages-per-s, --bandwidth-mbit`);
  if (up.length > 1) throw new UsageError(`${up.length} labs are up in ${dir} (${up.map((s) => s.tag).join(', ')}): name one with --tag`);
  return up[0]!;
}

/** Runs this same command inside the lab's control-plane namespace and relays its output and exit code. */
async function relayInNetns(netns: string, argv: string[], io: CliIO): Promise<number> {
  const [node, ...rest] = coatArgv();
  const r = await exec(node!, [...rest, 'plan', ...argv], { netns, env: { COAT_PLAN_IN_NETNS: netns, COAT_LOG_LEVEL: process.env.COAT_LOG_LEVEL ?? 'warn' }, timeoutMs: 60_000, allowFailure: true });
  io.stdout.write(r.stdout);
  io.stderr.write(r.stderr);
  return r.code;
}

/**
 * In the control-plane namespace: finds the service's process (by its namespace when it runs on
 * its topology host, else by --from), connects to the lab's agents and has the source agent
 * profile it.
 */
async function profileInLab(lab: LabState, service: string, to: string, from: string | undefined, executor: ExecutorName) {
  const ep = lab.endpoints.find((e) => e.name === service);
  if (!ep) throw new UsageError(`--service: no endpoint '${service}' in lab ${lab.tag} (endpoints: ${lab.endpoints.map((e) => e.name).join(', ')})`);
  const source = from ?? ep.host;
  const hosts = lab.topology.hosts.map((h) => h.name);
  for (const [flag, h] of [['--to', to], ['--from', source]] as const) if (!hosts.includes(h)) throw new UsageError(`${flag}: no host '${h}' in lab ${lab.tag} (hosts: ${hosts.join(', ')})`);
  if (to === source) throw new UsageError(`--to ${to}: the service already runs there`);
  if (source !== ep.host) throw new PlanUnavailableError(`the service's namespace on ${source} belongs to the agent that restored it and is not visible here; plan while it runs on ${ep.host}, or offline`);
  // the same lookup coat migrate uses: the process listening on the endpoint's address in its namespace
  const proc = await findLabService(lab, service);
  if (!proc) throw new PlanUnavailableError(`no process listens on ${ep.ip} in ${service}'s namespace ${ep.namespace}: start the service first (e.g. coat workload server), or plan offline`);
  const sd = proc.argv.indexOf('--state-dir');
  const stateDirArg = sd >= 0 ? proc.argv[sd + 1] : undefined;
  if (!lab.nats || !lab.agentSecretFile || lab.agents.length === 0) throw new PlanUnavailableError(`lab ${lab.tag} runs no agents (it was brought up with --no-agents): profiling needs them`);
  const token = (await readFile(lab.nats.tokenFile, 'utf8')).trim();
  const secret = (await readFile(lab.agentSecretFile, 'utf8')).trim();
  const registry = await AgentRegistry.connect({ nats: { servers: lab.nats.url, token }, secret: Buffer.from(secret, 'utf8'), name: 'coat-plan', events: false });
  try {
    await registry.waitFor(source, 10_000);
    const profile = await profileService(registry, source, { pid: proc.pid, executor, ...(stateDirArg ? { stateDir: stateDirArg } : {}) });
    const rate = (h: string) => lab.topology.hosts.find((x) => x.name === h)?.underlay.mbit;
    const rates = [rate(source), rate(to)].filter((v): v is number => v !== undefined);
    return { source, pid: proc.pid, profile, linkMbit: rates.length > 0 ? Math.min(...rates) : undefined };
  } finally {
    await registry.close().catch(() => undefined);
    await registry.nc.close().catch(() => undefined);
  }
}
