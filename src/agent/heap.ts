/**
 * A full garbage collection on demand. The agent runs one after it moved a pre-copy round (the
 * source after streaming it, the destination after settling it). A round of M bytes passes
 * through the agent's buffers, and V8 then finished the collection it owed at its own moment,
 * often inside the next downtime. Measured in the lab (10 MiB pre-copy, 10 migrations, a GC
 * observer in each agent): a major GC of 2-9 ms fell between the freeze and the resume in 7 of
 * 10, among them the three longest gaps; at 1 MiB in none. After this change: in none of 20.
 *
 * Not after `prepare`: coat-baseline prepares the destination inside its downtime, and a
 * collection there did not keep GC out of a cold dump's window, which allocates M bytes itself.
 *
 * Node exposes `gc` only under --expose-gc; the agent is started by others (coat's CLI, systemd,
 * a test), so the flag is set at run time, as the expose-gc package does (v8.setFlagsFromString,
 * then `gc` read from a fresh context, where V8 installs it).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | null | undefined;

function resolveGc(): (() => void) | null {
  const own = (globalThis as { gc?: () => void }).gc;
  if (typeof own === 'function') return own;
  try {
    setFlagsFromString('--expose-gc');
    const fn = runInNewContext('gc') as unknown;
    return typeof fn === 'function' ? (fn as () => void) : null;
  } catch {
    return null;
  }
}

/** Runs a full (major) collection; returns its duration in ms, or undefined where `gc` cannot be had. */
export function collectGarbage(): number | undefined {
  if (gc === undefined) gc = resolveGc();
  if (gc === null) return undefined;
  const t0 = performance.now();
  gc();
  return performance.now() - t0;
}
