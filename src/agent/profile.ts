/**
 * Profiling a service for the planner: state size M and dirty-page rate R (bandwidth L is a timed
 * transfer, see transfer/sender.ts `probeBandwidth`).
 *
 * M = bytes of the state directory + the process' private resident memory (Private_Clean +
 * Private_Dirty + Swap from /proc/PID/smaps_rollup; shared pages belong to libraries that exist at
 * the destination too).
 *
 * R: the kernel's soft-dirty bits (clear_refs "4", pagemap bit 55, what CRIU uses) are the right
 * tool, but this kernel is built without CONFIG_MEM_SOFT_DIRTY (bit 55 stays 0 even on freshly
 * written pages). So R is measured by content: every page of the process' writable private
 * mappings is read through /proc/PID/mem and hashed at the start and at the end of the window; a
 * page whose hash changed was dirtied. This counts each page once however often it was written
 * (the same as soft-dirty) and misses a page rewritten with identical bytes (which pre-copy would
 * not need to resend anyway). Cost: reading M twice; scanning stops at `maxScanBytes`.
 *
 * An executor that moves only the state directory (tcp-repair: the SDK's pages, not the runtime's
 * heap) needs R of those files, not of the process: `stateDirDirtyRate` compares the files' pages
 * at the start and end of the window. It is also far cheaper: a Node service's heap is tens of MB
 * that the memory method reads twice, seconds of CPU that starved the service's own traffic.
 */
import { createHash } from 'node:crypto';
import { open, readFile, readdir, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentCommandError } from './errors.js';

export const PAGE_SIZE = 4096;

export interface Mapping {
  start: bigint;
  end: bigint;
  perms: string;
  path: string;
}

/** Parses /proc/PID/maps (proc(5)). Pure. */
export function parseMaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (m) out.push({ start: BigInt('0x' + m[1]), end: BigInt('0x' + m[2]), perms: m[3]!, path: m[4]!.trim() });
  }
  return out;
}

/** Mappings whose pages the service can dirty: writable and private; kernel-provided ones excluded. */
export function dirtyableMappings(maps: Mapping[]): Mapping[] {
  return maps.filter((m) => m.perms[1] === 'w' && m.perms[3] === 'p' && !/^\[(vvar|vdso|vsyscall|vvar_vclock)\]$/.test(m.path));
}

/** Parses smaps_rollup's "Key: N kB" lines into bytes. Pure. */
export function parseSmapsRollup(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^(\w+):\s+(\d+) kB$/gm)) out[m[1]!] = Number(m[2]) * 1024;
  return out;
}

export async function privateMemoryBytes(pid: number): Promise<number> {
  const r = parseSmapsRollup(await readProc(pid, 'smaps_rollup'));
  return (r.Private_Clean ?? 0) + (r.Private_Dirty ?? 0) + (r.Swap ?? 0);
}

async function readProc(pid: number, file: string): Promise<string> {
  try {
    return await readFile(`/proc/${pid}/${file}`, 'utf8');
  } catch (e) {
    throw new AgentCommandError('AGENT_PROFILE_FAILED', `cannot read /proc/${pid}/${file}: ${(e as Error).message}`, { cause: e });
  }
}

export async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) total += (await lstat(p)).size;
    }
  };
  await walk(dir);
  return total;
}

/** One hash per page (16-byte md5 digests: a change detector, not a security boundary). */
async function hashPages(pid: number, maps: Mapping[], maxScanBytes: number): Promise<Map<bigint, Buffer>> {
  const fh = await open(`/proc/${pid}/mem`, 'r').catch((e: Error) => {
    throw new AgentCommandError('AGENT_PROFILE_FAILED', `cannot open /proc/${pid}/mem: ${e.message}`, { cause: e });
  });
  const hashes = new Map<bigint, Buffer>();
  const block = Buffer.allocUnsafe(256 * PAGE_SIZE);
  let scanned = 0;
  try {
    for (const m of maps) {
      for (let addr = m.start; addr < m.end && scanned < maxScanBytes; ) {
        const len = Number(m.end - addr < BigInt(block.length) ? m.end - addr : BigInt(block.length));
        let n = 0;
        try {
          ({ bytesRead: n } = await fh.read(block, 0, len, Number(addr)) /* user addresses < 2^47: exact as a number */);
        } catch {
          n = 0; // unreadable range (e.g. a guard page): no pages counted there
        }
        for (let off = 0; off + PAGE_SIZE <= n; off += PAGE_SIZE) {
          hashes.set(addr + BigInt(off), createHash('md5').update(block.subarray(off, off + PAGE_SIZE)).digest());
        }
        addr += BigInt(len);
        scanned += len;
      }
    }
  } finally {
    await fh.close();
  }
  return hashes;
}

/** Pages of `pid` dirtied per second over `windowMs` (page-hash method, see the header). */
export async function dirtyPageRate(pid: number, windowMs: number, maxScanBytes = 1 << 30): Promise<number> {
  const maps = dirtyableMappings(parseMaps(await readProc(pid, 'maps')));
  // Each page's two reads are one scan start apart, whatever its place in the scan.
  const t0 = performance.now();
  const before = await hashPages(pid, maps, maxScanBytes);
  await new Promise((r) => setTimeout(r, windowMs));
  const t1 = performance.now();
  const after = await hashPages(pid, dirtyableMappings(parseMaps(await readProc(pid, 'maps'))), maxScanBytes);
  const elapsed = t1 - t0;
  let dirty = 0;
  for (const [addr, h] of after) {
    const b = before.get(addr);
    if (b === undefined || !b.equals(h)) dirty++;
  }
  return (dirty * 1000) / elapsed;
}

/** Regular files under `dir` (recursively), path -> content. */
async function readStateFiles(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.set(p, await readFile(p));
    }
  };
  await walk(dir);
  return out;
}

/** Pages `a` and `b` (zero-padded past their ends) that differ. Pure. */
export function changedPages(a: Buffer, b: Buffer): number {
  const pages = Math.ceil(Math.max(a.length, b.length) / PAGE_SIZE);
  const zero = Buffer.alloc(PAGE_SIZE);
  const page = (buf: Buffer, i: number) => {
    const p = buf.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
    return p.length === PAGE_SIZE ? p : Buffer.concat([p, zero.subarray(p.length)]);
  };
  let n = 0;
  for (let i = 0; i < pages; i++) if (!page(a, i).equals(page(b, i))) n++;
  return n;
}

/** Pages of the files under `dir` dirtied per second over `windowMs` (content compare). */
export async function stateDirDirtyRate(dir: string, windowMs: number): Promise<number> {
  const t0 = performance.now();
  let before: Map<string, Buffer>;
  try {
    before = await readStateFiles(dir);
  } catch (e) {
    throw new AgentCommandError('AGENT_PROFILE_FAILED', `cannot read state dir ${dir}: ${(e as Error).message}`, { cause: e });
  }
  await new Promise((r) => setTimeout(r, windowMs));
  const t1 = performance.now();
  const after = await readStateFiles(dir);
  let dirty = 0;
  for (const [path, content] of after) dirty += changedPages(before.get(path) ?? Buffer.alloc(0), content);
  return (dirty * 1000) / (t1 - t0);
}
