/**
 * Runs a lab scenario (lab-scenario.ts) from outside the lab: in a child process inside the lab's
 * `ctl` namespace, where OVS and the agents reach the controller. Used by `coat demo`, the
 * end-to-end tests and the migration bench; `coat migrate` runs lab-backend.ts the same way.
 */
import { fileURLToPath } from 'node:url';
import { CoatError } from '../../errors.js';
import { readState } from '../../../lab/state.js';
import type { MigrationEvent, MigrationOutcome } from '../orchestrator.js';
import type { MigrateRequest } from '../../cli/commands/migrate.js';
import { LiveMigrationError } from './errors.js';
import type { ScenarioOptions, ScenarioResult } from './lab-scenario.js';
import { startIn } from './processes.js';

export type ScenarioStopCode =
  /** The client's traffic did not flow again within 20 s after a migration. */
  | 'LIVE_TRAFFIC_STALLED'
  /** No workload server runs where the last migration left the service. */
  | 'LIVE_SERVICE_GONE';

/**
 * A scenario that stopped before its last migration. It still ended as a finished run does
 * (service paused, capture stopped, one report per migration that ran): `result` holds those
 * reports, `afterMigration` says how many ran.
 */
export class ScenarioStoppedError extends CoatError {
  constructor(
    code: ScenarioStopCode,
    message: string,
    readonly afterMigration: number,
    readonly result: ScenarioResult,
  ) {
    super(code, message);
  }
}

/** What lab-ctl-main prints on stdout (exit 2) for a ScenarioStoppedError. */
export interface StoppedOutput {
  stopped: { code: ScenarioStopCode; message: string; afterMigration: number };
  result: ScenarioResult;
}

/** Exit code of lab-ctl-main for a job that stopped with partial results (StoppedOutput on stdout). */
export const EXIT_STOPPED = 2;

/** argv running lab-ctl-main for `job` with this same Node (from source through tsx, or from dist/). */
function entryArgv(job: string): string[] {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts')) return [process.execPath, '--import', import.meta.resolve('tsx'), self.replace(/lab-run\.ts$/, 'lab-ctl-main.ts'), job];
  return [process.execPath, self.replace(/lab-run\.js$/, 'lab-ctl-main.js'), job];
}

export type ScenarioRequest = Omit<ScenarioOptions, 'progress' | 'onEvent' | 'log'>;

interface CtlHooks {
  progress?: (line: string) => void;
  onEvent?: (e: MigrationEvent) => void;
  timeoutMs?: number;
}

/**
 * Runs `job` (lab-ctl-main.ts) with one JSON argument inside the lab's `ctl` namespace: progress lines and
 * `@event JSON` lines on its stderr go to the hooks, its result is the last line of its stdout.
 */
async function runInCtl<T>(stateDir: string, tag: string, job: 'scenario' | 'migrate', arg: unknown, hooks: CtlHooks): Promise<T> {
  const state = await readState(stateDir, tag);
  if (!state) throw new LiveMigrationError('LIVE_LAB', `no lab ${tag} in ${stateDir}`);
  const ctl = `${state.tag}-ctl`;
  const child = startIn(ctl, [...entryArgv(job), JSON.stringify(arg)], { name: job, env: { COAT_LOG_LEVEL: process.env.COAT_LOG_LEVEL ?? 'warn' } });
  let seen = 0;
  const pump = () => {
    const err = child.stderr();
    const lines = err.slice(seen).split('\n');
    const complete = lines.slice(0, -1);
    seen += complete.reduce((n, l) => n + l.length + 1, 0);
    for (const l of complete) {
      if (l.startsWith('@event ')) {
        try {
          hooks.onEvent?.(JSON.parse(l.slice(7)) as MigrationEvent);
        } catch {
          // not an event line after all
        }
      } else if (!l.startsWith('{')) hooks.progress?.(l);
    }
  };
  const pumping = setInterval(pump, 50);
  const timer = setTimeout(() => child.kill('SIGTERM'), hooks.timeoutMs ?? 300_000);
  try {
    const code = await child.exited;
    pump();
    if (code === EXIT_STOPPED) {
      const out = child.stdout().trim();
      const s = JSON.parse(out.slice(out.lastIndexOf('\n') + 1)) as StoppedOutput;
      throw new ScenarioStoppedError(s.stopped.code, s.stopped.message, s.stopped.afterMigration, s.result);
    }
    if (code !== 0) throw new LiveMigrationError('LIVE_LAB', `${job} exited ${code}: ${child.stderr().split('\n').filter((l) => !l.startsWith('@event') && !l.startsWith('{')).slice(-15).join('\n')}`);
    const out = child.stdout().trim();
    return JSON.parse(out.slice(out.lastIndexOf('\n') + 1)) as T;
  } finally {
    clearTimeout(timer);
    clearInterval(pumping);
    child.kill('SIGKILL');
  }
}

export async function runScenarioInLab(req: ScenarioRequest, hooks: CtlHooks = {}): Promise<ScenarioResult> {
  return runInCtl<ScenarioResult>(req.stateDir, req.tag, 'scenario', req, hooks);
}

/** One `coat migrate` in a lab that `coat lab up` brought up (lab-backend.ts), run inside its ctl namespace. */
export async function migrateInLabCtl(req: { stateDir: string; tag: string; request: MigrateRequest }, hooks: CtlHooks = {}): Promise<MigrationOutcome> {
  return runInCtl<MigrationOutcome>(req.stateDir, req.tag, 'migrate', req, hooks);
}
