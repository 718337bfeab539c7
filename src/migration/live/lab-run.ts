/**
 * Runs a lab scenario (lab-scenario.ts) from outside the lab: in a child process inside the lab's
 * `ctl` namespace, where OVS and the agents reach the controller. Used by `coat demo`, the
 * end-to-end tests and the migration bench.
 */
import { fileURLToPath } from 'node:url';
import { readState } from '../../../lab/state.js';
import type { MigrationEvent } from '../orchestrator.js';
import { LiveMigrationError } from './errors.js';
import type { ScenarioOptions, ScenarioResult } from './lab-scenario.js';
import { startIn } from './processes.js';

/** argv running the scenario entry with this same Node (from source through tsx, or from dist/). */
function entryArgv(): string[] {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts')) return [process.execPath, '--import', import.meta.resolve('tsx'), self.replace(/lab-run\.ts$/, 'lab-scenario-main.ts')];
  return [process.execPath, self.replace(/lab-run\.js$/, 'lab-scenario-main.js')];
}

export type ScenarioRequest = Omit<ScenarioOptions, 'progress' | 'onEvent' | 'log'>;

export async function runScenarioInLab(
  req: ScenarioRequest,
  hooks: { progress?: (line: string) => void; onEvent?: (e: MigrationEvent) => void; timeoutMs?: number } = {},
): Promise<ScenarioResult> {
  const state = await readState(req.stateDir, req.tag);
  if (!state) throw new LiveMigrationError('LIVE_LAB', `no lab ${req.tag} in ${req.stateDir}`);
  const ctl = `${state.tag}-ctl`;
  const child = startIn(ctl, [...entryArgv(), JSON.stringify(req)], { name: 'scenario', env: { COAT_LOG_LEVEL: process.env.COAT_LOG_LEVEL ?? 'warn' } });
  let seen = 0;
  const pump = setInterval(() => {
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
  }, 50);
  const timer = setTimeout(() => child.kill('SIGTERM'), hooks.timeoutMs ?? 300_000);
  try {
    const code = await child.exited;
    if (code !== 0) throw new LiveMigrationError('LIVE_LAB', `scenario exited ${code}: ${child.stderr().split('\n').filter((l) => !l.startsWith('@event') && !l.startsWith('{')).slice(-15).join('\n')}`);
    const out = child.stdout().trim();
    return JSON.parse(out.slice(out.lastIndexOf('\n') + 1)) as ScenarioResult;
  } finally {
    clearTimeout(timer);
    clearInterval(pump);
    child.kill('SIGKILL');
  }
}
