/**
 * `coat demo`: the whole product in one command. Sets up what is missing (dist/ and the apt
 * packages, through scripts/setup.sh), brings up the default lab (COAT's testbed), starts the
 * workload server on edge-a and the verifying client on `client`, migrates the service edge-a ->
 * edge-b with the min-downtime objective, writes the report (JSON + self-contained HTML), prints its
 * summary, and tears the lab down, also on failure and on Ctrl-C.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labDown } from '../../../lab/down.js';
import { labUp } from '../../../lab/up.js';
import { runScenarioInLab } from '../../migration/live/lab-run.js';
import { reportSummaryLine } from '../../migration/report.js';
import { renderReportHtml } from '../../report/html.js';
import { OBJECTIVES, type Objective } from '../../migration/planner.js';
import { defaultTopology } from '../../vxlan/topology.js';
import { ExitCode, parseFlags, UsageError, writeJson, type CliIO, type Command } from '../command.js';

const HELP = `usage: coat demo [--objective min-downtime|min-resources] [--traffic stream|ping-pong]
                 [--migrations N] [--new-mac MAC] [--reports DIR] [--json]

Brings up COAT's testbed in namespaces (edge-a, edge-b, client: OVS per host, VXLAN, NATS, an
agent per host), runs the workload (service on edge-a, verifying client on client, a capture on the
client's interface), live-migrates the service edge-a -> edge-b (back and forth with --migrations),
writes the verification report (JSON and HTML) and tears the lab down, also on failure or Ctrl-C.
Missing tools or a missing build are set up first with scripts/setup.sh. Needs root.

  --objective O     planner objective (default min-downtime)
  --traffic T       stream (default) or ping-pong
  --migrations N    migrations back and forth (default 1)
  --new-mac MAC     COAT's mode: the service gets MAC at the destination (GARP + neighbour flush)
  --reports DIR     where ID.report.json, ID.report.html (one per migration) and the client's
                    capture client-TAG.pcap go (default ./coat-reports); \`coat verify --report
                    ID.report.json --pcap client-TAG.pcap\` re-checks one
  --json            the report JSON on stdout; progress on stderr

Exit: 0 when every migration is zero-loss, 1 when one is not, 69 when the demo could not run.
`;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', ...(fileURLToPath(import.meta.url).includes('/dist/') ? ['..'] : []));

/** Runs scripts/setup.sh when the tools the lab needs or the build are missing. */
function ensureSetup(progress: (l: string) => void): void {
  const tools = ['ovs-vswitchd', 'ovsdb-server', 'nats-server', 'tcpdump', 'tshark', 'ethtool'];
  const missing = tools.filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0);
  const noBuild = !existsSync(join(ROOT, 'dist'));
  if (missing.length === 0 && !noBuild) return;
  progress(`setup: ${missing.length ? `missing ${missing.join(', ')}` : 'no dist/'}; running scripts/setup.sh`);
  const r = spawnSync('bash', [join(ROOT, 'scripts', 'setup.sh')], { stdio: ['ignore', 2, 2], cwd: ROOT, timeout: 1_800_000 });
  if (r.status !== 0) throw new Error(`scripts/setup.sh failed (exit ${r.status ?? r.signal})`);
}

export const command: Command = {
  summary: 'set up, bring up the lab, live-migrate the service under traffic, report, tear down',
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseFlags(argv, {
      objective: { type: 'string' },
      traffic: { type: 'string' },
      migrations: { type: 'string' },
      'new-mac': { type: 'string' },
      reports: { type: 'string' },
    });
    if (values.help) {
      io.stdout.write(HELP);
      return ExitCode.ok;
    }
    const objective = (values.objective as string | undefined) ?? 'min-downtime';
    if (!(OBJECTIVES as readonly string[]).includes(objective)) throw new UsageError(`--objective ${objective}: expected ${OBJECTIVES.join(' or ')}`);
    const traffic = (values.traffic as string | undefined) ?? 'stream';
    if (traffic !== 'stream' && traffic !== 'ping-pong') throw new UsageError(`--traffic ${traffic}: expected stream or ping-pong`);
    const migrations = Number((values.migrations as string | undefined) ?? '1');
    if (!Number.isInteger(migrations) || migrations < 1 || migrations > 100) throw new UsageError(`--migrations ${String(values.migrations)}: expected 1..100`);
    const newMac = values['new-mac'] as string | undefined;
    if (newMac !== undefined && !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(newMac)) throw new UsageError(`--new-mac ${newMac}: expected a MAC like 02:c0:a7:00:00:99`);
    const reportsDir = resolve((values.reports as string | undefined) ?? 'coat-reports');
    const progress = (l: string) => io.stderr.write(`${l}\n`);
    if (process.getuid?.() !== 0) {
      io.stderr.write('coat demo: needs root (network namespaces, Open vSwitch)\n');
      return ExitCode.unavailable;
    }

    try {
      ensureSetup(progress);
    } catch (e) {
      io.stderr.write(`coat demo: ${(e as Error).message}\n`);
      return ExitCode.unavailable;
    }
    const stateDir = await mkdtemp(join(tmpdir(), 'coat-demo-'));
    let tornDown = false;
    const tearDown = async () => {
      if (tornDown) return;
      tornDown = true;
      progress('demo: tearing the lab down');
      await labDown(stateDir).catch((e: Error) => progress(`demo: lab down: ${e.message}`));
      await rm(stateDir, { recursive: true, force: true }).catch(() => undefined);
    };
    const onSignal = (sig: NodeJS.Signals) => {
      progress(`demo: ${sig}`);
      void tearDown().finally(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const lab = await labUp(defaultTopology(), { stateDir, controller: false, progress });
      const r = await runScenarioInLab(
        { stateDir, tag: lab.tag, traffic, migrations, objective: objective as Objective, ...(newMac ? { newMac } : {}) },
        { progress, onEvent: (e) => (e.type === 'step-end' ? progress(`  ${e.step}${e.round ? ` ${e.round}` : ''} ${e.ok ? 'ok' : `FAILED: ${e.error?.message}`}`) : undefined) },
      );
      await mkdir(reportsDir, { recursive: true });
      const pcap = join(reportsDir, `client-${lab.tag}.pcap`);
      await copyFile(r.capture.file, pcap).catch((e: Error) => progress(`demo: capture not kept: ${e.message}`));
      for (const rep of r.reports) {
        const base = join(reportsDir, `${rep.migrationId}.report`);
        await writeFile(`${base}.json`, JSON.stringify(rep, null, 2) + '\n');
        await writeFile(`${base}.html`, renderReportHtml(rep));
        if (values.json) progress(reportSummaryLine(rep)); // else it is the result on stdout
        progress(`report: ${base}.json, ${base}.html; check: coat verify --report ${base}.json --pcap ${pcap} --service-ip ${r.serviceIp}`);
      }
      if (values.json) writeJson(io.stdout, r.reports.length === 1 ? r.reports[0] : r.reports);
      else for (const rep of r.reports) io.stdout.write(`${reportSummaryLine(rep)}\n`);
      return r.reports.every((x) => x.verdict === 'zero-loss') ? ExitCode.ok : ExitCode.negative;
    } catch (e) {
      io.stderr.write(`coat demo: ${(e as Error).message}\n`);
      return ExitCode.unavailable;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await tearDown();
    }
  },
};
