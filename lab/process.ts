/**
 * Is a pid a live process? `kill(pid, 0)` also succeeds for a zombie, and lab processes outlive
 * the `lab up` that started them (their parent), so a killed one can stay a zombie until init
 * reaps it: /proc/PID/stat state `Z` (proc(5)) counts as dead.
 */
import { readFileSync } from 'node:fs';

export function isAlive(pid: number | null | undefined): boolean {
  if (!pid || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ...": comm may contain spaces and parentheses, so take the state after the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Stops the process `pid` (one we started: never looked up by name): `signal`, then SIGKILL if it
 * is still alive after `graceMs`. Returns once it is gone or a zombie (an exited daemon whose parent
 * was `lab up` stays a zombie for ~1.5 s until pid 1 reaps it: waiting for that cost every OVS stop
 * 3 s), or SIGKILL was sent.
 */
export async function stopPid(pid: number, signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
  try {
    process.kill(pid, signal);
  } catch {
    return; // already gone
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}
