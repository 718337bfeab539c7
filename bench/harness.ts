/**
 * Benchmark contract. `bench/NAME.bench.ts` exports `bench: Bench`; `npm run bench -- NAME [--json]`
 * runs it and prints its rows as a table: coat's figure beside the peer's, both measured in the
 * same run on this machine (never a number typed in by hand).
 */
export interface BenchRow {
  /** What was measured, e.g. "packet-in decode". */
  metric: string;
  unit: string;
  coat: number | null;
  /** The peer's figure from the same run, or null when there is no peer for this row. */
  peer: number | null;
  /** Which peer, e.g. "ovs-ofctl --bundle add-flows". */
  peerName?: string;
  /** The stated goal, when the issue names one, e.g. ">= 1000000". */
  goal?: string;
  note?: string;
}

export interface BenchContext {
  /** Extra arguments after the bench name. */
  args: string[];
  /** Progress lines (stderr). */
  progress(line: string): void;
}

export interface Bench {
  summary: string;
  run(ctx: BenchContext): Promise<BenchRow[]>;
}

/** Runs `fn` repeatedly for at least `minMs` and returns operations per second. */
export function opsPerSecond(fn: () => void, opsPerCall = 1, minMs = 1000): number {
  for (let i = 0; i < 1000; i++) fn(); // warm up the JIT
  let calls = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0n;
  const limit = BigInt(minMs) * 1_000_000n;
  while (elapsed < limit) {
    for (let i = 0; i < 1000; i++) fn();
    calls += 1000;
    elapsed = process.hrtime.bigint() - start;
  }
  return (calls * opsPerCall) / (Number(elapsed) / 1e9);
}

/** Median and p-th percentile of a sample. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

export function formatTable(rows: BenchRow[]): string {
  const fmt = (v: number | null) =>
    v === null ? '-' : Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('en-US') : v.toPrecision(4);
  const table = [['metric', 'unit', 'coat', 'peer', 'peer is', 'goal', 'note']];
  for (const r of rows) table.push([r.metric, r.unit, fmt(r.coat), fmt(r.peer), r.peerName ?? '', r.goal ?? '', r.note ?? '']);
  const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  return table.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}
