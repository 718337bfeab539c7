/**
 * Destination side of the state pre-copy: the pages of every pre-copy round go straight into the
 * destination's state files as the round arrives (the agent's receiver renames a whole step
 * directory into place, src/transfer/receiver.ts), so restore, inside the downtime, applies only
 * the dump's delta and renames. Pages are written into `NAME.coat-tmp` beside the state file: the
 * standby service cannot see a half-built state, and the rename at restore is atomic per file.
 *
 * Semantics equal `applyDeltas` (page-delta.ts) over the same rounds in order: a page lands at
 * index x page size, later rounds overwrite earlier ones, the file ends at the last round's size,
 * never-written ranges read as zeros (holes).
 *
 * Rounds must be applied in order. Background application only ever moves forward (round numbers
 * increasing); a round it cannot read yet (a step written in place rather than renamed in) is left
 * for the next look or for restore, which re-reads and verifies everything not applied.
 */
import { closeSync, copyFileSync, openSync, renameSync, rmSync, truncateSync, watch, writevSync, type FSWatcher } from 'node:fs';
import { open, readdir, readFile, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../log.js';
import { preCopyRound } from '../../migration/executor.js';
import { decodePageDelta, type PageDelta } from './page-delta.js';

export const TMP_SUFFIX = '.coat-tmp';

/** The part of a step's round.json the applier reads. */
interface PreStep {
  round: number;
  files: string[];
}

export class StateApplier {
  /** Pre-copy rounds already in the temp files, increasing. */
  readonly applied: number[] = [];
  /** Temp files written so far -> size the last applied delta gave the file. */
  private readonly sizes = new Map<string, bigint>();
  private watcher: FSWatcher | undefined;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Time spent applying rounds in the background, ms. */
  backgroundMs = 0;

  constructor(
    private readonly imageDir: string,
    private readonly stateDir: string,
    private readonly log: Logger,
  ) {}

  /** Removes temp files a previous, unfinished migration left. */
  async clearStale(): Promise<void> {
    for (const e of await readdir(this.stateDir).catch(() => [] as string[])) {
      if (e.endsWith(TMP_SUFFIX)) await rm(join(this.stateDir, e), { force: true });
    }
  }

  /** Clears stale temp files, then follows imageDir. */
  async start(): Promise<void> {
    await this.clearStale();
    try {
      this.watcher = watch(this.imageDir, () => this.schedule());
      this.watcher.on('error', (err) => this.log.warn({ err }, 'image directory watch failed; rounds will be applied at restore'));
      this.watcher.unref();
    } catch (err) {
      this.log.warn({ err, imageDir: this.imageDir }, 'cannot watch the image directory; rounds will be applied at restore');
    }
    this.schedule(); // rounds that arrived before the watch
  }

  /**
   * Applies every complete round not applied yet, now, and returns when done: the orchestrator
   * asks for it after each pre-copy round (executor `settle`), so a large round that landed just
   * before the freeze is not applied by restore, inside the downtime (seen at 50 MiB: 174 ms).
   */
  async settle(): Promise<void> {
    this.schedule();
    await this.chain;
  }

  /** Stops following imageDir and waits for the round being applied. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = undefined;
    await this.chain;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.chain = this.chain.then(() => this.scan()).catch((err: unknown) => this.log.warn({ err }, 'background round application failed; restore will apply it'));
  }

  /** Applies, in order, every pre-copy round above the last applied one that is complete. */
  private async scan(): Promise<void> {
    if (this.stopped) return;
    const last = this.applied.at(-1) ?? -Infinity;
    const ready: { dir: string; step: PreStep }[] = [];
    for (const e of await readdir(this.imageDir).catch(() => [] as string[])) {
      if (preCopyRound(e) === undefined) continue;
      const step = await readPreStep(join(this.imageDir, e));
      if (step && step.round > last) ready.push({ dir: join(this.imageDir, e), step });
    }
    ready.sort((a, b) => a.step.round - b.step.round);
    for (const { dir, step } of ready) {
      if (this.stopped) return;
      let deltas: PageDelta[];
      try {
        deltas = await Promise.all(step.files.map(async (f) => decodePageDelta(await readFile(join(dir, 'state', `${f}.pages`)))));
      } catch {
        return; // not complete yet (or bad: restore reports it); later rounds wait for it
      }
      if (deltas.some((d, i) => d.name !== step.files[i])) return;
      const t0 = performance.now();
      await this.apply(deltas);
      this.applied.push(step.round);
      const ms = performance.now() - t0;
      this.backgroundMs += ms;
      this.log.debug({ round: step.round, pages: deltas.reduce((n, d) => n + d.pages.length, 0), ms }, 'pre-copy round applied to the destination state');
    }
  }

  /** Discards what was applied (rounds arrived out of order): restore applies every round. */
  async reset(): Promise<void> {
    for (const f of this.sizes.keys()) await rm(this.tmpPath(f), { force: true });
    this.sizes.clear();
    this.applied.length = 0;
  }

  /** Writes deltas (one round, any files) into the temp files; in the background, off the loop. */
  async apply(deltas: PageDelta[]): Promise<void> {
    for (const d of deltas) {
      const fh = await open(this.tmpPath(d.name), constants.O_RDWR | constants.O_CREAT, 0o600);
      try {
        for (const r of pageRuns(d)) await fh.writev(r.buffers, r.offset);
      } finally {
        await fh.close();
      }
      this.sizes.set(d.name, d.fileSize);
    }
  }

  /**
   * The same, synchronously: for restore, inside the downtime, where the dump's delta is a few
   * pages and a trip through libuv's thread pool (behind an image being received) costs more than
   * the writes.
   */
  applyNow(deltas: PageDelta[]): void {
    for (const d of deltas) {
      const fd = openSync(this.tmpPath(d.name), constants.O_RDWR | constants.O_CREAT, 0o600);
      try {
        for (const r of pageRuns(d)) writevSync(fd, r.buffers, r.offset);
      } finally {
        closeSync(fd);
      }
      this.sizes.set(d.name, d.fileSize);
    }
  }

  /**
   * A state file the dump sent whole (no round copied it): it becomes the temp file as it is, by
   * rename (a copy across filesystems), replacing whatever earlier rounds built for that name.
   * Synchronous, see applyNow. The image loses the file: restore consumes it.
   */
  placeWhole(name: string, path: string, size: number): void {
    const tmp = this.tmpPath(name);
    try {
      renameSync(path, tmp);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      copyFileSync(path, tmp);
    }
    this.sizes.set(name, BigInt(size));
  }

  /**
   * Restore's last step: sizes every file in `keep` as its last delta says and renames it into
   * the state directory; temp files of other names (gone at the dump) are removed. Returns the
   * state files made. Synchronous: inside the downtime (see applyNow); no fsync, the files only
   * need to outlive the service, not a crash of the host.
   */
  finish(keep: string[]): string[] {
    const made: string[] = [];
    for (const [name, size] of this.sizes) {
      if (!keep.includes(name)) {
        rmSync(this.tmpPath(name), { force: true });
        continue;
      }
      truncateSync(this.tmpPath(name), Number(size));
      renameSync(this.tmpPath(name), join(this.stateDir, name));
      made.push(join(this.stateDir, name));
    }
    this.sizes.clear();
    return made;
  }

  /** Removes every temp file (abort). */
  async discard(): Promise<void> {
    await this.stop();
    await this.reset();
  }

  private tmpPath(name: string): string {
    return join(this.stateDir, name + TMP_SUFFIX);
  }
}

/**
 * One write per run of consecutive pages (a full round is one run), each at most IOV_MAX (1024)
 * buffers, which is all writev(2) takes.
 */
function pageRuns(d: PageDelta): { offset: number; buffers: Uint8Array[] }[] {
  const out: { offset: number; buffers: Uint8Array[] }[] = [];
  let i = 0;
  while (i < d.pages.length) {
    let j = i + 1;
    while (j < d.pages.length && d.pages[j]!.index === d.pages[j - 1]!.index + 1) j++;
    const run = d.pages.slice(i, j).map((p) => p.data);
    for (let k = 0; k < run.length; k += 1024) out.push({ offset: (d.pages[i]!.index + k) * d.pageSize, buffers: run.slice(k, k + 1024) });
    i = j;
  }
  return out;
}

async function readPreStep(dir: string): Promise<PreStep | undefined> {
  try {
    const m = JSON.parse(await readFile(join(dir, 'round.json'), 'utf8')) as { kind?: unknown; round?: unknown; files?: unknown };
    if (m.kind !== 'pre' || !Number.isInteger(m.round) || !Array.isArray(m.files) || !m.files.every((f) => typeof f === 'string' && /^[A-Za-z0-9._-]+$/.test(f))) return undefined;
    return { round: m.round as number, files: m.files as string[] };
  } catch {
    return undefined; // not there yet, or written in place and not complete
  }
}
