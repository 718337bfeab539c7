/**
 * The calibration file: PAM constants fitted by `coat calibrate`, one entry per executor, which the
 * planner loads. JSON, written atomically (temp file + rename) so a crash never leaves half a file.
 *
 * Location: `--calibration FILE` / `--out FILE`, else `$COAT_CALIBRATION`, else
 * `$XDG_CONFIG_HOME/coat/calibration.json`, else `~/.config/coat/calibration.json`.
 *
 * Format (version 1):
 *   {
 *     "format": "coat-calibration",
 *     "version": 1,
 *     "executors": {
 *       "podman": {
 *         "calibratedAt": "2026-11-24T12:00:00.000Z",   ISO 8601
 *         "runs": 20,                                   runs fitted
 *         "source": "/path/RUNS.json",                  where they came from
 *         "constants": { ...PamConstants },             every constant, in pam.ts's units
 *         "upperBoundShare": 0.95,                      share of those runs the model upper-bounds
 *         "steps": { "dumpFrozen": { "samples": 20, "rmseMs": 1.2 }, ... },
 *         "notes": [ ... ]
 *       }
 *     }
 *   }
 * Unknown constant names are rejected (a typo must not silently fall back to a default).
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CalibrationError, type CalibrationResult } from './calibrate.js';
import { DEFAULT_CONSTANTS, EXECUTOR_PRESETS, type PamConstants } from './pam.js';

export const CALIBRATION_FORMAT = 'coat-calibration';
export const CALIBRATION_VERSION = 1;

export interface CalibrationEntry {
  calibratedAt: string;
  runs: number;
  source?: string;
  constants: Partial<PamConstants>;
  upperBoundShare?: number;
  steps?: CalibrationResult['steps'];
  notes?: string[];
}

export interface CalibrationFile {
  format: typeof CALIBRATION_FORMAT;
  version: typeof CALIBRATION_VERSION;
  executors: Record<string, CalibrationEntry>;
}

export function defaultCalibrationPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.COAT_CALIBRATION) return env.COAT_CALIBRATION;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'coat', 'calibration.json');
}

/** Validates parsed JSON as a calibration file (pure). */
export function parseCalibrationFile(value: unknown, path = '(input)'): CalibrationFile {
  const bad = (why: string) => new CalibrationError('CALIBRATION_BAD_FILE', `${path}: ${why}`, { path });
  if (value === null || typeof value !== 'object') throw bad('not a JSON object');
  const o = value as Record<string, unknown>;
  if (o.format !== CALIBRATION_FORMAT) throw bad(`format is ${JSON.stringify(o.format)}, expected "${CALIBRATION_FORMAT}"`);
  if (o.version !== CALIBRATION_VERSION) throw bad(`version ${JSON.stringify(o.version)} is not supported (this coat reads ${CALIBRATION_VERSION})`);
  if (o.executors === null || typeof o.executors !== 'object' || Array.isArray(o.executors)) throw bad('executors must be an object');
  for (const [name, e] of Object.entries(o.executors as Record<string, unknown>)) {
    if (e === null || typeof e !== 'object') throw bad(`executors.${name} must be an object`);
    const constants = (e as Record<string, unknown>).constants;
    if (constants === null || typeof constants !== 'object') throw bad(`executors.${name}.constants must be an object`);
    for (const [k, v] of Object.entries(constants as Record<string, unknown>)) {
      if (!(k in DEFAULT_CONSTANTS)) throw bad(`executors.${name}.constants.${k} is not a PAM constant`);
      const want = typeof DEFAULT_CONSTANTS[k as keyof PamConstants];
      if (typeof v !== want || (want === 'number' && !Number.isFinite(v as number))) throw bad(`executors.${name}.constants.${k} must be a finite ${want}`);
    }
  }
  return value as CalibrationFile;
}

/** Reads the file; a missing file is `undefined` (the planner then uses the defaults). */
export async function loadCalibration(path = defaultCalibrationPath()): Promise<CalibrationFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CalibrationError('CALIBRATION_BAD_FILE', `${path}: cannot read: ${(err as Error).message}`, { path });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CalibrationError('CALIBRATION_BAD_FILE', `${path}: not JSON: ${(err as Error).message}`, { path });
  }
  return parseCalibrationFile(json, path);
}

/** The constants for one executor from a loaded file, or undefined when it was never calibrated. */
export function constantsFor(file: CalibrationFile | undefined, executor: string): Partial<PamConstants> | undefined {
  return file?.executors[executor]?.constants;
}

/**
 * The constants the planner should use for an executor: its calibration when the file has one, else
 * the executor's preset (pam.ts). For the orchestrator's PlannerPort and `coat plan`.
 */
export async function plannerConstants(executor: string, path = defaultCalibrationPath()): Promise<{ constants: Partial<PamConstants>; calibrated: boolean; path: string }> {
  const calibrated = constantsFor(await loadCalibration(path), executor);
  return { constants: calibrated ?? EXECUTOR_PRESETS[executor] ?? {}, calibrated: calibrated !== undefined, path };
}

/** Adds or replaces one executor's entry and writes the file atomically. */
export async function saveCalibration(result: CalibrationResult, path = defaultCalibrationPath(), source?: string, now = new Date()): Promise<CalibrationFile> {
  const existing = await loadCalibration(path);
  const file: CalibrationFile = existing ?? { format: CALIBRATION_FORMAT, version: CALIBRATION_VERSION, executors: {} };
  const entry: CalibrationEntry = {
    calibratedAt: now.toISOString(),
    runs: result.runs,
    constants: result.constants,
    upperBoundShare: result.upperBoundShare,
    steps: result.steps,
    notes: result.notes,
  };
  if (source !== undefined) entry.source = source;
  file.executors[result.executor] = entry;
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(file, null, 2) + '\n');
  await rename(tmp, path);
  return file;
}
