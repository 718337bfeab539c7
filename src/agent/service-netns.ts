/**
 * The service namespace at the destination: a network namespace with one veth end carrying the
 * service's overlay address and MAC (the same as at the source, so clients and switches see the
 * same endpoint), the other end on the host, optionally plugged into the integration bridge.
 *
 * Links and addresses go over rtnetlink through `src/netns/` (in this process for the host end, a
 * worker inside the service namespace for its end); the namespace itself and TX checksum offload
 * through the tools `src/netns/` wraps (`ip netns`, `ethtool`), and the bridge port through
 * `ovs-vsctl`. Offload is turned off on the namespace end because TCP through a netdev (userspace)
 * OVS bridge stalls with it on. A failed prepare removes what it made.
 */
import { hasCode } from '../errors.js';
import { exec } from '../exec.js';
import type { Logger } from '../log.js';
import { createNetns, deleteNetns, disableTxOffload, netnsExists, openNetns } from '../netns/index.js';
import { AgentCommandError } from './errors.js';
import type { NetnsPrepareArgs, NetnsPrepareResult } from './protocol.js';

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const NETNS_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const IPV4_CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(\/(\d{1,2}))?$/;

/** Host-side veth name: the namespace name cut to fit IFNAMSIZ with a `-h` suffix. */
export function defaultHostIf(netns: string): string {
  return `${netns.slice(0, 13)}-h`;
}

/** Validates and normalises the arguments (pure). */
export function planServiceNetns(a: NetnsPrepareArgs): Required<Pick<NetnsPrepareArgs, 'netns' | 'ip' | 'mac' | 'hostIf' | 'nsIf'>> & { mtu?: number } {
  const bad = (m: string) => new AgentCommandError('AGENT_BAD_ARGS', `netns.prepare: ${m}`);
  if (!NETNS_NAME.test(a.netns)) throw bad(`namespace name ${JSON.stringify(a.netns)} is not valid`);
  const m = IPV4_CIDR.exec(a.ip);
  if (!m || [1, 2, 3, 4].some((i) => Number(m[i]) > 255) || (m[6] !== undefined && Number(m[6]) > 32)) throw bad(`ip ${JSON.stringify(a.ip)} is not an IPv4 address[/prefix]`);
  if (!MAC.test(a.mac)) throw bad(`mac ${JSON.stringify(a.mac)} is not a MAC address`);
  const hostIf = a.hostIf ?? defaultHostIf(a.netns);
  const nsIf = a.nsIf ?? 'eth0';
  for (const n of [hostIf, nsIf]) if (!IFNAME.test(n)) throw bad(`interface name ${JSON.stringify(n)} is not 1-15 safe characters`);
  if (a.mtu !== undefined && !(Number.isInteger(a.mtu) && a.mtu >= 576 && a.mtu <= 9000)) throw bad(`mtu ${a.mtu} out of range`);
  return { netns: a.netns, ip: m[5] ? a.ip : `${a.ip}/24`, mac: a.mac.toLowerCase(), hostIf, nsIf, ...(a.mtu !== undefined ? { mtu: a.mtu } : {}) };
}

async function linkExists(name: string): Promise<boolean> {
  const local = await openNetns();
  try {
    return (await local.listLinks()).some((l) => l.name === name);
  } finally {
    await local.close();
  }
}

export async function prepareServiceNetns(a: NetnsPrepareArgs, log: Logger): Promise<NetnsPrepareResult> {
  const p = planServiceNetns(a);
  if (await netnsExists(p.netns)) throw new AgentCommandError('AGENT_NETNS_EXISTS', `namespace ${p.netns} already exists`);
  if (await linkExists(p.hostIf)) throw new AgentCommandError('AGENT_NETNS_EXISTS', `interface ${p.hostIf} already exists`);
  try {
    await createNetns(p.netns); // loopback comes up with it
    const local = await openNetns();
    try {
      await local.createVeth({ name: p.hostIf, peer: p.nsIf, peerMac: p.mac, peerNetns: p.netns, ...(p.mtu ? { mtu: p.mtu } : {}) });
      await local.setLink(p.hostIf, { up: true });
    } finally {
      await local.close();
    }
    const inside = await openNetns(p.netns);
    try {
      // The MTU of a peer created in another namespace is set here, where the peer lives.
      await inside.setLink(p.nsIf, { ...(p.mtu ? { mtu: p.mtu } : {}), mac: p.mac, up: true });
      await inside.addAddress(p.nsIf, p.ip);
    } finally {
      await inside.close();
    }
    await disableTxOffload(p.nsIf, p.netns);
    if (a.bridge) {
      const db = a.ovsDb ? [`--db=${a.ovsDb}`] : [];
      await exec('ovs-vsctl', [...db, '--timeout=10', 'add-port', a.bridge, p.hostIf], { timeoutMs: 15_000 });
    }
  } catch (e) {
    log.warn({ netns: p.netns, err: (e as Error).message }, 'service namespace prepare failed; removing what was made');
    await clearServiceNetns(p.netns, p.hostIf, a.bridge ? { bridge: a.bridge, ...(a.ovsDb ? { ovsDb: a.ovsDb } : {}) } : undefined).catch(() => {});
    throw e;
  }
  log.info({ netns: p.netns, ip: p.ip, mac: p.mac, hostIf: p.hostIf }, 'service namespace prepared');
  return { netns: p.netns, hostIf: p.hostIf, nsIf: p.nsIf, ip: p.ip, mac: p.mac };
}

/** Removes the namespace (its veth end goes with it, taking the host end along). Idempotent. */
export async function clearServiceNetns(netns: string, hostIf?: string, ovs?: { bridge: string; ovsDb?: string }): Promise<boolean> {
  if (!NETNS_NAME.test(netns)) throw new AgentCommandError('AGENT_BAD_ARGS', `netns.clear: namespace name ${JSON.stringify(netns)} is not valid`);
  if (ovs && hostIf) await exec('ovs-vsctl', [...(ovs.ovsDb ? [`--db=${ovs.ovsDb}`] : []), '--timeout=10', '--if-exists', 'del-port', ovs.bridge, hostIf], { timeoutMs: 15_000, allowFailure: true });
  const existed = await netnsExists(netns);
  await deleteNetns(netns);
  if (hostIf && IFNAME.test(hostIf)) {
    // Deleting the namespace destroys the peer, and the kernel removes the host end shortly after
    // (asynchronously): wait for that, and delete it ourselves only if it stays (a stray end).
    for (let i = 0; i < 25 && (await linkExists(hostIf)); i++) await new Promise((r) => setTimeout(r, 20));
    if (await linkExists(hostIf)) {
      const local = await openNetns();
      try {
        await local.deleteLink(hostIf);
      } catch (e) {
        const gone = hasCode(e, 'NETNS_LINK_NOT_FOUND') || (hasCode(e, 'NETNS_NETLINK') && (e as { errno?: string }).errno === 'ENODEV');
        if (!gone) throw e;
      } finally {
        await local.close();
      }
    }
  }
  return existed;
}

/**
 * `ip neigh flush to IP` (in a namespace): the client re-resolves the service's new MAC. Through
 * iproute2: `src/netns/` flushes whole devices, and only this one entry must go.
 */
export async function flushNeighbour(ip: string, netns?: string): Promise<boolean> {
  const m = IPV4_CIDR.exec(ip);
  if (!m || m[5] !== undefined || [1, 2, 3, 4].some((i) => Number(m[i]) > 255)) throw new AgentCommandError('AGENT_BAD_ARGS', `neigh.flush: ip ${JSON.stringify(ip)} is not an IPv4 address`);
  if (netns !== undefined && !NETNS_NAME.test(netns)) throw new AgentCommandError('AGENT_BAD_ARGS', `neigh.flush: namespace name ${JSON.stringify(netns)} is not valid`);
  const had = (await exec('ip', ['neigh', 'show', 'to', ip], { timeoutMs: 5000, ...(netns ? { netns } : {}) })).stdout.trim() !== '';
  await exec('ip', ['neigh', 'flush', 'to', ip], { timeoutMs: 5000, ...(netns ? { netns } : {}) });
  return had;
}
