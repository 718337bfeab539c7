/**
 * `coat calibrate`: fits PAM's constants for one executor from measured migrations (least squares,
 * src/migration/calibrate.ts) and stores them in the calibration file the planner loads.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { calibrate, CalibrationError, parseRuns } from '../../migration/calibrate.js';
import { defaultCalibrationPath, saveCalibration } from '../../migration/pam-calibration-file.js';
import { EXECUTOR_NAMES } from '../../migration/executor.js';
import { ExitCode, parseFlags, UsageError, writeJson, type CliIO, type Command } from '../command.js';

const HELP = `usage: coat calibrate --input RUNS.json [--executor NAME] [--out FILE] [--quantile Q] [--dry-run] [--json]

Fits the PAM constants of this testbed for one executor by least squares from measured migrations
and writes them to the calibration file that coat plan (and the orchestrator's planner) loads.

  --input RUNS.json   a JSON array of measured migrations, or {"runs": [...]}; each run:
                      {executor?, stateBytes, dirtyPagesPerS, bandwidthMbit, preDumpRounds,
                       downtimeMs, totalMs, freezingMs?, frozenMs?, memoryDumpMs?, checkpointMs?,
                       transferMs?, transferBytes?, restoreMs?, setupMs?, rounds?: [{kind: "pre-dump"|"dump",
                       freezingMs?, frozenMs?, memoryDumpMs?, checkpointMs?, transferMs?, bytes?}]}
                      (times ms, sizes bytes, R pages/s, L Mbit/s); docs/planner.md describes it
  --executor NAME     fit the runs of this executor (${EXECUTOR_NAMES.join(', ')}); default: the
                      executor named by the first run, else podman
  --out FILE          calibration file (default ${defaultCalibrationPath()}, or $COAT_CALIBRATION)
  --quantile Q        share of runs the model must upper-bound after calibration (default 0.95)
  --dry-run           fit and print, do not write
`;

export const command: Command = {
  summary: 'fit the PAM model constants of this testbed from measured migrations',
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseFlags(argv, {
      input: { type: 'string' },
      executor: { type: 'string' },
      out: { type: 'string' },
      quantile: { type: 'string' },
      'dry-run': { type: 'boolean' },
    });
    if (values.help) {
      io.stdout.write(HELP);
      return ExitCode.ok;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}' (coat calibrate --help)`);
    if (typeof values.input !== 'string') throw new UsageError('missing --input RUNS.json');
    const executor = typeof values.executor === 'string' ? values.executor : undefined;
    if (executor !== undefined && !(EXECUTOR_NAMES as readonly string[]).includes(executor)) throw new UsageError(`--executor must be one of ${EXECUTOR_NAMES.join(', ')}`);
    const quantile = values.quantile === undefined ? 0.95 : Number(values.quantile);
    if (!(quantile > 0 && quantile <= 1)) throw new UsageError(`--quantile must be in (0, 1] (got '${String(values.quantile)}')`);
    const input = resolve(values.input);
    const out = typeof values.out === 'string' ? resolve(values.out) : defaultCalibrationPath();

    let runs;
    try {
      const text = await readFile(input, 'utf8');
      runs = parseRuns(JSON.parse(text));
    } catch (err) {
      const why = err instanceof CalibrationError ? `${err.code}: ${err.message}` : (err as Error).message;
      io.stderr.write(`coat calibrate: ${input}: ${why}\n`);
      return ExitCode.badInput;
    }
    let result;
    try {
      result = calibrate(runs, { quantile, ...(executor ? { executor } : {}) });
    } catch (err) {
      if (err instanceof CalibrationError) {
        io.stderr.write(`coat calibrate: ${err.code}: ${err.message}\n`);
        return ExitCode.badInput;
      }
      throw err;
    }
    if (!values['dry-run']) await saveCalibration(result, out, input);
    if (values.json) {
      writeJson(io.stdout, { ...result, file: values['dry-run'] ? null : out });
    } else {
      const c = result.constants;
      const lines = [
        `executor ${result.executor}: ${result.runs} runs fitted${values['dry-run'] ? ' (dry run, nothing written)' : `, written to ${out}`}`,
        `  freezing beta ${c.beta.toFixed(2)} ms; dump frozen ${c.phiD.toFixed(2)} ms + Gamma ${c.Gamma.toExponential(3)} ms/B x xi(R^) M`,
        `  pre-dump frozen ${c.phiP.toFixed(2)} ms (zeta ${c.zeta.toFixed(3)}); memory ${c.delta.toFixed(2)} ms + ${c.Lambda.toExponential(3)} ms/B`,
        `  engine factor a1a2 ${(c.alpha1 * c.alpha2).toFixed(3)}; restore ${c.psi.toFixed(2)} ms + ${c.omega.toExponential(3)} ms/B (a3a4 ${(c.alpha3 * c.alpha4).toFixed(3)})`,
        `  transfer ${c.netFixedMs.toFixed(2)} ms + V / (L x ${c.linkEfficiency.toFixed(3)})${c.finalLinkEfficiency > 0 ? `, final dump V / (L x ${c.finalLinkEfficiency.toFixed(3)})` : ''}; tau1 ${c.tau1.toFixed(3)}; R range ${c.rMin}..${c.rMax} pages/s`,
        `  setup (coat's, T_mig only) ${c.setupMs.toFixed(1)} ms + ${c.setupMsPerByte.toExponential(3)} ms/B x M`,
        `  safety factor ${c.safetyFactor.toFixed(3)} on every round and the setup (total quantile per configuration); downtime factor ${c.downtimeFactor.toFixed(3)} (q of each configuration bounded on both)`,
        `  the model upper-bounds ${(result.upperBoundShare * 100).toFixed(1)} % of these runs`,
        ...Object.entries(result.steps).map(([k, s]) => `  fit ${k}: ${s.samples} samples, rmse ${s.rmseMs.toFixed(2)} ms`),
        ...result.notes.map((n) => `  note: ${n}`),
      ];
      io.stdout.write(lines.join('\n') + '\n');
    }
    return ExitCode.ok;
  },
};
