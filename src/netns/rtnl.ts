/**
 * Link, address, route and neighbour operations over rtnetlink (the `netlink` package), on the
 * socket of the process that runs them, i.e. in that process' network namespace. For another
 * namespace the same operations run in a worker process started inside it (see `worker.ts`,
 * `client.ts`); Node has no setns(2), and a netlink socket always talks to the namespace it was
 * opened in.
 *
 * Every operation takes and returns plain JSON values (names, strings) so that the worker can
 * relay it unchanged.
 */
import { closeSync, openSync } from 'node:fs';
import { createRtNetlink, type RtNetlinkSocket } from 'netlink';
import { ipv4ToNumber, isIpv4, macToBytes, normalizeMac, parseCidr, readMac, type Ipv4Address, type MacAddress } from '../packet/address.js';
import { checkIfName, NetnsError } from './errors.js';
import { bridgeLinkInfo, ifbLinkInfo, vethLinkInfo, vxlanLinkInfo, type VxlanOptions } from './linkinfo.js';
import { netnsPath } from './paths.js';

const AF_INET = 2;
const AF_BRIDGE = 7;
const RT_TABLE_MAIN = 254;
/** Flags of RTM_NEWLINK / NEWADDR / NEWROUTE / NEWNEIGH (include/uapi/linux/netlink.h). */
const NLM_F_CREATE_EXCL = 0x400 | 0x200;
const NLM_F_CREATE_REPLACE = 0x400 | 0x100;

export interface LinkInfo {
  name: string;
  index: number;
  mac: MacAddress | null;
  mtu: number;
  up: boolean;
  /** ifindex of the bridge (master) this link is enslaved to. */
  master: number | null;
}

export interface LinkChange {
  up?: boolean;
  mtu?: number;
  mac?: MacAddress;
  /** Enslave to this bridge; null releases it. */
  master?: string | null;
  /** Move into this named namespace (IFLA_NET_NS_FD). The move takes the link down. */
  netns?: string;
}

export interface VethSpec {
  name: string;
  peer: string;
  mac?: MacAddress;
  peerMac?: MacAddress;
  mtu?: number;
  /** Create the peer directly in this named namespace. */
  peerNetns?: string;
}

export interface RouteSpec {
  /** `10.0.0.0/24` or `default`. */
  dst: string;
  gateway?: Ipv4Address;
  dev?: string;
}

export interface AddressInfo {
  dev: string;
  cidr: string;
}

/** The operations, by name, that a worker relays. */
export interface RtnlApi {
  listLinks(): Promise<LinkInfo[]>;
  getLink(name: string): Promise<LinkInfo>;
  createVeth(spec: VethSpec): Promise<void>;
  createBridge(name: string): Promise<void>;
  createIfb(name: string): Promise<void>;
  createVxlan(name: string, opts: VxlanOptions & { underlay?: string }): Promise<void>;
  deleteLink(name: string): Promise<void>;
  setLink(name: string, change: LinkChange): Promise<void>;
  addAddress(dev: string, cidr: string): Promise<void>;
  listAddresses(): Promise<AddressInfo[]>;
  addRoute(route: RouteSpec): Promise<void>;
  setNeighbor(dev: string, ip: Ipv4Address, mac: MacAddress): Promise<void>;
  /** Removes every IPv4 neighbour entry (on `dev` only, when given); returns how many. */
  flushNeighbors(dev?: string): Promise<number>;
  /** A static forwarding entry on a VXLAN device: frames to `mac` go to VTEP `dst` (bridge-fdb(8) `dst`). */
  setFdb(dev: string, mac: MacAddress, dst: Ipv4Address): Promise<void>;
}

export type RtnlOp = keyof RtnlApi;
export const RTNL_OPS: readonly RtnlOp[] = [
  'listLinks', 'getLink', 'createVeth', 'createBridge', 'createIfb', 'createVxlan', 'deleteLink', 'setLink', 'addAddress', 'listAddresses', 'addRoute',
  'setNeighbor', 'flushNeighbors', 'setFdb',
];

function ipBytes(ip: Ipv4Address): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ipv4ToNumber(ip), 0);
  return b;
}

/** Wraps a kernel refusal into a NetnsError naming the operation and the errno. */
async function kernel<T>(what: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    // The package reports a kernel NLMSG_ERROR as Error("Request rejected: EEXIST"), no code field.
    const err = e as { code?: string; message?: string };
    const message = err.message ?? String(e);
    const errno = err.code ?? /\b(E[A-Z0-9]+)\b/.exec(message)?.[1];
    throw new NetnsError('NETNS_NETLINK', `${what}: ${message}`, undefined, errno);
  }
}

export class Rtnl implements RtnlApi {
  private readonly sock: RtNetlinkSocket;
  /** Tail of the queue of operations (see `serial`). */
  private tail: Promise<unknown> = Promise.resolve();

  constructor() {
    this.sock = createRtNetlink();
    // The package matches replies to requests by sequence number, but two dumps in flight on one
    // socket interleave their multipart replies ("Multipart message not terminated properly",
    // measured): so operations on one socket run one at a time.
    for (const op of RTNL_OPS) {
      const fn = (this[op] as (...a: unknown[]) => Promise<unknown>).bind(this);
      (this as unknown as Record<string, unknown>)[op] = (...args: unknown[]) => this.serial(() => fn(...args));
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.sock.socket.close();
  }

  async listLinks(): Promise<LinkInfo[]> {
    return this.links();
  }

  async getLink(name: string): Promise<LinkInfo> {
    return this.link(name);
  }

  // Unqueued helpers for use inside an operation (the queued public ones would wait on themselves).
  private async links(): Promise<LinkInfo[]> {
    const links = await kernel('list links', this.sock.getLinks());
    return links.map((l) => ({
      name: l.attrs.ifname ?? '',
      index: l.data.index ?? 0,
      mac: l.attrs.address && l.attrs.address.length === 6 ? readMac(l.attrs.address, 0) : null,
      mtu: l.attrs.mtu ?? 0,
      up: !!l.data.flags?.up,
      master: l.attrs.master ?? null,
    }));
  }

  private async link(name: string): Promise<LinkInfo> {
    const link = (await this.links()).find((l) => l.name === name);
    if (!link) throw new NetnsError('NETNS_LINK_NOT_FOUND', `no link named ${name}`);
    return link;
  }

  private async index(name: string): Promise<number> {
    return (await this.link(name)).index;
  }

  /** Opens /run/netns/NAME for IFLA_NET_NS_FD; the caller closes it after the request. */
  private withNetnsFd<T>(netns: string | undefined, fn: (fd: number | undefined) => Promise<T>): Promise<T> {
    if (netns === undefined) return fn(undefined);
    let fd: number;
    try {
      fd = openSync(netnsPath(netns), 'r');
    } catch {
      throw new NetnsError('NETNS_NOT_FOUND', `namespace ${netns} does not exist (${netnsPath(netns)})`, netns);
    }
    return fn(fd).finally(() => closeSync(fd));
  }

  async createVeth(spec: VethSpec): Promise<void> {
    checkIfName(spec.name);
    checkIfName(spec.peer);
    await this.withNetnsFd(spec.peerNetns, (fd) =>
      kernel(
        `create veth ${spec.name}/${spec.peer}`,
        this.sock.newLink(
          {},
          {
            ifname: spec.name,
            ...(spec.mac ? { address: macToBytes(spec.mac) } : {}),
            ...(spec.mtu ? { mtu: spec.mtu } : {}),
            linkinfo: vethLinkInfo({ name: spec.peer, ...(spec.peerMac ? { mac: spec.peerMac } : {}), ...(spec.mtu ? { mtu: spec.mtu } : {}), ...(fd !== undefined ? { netnsFd: fd } : {}) }),
          },
          { flags: NLM_F_CREATE_EXCL },
        ),
      ),
    );
  }

  async createBridge(name: string): Promise<void> {
    checkIfName(name);
    await kernel(`create bridge ${name}`, this.sock.newLink({}, { ifname: name, linkinfo: bridgeLinkInfo() }, { flags: NLM_F_CREATE_EXCL }));
  }

  async createIfb(name: string): Promise<void> {
    checkIfName(name);
    await kernel(`create ifb ${name}`, this.sock.newLink({}, { ifname: name, linkinfo: ifbLinkInfo() }, { flags: NLM_F_CREATE_EXCL }));
  }

  async createVxlan(name: string, opts: VxlanOptions & { underlay?: string }): Promise<void> {
    checkIfName(name);
    const underlayIndex = opts.underlay ? await this.index(opts.underlay) : undefined;
    await kernel(
      `create vxlan ${name}`,
      this.sock.newLink({}, { ifname: name, linkinfo: vxlanLinkInfo({ ...opts, ...(underlayIndex !== undefined ? { underlayIndex } : {}) }) }, { flags: NLM_F_CREATE_EXCL }),
    );
  }

  async deleteLink(name: string): Promise<void> {
    const index = await this.index(name);
    await kernel(`delete link ${name}`, this.sock.delLink({ index }));
  }

  async setLink(name: string, change: LinkChange): Promise<void> {
    const index = await this.index(name);
    const attrs: Record<string, unknown> = {};
    if (change.mtu !== undefined) attrs.mtu = change.mtu;
    if (change.mac !== undefined) attrs.address = macToBytes(normalizeMac(change.mac));
    if (change.master !== undefined) attrs.master = change.master === null ? 0 : await this.index(change.master);
    const flags = change.up === undefined ? {} : { flags: { up: change.up }, change: { up: true as const } };
    await this.withNetnsFd(change.netns, (fd) => {
      if (fd !== undefined) attrs.netNsFd = fd;
      return kernel(`set link ${name} ${JSON.stringify(change)}`, this.sock.setLink({ index, ...flags } as never, attrs));
    });
  }

  async addAddress(dev: string, cidr: string): Promise<void> {
    const c = parseCidr(cidr);
    const index = await this.index(dev);
    await kernel(
      `add address ${cidr} to ${dev}`,
      this.sock.newAddress({ family: AF_INET, prefixlen: c.prefixLength, index }, { local: ipBytes(c.address), address: ipBytes(c.address) }, { flags: NLM_F_CREATE_EXCL }),
    );
  }

  async listAddresses(): Promise<AddressInfo[]> {
    const links = new Map((await this.links()).map((l) => [l.index, l.name]));
    const addrs = await kernel('list addresses', this.sock.getAddresses({ family: AF_INET }));
    return addrs
      .filter((a) => a.attrs.local ?? a.attrs.address)
      .map((a) => {
        const b = (a.attrs.local ?? a.attrs.address)!;
        return { dev: links.get(a.data.index ?? -1) ?? '', cidr: `${b[0]}.${b[1]}.${b[2]}.${b[3]}/${a.data.prefixlen}` };
      });
  }

  async addRoute(route: RouteSpec): Promise<void> {
    const dst = route.dst === 'default' ? { address: '0.0.0.0', prefixLength: 0 } : parseCidr(route.dst);
    const attrs: Record<string, unknown> = {};
    if (dst.prefixLength > 0) attrs.dst = ipBytes(dst.address);
    if (route.gateway) attrs.gateway = ipBytes(route.gateway);
    if (route.dev) attrs.oif = await this.index(route.dev);
    await kernel(
      `add route ${JSON.stringify(route)}`,
      this.sock.newRoute(
        { family: AF_INET, dstLen: dst.prefixLength, table: RT_TABLE_MAIN, protocol: 'BOOT', scope: route.gateway ? 'UNIVERSE' : 'LINK', type: 'UNICAST' },
        attrs,
        { flags: NLM_F_CREATE_EXCL },
      ),
    );
  }

  async setNeighbor(dev: string, ip: Ipv4Address, mac: MacAddress): Promise<void> {
    if (!isIpv4(ip)) throw new NetnsError('NETNS_NETLINK', `set neighbour: ${ip} is not IPv4`);
    const ifindex = await this.index(dev);
    await kernel(
      `set neighbour ${ip} -> ${mac} on ${dev}`,
      this.sock.newNeighbor({ family: AF_INET, ifindex, state: { permanent: true } }, { dst: ipBytes(ip), lladdr: macToBytes(mac) }, { flags: NLM_F_CREATE_REPLACE }),
    );
  }

  async setFdb(dev: string, mac: MacAddress, dst: Ipv4Address): Promise<void> {
    const ifindex = await this.index(dev);
    // RTM_NEWNEIGH in family AF_BRIDGE with NTF_SELF: an entry in the device's own FDB (the VXLAN
    // driver's), not its master bridge's (include/uapi/linux/neighbour.h).
    await kernel(
      `set fdb ${mac} -> ${dst} on ${dev}`,
      this.sock.newNeighbor({ family: AF_BRIDGE, ifindex, state: { permanent: true }, flags: { self: true } }, { lladdr: macToBytes(mac), dst: ipBytes(dst) }, { flags: NLM_F_CREATE_REPLACE }),
    );
  }

  async flushNeighbors(dev?: string): Promise<number> {
    const ifindex = dev === undefined ? undefined : await this.index(dev);
    const all = await kernel('list neighbours', this.sock.getNeighbors({ family: AF_INET }));
    let n = 0;
    for (const nb of all) {
      if (ifindex !== undefined && nb.data.ifindex !== ifindex) continue;
      if (!nb.attrs.dst || nb.data.state?.noarp) continue; // NOARP entries (multicast, lo) are not learnt ARP state
      await kernel('delete neighbour', this.sock.delNeighbor({ family: AF_INET, ifindex: nb.data.ifindex ?? 0 }, { dst: nb.attrs.dst }));
      n++;
    }
    return n;
  }
}
