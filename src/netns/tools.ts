/**
 * What rtnetlink does not cover, through the usual tools:
 * - TX checksum offload: an ethtool setting (ETHTOOL_SFEATURES over ioctl, or the ethtool generic
 *   netlink family), which the `netlink` package does not implement: `ethtool -K`.
 * - Bandwidth shaping: the qdisc messages exist in rtnetlink, but tbf and htb options carry rate
 *   tables (TCA_TBF_RTAB, TCA_HTB_RTAB) that tc computes from the link layer and MTU; reproducing
 *   tc's table code is worse than calling tc: `tc qdisc/class`.
 * Both run with a time limit through `exec`, in the namespace named.
 */
import { exec } from '../exec.js';

/**
 * Turns TX checksum offload off. A veth whose peer sits on an OVS netdev (userspace) bridge
 * hands it packets with partial checksums that OVS forwards as they are, so TCP stalls
 * (machine fact); with `tx off` the kernel computes full checksums.
 */
export async function disableTxOffload(dev: string, netns?: string): Promise<void> {
  await exec('ethtool', ['-K', dev, 'tx', 'off'], { timeoutMs: 10_000, ...(netns ? { netns } : {}) });
}

export interface ShapeSpec {
  /** Rate in Mbit/s. */
  mbit: number;
  /** Burst in bytes; default: 10 ms worth at the rate, at least 32 KiB (tbf needs >= rate/HZ). */
  burstBytes?: number;
  /** Queue limit in milliseconds of traffic (tbf `latency`), default 50. */
  latencyMs?: number;
}

/**
 * Shapes egress of `dev` with a token bucket (tc-tbf(8)).
 *
 * Shape on a device nobody else manages: ovs-vswitchd resets the qdisc of the devices it opens
 * (measured: a tbf put on an OVS port before the port was added was gone afterwards).
 */
export async function shapeEgress(dev: string, spec: ShapeSpec, netns?: string): Promise<void> {
  const burst = spec.burstBytes ?? Math.max(32 * 1024, Math.ceil((spec.mbit * 1e6) / 8 / 100));
  await exec('tc', ['qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', `${spec.mbit}mbit`, 'burst', String(burst), 'latency', `${spec.latencyMs ?? 50}ms`], {
    timeoutMs: 10_000,
    ...(netns ? { netns } : {}),
  });
}

/**
 * Shapes what `dev` receives: its ingress is redirected (tc-mirred(8), u32 match-all filter; this
 * kernel has no cls_matchall) to the ifb device `ifb`, which must exist and be up, and shaped on the
 * ifb's egress with tbf. With `shapeEgress` on the same device this shapes a link both ways from one
 * side, the fabric's.
 */
export async function shapeIngress(dev: string, ifb: string, spec: ShapeSpec, netns?: string): Promise<void> {
  const o = { timeoutMs: 10_000, ...(netns ? { netns } : {}) };
  await exec('tc', ['qdisc', 'replace', 'dev', dev, 'handle', 'ffff:', 'ingress'], o);
  await exec('tc', ['filter', 'replace', 'dev', dev, 'parent', 'ffff:', 'protocol', 'all', 'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', ifb], o);
  await shapeEgress(ifb, spec, netns);
}
