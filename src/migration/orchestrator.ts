/**
 * The orchestrator: runs one migration through the timeline of design.md ("Timeline of one
 * migration"), step by step, through its ports (ports.ts), journaling every step (journal.ts) and
 * moving only along the state machine's legal transitions (state-machine.ts).
 *
 *   plan -> prepare (destination namespace + staged flows) -> precopy rounds (dump + stream while
 *   the service runs, each settled at the destination) -> hold (hold flows and, under them, the
 *   switch: one bundle per bridge + barrier; packet-ins queue in the HoldQueue) -> dump (freeze,
 *   the source's agent streams the image at once; the destination restores it on arrival) ->
 *   restore (the resume request leaves; the restore is collected) -> resume (collected: the
 *   destination's agent resumed when its restore was done) -> replay (held packets, in order,
 *   packet-out toward the destination; hold flows removed) -> release (source killed, namespace
 *   cleared) -> verify -> done
 *
 * coat-baseline (COAT's procedure, for comparison) runs dump, stream, restore, switch and resume
 * one after the other, with no hold.
 *
 * A failure before the resume request (coat-baseline: up to `switch`) rolls back (undoPlan: switch
 * back, abort the destination, thaw the source, replay the held packets to it, remove the hold,
 * unstage and clear the destination). After it, a failure rolls back only when the destination
 * provably did not resume (its restore failed, it refused, the request never reached it); else it
 * rolls forward: held packets still go to the destination and the hold is removed, the source is
 * left frozen for an operator, and the migration ends `failed`. Either way the outcome names the
 * step that failed and why (`coat migrate` prints it).
 *
 * `recover()` does the same for migrations a crashed controller left in its journal.
 */
import type { Logger } from '../log.js';
import { logger as rootChild } from '../log.js';
import { MigrationError, reasonOf } from './errors.js';
import { HoldQueue, type HoldLimits, type HoldStats } from './hold-queue.js';
import { Journal, summarizeJournal, readJournal, journalPath, unfinishedMigrations, type ErrorSummary, type JournalSummary, type StepTiming } from './journal.js';
import { preCopyStepName, type RestoreResult } from './executor.js';
import type { AgentPort, Clock, FlowPort, MigrationPlan, MigrationRef, Objective, PlannerPort, Side } from './ports.js';
import { systemClock } from './ports.js';
import { afterResumeRequest, RESUME_REQUEST_STEPS, assumeStartedAfterCrash, canRollBack, isTerminal, transition, undoPlan, UNSYNCED_WINDOW_STEPS, type MigrationMode, type MigrationState, type ResumeFate, type StepName, type TerminalState, type UndoAction } from './state-machine.js';

/** What the verify step gets: the facts of the migration, from the orchestrator. */
export interface MigrationFacts {
  ref: MigrationRef;
  mode: MigrationMode;
  plan: MigrationPlan;
  startedAtMs: number;
  steps: StepTiming[];
  hold: HoldStats;
  switchMs?: number;
}

/** Builds and stores the verification report (capture + workload client + facts; report.ts). */
export interface VerifyPort {
  verify(facts: MigrationFacts, signal: AbortSignal): Promise<{ verdict: string; reportPath?: string }>;
}

export interface OrchestratorPorts {
  flows: FlowPort;
  agents: AgentPort;
  planner: PlannerPort;
  verifier?: VerifyPort;
  clock?: Clock;
}

export interface OrchestratorOptions {
  /** Where journals live (`DATA_DIR/migrations/ID.jsonl`). */
  dataDir: string;
  holdLimits?: Partial<HoldLimits>;
  /** Time limit of each step, ms (default 30 s); per-step overrides. */
  stepTimeoutMs?: number;
  stepTimeouts?: Partial<Record<StepName, number>>;
  /** Time limit of the whole migration up to the resume request (after it, no deadline can undo anything). */
  deadlineMs?: number;
  /**
   * p.haul's pre-copy stop rule (phaul/iters.py: phaul_iter_min_size, phaul_iter_grow_max), besides
   * the plan's I: stop early when a round writes at most this many dirty pages (default 64)...
   */
  precopyStopPages?: number;
  /** ...or more than (1 + this) times the previous round's pages: the dirty set grows (default 0.1). */
  precopyStopGrowth?: number;
  /** false: run the plan's I rounds whatever they dirty (an experiment that measures a given I). Default true. */
  precopyStopRule?: boolean;
  log?: Logger;
  /** Progress for the CLI, one event per step boundary. */
  onEvent?: (e: MigrationEvent) => void;
}

export type MigrationEvent =
  | { type: 'step-start'; migrationId: string; step: StepName; round?: number; atMs: number }
  | { type: 'step-end'; migrationId: string; step: StepName; round?: number; atMs: number; ok: boolean; error?: ErrorSummary }
  | { type: 'rollback'; migrationId: string; failedStep?: StepName; error?: ErrorSummary; actions: UndoAction[] }
  | { type: 'undo'; migrationId: string; action: UndoAction; ok: boolean; error?: ErrorSummary }
  | { type: 'end'; migrationId: string; state: TerminalState };

export interface MigrationRequest {
  ref: MigrationRef;
  objective: Objective;
  /** `coat` (default) or `coat-baseline`: COAT's Stop&Copy with the same parts (state-machine.ts). */
  mode?: MigrationMode;
}

export interface MigrationOutcome {
  migrationId: string;
  mode: MigrationMode;
  state: TerminalState;
  /** The step that failed, and why (absent when done). */
  failedStep?: StepName;
  error?: ErrorSummary;
  /** Undo actions that failed during rollback (the operator's to-do list). */
  undoFailures: { action: UndoAction; error: ErrorSummary }[];
  plan?: MigrationPlan;
  steps: StepTiming[];
  hold: HoldStats;
  switchMs?: number;
  verdict?: string;
  reportPath?: string;
  startedAtMs: number;
  endedAtMs: number;
}

class StepFailure extends Error {
  constructor(
    readonly step: StepName,
    readonly original: unknown,
  ) {
    super(`${step}: ${reasonOf(original).message}`);
  }
}

/** Runs migrations; one instance per controller. */
export class Orchestrator {
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(
    private readonly ports: OrchestratorPorts,
    private readonly opts: OrchestratorOptions,
  ) {
    this.clock = ports.clock ?? systemClock;
    this.log = opts.log ?? rootChild('migration');
  }

  /** Runs one migration to a terminal state. Never throws for a failed step: see the outcome. */
  async migrate(req: MigrationRequest): Promise<MigrationOutcome> {
    const run = new MigrationRun(this.ports, this.opts, this.clock, this.log, req.ref, undefined, req.mode ?? 'coat');
    return run.forward(req.objective);
  }

  /**
   * Finds the migrations a previous controller left unfinished in the journal and ends them:
   * roll back before the resume request could leave; in `restore` or `resume`, roll back only if
   * the destination's abort succeeds (it did not resume); roll forward past `resume`. Held packets
   * lived in the crashed controller's memory and are gone; TCP retransmits them (the report will
   * show it).
   */
  async recover(): Promise<MigrationOutcome[]> {
    const out: MigrationOutcome[] = [];
    for (const summary of unfinishedMigrations(this.opts.dataDir)) {
      const ref = refFromRequest(summary);
      const mode: MigrationMode = summary.request.mode === 'coat-baseline' ? 'coat-baseline' : 'coat';
      const run = new MigrationRun(this.ports, this.opts, this.clock, this.log, ref, summary, mode);
      out.push(await run.resumeAfterCrash());
    }
    return out;
  }
}

/** Reads back the ref stored in the journal's begin record. */
function refFromRequest(s: JournalSummary): MigrationRef {
  const ref = s.request.ref as MigrationRef | undefined;
  if (!ref || typeof ref.migrationId !== 'string' || typeof ref.source !== 'string' || typeof ref.destination !== 'string') {
    throw new MigrationError('MIGRATION_JOURNAL_CORRUPT', `journal of ${s.migrationId}: begin record has no migration ref`, { migrationId: s.migrationId });
  }
  return ref;
}

/**
 * Why pre-copy should stop after a round that wrote `dirty` pages (p.haul's rule), or undefined to
 * go on. Rounds whose executor does not count dirty pages never stop early.
 */
export function precopyStopReason(dirty: number | undefined, previous: number | undefined, opts: Pick<OrchestratorOptions, 'precopyStopPages' | 'precopyStopGrowth' | 'precopyStopRule'>): string | undefined {
  if (dirty === undefined || opts.precopyStopRule === false) return undefined;
  const minPages = opts.precopyStopPages ?? 64;
  const maxGrowth = opts.precopyStopGrowth ?? 0.1;
  if (dirty <= minPages) return `${dirty} dirty pages <= ${minPages}: the rest fits the final dump`;
  if (previous !== undefined && dirty > previous * (1 + maxGrowth)) return `the dirty set grew from ${previous} to ${dirty} pages (> ${Math.round(maxGrowth * 100)} %): more rounds would not converge`;
  return undefined;
}

/** One migration's mutable run; lives as long as the migration. */
class MigrationRun {
  private state: MigrationState = 'created';
  private readonly journal: Journal;
  private readonly hold: HoldQueue;
  private readonly log: Logger;
  private readonly started = new Set<StepName>();
  private readonly steps: StepTiming[] = [];
  private readonly startedAtMs: number;
  private unsubscribe: (() => void) | undefined;
  private plan: MigrationPlan | undefined;
  private switchMs: number | undefined;
  private deadlineAt: number | undefined;
  private verdict: string | undefined;
  private reportPath: string | undefined;
  private undoFailures: { action: UndoAction; error: ErrorSummary }[] = [];
  /** The step whose failure started a rollback that a crash interrupted. */
  private recoveredFailedStep: StepName | undefined;
  /** Requests that may outlive their step (restore on arrival, resume); aborted when the run ends. */
  private readonly runSignal = new AbortController();
  /** The resume request may leave from now on (journaled `resume-armed`, or found in the journal after a crash). */
  private resumeArmed = false;
  /** This run finishes a migration found in the journal (recover()). */
  private readonly fromJournal: boolean;
  /** The resume request's reply, while this run sent it. */
  private resuming: Promise<void> | undefined;
  /** resumeFate's abort at the destination succeeded: the rollback need not repeat it. */
  private destinationAborted = false;

  constructor(
    private readonly ports: OrchestratorPorts,
    private readonly opts: OrchestratorOptions,
    private readonly clock: Clock,
    log: Logger,
    private readonly ref: MigrationRef,
    recovered: JournalSummary | undefined,
    private readonly mode: MigrationMode,
  ) {
    this.log = log.child({ migrationId: ref.migrationId });
    this.hold = new HoldQueue(opts.holdLimits);
    this.fromJournal = recovered !== undefined;
    if (recovered) {
      this.journal = Journal.reopen(opts.dataDir, ref.migrationId);
      this.state = recovered.state;
      this.startedAtMs = recovered.startedAtMs;
      this.recoveredFailedStep = recovered.failedStep;
      this.resumeArmed = recovered.resumeArmed;
      // Step starts inside the downtime window are not fsync'd: assume they happened.
      for (const s of assumeStartedAfterCrash(recovered.startedSteps)) this.started.add(s);
      this.steps.push(...recovered.steps);
    } else {
      this.startedAtMs = clock.now();
      this.journal = Journal.create(opts.dataDir, ref.migrationId, { ref, mode }, this.startedAtMs);
    }
    if (opts.deadlineMs !== undefined) this.deadlineAt = this.startedAtMs + opts.deadlineMs;
  }

  private get flows(): FlowPort {
    return this.ports.flows;
  }
  private get agents(): AgentPort {
    return this.ports.agents;
  }

  async forward(objective: Objective): Promise<MigrationOutcome> {
    try {
      if (this.mode === 'coat-baseline') await this.baselineSteps(objective);
      else await this.coatSteps(objective);
      await this.verifyStep();
      return this.end('done');
    } catch (err) {
      if (!(err instanceof StepFailure)) throw err;
      return await this.onFailure(err); // awaited: the journal closes only after the rollback
    } finally {
      this.runSignal.abort();
      this.unsubscribe?.();
      this.journal.close();
    }
  }

  /** The timeline of design.md: staged destination, pre-copy, hold + switch, dump + stream, restore, resume, replay. */
  private async coatSteps(objective: Objective): Promise<void> {
    const m = this.ref;
    const plan = await this.step('plan', (signal) => this.ports.planner.plan(m, objective, signal), (p) => ({ ...p }));
    this.plan = plan;

    await this.step('prepare', async (signal) => {
      // Both executors check their tools while the destination namespace is built.
      await Promise.all([
        this.agents.prepare(m.source, m, 'source', signal),
        this.agents.prepareNamespace(m.destination, m, signal).then(() => this.agents.prepare(m.destination, m, 'destination', signal)),
      ]);
      await this.flows.stageDestination(m, signal);
    });

    if (plan.strategy === 'precopy') {
      let previousDirty: number | undefined;
      for (let round = 1; round <= plan.iterations; round++) {
        const r = await this.step(
          'precopy',
          async (signal) => {
            const d = await this.agents.preDump(m.source, m, round, signal);
            const s = await this.agents.streamImage(m.source, m.destination, m, preCopyStepName(round), signal, this.planRate());
            // The round is put in place at the destination now, not by restore inside the downtime.
            const t0 = this.clock.now();
            await this.agents.settle(m.destination, m, signal);
            return { ...d, streamedBytes: s.bytes, settleMs: this.clock.now() - t0 };
          },
          (d) => ({ bytes: d.bytes, pages: d.pages, dirtyPages: d.dirtyPages, streamedBytes: d.streamedBytes, frozenMs: d.frozenMs, settleMs: d.settleMs }),
          round,
        );
        const stop = precopyStopReason(r.dirtyPages, previousDirty, this.opts);
        if (stop !== undefined) {
          if (round < plan.iterations) this.log.info({ event: 'precopy-stop', round, planned: plan.iterations, dirtyPages: r.dirtyPages, previousDirtyPages: previousDirty, reason: stop }, `pre-copy stops after round ${round}: ${stop}`);
          break;
        }
        previousDirty = r.dirtyPages;
      }
    }

    // The resume request will leave during `restore`: arm it in the journal now, so the hold's
    // step-start (synced) makes it durable and no fsync of its own sits in the downtime.
    this.armResume(false);
    const hold = await this.step('hold', async (signal) => {
      // Subscribe before the flows exist, so not even the first packet-in can be missed.
      this.unsubscribe = this.flows.onHeldPacket(m, (p) => {
        const r = this.hold.push(p.frame, this.clock.now(), { ...(p.dpid !== undefined ? { dpid: p.dpid } : {}), ...(p.inPort !== undefined ? { inPort: p.inPort } : {}) });
        if (r === 'dropped') this.log.warn({ event: 'hold-overflow', ...this.hold.stats() }, 'hold queue full: packet counted as dropped');
      });
      // The final image is announced now, outside the downtime: the source's agent sends it the
      // moment the dump is taken. Announced first, before the hold flows go in, not beside them:
      // the bundle commits then do not share 2 cores with a NATS request and the destination
      // agent's work (switch p90 2.9-3.0 -> 2.0-2.5 ms in 10-run batches), and the client's
      // packets are held no longer than before. The switch is in the hold's bundle: before the
      // freeze, under the hold flows, so no packet reaches either side until the replay.
      const t = await this.agents.expectImage(m.destination, m, 'dump', signal);
      const sw = await this.flows.holdAndSwitch(m, signal);
      this.switchMs = sw.switchMs;
      await this.announceMac('destination', signal);
      return { ticket: t, switched: sw };
    }, (h) => ({ switchMs: h.switched.switchMs, bridges: h.switched.bridges }));
    // Restore on arrival: the destination's restore is asked for together with the dump, and its
    // agent starts it the moment the image has landed; the `restore` step collects it. No
    // controller round trip between stream and restore inside the downtime. Its request outlives
    // the dump step (its own signal, ended with the run); if the dump fails, the rollback's
    // abort at the destination ends the wait.
    let restoring: Promise<RestoreResult> | undefined;
    let restoreFailed = false;
    await this.step(
      'dump',
      (signal) => {
        restoring = this.agents.restoreOnArrival(m.destination, m, hold.ticket, this.runSignal.signal);
        restoring.catch(() => (restoreFailed = true)); // awaited by the restore step; a failed dump never awaits it
        return this.agents.dumpAndSend(m.source, m, hold.ticket, signal, this.planRate());
      },
      (d) => ({ bytes: d.bytes, pages: d.pages, sockets: d.sockets, frozenMs: d.frozenMs, ...d.timings, streamedBytes: d.sent.bytes, streamMs: d.sent.ms, streamSetupMs: d.sent.setupMs, agentMs: d.agentMs }),
    );
    // Resume, asked for now: the source is frozen and its image sent, and the destination's agent
    // resumes the moment its restore is done. No controller round trip between restore and resume
    // inside the downtime. This is the point of no return; a restore that fails after it still
    // rolls back, because that agent then provably resumes nothing (afterResumeRequest).
    await this.step(
      'restore',
      () => {
        if (!restoreFailed) this.requestResume(this.runSignal.signal);
        return restoring!;
      },
      (r) => ({ sockets: r.sockets, onArrival: true, ...r.timings }),
    );
    await this.step('resume', (signal) => this.resuming ?? this.requestResume(signal));
    await this.step('replay', (signal) => this.replayAndRelease('destination', signal), () => this.holdDetail());
    await this.releaseStep();
  }

  private async dumpStep(): Promise<void> {
    const m = this.ref;
    await this.step('dump', (signal) => this.agents.dump(m.source, m, signal), (d) => ({ bytes: d.bytes, pages: d.pages, sockets: d.sockets, frozenMs: d.frozenMs, ...d.timings }));
  }

  /** coat-baseline's switch: one bundle per bridge + barrier, then the new-MAC announcement. */
  private async switchStep(): Promise<void> {
    const m = this.ref;
    await this.step(
      'switch',
      async (signal) => {
        const r = await this.flows.switchTo(m, 'destination', signal);
        this.switchMs = r.switchMs;
        await this.announceMac('destination', signal);
        return r;
      },
      (r) => ({ switchMs: r.switchMs, bridges: r.bridges }),
    );
  }

  /**
   * New-MAC mode, after the flows point at `side`: a gratuitous ARP with that side's MAC and a
   * neighbour flush at the client, which must learn the MAC again. Nothing without a new MAC.
   */
  private async announceMac(side: Side, signal: AbortSignal): Promise<void> {
    const m = this.ref;
    if (m.newMac === undefined) return;
    await this.flows.announce(m, side, signal);
    if (m.clientHost !== undefined) await this.agents.flushNeighbour(m.clientHost, m, signal);
  }

  /** The plan's bandwidth L in bits/s, enforced on every image stream (undefined: no limit). */
  private planRate(): number | undefined {
    const mbit = this.plan?.bandwidthMbit;
    return mbit !== undefined && mbit > 0 ? mbit * 1e6 : undefined;
  }

  /**
   * COAT's published procedure (background.md §1) with the same parts, for comparison: freeze
   * first, then build the destination (namespace, flows) inside the downtime, switch, ARP
   * clean-up (new MAC when given), resume. No hold: packets that reach the frozen source are lost
   * and TCP retransmits them, which is what the comparison shows. Always Stop&Copy.
   */
  private async baselineSteps(objective: Objective): Promise<void> {
    const m = this.ref;
    const planned = await this.step('plan', (signal) => this.ports.planner.plan(m, objective, signal), (p) => ({ ...p, strategy: 'cold', iterations: 0, baseline: true }));
    this.plan = { ...planned, strategy: 'cold', iterations: 0 };
    await this.step('prepare', (signal) => this.agents.prepare(m.source, m, 'source', signal));
    await this.dumpStep();
    await this.step('stream', (signal) => this.agents.streamImage(m.source, m.destination, m, 'dump', signal, this.planRate()), (s) => ({ bytes: s.bytes }));
    await this.step(
      'restore',
      async (signal) => {
        // Sequential, as COAT's scripts did: namespace, executor, flows staged, then restore.
        await this.agents.prepareNamespace(m.destination, m, signal);
        await this.agents.prepare(m.destination, m, 'destination', signal);
        await this.flows.stageDestination(m, signal);
        return this.agents.restore(m.destination, m, signal);
      },
      (r) => ({ sockets: r.sockets, ...r.timings }),
    );
    await this.switchStep();
    await this.step('resume', (signal) => this.requestResume(signal));
    await this.releaseStep();
  }

  private async releaseStep(): Promise<void> {
    const m = this.ref;
    await this.step('release', async (signal) => {
      await this.agents.release(m.source, m, signal);
      await this.agents.clearNamespace(m.source, m, signal);
    });
  }

  private async verifyStep(): Promise<void> {
    if (this.ports.verifier) {
      const facts = this.facts();
      const v = await this.step('verify', (signal) => this.ports.verifier!.verify(facts, signal), (v) => ({ ...v }));
      this.verdict = v.verdict;
      this.reportPath = v.reportPath;
    } else {
      await this.step('verify', async () => ({ verdict: 'not-verified' }), (v) => v);
    }
  }

  /**
   * Journals that the resume request (the point of no return) may leave from now on. It must be on
   * disk before the request leaves: `sync: false` only when a synced record follows first.
   */
  private armResume(sync: boolean): void {
    if (this.resumeArmed) return;
    this.journal.append({ type: 'resume-armed', atMs: this.clock.now(), host: this.ref.destination }, { sync });
    this.resumeArmed = true;
  }

  /** The destination's resume request, armed (durably) first. */
  private requestResume(signal: AbortSignal): Promise<void> {
    this.armResume(true);
    const resuming = this.agents.resume(this.ref.destination, this.ref, signal);
    resuming.catch(() => {}); // awaited by the resume step, or by resumeFate after a failure
    this.resuming = resuming;
    return resuming;
  }

  /**
   * What became of the resume request (ResumeFate). The request's own answer may be slow (its
   * agent waits for a restore that hangs) or prove nothing (a timeout), so the destination is also
   * asked directly with an abort: an agent refuses to abort a migration whose resume started there,
   * and resumes nothing it aborted, so an abort that succeeds proves the destination never runs.
   * Bounded by one step's time limit; without an answer it is `unknown`.
   */
  private async resumeFate(failed: StepName): Promise<ResumeFate> {
    // The request leaves only in `restore` (coat) or `resume`: a failure elsewhere is before it
    // (hold, dump) or after the destination resumed (replay, release, verify). This run knows
    // whether it sent it; after a crash, the armed journal says it may have.
    const mayHaveLeft = this.resuming !== undefined || (this.fromJournal && this.resumeArmed);
    if (!mayHaveLeft || !RESUME_REQUEST_STEPS.includes(failed)) return 'not-sent';
    const answer: Promise<ResumeFate> = this.resuming
      ? this.resuming.then(
          (): ResumeFate => 'resumed',
          (e: unknown): ResumeFate => (reasonOf(e).code === 'MIGRATION_NOT_RESUMED' ? 'not-resumed' : 'unknown'),
        )
      : Promise.resolve('unknown'); // recovery: the request left with the crashed controller
    const definitive = answer.then((f) => (f === 'unknown' ? new Promise<ResumeFate>(() => {}) : f));
    const ac = new AbortController();
    const asked = this.agents.abort(this.ref.destination, this.ref, 'destination', ac.signal).then(
      (): ResumeFate => {
        this.destinationAborted = true;
        return 'not-resumed';
      },
      () => answer,
    );
    try {
      // withTimer aborts `ac` when the limit passes: the abort request is abandoned with it.
      return await this.withTimer('resume-fate', this.opts.stepTimeoutMs ?? 30_000, ac, () => Promise.race([definitive, asked]));
    } catch {
      return 'unknown'; // the time limit passed (the race itself never rejects)
    } finally {
      ac.abort();
    }
  }

  /** Ends a migration found unfinished in the journal after a controller restart. */
  async resumeAfterCrash(): Promise<MigrationOutcome> {
    try {
      // A rollback the crash interrupted was decided before it: finish it. Otherwise the crashed
      // controller's resume request decides, as for a failure (onFailure).
      const rollBack = this.state === 'rolling-back' || this.state === 'created' || afterResumeRequest(this.state as StepName, await this.resumeFate(this.state as StepName)) === 'roll-back';
      if (rollBack) {
        const failedStep = this.state === 'rolling-back' ? this.recoveredFailedStep : (this.state as StepName);
        const err = new MigrationError('MIGRATION_INTERRUPTED', `the controller stopped during ${this.state}`, { migrationId: this.ref.migrationId });
        return await this.rollBack(failedStep, reasonOf(err));
      }
      const step = this.state as StepName;
      const err = reasonOf(new MigrationError('MIGRATION_INTERRUPTED', `the controller stopped during ${step}, after the point of no return; held packets in its memory were lost`, { migrationId: this.ref.migrationId, step }));
      await this.rollForward(step);
      return this.end('failed', step, err);
    } finally {
      this.journal.close();
    }
  }

  private async onFailure(f: StepFailure): Promise<MigrationOutcome> {
    const error = reasonOf(f.original);
    this.log.error({ event: 'step-failed', step: f.step, err: error }, `step ${f.step} failed: ${error.message}`);
    const fate = await this.resumeFate(f.step);
    const way = afterResumeRequest(f.step, fate);
    if (fate !== 'not-sent') this.log.warn({ event: 'resume-fate', step: f.step, fate, way }, `failure after the resume request (destination: ${fate}): ${way}`);
    if (way === 'roll-back') return this.rollBack(f.step, error);
    await this.rollForward(f.step);
    return this.end('failed', f.step, error);
  }

  /** Undo everything the started steps did, in undoPlan's order; best effort, every action tried. */
  private async rollBack(failedStep: StepName | undefined, error: ErrorSummary): Promise<MigrationOutcome> {
    const already = this.state === 'rolling-back' ? this.journalUndone() : [];
    if (this.state !== 'rolling-back') this.move('rolling-back');
    const actions = undoPlan(this.started).filter((a) => !already.includes(a) && !(a === 'abort-destination' && this.destinationAborted));
    this.journal.append({ type: 'rollback-start', atMs: this.clock.now(), ...(failedStep ? { failedStep } : {}), error, actions });
    this.emit({ type: 'rollback', migrationId: this.ref.migrationId, ...(failedStep ? { failedStep } : {}), error, actions });
    this.log.warn({ event: 'rollback', failedStep, actions }, 'rolling back');
    for (const action of actions) await this.undo(action);
    if (this.undoFailures.length > 0) {
      const why = this.undoFailures.map((u) => `${u.action}: ${u.error.message}`).join('; ');
      const rbErr = reasonOf(new MigrationError('MIGRATION_ROLLBACK_FAILED', `rollback incomplete (${why}); first failure: ${failedStep ?? 'restart'}: ${error.message}`, { migrationId: this.ref.migrationId }));
      return this.end('failed', failedStep, rbErr);
    }
    return this.end('rolled-back', failedStep, error);
  }

  private journalUndone(): UndoAction[] {
    return summarizeJournal(readJournal(journalPath(this.opts.dataDir, this.ref.migrationId)).records).undone;
  }

  private async undo(action: UndoAction): Promise<void> {
    const m = this.ref;
    const ac = new AbortController();
    const limit = this.opts.stepTimeoutMs ?? 30_000;
    this.journal.append({ type: 'undo-start', action, atMs: this.clock.now() });
    try {
      await this.withTimer(action, limit, ac, async () => {
        const signal = ac.signal;
        switch (action) {
          case 'switch-back':
            await this.flows.switchTo(m, 'source', signal);
            // New-MAC mode: the client learnt the new MAC at the switch; it must learn the old one.
            await this.announceMac('source', signal);
            return;
          case 'abort-destination':
            await this.agents.abort(m.destination, m, 'destination', signal);
            return;
          case 'thaw-source':
            await this.agents.abort(m.source, m, 'source', signal);
            return;
          case 'replay-to-source':
            await this.replayQueued('source', signal);
            return;
          case 'remove-hold':
            await this.removeHoldAndFlush('source', signal);
            return;
          case 'unstage-destination':
            await this.flows.unstageDestination(m, signal);
            return;
          case 'clear-destination':
            await this.agents.clearNamespace(m.destination, m, signal);
            return;
        }
      });
      this.journal.append({ type: 'undo-end', action, atMs: this.clock.now(), ok: true });
      this.emit({ type: 'undo', migrationId: m.migrationId, action, ok: true });
    } catch (err) {
      const error = reasonOf(err);
      this.undoFailures.push({ action, error });
      this.journal.append({ type: 'undo-end', action, atMs: this.clock.now(), ok: false, error });
      this.emit({ type: 'undo', migrationId: m.migrationId, action, ok: false, error });
      this.log.error({ event: 'undo-failed', action, err: error }, `undo ${action} failed: ${error.message}`);
    }
  }

  /**
   * After the point of no return: whatever failed, held packets must not stay held. Replay them to
   * the destination and remove the hold (best effort, logged). The source stays frozen, not
   * released, so an operator can still decide.
   */
  private async rollForward(failedStep: StepName): Promise<void> {
    this.log.error({ event: 'roll-forward', failedStep }, 'failure after the point of no return: finishing hold and replay, source left frozen');
    if (this.started.has('hold') && failedStep !== 'release' && failedStep !== 'verify') {
      const ac = new AbortController();
      try {
        await this.withTimer('roll-forward', this.opts.stepTimeoutMs ?? 30_000, ac, () => this.replayAndRelease('destination', ac.signal));
      } catch (err) {
        this.undoFailures.push({ action: 'remove-hold', error: reasonOf(err) });
        this.log.error({ event: 'roll-forward-failed', err: reasonOf(err) }, 'could not finish the replay after a failure');
      }
    }
  }

  /** Replay everything held toward `side` until the queue is empty, then remove the hold. */
  private async replayAndRelease(side: Side, signal: AbortSignal): Promise<void> {
    await this.replayQueued(side, signal);
    await this.removeHoldAndFlush(side, signal);
  }

  /** Drains the queue until empty: packets arriving during a replay queue behind it. */
  private async replayQueued(side: Side, signal: AbortSignal): Promise<void> {
    for (let batch = this.hold.drain(); batch.length > 0; batch = this.hold.drain()) {
      const frames = batch.map((p) => p.frame);
      let accepted: number;
      try {
        accepted = await this.flows.packetOut(this.ref, frames, side, signal);
      } catch (err) {
        this.hold.replayFailed(frames.length);
        throw err;
      }
      const ok = Math.max(0, Math.min(frames.length, accepted));
      this.hold.replayDone(ok);
      if (ok < frames.length) {
        this.hold.replayFailed(frames.length - ok);
        this.log.warn({ event: 'replay-refused', refused: frames.length - ok }, 'switch refused packet-outs: counted as dropped');
      }
    }
  }

  /**
   * Removes the hold flows, then replays the stragglers: packet-ins sent before the switch applied
   * the removal arrive before its barrier reply (one ordered OpenFlow channel), so after
   * `removeHold` resolves nothing more can arrive and the queue is closed.
   */
  private async removeHoldAndFlush(side: Side, signal: AbortSignal): Promise<void> {
    await this.flows.removeHold(this.ref, signal);
    this.hold.close();
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.replayQueued(side, signal);
  }

  private holdDetail(): Record<string, unknown> {
    const s = this.hold.stats();
    return { held: s.held, replayed: s.replayed, dropped: s.dropped, peakPackets: s.peakPackets, peakBytes: s.peakBytes };
  }

  /**
   * Runs one step: legal transition, write-ahead journal record, deadline, end record. A failure
   * becomes a StepFailure naming the step.
   */
  private async step<T>(name: StepName, body: (signal: AbortSignal) => Promise<T>, detail?: (r: T) => Record<string, unknown>, round?: number): Promise<T> {
    this.move(name);
    this.started.add(name);
    const startMs = this.clock.now();
    const timing: StepTiming = { name, ...(round !== undefined ? { round } : {}), startMs };
    this.steps.push(timing);
    this.journal.append({ type: 'step-start', step: name, atMs: startMs, ...(round !== undefined ? { round } : {}) }, { sync: !UNSYNCED_WINDOW_STEPS.includes(name) });
    this.emit({ type: 'step-start', migrationId: this.ref.migrationId, step: name, ...(round !== undefined ? { round } : {}), atMs: startMs });
    const ac = new AbortController();
    let limit = this.opts.stepTimeouts?.[name] ?? this.opts.stepTimeoutMs ?? 30_000;
    if (this.deadlineAt !== undefined && canRollBack(name)) limit = Math.min(limit, Math.max(0, this.deadlineAt - startMs));
    try {
      const result = await this.withTimer(name, limit, ac, () => body(ac.signal));
      const endMs = this.clock.now();
      const d = detail ? stripUndefined(detail(result)) : undefined;
      Object.assign(timing, { endMs, ok: true, ...(d ? { detail: d } : {}) });
      this.journal.append({ type: 'step-end', step: name, atMs: endMs, ...(round !== undefined ? { round } : {}), ok: true, ...(d ? { detail: d } : {}) });
      this.emit({ type: 'step-end', migrationId: this.ref.migrationId, step: name, ...(round !== undefined ? { round } : {}), atMs: endMs, ok: true });
      this.log.info({ event: 'step', step: name, round, ms: +(endMs - startMs).toFixed(3) }, `step ${name} done`);
      return result;
    } catch (err) {
      const endMs = this.clock.now();
      const error = reasonOf(err);
      Object.assign(timing, { endMs, ok: false, error });
      this.journal.append({ type: 'step-end', step: name, atMs: endMs, ...(round !== undefined ? { round } : {}), ok: false, error });
      this.emit({ type: 'step-end', migrationId: this.ref.migrationId, step: name, ...(round !== undefined ? { round } : {}), atMs: endMs, ok: false, error });
      throw new StepFailure(name, err);
    }
  }

  /** Races `body` against a timer; on expiry aborts the signal and throws MIGRATION_DEADLINE. */
  private withTimer<T>(what: string, limitMs: number, ac: AbortController, body: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const cancel = this.clock.setTimer(() => {
        const err = new MigrationError('MIGRATION_DEADLINE', `${what} did not finish within ${limitMs} ms`, { migrationId: this.ref.migrationId, step: what, limitMs });
        ac.abort(err);
        reject(err);
      }, limitMs);
      let running: Promise<T>;
      try {
        running = body();
      } catch (e) {
        running = Promise.reject(e); // a port that throws synchronously still cancels the timer
      }
      running.then(
        (v) => {
          cancel();
          resolve(v);
        },
        (e: unknown) => {
          cancel();
          reject(e);
        },
      );
    });
  }

  private move(to: MigrationState): void {
    this.state = transition(this.state, to, this.ref.migrationId, this.mode);
  }

  private end(state: TerminalState, failedStep?: StepName, error?: ErrorSummary): MigrationOutcome {
    if (!isTerminal(this.state)) this.move(state);
    const endedAtMs = this.clock.now();
    const h = this.hold.stats();
    this.journal.append({ type: 'end', state, atMs: endedAtMs, ...(failedStep ? { failedStep } : {}), ...(error ? { error } : {}), hold: { held: h.held, replayed: h.replayed, dropped: h.dropped } });
    this.emit({ type: 'end', migrationId: this.ref.migrationId, state });
    this.log.info({ event: 'end', state, failedStep, totalMs: +(endedAtMs - this.startedAtMs).toFixed(3), hold: this.hold.stats() }, `migration ${state}`);
    return {
      migrationId: this.ref.migrationId,
      mode: this.mode,
      state,
      ...(failedStep ? { failedStep } : {}),
      ...(error ? { error } : {}),
      undoFailures: this.undoFailures,
      ...(this.plan ? { plan: this.plan } : {}),
      steps: this.steps,
      hold: this.hold.stats(),
      ...(this.switchMs !== undefined ? { switchMs: this.switchMs } : {}),
      ...(this.verdict !== undefined ? { verdict: this.verdict } : {}),
      ...(this.reportPath !== undefined ? { reportPath: this.reportPath } : {}),
      startedAtMs: this.startedAtMs,
      endedAtMs,
    };
  }

  private facts(): MigrationFacts {
    return {
      ref: this.ref,
      mode: this.mode,
      plan: this.plan!,
      startedAtMs: this.startedAtMs,
      steps: this.steps,
      hold: this.hold.stats(),
      ...(this.switchMs !== undefined ? { switchMs: this.switchMs } : {}),
    };
  }

  private emit(e: MigrationEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch (err) {
      this.log.warn({ event: 'listener-failed', err: reasonOf(err) }, 'progress listener threw');
    }
  }
}

function stripUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
