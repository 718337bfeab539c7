/**
 * Stopping a service's process tree and letting it go again, untouched.
 *
 * - cgroup v1 freezer (Documentation/admin-guide/cgroup-v1/freezer-subsystem.rst): the tree moves
 *   into a cgroup of its own, `freezer.state` <- FROZEN, poll until it reads FROZEN; thaw writes
 *   THAWED and moves every process back to the cgroup it came from. Invisible to the service (no
 *   signal, no SIGCHLD to its parent).
 * - SIGSTOP / SIGCONT of every process in the tree, where no freezer hierarchy is mounted; waits
 *   until each reads state T in /proc/PID/stat.
 *
 * The freeze path (tree walk, cgroup writes, state polls) uses synchronous /proc and cgroupfs calls:
 * each takes microseconds, while the asynchronous ones queue on libuv's thread pool behind whatever
 * else the agent does (an image being received), and the freeze is inside the downtime. Measured:
 * the tree by a full /proc scan took 13-21 ms here, by the children files well under 1 ms.
 *
 * Moving a process into a cgroup is the slow part (cgroup.procs writes take the threadgroup rwsem,
 * whose writer side waits for an RCU grace period: 3-5 ms per write here), so the executor moves
 * the tree in at prepare, outside the downtime (`enterFreezerCgroup`): the dump's freeze is then one
 * write of FROZEN and a short poll (0.2-0.3 ms here, a few ms when a thread is busy on a CPU).
 */
import { readFile, rmdir, writeFile } from 'node:fs/promises';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoatError } from '../../errors.js';

export const FREEZER_ROOT = '/sys/fs/cgroup/freezer';

export class FreezeError extends CoatError {
  declare readonly code: 'FREEZE_TIMEOUT' | 'FREEZE_NO_PROCESS' | 'FREEZE_FAILED';
}

export type FreezerKind = 'cgroup' | 'signal';

/** Pure: ppid of a /proc/PID/stat line (the command may contain spaces and parentheses). */
export function parseStat(line: string): { pid: number; state: string; ppid: number } {
  const close = line.lastIndexOf(')');
  const rest = line.slice(close + 2).split(' ');
  return { pid: Number(line.slice(0, line.indexOf(' '))), state: rest[0] ?? '?', ppid: Number(rest[1]) };
}

/** Children of `pid` from /proc/PID/task/TID/children (proc(5), CONFIG_PROC_CHILDREN). */
function childrenOf(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return []; // exited
  }
  const out: number[] = [];
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ')) if (c.trim()) out.push(Number(c));
    } catch {
      // the thread exited
    }
  }
  return out;
}

const HAS_CHILDREN_FILES = existsSync(`/proc/self/task/${process.pid}/children`);

/** `pid` and all its descendants, parents first. */
export async function processTree(pid: number): Promise<number[]> {
  if (HAS_CHILDREN_FILES) {
    const out: number[] = [];
    const walk = (p: number) => {
      out.push(p);
      for (const c of childrenOf(p)) walk(c);
    };
    walk(pid);
    return out;
  }
  // Without CONFIG_PROC_CHILDREN: every process's parent from /proc/PID/stat.
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = parseStat(readFileSync(`/proc/${name}/stat`, 'utf8'));
      const list = children.get(st.ppid) ?? [];
      list.push(st.pid);
      children.set(st.ppid, list);
    } catch {
      // exited while we listed
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

export async function isAlive(pid: number): Promise<boolean> {
  return isAliveSync(pid);
}

/** The process exists and is not a zombie; synchronous (a /proc read takes microseconds). */
export function isAliveSync(pid: number): boolean {
  try {
    const st = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return st.state !== 'Z' && st.state !== 'X';
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Frozen {
  readonly kind: FreezerKind;
  readonly pids: number[];
  thaw(): Promise<void>;
  /** SIGKILL the tree and let it die (release): thaws as needed so the kill takes effect. */
  kill(): Promise<void>;
}

export async function freezerAvailable(): Promise<boolean> {
  return existsSync(join(FREEZER_ROOT, 'cgroup.procs'));
}

/** Which freezer `prefer` means here. */
export function freezerKind(prefer: FreezerKind | 'auto'): FreezerKind {
  return prefer === 'auto' ? (existsSync(join(FREEZER_ROOT, 'cgroup.procs')) ? 'cgroup' : 'signal') : prefer;
}

/**
 * Freezes `pid`'s tree; `name` names the cgroup (unique per migration). With `prepared` (the tree
 * already in its cgroup: `enterFreezerCgroup`), only processes started since are moved and the
 * thaw leaves the tree in the cgroup (the prepared cgroup's `leave()` moves it back).
 */
export async function freeze(pid: number, name: string, prefer: FreezerKind | 'auto' = 'auto', timeoutMs = 5000, prepared?: FreezerCgroup): Promise<Frozen> {
  if (!isAliveSync(pid)) throw new FreezeError('FREEZE_NO_PROCESS', `process ${pid} is gone`);
  const pids = await processTree(pid);
  if (prepared && !prepared.left) return freezeCgroup(pids, prepared, timeoutMs, false);
  const kind = freezerKind(prefer);
  if (kind === 'signal') return freezeSignal(pids, timeoutMs);
  const cg = enterCgroup(pids, name);
  return freezeCgroup(pids, cg, timeoutMs, true);
}

/** A freezer cgroup holding a process tree, not frozen; `leave()` moves the tree back and removes it. */
export interface FreezerCgroup {
  readonly dir: string;
  readonly left: boolean;
  leave(): Promise<void>;
}

/**
 * Moves `pid`'s tree into a freezer cgroup of its own now (outside the downtime: see the header),
 * or undefined where no cgroup v1 freezer is mounted or `prefer` says signal.
 */
export async function enterFreezerCgroup(pid: number, name: string, prefer: FreezerKind | 'auto' = 'auto'): Promise<FreezerCgroup | undefined> {
  if (freezerKind(prefer) !== 'cgroup') return undefined;
  if (!isAliveSync(pid)) throw new FreezeError('FREEZE_NO_PROCESS', `process ${pid} is gone`);
  return enterCgroup(await processTree(pid), name);
}

function freezerCgroupOf(pid: number): string {
  const text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  for (const line of text.split('\n')) {
    const [, controllers, path] = line.split(':');
    if (controllers?.split(',').includes('freezer')) return path ?? '/';
  }
  return '/';
}

interface EnteredCgroup extends FreezerCgroup {
  /** Moves `pids` (not yet members) in, remembering where each came from. */
  add(pids: number[]): void;
}

function enterCgroup(pids: number[], name: string): EnteredCgroup {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new FreezeError('FREEZE_FAILED', `bad cgroup name ${JSON.stringify(name)}`);
  const dir = join(FREEZER_ROOT, name);
  const origins = new Map<number, string>();
  let left = false;
  const cg: EnteredCgroup = {
    dir,
    get left() {
      return left;
    },
    add(more: number[]) {
      for (const p of more) {
        if (origins.has(p)) continue;
        origins.set(p, freezerCgroupOf(p));
        writeFileSync(join(dir, 'cgroup.procs'), String(p));
      }
    },
    async leave() {
      if (left) return;
      left = true;
      for (const [p, origin] of origins) {
        try {
          await writeFile(join(FREEZER_ROOT, origin, 'cgroup.procs'), String(p));
        } catch {
          // gone
        }
      }
      await removeCgroup(dir);
    },
  };
  try {
    mkdirSync(dir, { recursive: true });
    cg.add(pids);
  } catch (err) {
    void cg.leave();
    throw new FreezeError('FREEZE_FAILED', `cgroup freezer ${dir}: ${(err as Error).message}`, { cause: err });
  }
  return cg;
}

/**
 * rmdir of a freezer cgroup, waiting up to a second while it is busy: a killed member stays in
 * it as a zombie until its parent reaps it. A process we did not know of that joined keeps it
 * busy for good: the (thawed) group is then left rather than fail the step.
 */
async function removeCgroup(dir: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY') return;
      await sleep(10);
    }
  }
}

/** Sleeps the calling thread (no event loop turn: the freeze poll is inside the downtime). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * FROZEN, then polls freezer.state until the kernel reports every task frozen (FREEZING until
 * then). Polled synchronously every 50 us: the usual wait is a fraction of a millisecond, and a
 * timer turn of the event loop costs a millisecond or more. `owned`: the cgroup was entered for
 * this freeze, so thaw moves the tree back out.
 */
async function freezeCgroup(pids: number[], cg: EnteredCgroup | FreezerCgroup, timeoutMs: number, owned: boolean): Promise<Frozen> {
  const dir = cg.dir;
  try {
    if ('add' in cg) cg.add(pids); // processes started since the tree entered
    writeFileSync(join(dir, 'freezer.state'), 'FROZEN');
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const st = readFileSync(join(dir, 'freezer.state'), 'utf8').trim();
      if (st === 'FROZEN') break;
      if (performance.now() > deadline) throw new FreezeError('FREEZE_TIMEOUT', `cgroup ${dir} still ${st} after ${timeoutMs} ms`);
      pause(0.05);
    }
  } catch (err) {
    await writeFile(join(dir, 'freezer.state'), 'THAWED').catch(() => {});
    if (owned) await cg.leave();
    throw err instanceof FreezeError ? err : new FreezeError('FREEZE_FAILED', `cgroup freezer ${dir}: ${(err as Error).message}`, { cause: err });
  }
  let thawed = false;
  return {
    kind: 'cgroup',
    pids,
    async thaw() {
      if (thawed) return;
      thawed = true;
      await writeFile(join(dir, 'freezer.state'), 'THAWED');
      if (owned) await cg.leave();
    },
    async kill() {
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      // cgroup v1: a frozen task does not act on SIGKILL until thawed.
      if (!thawed) {
        thawed = true;
        await writeFile(join(dir, 'freezer.state'), 'THAWED');
      }
      await waitGone(pids, 5000);
      await cg.leave();
    },
  };
}

async function freezeSignal(pids: number[], timeoutMs: number): Promise<Frozen> {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGSTOP');
    } catch {
      // exited
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (const p of pids) {
    for (;;) {
      let st: string;
      try {
        st = parseStat(readFileSync(`/proc/${p}/stat`, 'utf8')).state;
      } catch {
        break;
      }
      if (st === 'T' || st === 't' || st === 'Z') break;
      if (Date.now() > deadline) {
        for (const q of pids) {
          try {
            process.kill(q, 'SIGCONT');
          } catch {
            // gone
          }
        }
        throw new FreezeError('FREEZE_TIMEOUT', `process ${p} not stopped after ${timeoutMs} ms`);
      }
      pause(0.05);
    }
  }
  let thawed = false;
  return {
    kind: 'signal',
    pids,
    async thaw() {
      if (thawed) return;
      thawed = true;
      for (const p of pids) {
        try {
          process.kill(p, 'SIGCONT');
        } catch {
          // gone
        }
      }
    },
    async kill() {
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await waitGone(pids, 5000);
    },
  };
}

async function waitGone(pids: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const p of pids) {
    while ((await isAlive(p)) && Date.now() < deadline) await sleep(5);
  }
}

/** Thaws a freezer cgroup left by an executor instance that is gone (abort after an agent restart). */
export async function thawByName(name: string): Promise<boolean> {
  const dir = join(FREEZER_ROOT, name);
  try {
    await writeFile(join(dir, 'freezer.state'), 'THAWED');
  } catch {
    return false;
  }
  const procs = (await readFile(join(dir, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean);
  for (const p of procs) await writeFile(join(FREEZER_ROOT, 'cgroup.procs'), p).catch(() => {});
  await removeCgroup(dir);
  return true;
}
