/**
 * The client-side packet capture of a lab migration: tcpdump on the client's interface (in its
 * namespace) from before the first migration to after the last, then tshark's TCP analysis for the
 * report: retransmissions (tshark's `tcp.analysis.retransmission` and fast retransmissions), resets,
 * the service's bytes on the wire, and a throughput timeline.
 *
 * tshark rather than a hand-written analysis: its TCP sequence tracking is the reference that
 * people check captures with, and the report's "0 retransmissions" should mean what it means there.
 */
import { exec } from '../../exec.js';
import { startIn, waitFor, type Child } from './processes.js';

export interface CaptureSummary {
  packets: number;
  /** Every segment tshark calls a retransmission or fast retransmission. */
  retransmissions: number;
  /**
   * Of those, the ones the receiver already had (tshark's spurious retransmission, or a D-SACK
   * right after): a tail-loss probe fired because an ACK was late, nothing was lost.
   */
  spuriousRetransmissions: number;
  /** Epoch ms of each retransmission, and whether it was spurious (for per-migration windows). */
  retransmissionTimes: [number, boolean][];
  resets: number;
  /** Stream bytes the service put on the wire toward the client (highest relative seq + len). */
  serviceBytesOnWire: number;
  /** Largest gap between two data segments from the service, ms (epoch ms of its start). */
  maxGapMs: number;
  maxGapAtMs: number | null;
  /** Service-to-client payload per 10 ms bin: [epoch ms of the bin, bytes]. */
  throughput: [number, number][];
}

export class ClientCapture {
  private constructor(
    private readonly child: Child,
    readonly file: string,
  ) {}

  /** Starts tcpdump and resolves once it prints "listening on" (no packet is missed after). */
  static async start(netns: string, iface: string, file: string, filter: string): Promise<ClientCapture> {
    const child = startIn(netns, ['tcpdump', '-i', iface, '-U', '-s', '128', '-w', file, filter], { name: 'tcpdump' });
    await waitFor('tcpdump listening', () => child.stderr().includes('listening on') || (!child.running && Promise.reject(new Error(`tcpdump exited: ${child.stderr()}`))), 10_000);
    return new ClientCapture(child, file);
  }

  async stop(): Promise<void> {
    // SIGINT: tcpdump flushes and closes the file.
    this.child.kill('SIGINT');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.child.exited;
    clearTimeout(t);
  }

  /** tshark's view of the capture, for the service's traffic on `servicePort`. */
  async analyse(serviceIp: string, servicePort: number): Promise<CaptureSummary> {
    const count = async (filter: string) => {
      const r = await exec('tshark', ['-n', '-r', this.file, '-Y', filter, '-T', 'fields', '-e', 'frame.number'], { timeoutMs: 60_000 });
      return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
    };
    const packets = await count('tcp');
    const rx = await exec('tshark', ['-n', '-r', this.file, '-Y', 'tcp.analysis.retransmission || tcp.analysis.fast_retransmission', '-T', 'fields', '-E', 'separator=,', '-e', 'frame.time_epoch', '-e', 'tcp.analysis.spurious_retransmission', '-e', 'tcp.seq', '-e', 'tcp.len', '-e', 'tcp.stream'], { timeoutMs: 60_000 });
    // D-SACKs (RFC 2883: a SACK block below the cumulative ACK) name data the receiver had twice.
    const ds = await exec('tshark', ['-n', '-r', this.file, '-Y', 'tcp.options.sack_le < tcp.ack', '-T', 'fields', '-E', 'separator=,', '-e', 'tcp.options.sack_le', '-e', 'tcp.stream'], { timeoutMs: 60_000 });
    const dsack = new Set(ds.stdout.split('\n').filter(Boolean).map((l) => `${l.split(',')[1]}/${l.split(',')[0]}`));
    const retransmissionTimes: [number, boolean][] = rx.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        const [ts, spurious, seq, , stream] = l.split(',');
        return [Number(ts) * 1000, spurious === '1' || dsack.has(`${stream}/${seq}`)] as [number, boolean];
      });
    const retransmissions = retransmissionTimes.length;
    const spuriousRetransmissions = retransmissionTimes.filter(([, s]) => s).length;
    const resets = await count('tcp.flags.reset == 1');
    const r = await exec('tshark', ['-n', '-r', this.file, '-Y', `ip.src == ${serviceIp} && tcp.srcport == ${servicePort} && tcp.len > 0`, '-T', 'fields', '-E', 'separator=,', '-e', 'frame.time_epoch', '-e', 'tcp.seq', '-e', 'tcp.len'], { timeoutMs: 60_000 });
    let serviceBytesOnWire = 0;
    let maxGapMs = 0;
    let maxGapAtMs: number | null = null;
    let last: number | undefined;
    const bins = new Map<number, number>();
    for (const line of r.stdout.split('\n')) {
      const [ts, seq, len] = line.split(',');
      if (!ts || !seq || !len) continue;
      const t = Number(ts) * 1000;
      const end = Number(seq) + Number(len) - 1; // relative seq starts at 1 (the SYN)
      if (end > serviceBytesOnWire) serviceBytesOnWire = end;
      if (last !== undefined && t - last > maxGapMs) {
        maxGapMs = t - last;
        maxGapAtMs = last;
      }
      last = t;
      const bin = Math.floor(t / 10) * 10;
      bins.set(bin, (bins.get(bin) ?? 0) + Number(len));
    }
    return { packets, retransmissions, spuriousRetransmissions, retransmissionTimes, resets, serviceBytesOnWire, maxGapMs, maxGapAtMs, throughput: [...bins].sort((a, b) => a[0] - b[0]) };
  }
}
