/**
 * The orchestrator's PlannerPort on the real agents: the source agent profiles the service (M from
 * its state dir and private memory, R over a short window: of the state files for tcp-repair, else
 * of the process memory by page hashing), L is the slower of the
 * two hosts' underlay links as the topology gives them (a probe would cost a second of wall time
 * per migration and compete with the client's traffic), and PAM + MOSE (planner.ts) decide.
 *
 * `force` pins the strategy (benches and the calibration runs of docs/planner.md need N migrations
 * of one configuration); the prediction is still PAM's for the pinned plan, on the profiled M and R.
 */
import { randomBytes } from 'node:crypto';
import type { AgentRegistry } from '../../agent/client.js';
import type { ExecutorName } from '../executor.js';
import { plannerConstants } from '../pam-calibration-file.js';
import { predictPam } from '../pam.js';
import { planFromProfile } from '../planner.js';
import type { MigrationPlan, MigrationRef, Objective, PlannerPort } from '../ports.js';

/** A plan chosen by the caller instead of MOSE's designer. */
export interface ForcedPlan {
  strategy: 'cold' | 'precopy';
  /** Pre-copy rounds (precopy only; default 1). */
  iterations?: number;
}

export interface LivePlannerPortOptions {
  registry: AgentRegistry;
  /** Bandwidth between two hosts, Mbit/s (the lab: the slower underlay link). */
  bandwidthMbit: (source: string, destination: string) => number;
  targetDowntimeMs?: number;
  targetTotalMs?: number;
  /** Dirty-rate window of the profile, ms (default 300). */
  profileWindowMs?: number;
  /** Executors that do pre-copy (tcp-repair does: page-delta rounds). */
  preCopy?: (executor: ExecutorName) => boolean;
  /** Pin the strategy; PAM still predicts it. */
  force?: ForcedPlan;
  /** Calibration file (default: $COAT_CALIBRATION, else the user's config dir). */
  calibrationPath?: string;
}

/** What the source agent measured: M (B) and R (pages/s). */
export interface ServiceProfile {
  /** The agent's M: the process' private memory plus its state dir. */
  stateBytes: number;
  dirtyPagesPerSecond?: number;
  memoryBytes?: number;
  stateDirBytes?: number;
}

/**
 * The M an executor moves: tcp-repair moves the service's state dir (the SDK's pages) and its
 * sockets, not the runtime's heap (the standby process at the destination brings its own), so its M
 * is the state dir's size; CRIU, Podman and hooks move the process memory: the agent's M. The
 * calibration runs record M the same way (bench/migration.bench.ts), so predictions and fits agree.
 */
export function movedStateBytes(executor: ExecutorName, p: ServiceProfile): number {
  return executor === 'tcp-repair' && p.stateDirBytes !== undefined && p.stateDirBytes > 0 ? p.stateDirBytes : p.stateBytes;
}

export class LivePlannerPort implements PlannerPort {
  constructor(private readonly opts: LivePlannerPortOptions) {}

  /** Asks the source agent for M and R (MOSE's profiling module). */
  async profile(m: MigrationRef, signal: AbortSignal): Promise<ServiceProfile> {
    const p = await this.opts.registry.agent(m.source).request(
      'profile',
      {
        migrationId: m.migrationId,
        ...(m.service.pid !== undefined ? { pid: m.service.pid } : {}),
        ...(m.service.stateDir !== undefined ? { stateDir: m.service.stateDir } : {}),
        // tcp-repair moves the state dir's pages, not the runtime's heap: R of those files (and
        // reading a Node heap twice cost seconds of CPU next to the running service)
        ...(m.executor === 'tcp-repair' && m.service.stateDir !== undefined ? { dirtySource: 'state-dir' as const } : {}),
        windowMs: this.opts.profileWindowMs ?? 300,
      },
      { deadlineMs: 10_000, signal },
    );
    return {
      stateBytes: p.stateBytes,
      ...(p.dirtyPagesPerSecond !== undefined ? { dirtyPagesPerSecond: p.dirtyPagesPerSecond } : {}),
      ...(p.memoryBytes !== undefined ? { memoryBytes: p.memoryBytes } : {}),
      ...(p.stateDirBytes !== undefined ? { stateDirBytes: p.stateDirBytes } : {}),
    };
  }

  async plan(m: MigrationRef, objective: Objective, signal: AbortSignal): Promise<MigrationPlan> {
    const profile = await this.profile(m, signal);
    profile.stateBytes = movedStateBytes(m.executor, profile);
    const { constants } = await plannerConstants(m.executor, this.opts.calibrationPath);
    const bandwidthMbit = this.opts.bandwidthMbit(m.source, m.destination);
    const force = this.opts.force;
    if (force) {
      const iterations = force.strategy === 'cold' ? 0 : (force.iterations ?? 1);
      const p = predictPam({ stateBytes: profile.stateBytes, dirtyPagesPerS: profile.dirtyPagesPerSecond ?? 0, bandwidthMbit, preDumpRounds: iterations }, constants);
      return {
        strategy: force.strategy,
        iterations,
        bandwidthMbit,
        predicted: { downtimeMs: p.downtimeMs, totalMs: p.totalMs },
        reason: `forced by the caller: ${force.strategy}${iterations > 0 ? ` with ${iterations} pre-copy round(s)` : ''}; PAM's prediction for it`,
      };
    }
    const p = planFromProfile(
      profile,
      objective,
      {
        targetDowntimeMs: this.opts.targetDowntimeMs ?? 100,
        targetTotalMs: this.opts.targetTotalMs ?? 10_000,
        maxBandwidthMbit: bandwidthMbit,
        preCopySupported: this.opts.preCopy ? this.opts.preCopy(m.executor) : m.executor !== 'hooks',
      },
      { constants },
    );
    return { strategy: p.strategy, iterations: p.iterations, bandwidthMbit: p.bandwidthMbit, predicted: p.predicted, reason: p.reason };
  }
}

/**
 * MOSE's profiling for a plan outside a migration (`coat plan --service --to`): the source agent
 * measures M (the process' private memory + its state dir) and R over `windowMs` (of the state
 * dir's files for tcp-repair, else page hashes of the process memory).
 */
export async function profileService(registry: AgentRegistry, source: string, target: { pid: number; stateDir?: string; executor: ExecutorName }, windowMs = 300, signal?: AbortSignal): Promise<ServiceProfile> {
  // As the orchestrator's planner does: tcp-repair moves the state dir, so R is of its files.
  const stateDirR = target.executor === 'tcp-repair' && target.stateDir !== undefined;
  const p = await registry.agent(source).request(
    'profile',
    { migrationId: `plan-${randomBytes(6).toString('hex')}`, pid: target.pid, ...(target.stateDir !== undefined ? { stateDir: target.stateDir } : {}), ...(stateDirR ? { dirtySource: 'state-dir' as const } : {}), windowMs },
    { deadlineMs: 10_000 + windowMs, ...(signal ? { signal } : {}) },
  );
  return {
    stateBytes: p.stateBytes,
    ...(p.dirtyPagesPerSecond !== undefined ? { dirtyPagesPerSecond: p.dirtyPagesPerSecond } : {}),
    ...(p.memoryBytes !== undefined ? { memoryBytes: p.memoryBytes } : {}),
    ...(p.stateDirBytes !== undefined ? { stateDirBytes: p.stateDirBytes } : {}),
  };
}
