/**
 * Tearing a lab down: from its state file when there is one, and always by a sweep of its tag,
 * so that a lab whose builder was killed half-way, or whose processes were all `kill -9`ed, is
 * removed just as completely.
 *
 * Processes are found by the namespaces they run in (`ip netns pids` on the lab's own, tagged
 * namespaces), then signalled by pid: never by name. Deleting a namespace removes every
 * interface in it (veths, bridges, OVS taps), so no link needs deleting one by one.
 *
 * The sweep also covers what runs with the tag left outside the lab's namespaces: links named
 * `TAG-...` in the caller's own namespace (a veth whose peer side vanished, or the persistent tap
 * devices an ovs-vswitchd with the netdev datapath leaves behind for every bridge and internal
 * port, e.g. `TAG-int`, `TAG-phy`, when it ran in this namespace), and the run directories a
 * tagged run made under the OS temp dir (`coat-TAG-...`, e.g. test OVS instances): a process
 * still running from one of them is found by the pidfile it wrote there, and killed by that pid
 * only if its command line names that directory (so a recycled pid is never hit).
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec } from '../src/exec.js';
import { deleteNetns, listNetns, netnsPids, openNetns } from '../src/netns/index.js';
import { isAlive } from './process.js';
import { activeTag, LabError, listStates, readState, releaseLock, stateFile } from './state.js';
import { TAG_PATTERN } from './tag.js';

export interface DownReport {
  tag: string;
  killed: number[];
  namespaces: string[];
  links: string[];
  removed: string[];
  /** What could not be removed (a link that resisted deletion), with the reason. */
  errors: string[];
}

/** Run directories of `tag` under the OS temp dir: `coat-TAG-...`. */
async function taggedTempDirs(tag: string): Promise<string[]> {
  const base = tmpdir();
  const names = await readdir(base).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith(`coat-${tag}-`)).map((n) => join(base, n));
}

/** Live pids from `*.pid` files in `dir` and its subdirectories (two levels), whose command line names `dir`. */
async function pidsFromPidfiles(dir: string, depth = 2): Promise<number[]> {
  const out: number[] = [];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory() && depth > 0) out.push(...(await pidsFromPidfiles(p, depth - 1)));
    else if (e.isFile() && e.name.endsWith('.pid')) {
      const pid = Number((await readFile(p, 'utf8').catch(() => '')).trim());
      if (!Number.isInteger(pid) || pid <= 1 || !isAlive(pid)) continue;
      const cmd = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
      if (cmd.includes(dir)) out.push(pid);
    }
  }
  return out;
}

async function killPids(pids: number[], graceMs = 2000): Promise<number[]> {
  const alive = isAlive;
  const targets = pids.filter((p) => p !== process.pid && alive(p));
  for (const p of targets) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + graceMs;
  while (targets.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  for (const p of targets.filter(alive)) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  return targets;
}

/** Removes everything carrying `tag` (state file or not). */
export async function labDownTag(dir: string, tag: string): Promise<DownReport> {
  // the sweep matches names by prefix: a malformed tag ("", "c") would match other runs' names
  if (!TAG_PATTERN.test(tag)) throw new LabError('LAB_BAD_TAG', `${JSON.stringify(tag)} is not a lab tag (c + 5 of [0-9a-z], e.g. c3k9x1)`);
  const report: DownReport = { tag, killed: [], namespaces: [], links: [], removed: [], errors: [] };
  const state = await readState(dir, tag);
  const ours = new Set((await listNetns()).filter((n) => n.startsWith(`${tag}-`)));
  for (const n of state?.namespaces ?? []) if ((await listNetns()).includes(n)) ours.add(n);
  // 1. processes in the lab's namespaces (OVS daemons, nats-server, controller, agents, workloads)
  const pids = new Set<number>();
  for (const ns of ours) for (const p of await netnsPids(ns)) pids.add(p);
  const runDirs = [state?.runDir ?? join(dir, tag), ...(await taggedTempDirs(tag))];
  for (const d of runDirs) for (const p of await pidsFromPidfiles(d)) pids.add(p);
  report.killed = await killPids([...pids]);
  // 2. namespaces, and the interfaces in them
  for (const ns of ours) {
    await deleteNetns(ns);
    report.namespaces.push(ns);
  }
  // 3. tagged links left in our own namespace: stray veths, netdev taps (none after a clean build)
  const root = await openNetns();
  try {
    for (const l of await root.listLinks()) {
      if (!l.name.startsWith(`${tag}-`)) continue;
      try {
        await root.deleteLink(l.name); // a veth's peer goes with it
      } catch (e) {
        // already gone with its veth peer, or refused: `ip` has the last word
        const stillThere = await root.getLink(l.name).then(() => true, () => false);
        if (stillThere) {
          const r = await exec('ip', ['link', 'del', 'dev', l.name], { timeoutMs: 5000, allowFailure: true });
          if (r.code !== 0) {
            report.errors.push(`link ${l.name}: ${(e as Error).message}; ip link del: ${r.stderr.trim()}`);
            continue;
          }
        }
      }
      report.links.push(l.name);
    }
  } finally {
    await root.close();
  }
  // 4. run directories, state file, lock
  for (const p of [...runDirs, stateFile(dir, tag)]) {
    await rm(p, { recursive: true, force: true });
    report.removed.push(p);
  }
  await releaseLock(dir, tag);
  return report;
}

/** Downs every lab with a state file in `dir` (normally one), or just `tag`. */
export async function labDown(dir: string, tag?: string): Promise<DownReport[]> {
  const tags = tag ? [tag] : await listStates(dir);
  const out: DownReport[] = [];
  for (const t of tags) out.push(await labDownTag(dir, t));
  if (!tag) {
    // a lock with no state file (builder killed before its first write) is released too
    const held = await activeTag(dir);
    if (held && !tags.includes(held)) out.push(await labDownTag(dir, held));
  }
  return out;
}
