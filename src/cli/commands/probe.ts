/**
 * `coat probe --to IP`: ICMP echo at a fixed interval over a raw socket; prints sent, answered,
 * lost, late, RTT percentiles and the longest silence. Run it under `ip netns exec NS` to probe
 * from a lab endpoint, e.g. across a migration beside the TCP workload.
 */
import { probe } from '../../probe/icmp-prober.js';
import { ExitCode, parseFlags, UsageError, writeJson, type CliIO, type Command } from '../command.js';

const HELP = `usage: coat probe --to IP [--count N] [--interval-ms MS] [--timeout-ms MS] [--json]

Sends N ICMP echo requests (default 100) every MS ms (default 10) from this network namespace and
reports answered, lost, late (after --timeout-ms, default 1000), duplicated, RTT min/median/p99/max
and the longest gap between two answers. Needs CAP_NET_RAW (root).

Exit: 0 when every request was answered in time, 1 when some were lost, 2 on bad input.
`;

export const command: Command = {
  summary: 'ICMP echo probe over a raw socket: lost, late, RTT, longest gap',
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseFlags(argv, { to: { type: 'string' }, count: { type: 'string' }, 'interval-ms': { type: 'string' }, 'timeout-ms': { type: 'string' } });
    if (values.help) {
      io.stdout.write(HELP);
      return ExitCode.ok;
    }
    if (typeof values.to !== 'string') throw new UsageError('coat probe: --to IP is required');
    const num = (v: unknown, dflt: number) => (typeof v === 'string' ? Number(v) : dflt);
    const ac = new AbortController();
    const stop = () => ac.abort();
    process.once('SIGINT', stop);
    try {
      const s = await probe({ target: values.to, count: num(values.count, 100), intervalMs: num(values['interval-ms'], 10), timeoutMs: num(values['timeout-ms'], 1000), signal: ac.signal });
      if (values.json) writeJson(io.stdout, s);
      else {
        const rtt = s.rttMs ? `rtt min/median/p99/max ${[s.rttMs.min, s.rttMs.median, s.rttMs.p99, s.rttMs.max].map((x) => x.toFixed(3)).join('/')} ms` : 'no answer';
        io.stdout.write(`${s.target}: ${s.sent} sent, ${s.received} answered, ${s.lost.length} lost${s.lost.length ? ` (seq ${s.lost.slice(0, 20).join(',')}${s.lost.length > 20 ? ',...' : ''})` : ''}, ${s.late.length} late, ${s.duplicates} duplicates; ${rtt}; longest gap ${s.longestGapMs.toFixed(1)} ms\n`);
      }
      return s.lost.length === 0 ? ExitCode.ok : ExitCode.negative;
    } finally {
      process.off('SIGINT', stop);
    }
  },
};
