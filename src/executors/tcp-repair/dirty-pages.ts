/**
 * Which pages of a state file changed since the last round. Two trackers, measured against each
 * other by `npm run bench -- repair` (the faster available one is the default):
 *
 * - `hash`: reads the whole file and compares a per-page digest with the previous round's. Needs
 *   nothing from the kernel or the service, costs O(M) reading and hashing per round, and needs no
 *   freeze during pre-dump: a page torn by a concurrent write hashes differently next round and is
 *   copied again; the final round runs frozen.
 * - `compare`: keeps the previous round's content and compares each page with it (memcmp). Same
 *   O(M) read and no freeze during pre-dump as `hash`, but no digest to compute: ~10x cheaper per
 *   round here (`npm run bench -- repair`), paid for with one copy of the state in the agent's
 *   memory for the length of the migration. The default where soft-dirty is missing, because the
 *   dump's round runs with the service frozen, inside the downtime; there it compares the file
 *   through a read-only mapping in the addon (`roundNow`), with no read of the whole file.
 * - `soft-dirty`: the kernel's soft-dirty bits (Documentation/admin-guide/mm/soft-dirty.rst):
 *   write "4" to /proc/PID/clear_refs, later read bit 55 of each 8-byte /proc/PID/pagemap entry
 *   over the service's MAP_SHARED mapping of the file; O(pages) 8-byte reads, then only dirty pages
 *   are read. Pagemap read and clear_refs happen with the service frozen (as CRIU's pre-dump does)
 *   so no write falls between them. Needs CONFIG_MEM_SOFT_DIRTY; `softDirtyAvailable()` probes it.
 */
import { hash } from 'node:crypto';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { native } from '../../tcp-repair/native.js';
import type { PageDelta } from './page-delta.js';

export const PAGE_SIZE = 4096;
export type DirtyTracking = 'hash' | 'compare' | 'soft-dirty';

export interface RoundResult {
  delta: PageDelta;
  /** Pages in the file. */
  totalPages: number;
}

/** SHA-1 digest size; SHA-1 because crypto.hash's one-shot SHA-1 is the fastest digest Node
 * offers here (measured: 2.6 ms/MiB vs 5.7 for MD5 per page) and this is change detection, not
 * security. */
const DIGEST = 20;

/** Per-file page digests of the previous round (hash tracker), one flat buffer per file. */
export class HashTracker {
  readonly kind = 'hash' as const;
  private digests = new Map<string, Buffer>();

  /** Whether a round already copied this file (so the next one copies only what changed). */
  hasRound(name: string): boolean {
    return this.digests.has(name);
  }

  /** One round over one file; the first round for a file copies every page. */
  async round(path: string, name: string): Promise<RoundResult> {
    const content = await readFile(path);
    return this.roundOver(content, name);
  }

  /** The same, reading synchronously (the dump's round: the service is frozen, see the executor). */
  roundNow(path: string, name: string): RoundResult {
    return this.roundOver(readFileSync(path), name);
  }

  /**
   * The same over content already read. The pages in the result are views into `content`, which
   * the caller must not reuse until the delta is encoded.
   */
  roundOver(content: Buffer, name: string): RoundResult {
    const totalPages = Math.ceil(content.length / PAGE_SIZE);
    const prev = this.digests.get(name);
    const next = Buffer.allocUnsafe(totalPages * DIGEST);
    const pages: PageDelta['pages'] = [];
    for (let i = 0; i < totalPages; i++) {
      let page = content.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
      if (page.length < PAGE_SIZE) page = Buffer.concat([page, Buffer.alloc(PAGE_SIZE - page.length)]);
      const d = hash('sha1', page, 'buffer');
      d.copy(next, i * DIGEST);
      if (!prev || prev.length < (i + 1) * DIGEST || prev.compare(d, 0, DIGEST, i * DIGEST, (i + 1) * DIGEST) !== 0) pages.push({ index: i, data: page });
    }
    this.digests.set(name, next);
    return { delta: { name, pageSize: PAGE_SIZE, fileSize: BigInt(content.length), pages }, totalPages };
  }
}

/** Bytes compared at once before looking at single pages: one memcmp per 64 KiB that did not change. */
const BLOCK = 16 * PAGE_SIZE;

/**
 * Previous round's content per file (compare tracker). Two buffers per file, used in turn: each
 * round reads the file into the one the round before last used (no new allocation, so no page
 * faults on 10 MiB of fresh memory each round) and compares it with the other.
 */
export class CompareTracker {
  readonly kind = 'compare' as const;
  private previous = new Map<string, Buffer>();
  private spare = new Map<string, Buffer>();

  /** Whether a round already copied this file (so the next one copies only what changed). */
  hasRound(name: string): boolean {
    return this.previous.has(name);
  }

  /** One round over one file; the first round for a file copies every page. */
  async round(path: string, name: string): Promise<RoundResult> {
    return this.roundOver(await readFile(path), name);
  }

  /**
   * The same, synchronously, for the dump's round (the service is frozen: the file cannot change
   * or shrink meanwhile, and this is inside the downtime, where a thread-pool trip costs more).
   * Same size as last round: the addon compares the file's pages in place through a read-only
   * mapping and copies the changed ones into the previous round's buffer (no read of the whole
   * file into memory, no JS loop over pages). Otherwise: read into the spare buffer and compare.
   */
  roundNow(path: string, name: string): RoundResult {
    const fd = openSync(path, 'r');
    try {
      const prev = this.previous.get(name);
      const changed = prev ? native().comparePages(fd, prev, PAGE_SIZE) : null;
      if (prev && changed) {
        const pages: PageDelta['pages'] = [];
        for (const index of changed) {
          let page = prev.subarray(index * PAGE_SIZE, (index + 1) * PAGE_SIZE);
          if (page.length < PAGE_SIZE) page = Buffer.concat([page, Buffer.alloc(PAGE_SIZE - page.length)]);
          pages.push({ index, data: page });
        }
        return { delta: { name, pageSize: PAGE_SIZE, fileSize: BigInt(prev.length), pages }, totalPages: Math.ceil(prev.length / PAGE_SIZE) };
      }
      const size = fstatSync(fd).size;
      let buf = this.spare.get(name);
      if (!buf || buf.length !== size) buf = Buffer.allocUnsafe(size);
      this.spare.delete(name);
      let off = 0;
      while (off < size) {
        const n = readSync(fd, buf, off, size - off, off);
        if (n === 0) break; // truncated while read: compare what is there
        off += n;
      }
      return this.roundOver(off === size ? buf : buf.subarray(0, off), name);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * The same over content already read. Keeps `content` as the next round's reference and returns
   * views into it: the caller must not modify it, and the views stay valid until the next round
   * (which may update it in place, roundNow) at most: encode the delta before.
   */
  roundOver(content: Buffer, name: string): RoundResult {
    const totalPages = Math.ceil(content.length / PAGE_SIZE);
    const prev = this.previous.get(name);
    const pages: PageDelta['pages'] = [];
    for (let block = 0; block < content.length; block += BLOCK) {
      const blockEnd = Math.min(block + BLOCK, content.length);
      // Whole unchanged blocks in one compare (the common case with a low dirty rate). Only whole
      // blocks: a last, partial one is compared page by page, zero padding and all (samePage).
      if (prev !== undefined && blockEnd === block + BLOCK && prev.length >= blockEnd && content.compare(prev, block, blockEnd, block, blockEnd) === 0) continue;
      for (let start = block; start < blockEnd; start += PAGE_SIZE) {
        const end = Math.min(start + PAGE_SIZE, content.length);
        if (prev !== undefined && prev.length > start && samePage(content, prev, start, end)) continue;
        let page = content.subarray(start, end);
        if (page.length < PAGE_SIZE) page = Buffer.concat([page, Buffer.alloc(PAGE_SIZE - page.length)]);
        pages.push({ index: start / PAGE_SIZE, data: page });
      }
    }
    if (prev && prev.byteOffset === 0 && prev.length === prev.buffer.byteLength) this.spare.set(name, prev);
    this.previous.set(name, content);
    return { delta: { name, pageSize: PAGE_SIZE, fileSize: BigInt(content.length), pages }, totalPages };
  }
}

/**
 * Page [start, start + PAGE_SIZE) of `a` (which ends at `end`) equals that of `b`, both read as
 * zero-padded past their ends: what comparing the padded pages' digests decides (hash tracker).
 */
function samePage(a: Buffer, b: Buffer, start: number, end: number): boolean {
  const bEnd = Math.min(b.length, start + PAGE_SIZE);
  const common = Math.min(end, bEnd);
  if (a.compare(b, start, common, start, common) !== 0) return false;
  for (let i = common; i < end; i++) if (a[i] !== 0) return false;
  for (let i = common; i < bEnd; i++) if (b[i] !== 0) return false;
  return true;
}

/** Address ranges of process `pid`'s mappings of `path` (proc(5) /proc/PID/maps). */
export function mappingsOf(mapsText: string, path: string): { start: bigint; end: bigint; fileOffset: bigint }[] {
  const out: { start: bigint; end: bigint; fileOffset: bigint }[] = [];
  for (const line of mapsText.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ ([0-9a-f]+) \S+ \d+\s+(.*)$/.exec(line);
    if (m && m[4] === path) out.push({ start: BigInt('0x' + m[1]), end: BigInt('0x' + m[2]), fileOffset: BigInt('0x' + m[3]) });
  }
  return out;
}

/** Soft-dirty bit of a pagemap entry (Documentation/admin-guide/mm/pagemap.rst: bit 55). */
const SOFT_DIRTY = 1n << 55n;

export class SoftDirtyTracker {
  readonly kind = 'soft-dirty' as const;
  private started = new Set<string>();
  constructor(private readonly pid: number) {}

  /** Whether a round already copied this file (so the next one copies only what changed). */
  hasRound(name: string): boolean {
    return this.started.has(name);
  }

  /** Clears the soft-dirty bits of the whole process. Call with the service frozen. */
  clear(): void {
    writeFileSync(`/proc/${this.pid}/clear_refs`, '4');
  }

  /**
   * The dirty page indexes of `path` as mapped by the service. Call with the service frozen, then
   * `clear()`, then thaw and `copy()`. The first round of a file reports every page.
   */
  dirtyIndexes(path: string, name: string, fileSize: number): number[] {
    const totalPages = Math.ceil(fileSize / PAGE_SIZE);
    if (!this.started.has(name)) {
      this.started.add(name);
      return Array.from({ length: totalPages }, (_, i) => i);
    }
    const maps = mappingsOf(readFileSync(`/proc/${this.pid}/maps`, 'utf8'), path);
    const dirty = new Set<number>();
    const fd = openSync(`/proc/${this.pid}/pagemap`, 'r');
    try {
      for (const m of maps) {
        const n = Number((m.end - m.start) / BigInt(PAGE_SIZE));
        const buf = Buffer.alloc(n * 8);
        readSync(fd, buf, 0, buf.length, Number((m.start / BigInt(PAGE_SIZE)) * 8n));
        const first = Number(m.fileOffset / BigInt(PAGE_SIZE));
        for (let i = 0; i < n; i++) if (buf.readBigUInt64LE(i * 8) & SOFT_DIRTY) dirty.add(first + i);
      }
    } finally {
      closeSync(fd);
    }
    return [...dirty].filter((i) => i < totalPages).sort((a, b) => a - b);
  }

  /** Reads the given pages from the file. */
  async copy(path: string, name: string, indexes: number[], fileSize: number): Promise<RoundResult> {
    const fh = await open(path, 'r');
    try {
      const pages: PageDelta['pages'] = [];
      for (const index of indexes) {
        const data = Buffer.alloc(PAGE_SIZE);
        await fh.read(data, 0, PAGE_SIZE, index * PAGE_SIZE);
        pages.push({ index, data });
      }
      return { delta: { name, pageSize: PAGE_SIZE, fileSize: BigInt(fileSize), pages }, totalPages: Math.ceil(fileSize / PAGE_SIZE) };
    } finally {
      await fh.close();
    }
  }
}

/** What /proc/config.gz (CONFIG_IKCONFIG_PROC) says of `option`, for a probe's reason; '' if unknown. */
function kernelConfigSays(option: string): string {
  try {
    const text = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
    if (text.includes(`# ${option} is not set`)) return `: the kernel is built without ${option} (/proc/config.gz)`;
    const m = new RegExp(`^${option}=(.*)$`, 'm').exec(text);
    return m ? ` (/proc/config.gz has ${option}=${m[1]})` : '';
  } catch {
    return ` (kernel built without ${option}?)`;
  }
}

let probed: { ok: boolean; reason: string } | undefined;

/**
 * Whether soft-dirty tracking works here: maps a scratch file, clears this process' bits, writes
 * one page and checks that exactly that page reads back soft-dirty. Cached.
 */
export function softDirtyAvailable(): { ok: boolean; reason: string } {
  if (probed) return probed;
  const dir = mkdtempSync(join(tmpdir(), 'coat-softdirty-'));
  const path = join(dir, 'probe');
  try {
    writeFileSync(path, Buffer.alloc(4 * PAGE_SIZE));
    const fd = openSync(path, 'r+');
    const view = new Uint8Array(native().mmapShared(fd, 4 * PAGE_SIZE));
    closeSync(fd);
    view[0] = 1; // fault every page in so they have pagemap entries
    view[PAGE_SIZE] = 1;
    view[2 * PAGE_SIZE] = 1;
    writeFileSync('/proc/self/clear_refs', '4');
    view[PAGE_SIZE] = 2;
    const t = new SoftDirtyTracker(process.pid);
    t['started'].add('probe');
    const dirty = t.dirtyIndexes(path, 'probe', 4 * PAGE_SIZE);
    probed = dirty.length === 1 && dirty[0] === 1 ? { ok: true, reason: 'soft-dirty bit set on exactly the written page' } : { ok: false, reason: `after clear_refs and one write, pagemap reports dirty pages [${dirty.join(', ')}], want [1]${kernelConfigSays('CONFIG_MEM_SOFT_DIRTY')}` };
  } catch (err) {
    probed = { ok: false, reason: `probe failed: ${(err as Error).message}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return probed;
}
