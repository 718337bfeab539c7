/**
 * The topology file: which hosts exist, how their underlay is linked and shaped, the overlay
 * network (subnet, VNI, MTU), the endpoints attached to it, and where the controller is. One file
 * describes a lab (`coat lab up FILE`) or real hosts (then each host names its OVSDB remote).
 *
 * Validation is hand-written rather than a JSON-schema library: most of the checks are across
 * fields (an endpoint's host must exist, addresses must be unique and inside their subnet, names
 * must fit interface names once the lab's tag is added), which a schema cannot say, and each
 * error must name the bad key by its path (`hosts[1].underlay.ip`) in words a user acts on. All
 * problems are collected and reported together.
 *
 * Example (YAML; JSON works too):
 *
 *   overlay: { subnet: 10.10.0.0/24, vni: 5000, mtu: 1400 }
 *   underlay: { subnet: 192.168.100.0/24 }
 *   hosts:
 *     - { name: edge-a, underlay: { ip: 192.168.100.11, mbit: 100 } }
 *   endpoints:
 *     - { name: service, host: edge-a, ip: 10.10.0.10, mac: 02:c0:a7:00:00:10, role: service }
 */
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { cidrContains, isIpv4, isMac, normalizeMac, parseCidr, type Ipv4Address, type MacAddress } from '../packet/address.js';
import { CoatError } from '../errors.js';

export type DatapathType = 'netdev' | 'system';
export type TunnelKind = 'ovs' | 'kernel';
export type EndpointRole = 'service' | 'client' | 'other';

export interface HostSpec {
  name: string;
  underlay: {
    ip: Ipv4Address;
    /** Shaped rate of this host's underlay link in Mbit/s; absent: unshaped. */
    mbit?: number;
  };
  /** Real hosts: the OVSDB remote the controller connects to (`tcp:IP:6640`, `ssl:IP:6640`). */
  ovsdb?: string;
  /** Real hosts: the host's agent id on NATS; default the host name. */
  agent?: string;
  /** The Linux device carrying the underlay (real hosts: the NIC; a lab fills in its veth). */
  uplink?: string;
}

export interface EndpointSpec {
  name: string;
  host: string;
  ip: Ipv4Address;
  mac: MacAddress;
  role: EndpointRole;
}

export interface Topology {
  name: string;
  datapath: DatapathType;
  tunnel: TunnelKind;
  overlay: { subnet: string; vni: number; mtu: number };
  underlay: {
    subnet: string;
    /**
     * The underlay's MTU. A lab sets it on every underlay link and on each host's underlay
     * bridge; on real hosts it is the network's (coat requests it on the underlay bridge's internal
     * port and checks that the overlay fits). Absent: the links keep theirs (1500 for veths).
     */
    mtu?: number;
  };
  management: { subnet: string };
  controller: {
    /** OpenFlow connection method OVS is given (`tcp:IP:PORT`); in a lab, filled in by the lab. */
    openflow?: string;
    /** TCP port the controller listens on for OpenFlow. */
    port: number;
    /** NATS URL agents and controller use; in a lab, filled in by the lab. */
    nats?: string;
  };
  hosts: HostSpec[];
  endpoints: EndpointSpec[];
}

export class TopologyError extends CoatError {
  constructor(
    readonly problems: string[],
    readonly file?: string,
  ) {
    super('TOPOLOGY_INVALID', `${file ? file + ': ' : ''}invalid topology:\n  ${problems.join('\n  ')}`);
  }
}

/** COAT's testbed (three VMs): 100 Mbit/s underlay to edge-a, 500 Mbit/s to edge-b. */
export const DEFAULT_TOPOLOGY_YAML = `# COAT's testbed: two edge hosts and a client host, one overlay network.
name: coat-testbed
datapath: netdev        # netdev (userspace OVS) or system (OVS kernel module)
tunnel: ovs             # ovs (OVS vxlan ports) or kernel (Linux vxlan devices as OVS ports)
overlay:
  subnet: 10.10.0.0/24
  vni: 5000
  mtu: 1400
underlay:
  subnet: 192.168.100.0/24
  # Jumbo frames, as VXLAN fabrics commonly have. User-space OVS forwards per packet: at 1500
  # bytes two of its datapaths in a row carry less than the 1 Gbit/s a bench shapes the link to.
  mtu: 9000
management:
  subnet: 172.31.0.0/24
controller:
  port: 6653
hosts:
  - name: edge-a
    underlay: { ip: 192.168.100.11, mbit: 100 }
  - name: edge-b
    underlay: { ip: 192.168.100.12, mbit: 500 }
  - name: client
    underlay: { ip: 192.168.100.13 }
endpoints:
  - { name: service, host: edge-a, ip: 10.10.0.10, mac: "02:c0:a7:00:00:10", role: service }
  - { name: client, host: client, ip: 10.10.0.20, mac: "02:c0:a7:00:00:20", role: client }
`;

/** Bytes VXLAN over IPv4 adds to an overlay frame's IP packet (RFC 7348 §5). */
export const VXLAN_IPV4_OVERHEAD = 50;

/** Host and endpoint names become parts of namespace and interface names: short, simple. */
const NAME_RE = /^[a-z][a-z0-9-]{0,15}$/;
const TOP_KEYS = ['name', 'datapath', 'tunnel', 'overlay', 'underlay', 'management', 'controller', 'hosts', 'endpoints'];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class Checker {
  readonly problems: string[] = [];
  bad(path: string, why: string): void {
    this.problems.push(`${path}: ${why}`);
  }
  obj(v: unknown, path: string, allowed: string[]): Obj | undefined {
    if (!isObj(v)) {
      this.bad(path, `must be a mapping, got ${v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v}`);
      return undefined;
    }
    for (const k of Object.keys(v)) if (!allowed.includes(k)) this.bad(`${path}.${k}`, `unknown key (allowed: ${allowed.join(', ')})`);
    return v;
  }
  str(o: Obj, key: string, path: string, re?: RegExp, hint?: string): string | undefined {
    const v = o[key];
    if (typeof v !== 'string') return void this.bad(`${path}.${key}`, v === undefined ? 'is required' : `must be a string, got ${JSON.stringify(v)}`);
    if (re && !re.test(v)) return void this.bad(`${path}.${key}`, `${JSON.stringify(v)} ${hint ?? `does not match ${re}`}`);
    return v;
  }
  ip(o: Obj, key: string, path: string): string | undefined {
    const v = this.str(o, key, path);
    if (v !== undefined && !isIpv4(v)) return void this.bad(`${path}.${key}`, `${JSON.stringify(v)} is not an IPv4 address`);
    return v;
  }
  cidr(o: Obj, key: string, path: string, def?: string): string | undefined {
    if (o[key] === undefined && def !== undefined) return def;
    const v = this.str(o, key, path);
    if (v === undefined) return undefined;
    try {
      const c = parseCidr(v);
      if (c.prefixLength < 8 || c.prefixLength > 30) return void this.bad(`${path}.${key}`, `prefix /${c.prefixLength} must be between /8 and /30`);
      return v;
    } catch {
      return void this.bad(`${path}.${key}`, `${JSON.stringify(v)} is not an IPv4 prefix like 10.0.0.0/24`);
    }
  }
  int(o: Obj, key: string, path: string, min: number, max: number, def?: number): number | undefined {
    const v = o[key];
    if (v === undefined && def !== undefined) return def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      return void this.bad(`${path}.${key}`, v === undefined ? 'is required' : `must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
    }
    return v;
  }
  oneOf<T extends string>(o: Obj, key: string, path: string, values: readonly T[], def: T): T {
    const v = o[key];
    if (v === undefined) return def;
    if (typeof v !== 'string' || !values.includes(v as T)) {
      this.bad(`${path}.${key}`, `must be one of ${values.join(', ')}, got ${JSON.stringify(v)}`);
      return def;
    }
    return v as T;
  }
}

/** Validates a parsed document; throws TopologyError listing every problem found. */
export function validateTopology(doc: unknown, file?: string): Topology {
  const c = new Checker();
  const top = c.obj(doc, '(top)', TOP_KEYS);
  if (!top) throw new TopologyError(c.problems, file);
  const name = top.name === undefined ? 'coat' : (c.str(top, 'name', '(top)', /^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 characters of [A-Za-z0-9_.-]') ?? 'coat');
  const datapath = c.oneOf(top, 'datapath', '(top)', ['netdev', 'system'] as const, 'netdev');
  const tunnel = c.oneOf(top, 'tunnel', '(top)', ['ovs', 'kernel'] as const, 'ovs');

  const ov = c.obj(top.overlay ?? {}, 'overlay', ['subnet', 'vni', 'mtu']) ?? {};
  const overlay = {
    subnet: c.cidr(ov, 'subnet', 'overlay') ?? '0.0.0.0/0',
    // RFC 7348 §5: the VNI is 24 bits.
    vni: c.int(ov, 'vni', 'overlay', 1, 0xffffff) ?? 0,
    // 1400 leaves room for the 50 bytes of VXLAN encapsulation on a 1500-byte underlay.
    mtu: c.int(ov, 'mtu', 'overlay', 576, 9000, 1400) ?? 1400,
  };
  const ul = c.obj(top.underlay ?? {}, 'underlay', ['subnet', 'mtu']) ?? {};
  const underlayMtu = ul.mtu === undefined ? undefined : c.int(ul, 'mtu', 'underlay', 1280, 9216);
  const underlay: Topology['underlay'] = { subnet: c.cidr(ul, 'subnet', 'underlay', '192.168.100.0/24') ?? '', ...(underlayMtu !== undefined ? { mtu: underlayMtu } : {}) };
  // RFC 7348 §4.3 (and §5): VXLAN over IPv4 adds 50 bytes (outer Ethernet 14, IPv4 20, UDP 8,
  // VXLAN 8) to every overlay frame, and VTEPs must not fragment it.
  if (underlayMtu !== undefined && overlay.mtu + VXLAN_IPV4_OVERHEAD > underlayMtu) {
    c.bad('overlay.mtu', `${overlay.mtu} + ${VXLAN_IPV4_OVERHEAD} bytes of VXLAN encapsulation does not fit underlay.mtu ${underlayMtu}`);
  }
  const mg = c.obj(top.management ?? {}, 'management', ['subnet']) ?? {};
  const management = { subnet: c.cidr(mg, 'subnet', 'management', '172.31.0.0/24') ?? '' };
  const ct = c.obj(top.controller ?? {}, 'controller', ['openflow', 'port', 'nats']) ?? {};
  const controller: Topology['controller'] = { port: c.int(ct, 'port', 'controller', 1, 65535, 6653) ?? 6653 };
  if (ct.openflow !== undefined) {
    const of = c.str(ct, 'openflow', 'controller', /^((tcp|ssl):[^:]+:[0-9]+|unix:.+)$/, 'must be tcp:IP:PORT, ssl:IP:PORT or unix:PATH');
    if (of) controller.openflow = of;
  }
  if (ct.nats !== undefined) {
    const n = c.str(ct, 'nats', 'controller', /^(nats|tls):\/\/.+/, 'must be a nats:// or tls:// URL');
    if (n) controller.nats = n;
  }

  const hosts: HostSpec[] = [];
  if (!Array.isArray(top.hosts) || top.hosts.length < 2) c.bad('hosts', 'must be a list of at least two hosts');
  for (const [i, raw] of (Array.isArray(top.hosts) ? top.hosts : []).entries()) {
    const p = `hosts[${i}]`;
    const h = c.obj(raw, p, ['name', 'underlay', 'ovsdb', 'agent', 'uplink']);
    if (!h) continue;
    const hname = c.str(h, 'name', p, NAME_RE, 'must start with a letter and have at most 16 characters of [a-z0-9-]');
    const u = c.obj(h.underlay, `${p}.underlay`, ['ip', 'mbit']);
    const ip = u && c.ip(u, 'ip', `${p}.underlay`);
    const mbit = u && u.mbit !== undefined ? c.int(u, 'mbit', `${p}.underlay`, 1, 100_000) : undefined;
    if (ip && underlay.subnet && !cidrContains(parseCidr(underlay.subnet), ip)) c.bad(`${p}.underlay.ip`, `${ip} is outside underlay.subnet ${underlay.subnet}`);
    const ovsdb = h.ovsdb === undefined ? undefined : c.str(h, 'ovsdb', p, /^(tcp|ssl|unix):.+/, 'must be an OVSDB remote like tcp:10.0.0.1:6640');
    const agent = h.agent === undefined ? undefined : c.str(h, 'agent', p);
    const uplink = h.uplink === undefined ? undefined : c.str(h, 'uplink', p, /^[A-Za-z0-9_.-]{1,15}$/, 'must be an interface name (1-15 characters)');
    if (hname && hosts.some((x) => x.name === hname)) c.bad(`${p}.name`, `host ${hname} is defined twice`);
    if (ip && hosts.some((x) => x.underlay.ip === ip)) c.bad(`${p}.underlay.ip`, `${ip} is used by another host`);
    if (hname && ip) hosts.push({ name: hname, underlay: { ip, ...(mbit !== undefined ? { mbit } : {}) }, ...(ovsdb ? { ovsdb } : {}), ...(agent ? { agent } : {}), ...(uplink ? { uplink } : {}) });
  }
  if (hosts.some((h) => h.ovsdb) && !hosts.every((h) => h.ovsdb)) c.bad('hosts', 'either every host names its ovsdb remote (real hosts) or none does (lab)');

  const endpoints: EndpointSpec[] = [];
  // Seen values, kept even for entries with other problems, so that duplicates are always reported.
  const seen = { name: new Set<string>(), ip: new Set<string>(), mac: new Set<string>() };
  if (!Array.isArray(top.endpoints)) c.bad('endpoints', 'must be a list');
  for (const [i, raw] of (Array.isArray(top.endpoints) ? top.endpoints : []).entries()) {
    const p = `endpoints[${i}]`;
    const e = c.obj(raw, p, ['name', 'host', 'ip', 'mac', 'role']);
    if (!e) continue;
    const ename = c.str(e, 'name', p, NAME_RE, 'must start with a letter and have at most 16 characters of [a-z0-9-]');
    const host = c.str(e, 'host', p);
    if (host !== undefined && !hosts.some((h) => h.name === host)) c.bad(`${p}.host`, `no host named ${JSON.stringify(host)} (hosts: ${hosts.map((h) => h.name).join(', ')})`);
    const ip = c.ip(e, 'ip', p);
    if (ip && overlay.subnet !== '0.0.0.0/0' && !cidrContains(parseCidr(overlay.subnet), ip)) c.bad(`${p}.ip`, `${ip} is outside overlay.subnet ${overlay.subnet}`);
    const macRaw = c.str(e, 'mac', p);
    let mac: string | undefined;
    if (macRaw !== undefined) {
      if (!isMac(macRaw)) c.bad(`${p}.mac`, `${JSON.stringify(macRaw)} is not a MAC address like 02:00:00:00:00:01`);
      else if ((parseInt(macRaw.slice(0, 2), 16) & 1) === 1) c.bad(`${p}.mac`, `${macRaw} is a multicast address`);
      else mac = normalizeMac(macRaw);
    }
    const role = c.oneOf(e, 'role', p, ['service', 'client', 'other'] as const, 'other');
    if (ename && seen.name.has(ename)) c.bad(`${p}.name`, `endpoint ${ename} is defined twice`);
    if (ip && seen.ip.has(ip)) c.bad(`${p}.ip`, `${ip} is used by another endpoint`);
    if (mac && seen.mac.has(mac)) c.bad(`${p}.mac`, `${mac} is used by another endpoint`);
    if (ename) seen.name.add(ename);
    if (ip) seen.ip.add(ip);
    if (mac) seen.mac.add(mac);
    if (ename && host && ip && mac) endpoints.push({ name: ename, host, ip, mac, role });
  }
  if (c.problems.length) throw new TopologyError(c.problems, file);
  return { name, datapath, tunnel, overlay, underlay, management, controller, hosts, endpoints };
}

/** Parses YAML (a superset of JSON) and validates. */
export function parseTopology(text: string, file?: string): Topology {
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    const where = e instanceof YAMLParseError && e.linePos ? ` (line ${e.linePos[0].line}, column ${e.linePos[0].col})` : '';
    throw new TopologyError([`not valid YAML/JSON${where}: ${(e as Error).message.split('\n')[0]}`], file);
  }
  return validateTopology(doc, file);
}

export function defaultTopology(): Topology {
  return parseTopology(DEFAULT_TOPOLOGY_YAML, '(default topology)');
}

/** True when the topology describes real hosts (every host names its OVSDB remote). */
export function isRealHosts(t: Topology): boolean {
  return t.hosts.every((h) => h.ovsdb !== undefined);
}
