/**
 * The nested IFLA_LINKINFO attribute (include/uapi/linux/if_link.h) for the link kinds coat
 * creates: veth, bridge, vxlan. The `netlink` package types IFLA_LINKINFO as opaque bytes, so
 * its contents are encoded here: struct nlattr { u16 len; u16 type; } + payload padded to 4
 * (include/uapi/linux/netlink.h, NLA_ALIGNTO).
 */
import { ipv4ToNumber, macToBytes, type Ipv4Address, type MacAddress } from '../packet/address.js';

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
// IFLA_VXLAN_* (if_link.h)
const IFLA_VXLAN_ID = 1;
const IFLA_VXLAN_GROUP = 2;
const IFLA_VXLAN_LINK = 3;
const IFLA_VXLAN_LOCAL = 4;
const IFLA_VXLAN_LEARNING = 7;
const IFLA_VXLAN_PORT = 15;

export function nlattr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v, 0);
  return b;
};
const u8 = (v: number) => Buffer.from([v]);
const be16 = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v, 0);
  return b;
};
const cstr = (s: string) => Buffer.from(s + '\0');
const inAddr = (ip: Ipv4Address) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ipv4ToNumber(ip), 0);
  return b;
};

export interface VethPeer {
  name: string;
  mac?: MacAddress;
  mtu?: number;
  /** An open fd of the namespace the peer is created in (IFLA_NET_NS_FD). */
  netnsFd?: number;
}

/** IFLA_LINKINFO contents for a veth pair: kind "veth", data { VETH_INFO_PEER: ifinfomsg + attrs }. */
export function vethLinkInfo(peer: VethPeer): Buffer {
  const attrs = [nlattr(IFLA_IFNAME, cstr(peer.name))];
  if (peer.mac) attrs.push(nlattr(IFLA_ADDRESS, macToBytes(peer.mac)));
  if (peer.mtu) attrs.push(nlattr(IFLA_MTU, u32(peer.mtu)));
  if (peer.netnsFd !== undefined) attrs.push(nlattr(IFLA_NET_NS_FD, u32(peer.netnsFd)));
  const ifinfomsg = Buffer.alloc(16); // struct ifinfomsg, all zero: family AF_UNSPEC, no flags
  return Buffer.concat([
    nlattr(IFLA_INFO_KIND, cstr('veth')),
    nlattr(IFLA_INFO_DATA, nlattr(VETH_INFO_PEER, Buffer.concat([ifinfomsg, ...attrs]))),
  ]);
}

export function bridgeLinkInfo(): Buffer {
  return nlattr(IFLA_INFO_KIND, cstr('bridge'));
}

/** Intermediate functional block (ifb): a device whose egress qdisc shapes another device's ingress. */
export function ifbLinkInfo(): Buffer {
  return nlattr(IFLA_INFO_KIND, cstr('ifb'));
}

export interface VxlanOptions {
  vni: number;
  local: Ipv4Address;
  /** Unicast remote (point-to-point tunnel); absent: remotes come from the FDB. */
  remote?: Ipv4Address;
  /** UDP destination port, default 4789 (IANA, RFC 7348 §5). */
  port?: number;
  /** ifindex of the underlay device. */
  underlayIndex?: number;
}

/** IFLA_LINKINFO for a kernel VXLAN device with one unicast remote and learning off. */
export function vxlanLinkInfo(o: VxlanOptions): Buffer {
  const data = [
    nlattr(IFLA_VXLAN_ID, u32(o.vni)),
    ...(o.remote ? [nlattr(IFLA_VXLAN_GROUP, inAddr(o.remote))] : []),
    nlattr(IFLA_VXLAN_LOCAL, inAddr(o.local)),
    nlattr(IFLA_VXLAN_LEARNING, u8(0)),
    nlattr(IFLA_VXLAN_PORT, be16(o.port ?? 4789)),
  ];
  if (o.underlayIndex !== undefined) data.push(nlattr(IFLA_VXLAN_LINK, u32(o.underlayIndex)));
  return Buffer.concat([nlattr(IFLA_INFO_KIND, cstr('vxlan')), nlattr(IFLA_INFO_DATA, Buffer.concat(data))]);
}
