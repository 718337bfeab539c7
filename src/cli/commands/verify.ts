/**
 * `coat verify`: checks a verification report, or builds one from a migration's journal, a
 * capture file and the workload client's statistics.
 *
 *   coat verify --report FILE [--pcap FILE] [--html OUT] [--json]
 *   coat verify --journal ID [--data-dir DIR] [--pcap FILE] [--client STATS.json]
 *               [--client-ip IP] [--service-ip IP] [--out REPORT.json] [--html OUT] [--json]
 *
 * Exit 0 when the verdict is zero-loss and the report is consistent; 1 when it is not (loss,
 * failed, a verdict the numbers do not support, or a capture that disagrees); 2 for bad input.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { ExitCode, parseFlags, writeJson, type CliIO, type Command } from '../command.js';
import { CoatError } from '../../errors.js';
import { journalPath, readJournal, summarizeJournal } from '../../migration/journal.js';
import { buildReport, captureCounts, recheckReport, recordFromJournal, type VerificationReport, type WorkloadClientStats } from '../../migration/report.js';
import { parsePcap } from '../../capture/pcap-format.js';
import { analyseTcp, type CaptureAnalysis } from '../../capture/tcp-analysis.js';
import { renderReportHtml } from '../../report/html.js';

const HELP = `usage: coat verify --report FILE [--pcap FILE] [--html OUT] [--json]
       coat verify --journal ID [--data-dir DIR] [--pcap FILE] [--client STATS.json]
                   [--client-ip IP] [--service-ip IP] [--out REPORT.json] [--html OUT] [--json]

Re-checks a migration's verification report (the verdict rule applied to its own numbers, and
whether they add up), or builds the report from the journal of migration ID, a capture of the
client's interface (pcap) and the workload client's statistics (JSON).

  --report FILE     a report written by coat (JSON)
  --journal ID      build from the journal DATA_DIR/migrations/ID.jsonl
  --data-dir DIR    coat's data directory (default $COAT_DATA_DIR or /var/lib/coat)
  --pcap FILE       the client-side capture: analysed, and with --report compared with it
  --client FILE     the workload client's statistics (coat workload client --stats-file)
  --client-ip IP    the client's address in the capture (RTT samples, throughput direction)
  --service-ip IP   count only connections to/from this address
  --out FILE        write the built report here (JSON)
  --html OUT        write the self-contained HTML page with the timeline plot
  --json            print the report and the check as JSON

Exit: 0 zero-loss and consistent, 1 loss/failed/inconsistent, 2 bad input, 64 usage.
`;

interface VerifyOutput {
  report: VerificationReport;
  check: { verdict: string; reasons: string[]; verdictMatches: boolean; problems: string[] };
}

function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CoatError('VERIFY_INPUT', `cannot read ${what} ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CoatError('VERIFY_INPUT', `${what} ${path} is not JSON: ${(err as Error).message}`);
  }
}

function analysePcapFile(path: string, clientIp?: string): CaptureAnalysis {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new CoatError('VERIFY_INPUT', `cannot read capture ${path}: ${(err as Error).message}`);
  }
  return analyseTcp(parsePcap(bytes).records, clientIp ? { clientIp } : {});
}

function summary(out: VerifyOutput): string {
  const r = out.report;
  const lines = [
    `migration ${r.migrationId} (${r.executor}, ${r.strategy}): ${r.verdict}${r.state !== 'done' ? ` [${r.state}${r.failedStep ? ` at ${r.failedStep}` : ''}]` : ''}`,
    `  downtime ${r.downtimeMs} ms (predicted <= ${r.predicted.downtimeMs}), total ${r.totalMs} ms (predicted <= ${r.predicted.totalMs})`,
    `  client: sent ${r.client.bytesSent} B, received ${r.client.bytesReceived} B, verified ${r.client.bytesVerified} B, ` +
      `retransmissions ${r.client.retransmissions} (+${r.client.spuriousRetransmissions ?? 0} spurious), resets ${r.client.resets}, largest gap ${r.client.maxGapMs} ms`,
    `  hold: held ${r.hold.held}, replayed ${r.hold.replayed}, dropped ${r.hold.dropped}`,
    `  steps: ${r.steps.map((s) => `${s.name} ${Math.round((s.endMs - s.startMs) * 1000) / 1000} ms`).join(', ')}`,
  ];
  for (const reason of out.check.reasons) lines.push(`  why: ${reason}`);
  if (!out.check.verdictMatches) lines.push(`  INCONSISTENT: the report says ${r.verdict} but its numbers give ${out.check.verdict}`);
  for (const p of out.check.problems) lines.push(`  INCONSISTENT: ${p}`);
  return lines.join('\n') + '\n';
}

export const command: Command = {
  summary: 'check a migration verification report, or build one from journal + capture + client stats',
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseFlags(argv, {
      report: { type: 'string' },
      journal: { type: 'string' },
      'data-dir': { type: 'string' },
      pcap: { type: 'string' },
      client: { type: 'string' },
      'client-ip': { type: 'string' },
      'service-ip': { type: 'string' },
      out: { type: 'string' },
      html: { type: 'string' },
    });
    if (values.help) {
      io.stdout.write(HELP);
      return ExitCode.ok;
    }
    const str = (k: string): string | undefined => values[k] as string | undefined;
    if ((str('report') === undefined) === (str('journal') === undefined)) {
      io.stderr.write('coat verify: give exactly one of --report FILE or --journal ID (coat verify --help)\n');
      return ExitCode.usage;
    }
    let out: VerifyOutput;
    try {
      let report: VerificationReport;
      const problems: string[] = [];
      if (str('report') !== undefined) {
        report = recheckReport(readJsonFile(str('report')!, 'report')).report;
        const pcap = str('pcap');
        if (pcap) {
          // The same counts the report was built with, over the migration's window.
          const a = analysePcapFile(pcap, str('client-ip'));
          const serviceIp = str('service-ip');
          const cc = captureCounts(a, { startedAtMs: report.startedAtMs, endedAtMs: report.startedAtMs + report.totalMs, ...(serviceIp ? { serviceIp } : {}) });
          if (cc.retransmissions !== report.client.retransmissions) problems.push(`capture ${pcap} has ${cc.retransmissions} retransmission(s) of lost segments during the migration, the report says ${report.client.retransmissions}`);
          if (cc.resets !== report.client.resets) problems.push(`capture ${pcap} has ${cc.resets} reset(s), the report says ${report.client.resets}`);
        }
      } else {
        const dataDir = str('data-dir') ?? process.env.COAT_DATA_DIR ?? '/var/lib/coat';
        const journal = summarizeJournal(readJournal(journalPath(dataDir, str('journal')!)).records);
        const pcap = str('pcap');
        const capture = pcap ? { ...analysePcapFile(pcap, str('client-ip')), file: pcap } : undefined;
        const client = str('client') ? (readJsonFile(str('client')!, 'client statistics') as WorkloadClientStats) : undefined;
        report = buildReport({
          migration: recordFromJournal(journal),
          ...(capture ? { capture } : {}),
          ...(client ? { client } : {}),
          ...(str('service-ip') ? { serviceIp: str('service-ip')! } : {}),
        });
        if (str('out')) writeFileSync(str('out')!, JSON.stringify(report, null, 2) + '\n');
      }
      const { result } = recheckReport(report);
      out = { report, check: { ...result, problems: [...result.problems, ...problems] } };
    } catch (err) {
      if (err instanceof CoatError && (err.code === 'VERIFY_INPUT' || err.code.startsWith('MIGRATION_') || err.code.startsWith('CAPTURE_'))) {
        io.stderr.write(`coat verify: ${err.code}: ${err.message}\n`);
        return ExitCode.badInput;
      }
      throw err;
    }
    if (str('html')) writeFileSync(str('html')!, renderReportHtml(out.report));
    if (values.json) writeJson(io.stdout, out);
    else io.stdout.write(summary(out));
    const good = out.report.verdict === 'zero-loss' && out.check.verdictMatches && out.check.problems.length === 0;
    return good ? ExitCode.ok : ExitCode.negative;
  },
};
