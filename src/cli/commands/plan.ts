/**
 * `coat plan`: what MOSE's designer would do for a migration, from PAM's prediction at the worst-case
 * dirty rate. Offline (what-if) with explicit --state-bytes, --dirty-pages-per-s and --bandwidth-mbit;
 * live (--service, --to) once the agents' profiling is available.
 */
import { CoatError } from '../../errors.js';
import { defaultCalibrationPath, plannerConstants } from '../../migration/pam-calibration-file.js';
import { PamInputError } from '../../migration/pam.js';
import { OBJECTIVES, plan, type Objective, type Plan } from '../../migration/planner.js';
import { EXECUTOR_NAMES } from '../../migration/executor.js';
import { ExitCode, parseFlags, UsageError, writeJson, type CliIO, type Command } from '../command.js';

const HELP = `usage: coat plan --objective min-downtime|min-resources --target-downtime MS --target-total MS
                 (--state-bytes SIZE --dirty-pages-per-s R --bandwidth-mbit L | --service NAME --to HOST)
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
  --service NAME --to HOST live: profile the running service and the link (needs the agents)
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

    const offlineFlags = ['state-bytes', 'dirty-pages-per-s', 'bandwidth-mbit'] as const;
    const missingOffline = offlineFlags.filter((f) => values[f] === undefined);
    if (missingOffline.length > 0) {
      if (values.service !== undefined || values.to !== undefined) {
        // The live path needs M, R and L profiled by the agents (MOSE's profiling module).
        // The agents answer `profile` (src/agent/), but nothing yet tells this command where the
        // service runs, its pid, and the control plane's address and credentials (the lab state
        // records none of them); planFromProfile() is ready for the profile once it can be fetched.
        throw new PlanUnavailableError(
          `live planning for service '${str(values.service) ?? '?'}' to '${str(values.to) ?? '?'}' needs the agents' profiling ` +
            `(state size, dirty-page rate, bandwidth via the agents' \`profile\` command), and this build has no way yet to locate ` +
            `the service's agent and reach it (control-plane address and credentials); ` +
            `plan offline with --${missingOffline.join(', --')}`,
        );
      }
      throw new UsageError(`missing --${missingOffline.join(', --')} (offline planning) or --service and --to (live)`);
    }
    const stateBytes = parseSize(str(values['state-bytes'])!, '--state-bytes');
    const dirtyPagesPerS = parseNumber(str(values['dirty-pages-per-s']), '--dirty-pages-per-s');
    const linkMbit = parseNumber(str(values['bandwidth-mbit']), '--bandwidth-mbit', { positive: true });
    const capMbit = values['max-bandwidth-mbit'] === undefined ? Infinity : parseNumber(str(values['max-bandwidth-mbit']), '--max-bandwidth-mbit', { positive: true });
    const maxBandwidthMbit = Math.min(linkMbit, capMbit);

    const calibrationPath = str(values.calibration) ?? defaultCalibrationPath();
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
