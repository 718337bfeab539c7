/**
 * Named network namespaces. Creating one is not a netlink operation: iproute2 unshares a new
 * namespace and bind-mounts /proc/self/ns/net on /run/netns/NAME (ip-netns(8)), a mount-namespace
 * job Node cannot do (no unshare(2), no mount(2)); so `ip netns add/del` it is. Listing is a
 * directory read.
 */
import { readdir } from 'node:fs/promises';
import { exec } from '../exec.js';
import { NetnsError } from './errors.js';
import { NETNS_RUN_DIR } from './paths.js';

export async function listNetns(): Promise<string[]> {
  try {
    return (await readdir(NETNS_RUN_DIR)).sort();
  } catch {
    return [];
  }
}

export async function netnsExists(name: string): Promise<boolean> {
  return (await listNetns()).includes(name);
}

export async function createNetns(name: string): Promise<void> {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new NetnsError('NETNS_BAD_NAME', `namespace name ${JSON.stringify(name)} is not [A-Za-z0-9_.-]{1,64}`);
  await exec('ip', ['netns', 'add', name], { timeoutMs: 10_000 });
  // Loopback is down in a new namespace; everything in coat expects it up. Netlink could do this
  // only from a worker inside the namespace (a Node process, client.ts); `ip -n` is one exec.
  await exec('ip', ['-n', name, 'link', 'set', 'lo', 'up'], { timeoutMs: 10_000 });
}

/** Deletes a namespace; a missing one is not an error (teardown must be idempotent). */
export async function deleteNetns(name: string): Promise<void> {
  if (!(await netnsExists(name))) return;
  await exec('ip', ['netns', 'del', name], { timeoutMs: 10_000 });
}

/** Pids of processes whose network namespace is `name` (`ip netns pids`, which scans /proc). */
export async function netnsPids(name: string): Promise<number[]> {
  const r = await exec('ip', ['netns', 'pids', name], { timeoutMs: 10_000, allowFailure: true });
  if (r.code !== 0) return [];
  return r.stdout.split(/\s+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 0);
}
