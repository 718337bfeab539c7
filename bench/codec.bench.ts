/**
 * `npm run bench -- codec`: OpenFlow 1.3 codec throughput on one core, messages per second, for
 * a realistic mix: an Open vSwitch-style packet-in (in_port match, 98-byte frame), a flow-mod with
 * 5 OXM fields and 3 actions, and a multipart flow-stats reply with 100 entries.
 *
 * Peer, measured in the same run on the same bytes: `ovs-ofctl ofp-parse FILE` (Open vSwitch's C
 * decoder, which also prints each message) on a file of many copies, timed as a whole; its process
 * start-up, measured on a one-message file, is subtracted. For flow-mod encode the peer is
 * `ovs-ofctl parse-flows` on the same flow as text (parse, encode, print).
 *
 * Both sides are timed in CPU seconds (process.cpuUsage for us, the shell's `times` for the child),
 * not wall-clock: the machine is shared, and CPU time is what "messages per second on one core" means.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec } from '../src/exec.js';
import {
  applyActions, decodeMessage, encodeMessage, flowMod, match, output, setField, type FlowStats, type OfpMessage,
} from '../src/openflow/index.js';
import type { Bench, BenchRow } from './harness.js';

/** Calls of `fn` per CPU-second of this process (user + system), after a JIT warm-up. */
function opsPerCpuSecond(fn: () => void, minCpuMs: number): number {
  for (let i = 0; i < 20_000; i++) fn();
  const start = process.cpuUsage();
  let calls = 0;
  for (;;) {
    for (let i = 0; i < 1000; i++) fn();
    calls += 1000;
    const used = process.cpuUsage(start);
    const micros = used.user + used.system;
    if (micros >= minCpuMs * 1000) return calls / (micros / 1e6);
  }
}

const frame = Buffer.alloc(98, 0x5a);
const packetIn: OfpMessage = {
  type: 'packet_in', xid: 0, bufferId: 0xffffffff, totalLen: frame.length, reason: 1, tableId: 0, cookie: 0x1234n,
  match: match({ in_port: 3 }), data: frame,
};
const mod = flowMod({
  xid: 42,
  priority: 100,
  cookie: 0xc0a7n,
  match: match({ in_port: 1, eth_type: 0x0800, ip_proto: 6, ipv4_dst: '10.0.0.2', tcp_dst: 80 }),
  instructions: [applyActions(setField('eth_dst', '00:00:00:00:00:02'), setField('ipv4_dst', '10.0.0.9'), output(2))],
});
const MOD_TEXT = 'priority=100,cookie=0xc0a7,in_port=1,tcp,nw_dst=10.0.0.2,tp_dst=80,actions=set_field:00:00:00:00:00:02->eth_dst,set_field:10.0.0.9->ip_dst,output:2';
const entry = (i: number): FlowStats => ({
  tableId: 0, durationSec: 100 + i, durationNsec: 5000, priority: 100, idleTimeout: 0, hardTimeout: 0, flags: 0, cookie: BigInt(i),
  packetCount: 1000n * BigInt(i), byteCount: 64000n * BigInt(i),
  match: match({ in_port: 1 + (i % 8), eth_type: 0x0800, ipv4_dst: `10.0.${i >> 8}.${i & 0xff}` }),
  instructions: [applyActions(output(2 + (i % 4)))],
});
const flowStatsReply: OfpMessage = {
  type: 'multipart_reply', xid: 7, flags: 0, body: { type: 'flow', stats: Array.from({ length: 100 }, (_, i) => entry(i)) },
};

/** CPU seconds `ovs-ofctl ARGS` spends beyond its start-up, or null when it cannot run. */
async function timeOvs(args: (file: string) => string[], bigFile: string, smallFile: string): Promise<number | null> {
  const run = async (file: string) => {
    // bash's `times` prints the children's user and system CPU time on its second line.
    const quoted = ['ovs-ofctl', ...args(file)].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
    const r = await exec('bash', ['-c', `${quoted} >/dev/null 2>&1 || exit 3; times`], { timeoutMs: 120_000, allowFailure: true });
    const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/m.exec(r.stdout.trim().split('\n')[1] ?? '');
    if (r.code !== 0 || !m) throw new Error(`ovs-ofctl failed: ${r.stdout} ${r.stderr}`);
    return 60 * Number(m[1]) + Number(m[2]) + 60 * Number(m[3]) + Number(m[4]);
  };
  try {
    let startup = Infinity;
    for (let i = 0; i < 3; i++) startup = Math.min(startup, await run(smallFile));
    let whole = Infinity;
    for (let i = 0; i < 2; i++) whole = Math.min(whole, await run(bigFile));
    return Math.max(whole - startup, 1e-6);
  } catch {
    return null;
  }
}

export const bench: Bench = {
  summary: 'OpenFlow 1.3 codec: decode/encode messages per CPU-second (one core) vs ovs-ofctl ofp-parse',
  async run(ctx): Promise<BenchRow[]> {
    const quick = ctx.args.includes('--quick');
    const ms = quick ? 300 : 1500;
    const dir = mkdtempSync(join(tmpdir(), 'coat-bench-codec-'));
    const rows: BenchRow[] = [];
    try {
      const cases: { name: string; msg: OfpMessage; copies: number; goal?: string }[] = [
        { name: 'packet-in', msg: packetIn, copies: 100_000, goal: '>= 1000000' },
        { name: 'flow-mod 5 OXM + 3 actions', msg: mod, copies: 50_000 },
        { name: 'flow-stats reply, 100 entries', msg: flowStatsReply, copies: 1_000 },
      ];
      for (const c of cases) {
        const bytes = encodeMessage(c.msg);
        ctx.progress(`${c.name}: ${bytes.length} bytes`);
        const decodeRate = opsPerCpuSecond(() => decodeMessage(bytes), ms);
        const encodeRate = opsPerCpuSecond(() => encodeMessage(c.msg), ms);
        const big = join(dir, 'big.bin');
        const small = join(dir, 'small.bin');
        writeFileSync(big, Buffer.concat(Array.from({ length: c.copies }, () => bytes)));
        writeFileSync(small, bytes);
        ctx.progress(`${c.name}: ovs-ofctl ofp-parse on ${c.copies} copies`);
        const peerSec = await timeOvs((f) => ['ofp-parse', f], big, small);
        rows.push({
          metric: `${c.name} decode`, unit: 'msgs/cpu-s', coat: decodeRate, peer: peerSec === null ? null : c.copies / peerSec,
          peerName: 'ovs-ofctl ofp-parse (decode + print)', ...(c.goal ? { goal: c.goal } : {}), note: `${bytes.length} B/msg`,
        });
        let encodePeer: number | null = null;
        let encodePeerName: string | undefined;
        if (c.msg === mod) {
          const text = join(dir, 'flows.txt');
          const one = join(dir, 'flow.txt');
          const n = quick ? 5_000 : 20_000;
          writeFileSync(text, `${MOD_TEXT}\n`.repeat(n));
          writeFileSync(one, `${MOD_TEXT}\n`);
          const sec = await timeOvs((f) => ['-O', 'OpenFlow13', 'parse-flows', f], text, one);
          encodePeer = sec === null ? null : n / sec;
          encodePeerName = 'ovs-ofctl parse-flows (text -> flow_mod + print)';
        }
        rows.push({ metric: `${c.name} encode`, unit: 'msgs/cpu-s', coat: encodeRate, peer: encodePeer, ...(encodePeerName ? { peerName: encodePeerName } : {}) });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return rows;
  },
};
