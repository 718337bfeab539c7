/**
 * Every name a lab uses, from its tag and topology: namespaces, the fabric and management links,
 * addresses on the management network, run directory. Pure. Interface names are `TAG-xN` (at most
 * 15 bytes, IFNAMSIZ - 1) so that a sweep by tag finds all of them.
 */
import { join } from 'node:path';
import { ipv4ToNumber, numberToIpv4, parseCidr } from '../src/packet/address.js';
import { endpointHostIf, endpointNetns, hostNetns } from '../src/vxlan/layout.js';
import type { Topology } from '../src/vxlan/topology.js';

export interface LabNames {
  tag: string;
  runDir: string;
  fabricNetns: string;
  ctlNetns: string;
  fabricBridge: string;
  mgmtBridge: string;
  ctlIp: string;
  mgmtPrefix: number;
  hosts: {
    name: string;
    netns: string;
    /** Underlay veth: `fabricIf` on the fabric bridge, `uplinkIf` in the host (port of the underlay bridge). */
    fabricIf: string;
    uplinkIf: string;
    /** ifb in the fabric shaping what host i sends (the ingress of `fabricIf`). */
    fabricIfb: string;
    /** Management veth: `ctlIf` on the management bridge in ctl, `mgmtIf` in the host. */
    ctlIf: string;
    mgmtIf: string;
    mgmtIp: string;
    ovsDir: string;
  }[];
  endpoints: { name: string; host: string; netns: string; hostIf: string; nsIf: string }[];
}

/** The interface inside an endpoint's namespace (the agent's default too). */
export const ENDPOINT_NS_IF = 'eth0';

export function labNames(tag: string, topo: Topology, stateDir: string): LabNames {
  const mg = parseCidr(topo.management.subnet);
  const base = ipv4ToNumber(mg.address) & (mg.prefixLength === 0 ? 0 : (0xffffffff << (32 - mg.prefixLength)) >>> 0);
  const runDir = join(stateDir, tag);
  return {
    tag,
    runDir,
    fabricNetns: `${tag}-fabric`,
    ctlNetns: `${tag}-ctl`,
    fabricBridge: `${tag}-fab`,
    mgmtBridge: `${tag}-mgmt`,
    ctlIp: numberToIpv4((base + 1) >>> 0),
    mgmtPrefix: mg.prefixLength,
    hosts: topo.hosts.map((h, i) => ({
      name: h.name,
      netns: hostNetns(tag, h.name),
      fabricIf: `${tag}-f${i}`,
      uplinkIf: `${tag}-u${i}`,
      fabricIfb: `${tag}-i${i}`,
      ctlIf: `${tag}-n${i}`,
      mgmtIf: `${tag}-m${i}`,
      mgmtIp: numberToIpv4((base + 10 + i) >>> 0),
      ovsDir: join(runDir, `ovs-${h.name}`),
    })),
    endpoints: topo.endpoints.map((e, k) => ({ name: e.name, host: e.host, netns: endpointNetns(tag, e.name), hostIf: endpointHostIf(tag, k), nsIf: ENDPOINT_NS_IF })),
  };
}
