/**
 * Test fixtures for the controller tests: an OVS bridge that is coat's to program, and network
 * namespaces joined to the bridge by veth pairs. Everything carries the run's tag and is removed in
 * teardown, also when the test fails. (The lab's netlink-based src/netns/ is built in parallel;
 * these few `ip` commands are enough here.)
 */
import { exec } from '../../src/exec.js';
import type { OvsInstance } from '../../lab/ovs-daemons.js';
import { startOvs } from '../fixtures/ovs.js';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TlsOptions } from '../../src/controller/index.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/**
 * A real OVS for one test, running inside its own namespace `TAG-sw`. Why a namespace: the
 * netdev datapath opens a tap device named `ovs-netdev`, one per network namespace, so two
 * netdev instances in the root namespace (other tests, other engineers' runs) collide.
 * ovs-vsctl, ovs-ofctl and the controller reach it through unix sockets in its run directory.
 */
export async function startSwitchOvs(t: Teardown, tag: string): Promise<OvsInstance> {
  const ns = `${tag}-sw`;
  await exec('ip', ['netns', 'add', ns], { timeoutMs: 5000 });
  t.teardown(() => exec('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 5000 }));
  await exec('ip', ['link', 'set', 'lo', 'up'], { netns: ns, timeoutMs: 5000 });
  return startOvs(t, { tag, netns: ns });
}

export interface BridgeOptions {
  name?: string;
  /** Datapath id as 16 hex digits (`other-config:datapath-id`). */
  dpid: string;
  /** OpenFlow versions the bridge allows (default OpenFlow13 only). */
  protocols?: string;
  datapathType?: string;
}

/**
 * A bridge for coat: fail_mode=secure (no NORMAL fallback flow when the controller is away) and
 * in-band control off (no hidden flows for the controller's address), so that what is in the
 * table is only what controllers put there.
 */
export async function addBridge(ovs: OvsInstance, opts: BridgeOptions): Promise<string> {
  const br = opts.name ?? 'br0';
  await ovs.vsctl([
    'add-br', br, '--', 'set', 'bridge', br,
    `datapath_type=${opts.datapathType ?? 'netdev'}`,
    `protocols=${opts.protocols ?? 'OpenFlow13'}`,
    'fail_mode=secure',
    `other-config:datapath-id=${opts.dpid}`,
    'other-config:disable-in-band=true',
  ]);
  return br;
}

export interface NsPort {
  ns: string;
  /** Interface inside the namespace. */
  nsIf: string;
  /** Interface in the root namespace, added to the bridge. */
  brIf: string;
  ofport: number;
  mac: string;
  ip: string;
}

/**
 * A namespace `TAG-nN` with a veth whose other end is port `ofport` of `bridge`. TX checksum
 * offload is off on both ends: a netdev bridge forwards what the kernel handed it, and offloaded
 * (unfinished) checksums would reach the other side wrong.
 */
export async function addNsPort(t: Teardown, ovs: OvsInstance, bridge: string, tag: string, n: number, ofport: number): Promise<NsPort> {
  const ns = `${tag}-n${n}`;
  const nsIf = `${tag}-i${n}`;
  const brIf = `${tag}-b${n}`;
  const mac = `02:00:00:00:00:${(0x10 + n).toString(16).padStart(2, '0')}`;
  const ip = `10.99.0.${10 + n}`;
  // The bridge end lives where OVS runs (its namespace, or the root one).
  const swNs = ovs.netns ? { netns: ovs.netns } : {};
  t.teardown(async () => {
    await exec('ip', ['link', 'del', brIf], { ...swNs, allowFailure: true, timeoutMs: 5000 });
    await exec('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 5000 });
  });
  await exec('ip', ['netns', 'add', ns], { timeoutMs: 5000 });
  await exec('ip', ['link', 'add', brIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', ns], { ...swNs, timeoutMs: 5000 });
  await exec('ip', ['link', 'set', brIf, 'up'], { ...swNs, timeoutMs: 5000 });
  await exec('ethtool', ['-K', brIf, 'tx', 'off'], { ...swNs, timeoutMs: 5000 });
  for (const args of [
    ['link', 'set', 'lo', 'up'],
    ['link', 'set', nsIf, 'address', mac],
    ['addr', 'add', `${ip}/24`, 'dev', nsIf],
    ['link', 'set', nsIf, 'up'],
  ]) {
    await exec('ip', args, { netns: ns, timeoutMs: 5000 });
  }
  await exec('ethtool', ['-K', nsIf, 'tx', 'off'], { netns: ns, timeoutMs: 5000 });
  await ovs.vsctl(['add-port', bridge, brIf, '--', 'set', 'interface', brIf, `ofport_request=${ofport}`]);
  return { ns, nsIf, brIf, ofport, mac, ip };
}

/** Flows of a bridge as ovs-ofctl prints them, one string per flow, stats columns removed. */
export async function dumpFlows(ovs: OvsInstance, bridge: string, filter?: string): Promise<string[]> {
  const out = await ovs.ofctl(['dump-flows', '--no-stats', ovs.bridgeMgmt(bridge), ...(filter ? [filter] : [])]);
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('OFPST_FLOW') && !l.startsWith('NXST_FLOW'));
}

/** A CA and two certificates it signed (controller, switch), EC P-256, valid one day. */
export async function makePki(t: Teardown): Promise<{ dir: string; ctl: TlsOptions; sw: TlsOptions; rogue: TlsOptions }> {
  const dir = await mkdtemp(join(tmpdir(), 'coat-pki-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ossl = (args: string[]) => exec('openssl', args, { timeoutMs: 20_000 });
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = async (name: string) => ossl(['req', '-x509', ...key, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`), '-days', '1', '-subj', `/CN=${name}`]);
  await ca('ca');
  await ca('rogue-ca');
  for (const [name, caName] of [['ctl', 'ca'], ['sw', 'ca'], ['rogue', 'rogue-ca']] as const) {
    await ossl(['req', ...key, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.csr`), '-subj', `/CN=${name}`]);
    await ossl(['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', join(dir, `${caName}.crt`), '-CAkey', join(dir, `${caName}.key`), '-CAcreateserial', '-out', join(dir, `${name}.crt`), '-days', '1']);
  }
  const load = async (name: string, caName: string): Promise<TlsOptions> => ({
    key: await readFile(join(dir, `${name}.key`)),
    cert: await readFile(join(dir, `${name}.crt`)),
    ca: await readFile(join(dir, `${caName}.crt`)),
  });
  return { dir, ctl: await load('ctl', 'ca'), sw: await load('sw', 'ca'), rogue: await load('rogue', 'ca') };
}

/**
 * A veth between the root namespace (where the controller runs) and the switch's namespace, with a
 * /30 of 169.254.0.0/16 picked from the tag: how a real OVS reaches coat over TCP when it cannot
 * share coat's loopback (its netdev datapath needs a namespace of its own, see startSwitchOvs).
 */
export async function linkToSwitchNs(t: Teardown, ovs: OvsInstance, tag: string): Promise<{ controllerIp: string; switchIp: string }> {
  if (!ovs.netns) throw new Error('OVS runs in the root namespace: use loopback');
  const n = parseInt(tag.slice(1), 36);
  const third = n % 250;
  const fourth = (Math.floor(n / 250) % 63) * 4;
  const controllerIp = `169.254.${third}.${fourth + 1}`;
  const switchIp = `169.254.${third}.${fourth + 2}`;
  const rootIf = `${tag}-ct`;
  const swIf = `${tag}-cs`;
  t.teardown(() => exec('ip', ['link', 'del', rootIf], { allowFailure: true, timeoutMs: 5000 }));
  await exec('ip', ['link', 'add', rootIf, 'type', 'veth', 'peer', 'name', swIf, 'netns', ovs.netns], { timeoutMs: 5000 });
  await exec('ip', ['addr', 'add', `${controllerIp}/30`, 'dev', rootIf], { timeoutMs: 5000 });
  await exec('ip', ['link', 'set', rootIf, 'up'], { timeoutMs: 5000 });
  await exec('ip', ['addr', 'add', `${switchIp}/30`, 'dev', swIf], { netns: ovs.netns, timeoutMs: 5000 });
  await exec('ip', ['link', 'set', swIf, 'up'], { netns: ovs.netns, timeoutMs: 5000 });
  return { controllerIp, switchIp };
}
