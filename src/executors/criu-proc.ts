/**
 * Process-tree helpers shared by the criu executor: the descendants of a pid from /proc, signalling
 * a whole tree by pid (never by name), and the size of an image directory.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Pid and all its descendants (from /proc/PID/stat's ppid), parent first. */
export async function processTree(pid: number): Promise<number[]> {
  const parentOf = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = await readFile(`/proc/${name}/stat`, 'utf8');
      // Field 4 is ppid; field 2 (comm) may hold spaces and parentheses, so parse after the last ')'.
      const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(name), Number(rest[1]));
    } catch {
      // The process exited while we listed /proc.
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parentOf) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sends `signal` to pid and its descendants; processes already gone are skipped. */
export async function signalTree(pid: number, signal: NodeJS.Signals): Promise<number> {
  let sent = 0;
  for (const p of await processTree(pid)) {
    try {
      process.kill(p, signal);
      sent++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
  return sent;
}

/** Total bytes of the regular files under dir (recursive). */
export async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) total += await directoryBytes(p);
    else if (entry.isFile()) total += (await stat(p)).size;
  }
  return total;
}
