/**
 * Two host namespaces joined by a veth pair (the underlay), plus a management veth from the root
 * namespace into the first, every name carrying the run's tag. nats-server runs in namespace A
 * (listening on all its addresses): agent A reaches it on loopback, agent B over the underlay, the
 * test (the controller) over the management link. Teardown deletes both namespaces, which removes
 * their veths, also when the test fails.
 */
import { randomBytes } from 'node:crypto';
import { exec } from '../../../src/exec.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface NsPair {
  a: string;
  b: string;
  /** Underlay addresses of A and B. */
  aIp: string;
  bIp: string;
  /** A's address on the management link (reachable from the root namespace). */
  aMgmtIp: string;
}

export async function createNsPair(t: Teardown, tag: string): Promise<NsPair> {
  const a = `${tag}-ha`;
  const b = `${tag}-hb`;
  // A random /24 in 10.64.0.0/10: another run's pair will not collide in practice.
  const [x, y] = randomBytes(2);
  const net = `10.${64 + (x! % 64)}.${y!}`;
  const p: NsPair = { a, b, aIp: `${net}.1`, bIp: `${net}.2`, aMgmtIp: `${net}.6` };
  const run = (args: string[], netns?: string) => exec('ip', args, { timeoutMs: 10_000, ...(netns ? { netns } : {}) });
  t.teardown(async () => {
    for (const ns of [a, b]) await exec('ip', ['netns', 'del', ns], { timeoutMs: 10_000, allowFailure: true });
    await exec('ip', ['link', 'del', `${tag}-m0`], { timeoutMs: 10_000, allowFailure: true });
  });
  await run(['netns', 'add', a]);
  await run(['netns', 'add', b]);
  await run(['link', 'add', `${tag}-ua`, 'netns', a, 'type', 'veth', 'peer', 'name', `${tag}-ub`, 'netns', b]);
  await run(['link', 'add', `${tag}-m0`, 'type', 'veth', 'peer', 'name', `${tag}-m1`, 'netns', a]);
  await run(['addr', 'add', `${p.aIp}/30`, 'dev', `${tag}-ua`], a);
  await run(['addr', 'add', `${p.bIp}/30`, 'dev', `${tag}-ub`], b);
  await run(['addr', 'add', `${net}.5/30`, 'dev', `${tag}-m0`]);
  await run(['addr', 'add', `${p.aMgmtIp}/30`, 'dev', `${tag}-m1`], a);
  for (const [ns, dev] of [[a, `${tag}-ua`], [b, `${tag}-ub`], [a, `${tag}-m1`], [a, 'lo'], [b, 'lo']] as const) await run(['link', 'set', dev, 'up'], ns);
  await run(['link', 'set', `${tag}-m0`, 'up']);
  return p;
}
