/**
 * `npm run bench -- migration [--runs N] [--sizes 1,10,50] [--mbit L] [--dirty-rate R] [--rounds I]
 *                             [--variants precopy,cold,baseline] [--per-lab N] [--stream-rate B/s]
 *                             [--stream-tick-ms N]
 *                             [--record FILE]`
 *
 * Issue 10's benchmark: N migrations back and forth per state size M, in the lab (edge-a, edge-b,
 * client; real OVS, VXLAN, NATS, agents), for each variant in the same run:
 *   precopy    coat, iterative pre-copy with I rounds (default 1) then hold / dump / switch / replay
 *   cold       coat, stop-and-copy with hold / switch / replay
 *   baseline   coat-baseline: COAT's published procedure with the same parts (new MAC, GARP, client
 *              neighbour flush, no hold, delete-then-add flow-mods, cold, sequential) = the peer
 * Every `--per-lab` migrations (default 1; back and forth when more) get a fresh lab whose two edge
 * hosts' underlay links the bench shapes itself with tbf (both directions, lab/up.ts) at --mbit
 * (default 1000 Mbit/s, MOSE's 1 Gbit/s); the image streams cross that link. R is the workload's dirty-page rate (default 5 pages/s, the issue's).
 *
 * Printed per size: downtime (the client's largest gap, from the capture) and total time, median
 * and p90; switch time (first bundle sent to the last barrier reply); lost-segment
 * retransmissions; verdicts; coat's figure beside coat-baseline's from the same run, with the
 * issue's goals and the published figures they are set against (MOSE Table I, COAT's scripts).
 *
 * --record FILE appends every finished coat migration (precopy and cold) as a measured run in the
 * format `coat calibrate` and `npm run bench -- planner --runs FILE` read (docs/planner.md).
 *
 * The machine has 2 cores shared with other work and the lab's datapath is OVS user space: the
 * figures are noisy, and the floor is far above a dedicated host's.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDown } from '../lab/down.js';
import { labUp } from '../lab/up.js';
import type { MeasuredMigration, MeasuredRound } from '../src/migration/calibrate.js';
import { runScenarioInLab } from '../src/migration/live/lab-run.js';
import type { PreDumpRecord, ScenarioOptions, ScenarioResult } from '../src/migration/live/lab-scenario.js';
import type { VerificationReport } from '../src/migration/report.js';
import type { MigrationOutcome } from '../src/migration/orchestrator.js';
import { defaultTopology } from '../src/vxlan/topology.js';
import { percentile, type Bench, type BenchRow } from './harness.js';

const VARIANTS = ['precopy', 'cold', 'baseline'] as const;
/** `--sizes` are MiB: the workload's `M` suffix is binary. */
const MIB = 1024 * 1024;
type Variant = (typeof VARIANTS)[number];

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function positiveNumber(args: string[], name: string, dflt: number): number {
  const v = flag(args, name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: '${v}' must be a positive number`);
  return n;
}

/** A measured run for calibration, with what identifies it. */
export type RecordedRun = MeasuredMigration & { label: string; migrationId: string; verdict: string; predicted: VerificationReport['predicted'] };

const dur = (s: { startMs: number; endMs?: number }) => (s.endMs ?? s.startMs) - s.startMs;
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * One finished migration as a calibration run (docs/planner.md, "Runs file"). PAM's rounds from
 * the orchestrator's steps: pre-copy round i = the executor's preDump (its own timings) then the
 * stream; the dump round = the dump step (freeze / sockets + state / write from the executor) then
 * the stream (inside the dump step for coat: its `streamMs`; a step of its own for coat-baseline); `restoreMs` = restore through replay (restore, resume, replay; coat-baseline also its switch: the
 * service answers again); `setupMs` = the rest of the total (profile, prepare, hold, release).
 */
export function measuredRun(o: MigrationOutcome, rep: VerificationReport, preDumps: PreDumpRecord[], cfg: { executor: string; stateBytes: number; dirtyPagesPerS: number; bandwidthMbit: number; label: string }): RecordedRun | undefined {
  const find = (name: string) => o.steps.find((s) => s.name === name && s.ok);
  const dump = find('dump');
  const stream = find('stream');
  const restore = find('restore');
  const replay = find('replay');
  if (o.state !== 'done' || !dump || !restore || !replay || replay.endMs === undefined) return undefined;
  const rounds: MeasuredRound[] = [];
  const precopy = o.steps.filter((s) => s.name === 'precopy' && s.ok).sort((a, b) => (a.round ?? 0) - (b.round ?? 0));
  for (const s of precopy) {
    const pd = preDumps.find((p) => p.migrationId === o.migrationId && p.round === s.round);
    const r: MeasuredRound = { kind: 'pre-dump' };
    const bytes = num(s.detail?.streamedBytes) ?? num(s.detail?.bytes);
    if (bytes !== undefined) r.bytes = bytes;
    if (pd) {
      r.frozenMs = pd.frozenMs;
      const total = num(pd.timings.total);
      if (total !== undefined) r.memoryDumpMs = Math.max(0, total - pd.frozenMs);
      r.checkpointMs = pd.ms;
      r.transferMs = Math.max(0, dur(s) - pd.ms);
    }
    rounds.push(r);
  }
  const d = dump.detail ?? {};
  // coat streams the final image inside the dump step (its detail says how long); coat-baseline
  // has a stream step of its own.
  const streamMs = stream ? dur(stream) : (num(d.streamMs) ?? 0);
  const dr: MeasuredRound = { kind: 'dump', checkpointMs: Math.max(0, dur(dump) - (stream ? 0 : streamMs)), transferMs: streamMs };
  const freeze = num(d.freeze);
  if (freeze !== undefined) dr.freezingMs = freeze;
  const sockets = num(d.sockets);
  const state = num(d.state);
  if (sockets !== undefined || state !== undefined) dr.frozenMs = (sockets ?? 0) + (state ?? 0);
  else if (num(d.frozenMs) !== undefined) dr.frozenMs = num(d.frozenMs)!;
  const write = num(d.write);
  if (write !== undefined) dr.memoryDumpMs = write;
  const bytes = stream ? num(stream.detail?.bytes) : num(d.streamedBytes);
  if (bytes !== undefined) dr.bytes = bytes;
  rounds.push(dr);
  const restoreMs = replay.endMs - restore.startMs;
  const inRounds = precopy.reduce((t, s) => t + dur(s), 0) + (replay.endMs - dump.startMs);
  return {
    executor: cfg.executor,
    label: cfg.label,
    migrationId: o.migrationId,
    verdict: rep.verdict,
    predicted: rep.predicted,
    stateBytes: cfg.stateBytes,
    dirtyPagesPerS: cfg.dirtyPagesPerS,
    bandwidthMbit: cfg.bandwidthMbit,
    preDumpRounds: precopy.length,
    downtimeMs: rep.downtimeMs,
    totalMs: rep.totalMs,
    restoreMs,
    setupMs: Math.max(0, rep.totalMs - inRounds),
    rounds,
  };
}

interface VariantOptions {
  runs: number;
  perLab: number;
  mbit: number;
  dirtyRate: number;
  rounds: number;
  streamRate: string;
  streamTickMs: number;
  realtimeControl: boolean;
  progress: (l: string) => void;
}

/** What runs of one variant gave: the scenarios that finished, and the failures of the others. */
interface VariantResult {
  results: ScenarioResult[];
  /** One entry per scenario that threw: its migrations count as failed runs. */
  failures: { runs: number; error: string }[];
}

/** The line of a scenario's error that says what failed (not its stack). */
function errorLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('at '));
  return (lines.find((l) => l.startsWith('scenario failed')) ?? lines[0] ?? 'unknown error').slice(0, 240);
}

/**
 * One variant at one size: fresh labs of `perLab` migrations (back and forth) each, until `runs`
 * migrations ran. A scenario that throws (e.g. the client's traffic did not flow again within 20 s
 * of a migration) loses its lab's runs, which count as failed; the next lab goes on.
 * coat-baseline runs one migration per lab: its move back fails at the switch in this build
 * ("endpoint service is on edge-a in the topology, not on the source edge-b").
 */
async function runVariant(variant: Variant, sizeMB: number, o: VariantOptions): Promise<VariantResult> {
  const perLab = variant === 'baseline' ? 1 : o.perLab;
  const out: VariantResult = { results: [], failures: [] };
  for (let done = 0; done < o.runs; done += perLab) {
    const n = Math.min(perLab, o.runs - done);
    try {
      out.results.push(await runInLab(variant, sizeMB, { ...o, runs: n }));
    } catch (err) {
      out.failures.push({ runs: n, error: errorLine(err) });
      o.progress(`  ${variant} ${sizeMB} MiB: lab of ${n} migration(s) FAILED: ${errorLine(err)}`);
    }
  }
  return out;
}

async function runInLab(variant: Variant, sizeMB: number, o: VariantOptions): Promise<ScenarioResult> {
  const topo = defaultTopology();
  for (const h of topo.hosts) if (h.name !== 'client') h.underlay.mbit = o.mbit;
  const stateDir = await mkdtemp(join(tmpdir(), 'coat-migbench-'));
  try {
    const st = await labUp(topo, { stateDir, controller: false });
    const req: Omit<ScenarioOptions, 'progress' | 'onEvent' | 'log'> = {
      stateDir,
      tag: st.tag,
      traffic: 'stream',
      migrations: o.runs,
      executor: 'tcp-repair',
      stateBytes: `${sizeMB}M`, // the workload's M suffix is binary (MiB)
      dirtyRate: o.dirtyRate,
      streamRate: o.streamRate,
      streamTickMs: o.streamTickMs,
      realtimeControl: o.realtimeControl,
      ...(variant === 'baseline' ? { strategy: 'coat-baseline' as const } : { strategy: 'coat' as const, plan: variant === 'cold' ? { strategy: 'cold' as const } : { strategy: 'precopy' as const, iterations: o.rounds } }),
    };
    return await runScenarioInLab(req, { progress: (l) => o.progress(`    ${l}`), timeoutMs: 120_000 + o.runs * (20_000 + sizeMB * 1000) });
  } finally {
    await labDown(stateDir).catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  }
}

interface Figures {
  n: number;
  done: number;
  zeroLoss: number;
  downtime: number[];
  total: number[];
  switchMs: number[];
  retransmissions: number;
  spurious: number;
  predictedDowntime: number[];
  error?: string;
}

function figuresOf(v: VariantResult): Figures {
  const reports = v.results.flatMap((r) => r.reports);
  const done = reports.filter((x) => x.state === 'done');
  const failedRuns = v.failures.reduce((t, f) => t + f.runs, 0);
  return {
    n: reports.length + failedRuns,
    done: done.length,
    zeroLoss: reports.filter((x) => x.verdict === 'zero-loss').length,
    downtime: done.map((x) => x.downtimeMs),
    total: done.map((x) => x.totalMs),
    switchMs: done.map((x) => x.switchMs).filter((s): s is number => s !== null),
    retransmissions: reports.reduce((t, x) => t + x.client.retransmissions, 0),
    spurious: reports.reduce((t, x) => t + x.client.spuriousRetransmissions, 0),
    predictedDowntime: done.map((x) => x.predicted?.downtimeMs).filter((d): d is number => d !== undefined),
    ...(v.failures.length > 0 ? { error: `${failedRuns} run(s) in failed labs: ${[...new Set(v.failures.map((f) => f.error))].join('; ').slice(0, 200)}` } : {}),
  };
}

const p50 = (v: number[]) => (v.length ? percentile(v, 50) : null);

/** The steps of the downtime window and the executor's own timings inside them. */
const WINDOW_STEPS = ['hold', 'switch', 'dump', 'stream', 'restore', 'resume', 'replay'] as const;

/**
 * Where the downtime goes: the median duration of each window step over the variant's finished
 * migrations, with the executor's inner timings (freeze, sockets, state, write; read, handover)
 * in brackets, and the window from the freeze's step start to the end of resume.
 */
export function windowBreakdown(outcomes: readonly MigrationOutcome[]): string {
  const done = outcomes.filter((o) => o.state === 'done');
  if (done.length === 0) return 'no finished migration';
  const med = (v: number[]) => (v.length ? percentile(v, 50).toFixed(1) : '-');
  const parts: string[] = [];
  for (const name of WINDOW_STEPS) {
    const steps = done.map((o) => o.steps.find((s) => s.name === name && s.ok)).filter((s): s is NonNullable<typeof s> => s !== undefined);
    if (steps.length === 0) continue;
    const inner = new Map<string, number[]>();
    for (const s of steps) for (const [k, v] of Object.entries(s.detail ?? {})) if (['freeze', 'discover', 'sockets', 'state', 'write', 'total', 'streamSetupMs', 'streamMs', 'agentMs', 'read', 'spawn', 'handover'].includes(k) && typeof v === 'number') inner.set(k, [...(inner.get(k) ?? []), v]);
    const brackets = [...inner].map(([k, v]) => `${k} ${med(v)}`).join(', ');
    parts.push(`${name} ${med(steps.map(dur))}${brackets ? ` (${brackets})` : ''}`);
  }
  const windows = done.map((o) => {
    const d = o.steps.find((s) => s.name === 'dump' && s.ok);
    const r = o.steps.find((s) => s.name === 'resume' && s.ok);
    return d && r?.endMs !== undefined ? r.endMs - d.startMs : undefined;
  }).filter((x): x is number => x !== undefined);
  return `step medians, ms: ${parts.join('; ')}; dump start to resume end ${med(windows)}`;
}
const p90 = (v: number[]) => (v.length ? percentile(v, 90) : null);

export const bench: Bench = {
  summary: 'lab migrations per state size: coat (pre-copy, cold) vs coat-baseline (COAT procedure), same run, shaped underlay',
  async run(ctx) {
    const runs = Math.round(positiveNumber(ctx.args, '--runs', 5));
    const sizes = (flag(ctx.args, '--sizes') ?? '1,10,50').split(',').map((s) => {
      const n = Number(s);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`--sizes: '${s}' is not a size in MiB`);
      return n;
    });
    const mbit = positiveNumber(ctx.args, '--mbit', 1000);
    const dirtyRate = positiveNumber(ctx.args, '--dirty-rate', 5);
    const rounds = Math.round(positiveNumber(ctx.args, '--rounds', 1));
    const perLab = Math.round(positiveNumber(ctx.args, '--per-lab', 1));
    const streamRate = flag(ctx.args, '--stream-rate') ?? '2M';
    // The service's stream writes every ms (the workload's default): the downtime is the client's
    // largest gap between data segments, and a coarser tick puts its own floor under it.
    const streamTickMs = Math.round(positiveNumber(ctx.args, '--stream-tick-ms', 1));
    const variants = (flag(ctx.args, '--variants') ?? VARIANTS.join(',')).split(',') as Variant[];
    for (const v of variants) if (!VARIANTS.includes(v)) throw new Error(`--variants: '${v}' is not one of ${VARIANTS.join(', ')}`);
    const record = flag(ctx.args, '--record');
    // Off by default: it shortens the switch but lengthens the client's gap (docs/migration.md).
    const realtimeControl = ctx.args.includes('--realtime-control');
    ctx.progress(`underlay: edge-a and edge-b links shaped with tbf at ${mbit} Mbit/s both ways; R = ${dirtyRate} pages/s; ${runs} migrations per variant and size, ${perLab} per fresh lab; stream ${streamRate}B/s written every ${streamTickMs} ms${realtimeControl ? '; control plane at SCHED_RR 1' : ''}`);

    let recorded = 0;
    const rows: BenchRow[] = [];
    for (const sizeMB of sizes) {
      const fig = new Map<Variant, Figures>();
      for (const v of variants) {
        ctx.progress(`M = ${sizeMB} MiB, ${v}: lab up, ${runs} migrations`);
        const t0 = Date.now();
        const r = await runVariant(v, sizeMB, { runs, perLab, mbit, dirtyRate, rounds, streamRate, streamTickMs, realtimeControl, progress: ctx.progress });
        const f = figuresOf(r);
        fig.set(v, f);
        ctx.progress(`M = ${sizeMB} MiB, ${v}: ${f.done}/${f.n} done, ${f.zeroLoss} zero-loss, downtime ${f.downtime.join(' ')} ms (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
        ctx.progress(`M = ${sizeMB} MiB, ${v}: ${windowBreakdown(r.results.flatMap((x) => x.outcomes))}`);
        if (v !== 'baseline' && record) {
          const fresh: RecordedRun[] = [];
          for (const res of r.results) {
            res.outcomes.forEach((o, i) => {
              const rep = res.reports[i];
              const m = rep && measuredRun(o, rep, res.preDumps, { executor: 'tcp-repair', stateBytes: sizeMB * MIB, dirtyPagesPerS: dirtyRate, bandwidthMbit: mbit, label: `${v} M=${sizeMB}MiB` });
              if (m) fresh.push(m);
            });
          }
          // Appended after every variant: a long run interrupted keeps what it measured.
          const before = await readFile(record, 'utf8').then((t) => JSON.parse(t) as RecordedRun[], () => [] as RecordedRun[]);
          await writeFile(record, JSON.stringify([...before, ...fresh], null, 1) + '\n');
          recorded += fresh.length;
        }
      }
      const base = fig.get('baseline');
      const coldBound = ((sizeMB * MIB * 8) / (mbit * 1e6)) * 1000 + 10; // M/L + 10 ms
      for (const v of variants.filter((x) => x !== 'baseline')) {
        const f = fig.get(v)!;
        const label = `${sizeMB} MiB ${v === 'precopy' ? `pre-copy I=${rounds}` : 'cold'}`;
        // coat-baseline is cold: its peer figures sit beside both coat variants.
        const downGoal = v === 'precopy' ? (sizeMB === 10 && dirtyRate === 5 ? '<= 10 (MOSE pub. 509)' : '-') : `<= M/L+10 = ${coldBound.toFixed(0)}${sizeMB === 10 ? ' (MOSE pub. 764)' : ''}`;
        const peerName = base ? 'coat-baseline (COAT procedure), same run' : undefined;
        const note = `${f.done}/${f.n} done, ${f.zeroLoss} zero-loss${f.error ? `; ${f.error}` : ''}`;
        rows.push({ metric: `${label}: downtime median`, unit: 'ms', coat: p50(f.downtime), peer: base ? p50(base.downtime) : null, ...(peerName ? { peerName } : {}), goal: downGoal, note: `${note}; PAM predicted median ${p50(f.predictedDowntime)?.toFixed(0) ?? '-'} ms` });
        rows.push({ metric: `${label}: downtime p90`, unit: 'ms', coat: p90(f.downtime), peer: base ? p90(base.downtime) : null, ...(peerName ? { peerName } : {}), goal: downGoal });
        rows.push({ metric: `${label}: total median`, unit: 'ms', coat: p50(f.total), peer: base ? p50(base.total) : null, ...(peerName ? { peerName } : {}), ...(v === 'precopy' && sizeMB === 10 ? { note: 'MOSE pub. 1622 ms' } : {}) });
        rows.push({ metric: `${label}: total p90`, unit: 'ms', coat: p90(f.total), peer: base ? p90(base.total) : null, ...(peerName ? { peerName } : {}) });
        rows.push({ metric: `${label}: switch median`, unit: 'ms', coat: p50(f.switchMs), peer: base ? p50(base.switchMs) : null, ...(peerName ? { peerName } : {}), goal: '<= 2 (COAT scripts 69-114)', note: 'first bundle sent to last barrier reply; baseline: delete-then-add flow-mods' });
        rows.push({ metric: `${label}: switch p90`, unit: 'ms', coat: p90(f.switchMs), peer: base ? p90(base.switchMs) : null, ...(peerName ? { peerName } : {}), goal: '<= 2' });
        rows.push({ metric: `${label}: retransmissions (lost segments, all runs)`, unit: 'segments', coat: f.retransmissions, peer: base ? base.retransmissions : null, ...(peerName ? { peerName } : {}), goal: '0', note: `spurious (D-SACKed) ${f.spurious}${base ? ` vs ${base.spurious}` : ''}` });
      }
      if (base && variants.length === 1) {
        rows.push({ metric: `${sizeMB} MiB coat-baseline: downtime median`, unit: 'ms', coat: null, peer: p50(base.downtime), peerName: 'coat-baseline', note: base.error ?? `${base.done}/${base.n} done` });
      }
      if (base) rows.push({ metric: `${sizeMB} MiB coat-baseline: verdicts`, unit: 'runs', coat: null, peer: base.zeroLoss, peerName: 'coat-baseline zero-loss runs', note: `${base.done}/${base.n} done, ${base.retransmissions} lost-segment retransmissions${base.error ? `; ${base.error}` : ''}` });
    }
    if (record) ctx.progress(`recorded ${recorded} coat migrations in ${record} (appended): coat calibrate --input ${record} --executor tcp-repair`);
    return rows;
  },
};
