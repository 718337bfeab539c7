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
