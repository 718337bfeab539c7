/**
 * The orchestrator's PlannerPort on the real agents: the source agent profiles the service (M from
 * its state dir and private memory, R by page hashing over a short window), L is the slower of the
 * two hosts' underlay links as the topology gives them (a probe would cost a second of wall time
 * per migration and compete with the client's traffic), and PAM + MOSE (planner.ts) decide.
 */
import type { AgentRegistry } from '../../agent/client.js';
import type { ExecutorName } from '../executor.js';
import { plannerConstants } from '../pam-calibration-file.js';
import { planFromProfile } from '../planner.js';
import type { MigrationPlan, MigrationRef, Objective, PlannerPort } from '../ports.js';

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
}

export class LivePlannerPort implements PlannerPort {
  constructor(private readonly opts: LivePlannerPortOptions) {}

  async plan(m: MigrationRef, objective: Objective, signal: AbortSignal): Promise<MigrationPlan> {
    const profile = await this.opts.registry.agent(m.source).request(
      'profile',
      {
        migrationId: m.migrationId,
        ...(m.service.pid !== undefined ? { pid: m.service.pid } : {}),
        ...(m.service.stateDir !== undefined ? { stateDir: m.service.stateDir } : {}),
        windowMs: this.opts.profileWindowMs ?? 300,
      },
      { deadlineMs: 10_000, signal },
    );
    const { constants } = await plannerConstants(m.executor);
    const p = planFromProfile(
      { stateBytes: profile.stateBytes, ...(profile.dirtyPagesPerSecond !== undefined ? { dirtyPagesPerSecond: profile.dirtyPagesPerSecond } : {}) },
      objective,
      {
        targetDowntimeMs: this.opts.targetDowntimeMs ?? 100,
        targetTotalMs: this.opts.targetTotalMs ?? 10_000,
        maxBandwidthMbit: this.opts.bandwidthMbit(m.source, m.destination),
        preCopySupported: this.opts.preCopy ? this.opts.preCopy(m.executor) : m.executor !== 'hooks',
      },
      { constants },
    );
    return { strategy: p.strategy, iterations: p.iterations, bandwidthMbit: p.bandwidthMbit, predicted: p.predicted, reason: p.reason };
  }
}
