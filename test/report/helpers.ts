/** A finished migration's journal (the real orchestrator over the fakes) and a synthetic capture. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Orchestrator } from '../../src/migration/orchestrator.js';
import { journalPath, readJournal, summarizeJournal, type JournalSummary } from '../../src/migration/journal.js';
import { encodeTcpFrame } from '../../src/packet/frame.js';
import { analyseTcp, type CaptureAnalysis } from '../../src/capture/tcp-analysis.js';
import type { PcapRecord } from '../../src/capture/pcap-format.js';
import { FakeOverlay, ManualClock, fakeAgents, fakeFlows, fakePlanner, testRef } from '../migration/fakes.js';

export async function finishedJournal(t: { teardown(fn: () => void): void }, id: string, failAt?: string): Promise<{ dir: string; summary: JournalSummary }> {
  const dir = mkdtempSync(join(tmpdir(), 'coat-report-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const o = new FakeOverlay(testRef(id));
  const clock = new ManualClock();
  // Each port call takes 5 ms of the manual clock, so steps have durations.
  const tick = o.call.bind(o);
  o.call = (async (name: string, signal: AbortSignal | undefined, body: () => unknown) => {
    clock.advance(5);
    return tick(name, signal, body);
  }) as typeof o.call;
  o.trafficOn.set('agents.dumpAndSend@edge-a->edge-b', 4);
  if (failAt) o.failOn.set(failAt, 'throw');
  const orch = new Orchestrator(
    { flows: fakeFlows(o), agents: fakeAgents(o), planner: fakePlanner(o, { strategy: 'precopy', iterations: 2, predicted: { downtimeMs: 40, totalMs: 400 } }), clock },
    { dataDir: dir, log: pino({ level: 'silent' }) },
  );
  await orch.migrate({ ref: o.ref, objective: 'min-downtime' });
  return { dir, summary: summarizeJournal(readJournal(journalPath(dir, id)).records) };
}

const C = { ip: '10.0.0.1', mac: '02:00:00:00:00:01', port: 40000 };
const S = { ip: '10.0.0.10', mac: '02:00:00:00:00:10', port: 7000 };

/** The server streams 1000 B every 10 ms from `fromMs` for `ms`, with a hole; optional retransmission (of a lost segment) and RST. */
export function syntheticCapture(originUs: number, opts: { holeFromMs?: number; holeMs?: number; retransmit?: boolean; reset?: boolean } = {}): { records: PcapRecord[]; analysis: CaptureAnalysis } {
  const records: PcapRecord[] = [];
  const at = (ms: number, fromServer: boolean, seq: number, ack: number, flags: Record<string, boolean>, len: number): void => {
    const [a, b] = fromServer ? [S, C] : [C, S];
    const data = encodeTcpFrame({ srcMac: a.mac, dstMac: b.mac, srcIp: a.ip, dstIp: b.ip, srcPort: a.port, dstPort: b.port, seq, ack, flags, payload: Buffer.alloc(len) });
    records.push({ tsUs: originUs + ms * 1000, origLength: data.length, data });
  };
  let seq = 1000;
  for (let ms = 0; ms < 600; ms += 10) {
    if (opts.holeFromMs !== undefined && ms >= opts.holeFromMs && ms < opts.holeFromMs + (opts.holeMs ?? 0)) continue;
    at(ms, true, seq, 1, { ack: true, psh: true }, 1000);
    // With `retransmit`, the last segment is never acknowledged: its retransmission is of a lost one.
    if (!(opts.retransmit && ms === 590)) at(ms + 1, false, 1, seq + 1000, { ack: true }, 0);
    seq += 1000;
  }
  if (opts.retransmit) at(601, true, seq - 1000, 1, { ack: true }, 1000);
  if (opts.reset) at(602, false, 1, seq, { rst: true, ack: true }, 0);
  // Without clientIp: the server's data, acknowledged by the client, gives RTT samples too.
  return { records, analysis: analyseTcp(records) };
}

export const SERVICE_IP = S.ip;
export const CLIENT_IP = C.ip;
