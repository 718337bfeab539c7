/**
 * `npm run bench -- flowmods [--flows N] [--reps R]`: sustained flow-mods/s that coat installs into
 * a real ovs-vswitchd (netdev datapath, its own namespace), confirmed (plain: by a barrier after
 * the last one; bundle: by the commit reply), beside `ovs-ofctl add-flows` and
 * `ovs-ofctl --bundle add-flows` of the same flows from a file, all in one run on one bridge.
 *
 * Flow-mods are built (and, being coat flows, encoded once to hash their cookies) before the clock
 * starts, as the peer's file is written before its clock starts; the peer parses its file inside
 * its run, coat copies cached bytes and patches xids inside its run.
 *
 * Each figure is the best of R repetitions (the machine is shared: the best run is the one least
 * disturbed by others). Between runs the table is emptied; each run is checked to have left
 * exactly N flows (OFPMP_AGGREGATE flow count), so a figure never counts flows that did not land.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import type { Bench, BenchRow } from './harness.js';
import { newTag } from '../lab/tag.js';
import { OvsInstance } from '../lab/ovs-daemons.js';
import { exec } from '../src/exec.js';
import { Controller, coatFlowMods, type FlowSpec, type SwitchConnection } from '../src/controller/index.js';
import { applyActions, match, output, OFPG, OFPP, OFPTT, type FlowMod } from '../src/openflow/index.js';

process.env.COAT_LOG_LEVEL ??= 'warn';

function arg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : dflt;
}

/** N flows on distinct IPv4 destinations (10.x.y.z), one output port each. */
function specs(n: number): FlowSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    band: 'forward',
    rank: 10,
    match: match({ eth_type: 0x0800, ipv4_dst: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }),
    instructions: [applyActions(output(1 + (i % 4)))],
  }));
}

/** The same flows in ovs-ofctl's syntax. */
function ofctlLine(fm: FlowMod, i: number): string {
  return `cookie=0x${fm.cookie.toString(16)},table=0,priority=${fm.priority},ip,nw_dst=10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255},actions=output:${1 + (i % 4)}`;
}

async function flowCount(sw: SwitchConnection): Promise<number> {
  const [agg] = await sw.multipart({ type: 'aggregate', tableId: OFPTT.all, outPort: OFPP.any, outGroup: OFPG.any, cookie: 0n, cookieMask: 0n, match: [] });
  return agg?.flowCount ?? 0;
}

/**
 * CPU seconds (user + system, all threads) a process has used: proc(5) /proc/PID/stat fields 14
 * and 15, in clock ticks (USER_HZ, 100 on Linux). Coarse (10 ms), fine for runs of a second.
 */
async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export const bench: Bench = {
  summary: 'flow-mods/s into real OVS confirmed (plain + barrier, bundle commit) vs ovs-ofctl add-flows and --bundle add-flows',
  async run(ctx) {
    const n = arg(ctx.args, '--flows', 100_000);
    const reps = arg(ctx.args, '--reps', 3);
    const tag = newTag();
    const ns = `${tag}-sw`;
    const dir = join(tmpdir(), `coat-${tag}-bench-ovs`);
    await exec('ip', ['netns', 'add', ns]);
    const ovs = new OvsInstance({ dir, netns: ns });
    const ctl = new Controller({ requestTimeoutMs: 120_000 });
    try {
      await ovs.start();
      await ovs.vsctl(['add-br', 'br0', '--', 'set', 'bridge', 'br0', 'datapath_type=netdev', 'protocols=OpenFlow13', 'fail_mode=secure',
        'other-config:datapath-id=00000000c0a7be00', 'other-config:disable-in-band=true']);
      const sock = join(dir, 'coat.sock');
      await ctl.listen(`punix:${sock}`);
      const up = ctl.waitForSwitch(0xc0a7be00n, 10_000);
      await ovs.vsctl(['set-controller', 'br0', `unix:${sock}`]);
      const sw = await up;
      const mods = coatFlowMods(specs(n));
      const file = join(dir, 'flows.txt');
      await writeFile(file, mods.map(ofctlLine).join('\n') + '\n');
      ctx.progress(`${n} flows, best of ${reps} runs each; OVS ${ovs.dir} in namespace ${ns}`);

      const clear = async () => {
        await ovs.ofctl(['del-flows', ovs.bridgeMgmt('br0')], 60_000);
        if ((await flowCount(sw)) !== 0) throw new Error('table not empty after del-flows');
      };
      /** Controller CPU (user + system µs of this process) per flow, lowest seen per method. */
      const cpuPerFlow = new Map<string, number>();
      /** ovs-vswitchd CPU µs per flow, lowest seen per method: the switch's share of the work. */
      const switchCpuPerFlow = new Map<string, number>();
      const vswitchdPid = await ovs.pid('ovs-vswitchd');
      if (vswitchdPid === undefined) throw new Error('ovs-vswitchd is not running');
      const best = new Map<string, number>();
      /** One timed run of one method, checked to have left exactly N flows. */
      const measure = async (name: string, run: () => Promise<unknown>): Promise<void> => {
        await clear();
        const switchCpu0 = await processCpuSeconds(vswitchdPid);
        const cpu0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        await run();
        const secs = Number(process.hrtime.bigint() - t0) / 1e9;
        const cpu = process.cpuUsage(cpu0);
        const switchCpu = (await processCpuSeconds(vswitchdPid)) - switchCpu0;
        cpuPerFlow.set(name, Math.min(cpuPerFlow.get(name) ?? Infinity, (cpu.user + cpu.system) / n));
        switchCpuPerFlow.set(name, Math.min(switchCpuPerFlow.get(name) ?? Infinity, (switchCpu * 1e6) / n));
        const count = await flowCount(sw);
        if (count !== n) throw new Error(`${name}: ${count} flows after the run, expected ${n}`);
        const rate = n / secs;
        ctx.progress(`${name}: ${Math.round(rate).toLocaleString('en-US')} flows/s (${secs.toFixed(3)} s)`);
        best.set(name, Math.max(best.get(name) ?? 0, rate));
      };
      const ofctlPlainName = 'ovs-ofctl add-flows';
      const ofctlBundleName = 'ovs-ofctl --bundle add-flows';
      const coatPlainName = 'coat flow-mods + barrier';
      const coatBundleName = 'coat bundle (open, add, barrier, commit)';
      // Methods take turns within each repetition, so a burst of load elsewhere on the machine
      // does not fall on one method's runs only.
      for (let r = 0; r < reps; r++) {
        await measure(ofctlPlainName, () => ovs.ofctl(['add-flows', ovs.bridgeMgmt('br0'), file], 300_000));
        await measure(coatPlainName, () => sw.sendConfirmed(mods, { timeoutMs: 300_000 }));
        await measure(ofctlBundleName, () => ovs.ofctl(['--bundle', 'add-flows', ovs.bridgeMgmt('br0'), file], 300_000));
        await measure(coatBundleName, async () => {
          const mode = await sw.bundle(mods);
          if (mode !== 'bundle') throw new Error('the switch refused the bundle');
        });
      }
      const ofctlPlain = best.get(ofctlPlainName)!;
      const coatPlain = best.get(coatPlainName)!;
      const ofctlBundle = best.get(ofctlBundleName)!;
      const coatBundle = best.get(coatBundleName)!;
      const rows: BenchRow[] = [
        { metric: `flow-mods confirmed by barrier (${n} flows)`, unit: 'flows/s', coat: coatPlain, peer: ofctlPlain, peerName: 'ovs-ofctl add-flows', goal: '>= 100000', note: `best of ${reps}; 2 shared cores` },
        { metric: `flow-mods in one bundle, committed (${n} flows)`, unit: 'flows/s', coat: coatBundle, peer: ofctlBundle, peerName: 'ovs-ofctl --bundle add-flows', goal: '>= 100000', note: `best of ${reps}; 2 shared cores` },
        {
          metric: 'controller CPU per flow-mod (plain / bundle)',
          unit: 'µs',
          coat: cpuPerFlow.get(coatPlainName)!,
          peer: cpuPerFlow.get(coatBundleName)!,
          peerName: '(coat, bundle)',
          note: 'coat process only; the rest of the time is ovs-vswitchd',
        },
        {
          metric: 'ovs-vswitchd CPU per flow-mod, coat plain / ovs-ofctl plain',
          unit: 'µs',
          coat: switchCpuPerFlow.get(coatPlainName)!,
          peer: switchCpuPerFlow.get(ofctlPlainName)!,
          peerName: 'ovs-ofctl add-flows',
          note: `the switch's work; 1e6 / this = its ceiling with a core of its own`,
        },
        {
          metric: 'ovs-vswitchd CPU per flow-mod, coat bundle / ovs-ofctl bundle',
          unit: 'µs',
          coat: switchCpuPerFlow.get(coatBundleName)!,
          peer: switchCpuPerFlow.get(ofctlBundleName)!,
          peerName: 'ovs-ofctl --bundle add-flows',
          note: 'lowest of the runs; /proc/PID/stat, 10 ms ticks',
        },
      ];
      return rows;
    } finally {
      await ctl.close();
      await ovs.destroy();
      await exec('ip', ['netns', 'del', ns], { allowFailure: true });
    }
  },
};
