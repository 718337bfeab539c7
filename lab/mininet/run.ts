/**
 * `coat lab mininet`: the same overlay in Mininet (Debian's package, Python 3). This side starts
 * what Mininet expects to find: an Open vSwitch (ovsdb-server + ovs-vswitchd in a tagged run
 * directory; Mininet's ovs-vsctl calls reach it through OVS_RUNDIR) and `coat controller` on
 * loopback; it writes the plan (switch dpids, port numbers from the overlay layout) and runs
 * `coat_topo.py`. Mininet creates and deletes its own bridges and links; this side removes the
 * rest, and sweeps links carrying the tag if Mininet died. Endpoints on different switches talk
 * over VXLAN: each switch's tunnel port leads to a VTEP (a Mininet host with a Linux VXLAN device)
 * on an underlay bridge, as the lab's `tunnel: kernel` mode does.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openNetns } from '../../src/netns/index.js';
import { parseCidr } from '../../src/packet/address.js';
import { dpidString } from '../../src/log.js';
import { hostLayout } from '../../src/vxlan/layout.js';
import type { Topology } from '../../src/vxlan/topology.js';
import { OvsInstance } from '../ovs-daemons.js';
import { isAlive } from '../process.js';
import { newTag } from '../tag.js';
import { coatArgv, type ControllerStatusFile } from '../up.js';

export interface MininetPlan {
  controller: { ip: string; port: number };
  /** One integration switch per topology host, programmed by coat. */
  switches: { name: string; dpid: string; host: string }[];
  /** The endpoints, as Mininet hosts on their host's switch at the layout's port number. */
  hosts: { name: string; ip: string; mac: string; switch: string; port: number; endpoint: string }[];
  /**
   * One VTEP per topology host: a Mininet host (its own namespace) linked to the host's switch at
   * the kernel tunnel port number (eth0) and to the underlay fabric (eth1, the host's underlay
   * address), bridging eth0 with a Linux VXLAN device whose static FDB sends each remote endpoint
   * MAC to that endpoint's host.
   */
  vteps: { name: string; switch: string; port: number; underlayIp: string; vni: number; fdb: { mac: string; dst: string }[] }[];
  /** The underlay: a standalone (MAC-learning) OVS bridge joining the VTEPs, no controller. */
  fabric: { name: string; dpid: string };
}

/** The fabric's datapath id: host byte 00 is never a host's (layout.ts numbers hosts from 1). */
export const MININET_FABRIC_DPID = 'c0a70000000000ff';

/**
 * Mininet names: switch `TAGi`, endpoint host `TAGhk`, VTEP `TAGvi`, fabric `TAGf`, so that
 * `NAME-ethPORT` fits 15 bytes even for port 1000+. The overlay is laid out as with `tunnel:
 * kernel` (one tunnel port per switch, for every peer), which is what the VTEPs provide.
 */
export function mininetPlan(topo: Topology, tag: string, port: number): MininetPlan {
  const kernelTopo: Topology = { ...topo, tunnel: 'kernel' };
  const layouts = topo.hosts.map((h) => hostLayout(kernelTopo, tag, h.name));
  const sw = (i: number) => `${tag}${i}`;
  const prefix = parseCidr(topo.overlay.subnet).prefixLength;
  const ulPrefix = parseCidr(topo.underlay.subnet).prefixLength;
  return {
    controller: { ip: '127.0.0.1', port },
    switches: layouts.map((l, i) => ({ name: sw(i), dpid: dpidString(l.integrationDpid), host: l.host })),
    hosts: topo.endpoints.map((e, k) => {
      const i = topo.hosts.findIndex((h) => h.name === e.host);
      return { name: `${tag}h${k}`, endpoint: e.name, ip: `${e.ip}/${prefix}`, mac: e.mac, switch: sw(i), port: layouts[i]!.endpoints[e.name]!.ofport };
    }),
    vteps: topo.hosts.flatMap((h, i) => {
      const tunnel = Object.values(layouts[i]!.tunnels)[0];
      if (!tunnel) return []; // a one-host topology has no tunnel
      const fdb = topo.endpoints.filter((e) => e.host !== h.name).map((e) => ({ mac: e.mac, dst: topo.hosts.find((x) => x.name === e.host)!.underlay.ip }));
      return [{ name: `${tag}v${i}`, switch: sw(i), port: tunnel.ofport, underlayIp: `${h.underlay.ip}/${ulPrefix}`, vni: topo.overlay.vni, fdb }];
    }),
    fabric: { name: `${tag}f`, dpid: MININET_FABRIC_DPID },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export interface MininetOptions {
  /** Run the ping test and exit instead of Mininet's CLI. */
  test?: boolean;
  progress?: (line: string) => void;
}

export interface MininetResult {
  tag: string;
  exitCode: number;
  /** With `test`: the script's JSON line (VXLAN counters by switch name). */
  result?: { pairs: number; failures: string[]; vxlan?: Record<string, { txPackets: number; rxPackets: number }> };
  controller?: ControllerStatusFile;
  output: string;
}

export async function runMininet(topo: Topology, opts: MininetOptions = {}): Promise<MininetResult> {
  const progress = opts.progress ?? (() => {});
  const tag = newTag();
  const dir = join(tmpdir(), `coat-${tag}-mininet`);
  await mkdir(dir, { recursive: true });
  const ovs = new OvsInstance({ dir: join(dir, 'ovs') });
  let controllerPid: number | undefined;
  try {
    progress(`mininet ${tag}: Open vSwitch in ${ovs.dir}`);
    await ovs.start();
    const port = await freePort();
    const plan = mininetPlan(topo, tag, port);
    // tunnel: kernel: each switch reaches every peer through its one VTEP port (mininetPlan)
    const resolved: Topology = { ...topo, tunnel: 'kernel', controller: { ...topo.controller, openflow: `tcp:127.0.0.1:${port}` } };
    await writeFile(join(dir, 'topology.json'), JSON.stringify(resolved, null, 2));
    await writeFile(join(dir, 'plan.json'), JSON.stringify(plan, null, 2));

    progress(`mininet ${tag}: coat controller on 127.0.0.1:${port}`);
    const log = openSync(join(dir, 'controller.log'), 'a');
    const [exe, ...args] = coatArgv();
    const ctl = spawn(exe!, [...args, 'controller', '--no-ovsdb', '--topology', join(dir, 'topology.json'), '--prefix', tag, '--listen', `ptcp:${port}:127.0.0.1`, '--status', join(dir, 'controller.json')], {
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    controllerPid = ctl.pid;
    // Mininet's switches should find the controller listening (otherwise they back off and retry)
    await OvsInstance.waitFor(`coat controller on 127.0.0.1:${port}`, () => canConnect(port), 30_000);

    progress(`mininet ${tag}: Mininet (${plan.switches.length} OVS user-space switches, ${plan.hosts.length} hosts, VXLAN between ${plan.vteps.length} VTEPs over an underlay bridge)`);
    const script = fileURLToPath(new URL('./coat_topo.py', import.meta.url)).replace(/\/dist\/lab\//, '/lab/');
    const py = spawn('/usr/bin/python3', [script, join(dir, 'plan.json'), ...(opts.test ? ['--test'] : [])], {
      env: { ...process.env, OVS_RUNDIR: ovs.dir },
      stdio: opts.test ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    });
    let output = '';
    py.stdout?.on('data', (b: Buffer) => (output += b.toString()));
    py.stderr?.on('data', (b: Buffer) => (output += b.toString()));
    const timer = opts.test ? setTimeout(() => py.kill('SIGKILL'), 120_000) : undefined;
    const exitCode = await new Promise<number>((resolve) => py.once('exit', (code) => resolve(code ?? 1)));
    clearTimeout(timer);
    const line = output.split('\n').find((l) => l.startsWith('{"pairs"'));
    const controller = await readFile(join(dir, 'controller.json'), 'utf8').then((t) => JSON.parse(t) as ControllerStatusFile, () => undefined);
    return { tag, exitCode, output, ...(line ? { result: JSON.parse(line) as MininetResult['result'] } : {}), ...(controller ? { controller } : {}) };
  } finally {
    if (controllerPid !== undefined && isAlive(controllerPid)) {
      process.kill(controllerPid, 'SIGTERM');
      const deadline = Date.now() + 3000;
      while (isAlive(controllerPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      if (isAlive(controllerPid)) process.kill(controllerPid, 'SIGKILL');
    }
    await ovs.destroy();
    // links Mininet would have removed in net.stop(), had it got there
    const root = await openNetns();
    try {
      for (const l of await root.listLinks()) if (l.name.startsWith(tag)) await root.deleteLink(l.name).catch(() => undefined);
    } finally {
      await root.close();
    }
    await rm(dir, { recursive: true, force: true });
  }
}
