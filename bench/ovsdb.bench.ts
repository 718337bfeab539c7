/**
 * OVSDB: adding 1000 ports to a bridge against ovsdb-server alone (no ovs-vswitchd, so every
 * ovs-vsctl runs with --no-wait), coat's one transaction beside ovs-vsctl one call per port and
 * ovs-vsctl one call with 1000 `--` clauses; and the monitor latency from another client's commit
 * to the replica updated.
 *
 * Each way of adding ports gets a fresh ovsdb-server, so none pays for the rows of another.
 * `npm run bench -- ovsdb [PORTS]` (default 1000).
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OvsInstance } from '../lab/ovs-daemons.js';
import { newTag } from '../lab/tag.js';
import { OvsdbClient, VSwitch, type Monitor } from '../src/ovsdb/index.js';
import { percentile, type Bench, type BenchRow } from './harness.js';

const tag = newTag();
let seq = 0;

async function withOvs<T>(fn: (ovs: OvsInstance) => Promise<T>): Promise<T> {
  const ovs = new OvsInstance({ dir: join(tmpdir(), `coat-${tag}-bench-ovsdb-${seq++}`), vswitchd: false });
  try {
    await ovs.start();
    await ovs.vsctl(['--no-wait', 'add-br', 'br-bench', '--', 'set', 'Bridge', 'br-bench', 'datapath_type=netdev']);
    return await fn(ovs);
  } finally {
    await ovs.destroy();
  }
}

async function countPorts(ovs: OvsInstance): Promise<number> {
  const out = (await ovs.vsctl(['list-ports', 'br-bench'], 30_000)).trim();
  return out === '' ? 0 : out.split('\n').length;
}

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

export const bench: Bench = {
  summary: 'OVSDB: 1000 ports in one coat transaction vs ovs-vsctl (per port, batched); monitor latency',
  async run(ctx) {
    const n = Number(ctx.args[0] ?? 1000);
    const names = Array.from({ length: n }, (_, i) => `p${i}`);

    // coat: one transaction with n ports (3 runs, each on a fresh server; the first is cold JIT),
    // built as VSwitch.addPorts builds it, timing the client-side build apart.
    const coatRuns: number[] = [];
    const buildRuns: number[] = [];
    for (let run = 0; run < 3; run++) {
      coatRuns.push(
        await withOvs(async (ovs) => {
          const vs = await VSwitch.connect(ovs.dbRemote);
          try {
            const start = process.hrtime.bigint();
            const tx = vs.transaction();
            const refs = names.map((name) => vs.portOps(tx, name));
            tx.mutate('Bridge', [['name', '==', 'br-bench']], [['ports', 'insert', refs]]);
            buildRuns.push(seconds(start) * 1000);
            await vs.client.transact(vs.db, tx, 60_000);
            const s = seconds(start);
            const got = await countPorts(ovs);
            if (got !== n) throw new Error(`coat run ${run}: ${got} ports on the bridge, expected ${n}`);
            return s;
          } finally {
            vs.close();
          }
        }),
      );
      ctx.progress(`coat, one transaction of ${n} ports: ${coatRuns.at(-1)!.toFixed(3)} s (client-side build ${buildRuns.at(-1)!.toFixed(1)} ms)`);
    }

    const batched = await withOvs(async (ovs) => {
      const args = ['--no-wait'];
      for (const name of names) args.push('--', 'add-port', 'br-bench', name);
      const start = process.hrtime.bigint();
      await ovs.vsctl(args, 120_000);
      const s = seconds(start);
      if ((await countPorts(ovs)) !== n) throw new Error('ovs-vsctl batched: wrong port count');
      return s;
    });
    ctx.progress(`ovs-vsctl, one call with ${n} clauses: ${batched.toFixed(3)} s`);

    const perPort = await withOvs(async (ovs) => {
      const start = process.hrtime.bigint();
      for (const name of names) await ovs.vsctl(['--no-wait', 'add-port', 'br-bench', name]);
      const s = seconds(start);
      if ((await countPorts(ovs)) !== n) throw new Error('ovs-vsctl per port: wrong port count');
      return s;
    });
    ctx.progress(`ovs-vsctl, one call per port: ${perPort.toFixed(3)} s`);

    // Monitor latency: client A commits a one-column update; client B's replica shows it.
    const latencies = await withOvs(async (ovs) => {
      const a = await OvsdbClient.connect(ovs.dbRemote);
      const b = await OvsdbClient.connect(ovs.dbRemote);
      try {
        const mon: Monitor = await b.monitor('Open_vSwitch', { Bridge: { columns: ['name', 'external_ids'] } });
        const samples: number[] = [];
        for (let i = 0; i < 300; i++) {
          const value = String(i);
          const seen = mon.waitFor(
            `seq ${value}`,
            (r) => [...r.table('Bridge').values()].some((row) => (row.external_ids as Map<string, string>).get('seq') === value),
            5000,
          );
          const tx = await a.transaction('Open_vSwitch');
          tx.mutate('Bridge', [['name', '==', 'br-bench']], [['external_ids', 'delete', ['seq']], ['external_ids', 'insert', { seq: value }]]);
          const start = process.hrtime.bigint();
          await Promise.all([a.transact('Open_vSwitch', tx), seen]);
          samples.push(Number(process.hrtime.bigint() - start) / 1e6);
        }
        return samples.slice(20); // drop the JIT warm-up
      } finally {
        a.close();
        b.close();
      }
    });
    const coatMedian = percentile(coatRuns, 50);
    const rows: BenchRow[] = [
      {
        metric: `add ${n} ports (coat: 1 transaction, first run, cold)`,
        unit: 's',
        coat: coatRuns[0]!,
        peer: batched,
        peerName: `ovs-vsctl --no-wait, 1 call, ${n} -- clauses`,
        goal: '<= 0.3',
      },
      {
        metric: `add ${n} ports (coat: median of 3 fresh servers)`,
        unit: 's',
        coat: coatMedian,
        peer: perPort,
        peerName: `ovs-vsctl --no-wait, ${n} calls`,
        goal: '<= 0.3',
      },
      { metric: `coat client-side build of the ${n}-port transaction (median)`, unit: 'ms', coat: percentile(buildRuns, 50), peer: null, note: 'part of the row above' },
      { metric: 'ovs-vsctl per-port call', unit: 'ms/call', coat: null, peer: (perPort / n) * 1000, peerName: 'ovs-vsctl --no-wait add-port' },
      {
        metric: 'monitor latency, another client sends a commit -> our replica updated, median',
        unit: 'ms',
        coat: percentile(latencies, 50),
        peer: null,
        note: `${latencies.length} samples`,
      },
      { metric: 'monitor latency, p99', unit: 'ms', coat: percentile(latencies, 99), peer: null, note: 'machine shared: 2 cores, other work running' },
    ];
    return rows;
  },
};
