/**
 * Tearing a lab down: from its state file when there is one, and always by a sweep of its tag,
 * so that a lab whose builder was killed half-way, or whose processes were all `kill -9`ed, is
 * removed just as completely.
 *
 * Processes are found by the namespaces they run in (`ip netns pids` on the lab's own, tagged
 * namespaces), then signalled by pid: never by name. Deleting a namespace removes every
 * interface in it (veths, bridges, OVS taps), so no link needs deleting one by one; links with
 * the tag left in the caller's own namespace are deleted too.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { deleteNetns, listNetns, netnsPids, openNetns } from '../src/netns/index.js';
import { isAlive } from './process.js';
import { activeTag, listStates, readState, releaseLock, stateFile } from './state.js';

export interface DownReport {
  tag: string;
  killed: number[];
  namespaces: string[];
  links: string[];
  removed: string[];
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
  const report: DownReport = { tag, killed: [], namespaces: [], links: [], removed: [] };
  const state = await readState(dir, tag);
  const ours = new Set((await listNetns()).filter((n) => n.startsWith(`${tag}-`)));
  for (const n of state?.namespaces ?? []) if ((await listNetns()).includes(n)) ours.add(n);
  // 1. processes in the lab's namespaces (OVS daemons, nats-server, controller, agents, workloads)
  const pids = new Set<number>();
  for (const ns of ours) for (const p of await netnsPids(ns)) pids.add(p);
  report.killed = await killPids([...pids]);
  // 2. namespaces, and the interfaces in them
  for (const ns of ours) {
    await deleteNetns(ns);
    report.namespaces.push(ns);
  }
  // 3. tagged links left in our own namespace (none when the build finished; a sweep is cheap)
  const root = await openNetns();
  try {
    for (const l of await root.listLinks()) {
      if (!l.name.startsWith(`${tag}-`)) continue;
      await root.deleteLink(l.name).catch(() => undefined); // a veth's peer goes with it
      report.links.push(l.name);
    }
  } finally {
    await root.close();
  }
  // 4. run directory, state file, lock
  for (const p of [state?.runDir ?? join(dir, tag), stateFile(dir, tag)]) {
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
