/**
 * Lab build and teardown time, 3 hosts (COAT's testbed) and 6 hosts (full mesh), through the same
 * functions `coat lab up` and `coat lab down` run, controller included (up ends when every bridge
 * holds its flows). Peer, same run: Mininet building the same 3-host overlay (VXLAN between VTEPs)
 * with coat as remote controller, started, pinged and stopped (`coat lab mininet --test`), as one
 * figure.
 *
 * The machine is shared (2 cores, other work running): figures are noisy. Run from source, the
 * lab's per-namespace netlink workers start through tsx, which is slower than the built CLI.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDown } from '../lab/down.js';
import { runMininet } from '../lab/mininet/run.js';
import { labUp } from '../lab/up.js';
import { defaultTopology, parseTopology, type Topology } from '../src/vxlan/topology.js';
import type { Bench, BenchRow } from './harness.js';

async function upDown(topo: Topology, progress: (l: string) => void): Promise<{ upS: number; downS: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'coat-labbench-'));
  try {
    const t0 = process.hrtime.bigint();
    await labUp(topo, { stateDir: dir, progress: (l) => progress(`  ${l}`) });
    const t1 = process.hrtime.bigint();
    await labDown(dir);
    const t2 = process.hrtime.bigint();
    return { upS: Number(t1 - t0) / 1e9, downS: Number(t2 - t1) / 1e9 };
  } finally {
    await labDown(dir).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

export const bench: Bench = {
  summary: 'coat lab up / down time for 3 and 6 hosts (controller included); Mininet peer for 3 hosts',
  async run(ctx) {
    const rows: BenchRow[] = [];
    const six = parseTopology(await readFile(new URL('../lab/topologies/six-hosts.yaml', import.meta.url), 'utf8'));
    for (const [label, topo] of [['3 hosts', defaultTopology()], ['6 hosts', six]] as const) {
      ctx.progress(`lab ${label}`);
      const r = await upDown(topo, ctx.progress);
      rows.push({ metric: `lab up, ${label}`, unit: 's', coat: r.upS, peer: null, note: 'until every bridge holds its flows' });
      rows.push({ metric: `lab down, ${label}`, unit: 's', coat: r.downS, peer: null });
    }
    ctx.progress('mininet peer, 3 hosts');
    const t0 = process.hrtime.bigint();
    const m = await runMininet(defaultTopology(), { test: true });
    const mininetS = Number(process.hrtime.bigint() - t0) / 1e9;
    ctx.progress('lab 3 hosts again, up + down + the same pings');
    const dir = await mkdtemp(join(tmpdir(), 'coat-labbench-'));
    let labS = NaN;
    try {
      const t1 = process.hrtime.bigint();
      const st = await labUp(defaultTopology(), { stateDir: dir });
      const { exec } = await import('../src/exec.js');
      for (const a of st.endpoints) for (const b of st.endpoints) if (a !== b) await exec('ping', ['-c', '1', '-W', '2', b.ip], { netns: a.namespace, timeoutMs: 5000 });
      await labDown(dir);
      labS = Number(process.hrtime.bigint() - t1) / 1e9;
    } finally {
      await labDown(dir).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
    rows.push({
      metric: 'up + ping all pairs + down, 3 hosts',
      unit: 's',
      coat: labS,
      peer: mininetSOk(m.exitCode, mininetS),
      peerName: 'Mininet, same overlay (OVS user-space switches, Linux VXLAN VTEPs, coat controller)',
      note: 'the lab runs 3 OVS instances, nats-server and 3 agents; Mininet one OVS, no agents',
    });
    return rows;
  },
};

function mininetSOk(code: number, s: number): number | null {
  return code === 0 ? s : null;
}
