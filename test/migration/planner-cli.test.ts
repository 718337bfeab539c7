/**
 * `coat plan`: offline what-if planning, its JSON contract, clear errors for what is missing, and
 * live planning against a real lab (agents over NATS, the workload server in the service's namespace).
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runCoat, type CliRun } from '../fixtures/cli.js';
import { labDown } from '../../lab/down.js';
import { coatArgv, labUp } from '../../lab/up.js';
import { defaultTopology } from '../../src/vxlan/topology.js';
import { parseSize } from '../../src/cli/commands/plan.js';
import { plan } from '../../src/migration/planner.js';
import { EXECUTOR_PRESETS } from '../../src/migration/pam.js';

function coat(argv: string[]): Promise<CliRun> {
  return runCoat(argv);
}

// No calibration file on this path: the defaults are used, whatever the machine has in ~/.config.
process.env.COAT_CALIBRATION = '/nonexistent/coat-test/calibration.json';
const offline = ['--target-downtime', '1000', '--target-total', '5000', '--state-bytes', '50MB', '--dirty-pages-per-s', '200', '--bandwidth-mbit', '100'];

t.test('--json carries the plan the planner computes', async (t) => {
  const r = await coat(['plan', '--objective', 'min-downtime', ...offline, '--executor', 'podman', '--json']);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, unknown>;
  const want = plan({ objective: 'min-downtime', stateBytes: 50e6, dirtyPagesPerS: 200, maxBandwidthMbit: 100, targetDowntimeMs: 1000, targetTotalMs: 5000 }, { constants: EXECUTOR_PRESETS.podman! });
  for (const k of ['strategy', 'iterations', 'bandwidthMbit', 'predicted', 'meetsTargets', 'reason'] as const) t.same(j[k], want[k], k);
  t.equal(j.calibrated, false);
  t.match(r.stderr, /no calibration for executor 'podman'/);
});

t.test('--max-bandwidth-mbit caps the link; min-resources picks a smaller L', async (t) => {
  const capped = JSON.parse((await coat(['plan', '--objective', 'min-downtime', ...offline, '--max-bandwidth-mbit', '40', '--json'])).stdout) as { bandwidthMbit: number };
  t.equal(capped.bandwidthMbit, 40);
  const res = await coat(['plan', '--objective', 'min-resources', '--target-downtime', '20000', '--target-total', '20000', '--state-bytes', '50MB', '--dirty-pages-per-s', '200', '--bandwidth-mbit', '1000', '--json']);
  const j = JSON.parse(res.stdout) as { strategy: string; bandwidthMbit: number; meetsTargets: boolean };
  t.equal(j.strategy, 'cold');
  t.ok(j.bandwidthMbit < 1000 && j.meetsTargets, JSON.stringify(j));
});

t.test('text output names the strategy, the prediction and the reasons', async (t) => {
  const r = await coat(['plan', '--objective', 'min-downtime', ...offline]);
  t.equal(r.code, 0);
  t.match(r.stdout, /strategy: +(precopy|cold)/);
  t.match(r.stdout, /predicted: +downtime \d+ ms, total \d+ ms/);
  t.match(r.stdout, /why:\n {2}- worst case/);
});

t.test('live flags without a running lab: a clear error naming what to use instead', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'coat-plan-nolab-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const r = await coat(['plan', '--service', 'svc', '--to', 'edge-b', '--state-dir', dir, '--target-downtime', '1000', '--target-total', '5000']);
  t.equal(r.code, 69);
  t.match(r.stderr, /PLAN_LIVE_UNAVAILABLE: live planning needs a running lab .*no lab is up.*--state-bytes, --dirty-pages-per-s, --bandwidth-mbit/);
  const half = await coat(['plan', '--service', 'svc', '--state-dir', dir, '--target-downtime', '1000', '--target-total', '5000']);
  t.equal(half.code, 64);
  t.match(half.stderr, /needs both --service NAME and --to HOST/);
});

t.test('live: the source agent profiles the running service in a real lab; L from the topology', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'coat-plan-live-'));
  t.teardown(async () => {
    await labDown(dir).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  const st = await labUp(defaultTopology(), { stateDir: dir, controller: false });
  const svc = st.endpoints.find((e) => e.name === 'service')!;
  const svcState = join(dir, 'svc-state');
  await mkdir(svcState, { recursive: true });
  // The demo workload with 4 MB of state dirtying 200 pages/s, in the service's namespace.
  const server = spawn('ip', ['netns', 'exec', svc.namespace, ...coatArgv(), 'workload', 'server', '--host', svc.ip, '--port', '7000', '--state-dir', svcState, '--state-bytes', '4M', '--dirty-rate', '200'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    server.kill('SIGKILL');
  });
  let out = '';
  server.stdout.on('data', (b: Buffer) => (out += b.toString()));
  for (let i = 0; i < 200 && !out.includes('listening'); i++) await new Promise((r) => setTimeout(r, 100));
  t.ok(out.includes('listening'), 'workload server listening');

  const r = await coat(['plan', '--service', 'service', '--to', 'edge-b', '--state-dir', dir, '--objective', 'min-downtime', '--target-downtime', '1000', '--target-total', '5000', '--json']);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { strategy: string; predicted: { downtimeMs: number }; inputs: { from: string; pid: number; stateBytes: number; dirtyPagesPerS: number; maxBandwidthMbit: number } };
  t.equal(j.inputs.from, 'edge-a');
  t.equal(j.inputs.pid, server.pid, 'the profiled process is the service in its namespace');
  t.ok(j.inputs.stateBytes >= 4e6 && j.inputs.stateBytes < 4.5e6, `M profiled: ${j.inputs.stateBytes} B (tcp-repair moves the 4 MB state dir, not the runtime's heap)`);
  // tcp-repair: R of the state dir's files, where the workload dirties 200 pages/s (loose: a 300 ms window on a loaded machine)
  t.ok(j.inputs.dirtyPagesPerS > 50 && j.inputs.dirtyPagesPerS < 400, `R profiled: ${j.inputs.dirtyPagesPerS} pages/s (the workload dirties 200)`);
  t.equal(j.inputs.maxBandwidthMbit, 100, 'L = the slower underlay link: edge-a 100 Mbit/s, edge-b 500');
  t.ok(['cold', 'precopy'].includes(j.strategy) && j.predicted.downtimeMs > 0);

  const bad = await coat(['plan', '--service', 'service', '--to', 'edge-z', '--state-dir', dir, '--target-downtime', '1000', '--target-total', '5000']);
  t.equal(bad.code, 64);
  t.match(bad.stderr, /--to: no host 'edge-z'/);
});

t.test('usage errors', async (t) => {
  for (const [args, re] of [
    [['plan', '--target-downtime', '1'], /missing --target-total/],
    [['plan', '--target-downtime', '1', '--target-total', '2'], /missing --state-bytes, --dirty-pages-per-s, --bandwidth-mbit/],
    [['plan', '--objective', 'fastest', ...offline], /--objective must be one of/],
    [['plan', ...offline.slice(0, 5), 'lots', ...offline.slice(6)], /--state-bytes: 'lots' is not a size/],
    [['plan', ...offline, '--bandwidth-mbit', '0'], /--bandwidth-mbit: '0' must be a positive number/],
    [['plan', ...offline, '--executor', 'docker'], /--executor must be one of/],
    [['plan', ...offline, '--frobnicate'], /Unknown option '--frobnicate'/],
  ] as const) {
    const r = await coat([...args]);
    t.equal(r.code, 64, args.join(' '));
    t.match(r.stderr, re);
  }
  t.equal((await coat(['plan', '--help'])).code, 0);
});

t.test('sizes: decimal and binary suffixes', async (t) => {
  t.equal(parseSize('10000000', 'x'), 1e7);
  t.equal(parseSize('10MB', 'x'), 1e7);
  t.equal(parseSize('1.5k', 'x'), 1500);
  t.equal(parseSize('4Mi', 'x'), 4 * 2 ** 20);
  t.equal(parseSize('2GiB', 'x'), 2 * 2 ** 30);
  t.throws(() => parseSize('-1', 'x'));
  t.throws(() => parseSize('10 XB', 'x'));
});
