/** `coat plan`: offline what-if planning, its JSON contract, and clear errors for what is missing. */
import { PassThrough } from 'node:stream';
import t from 'tap';
import { main } from '../../src/cli/main.js';
import { parseSize } from '../../src/cli/commands/plan.js';
import { plan } from '../../src/migration/planner.js';
import { EXECUTOR_PRESETS } from '../../src/migration/pam.js';

async function coat(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const o: Buffer[] = [];
  const e: Buffer[] = [];
  out.on('data', (b: Buffer) => o.push(b));
  err.on('data', (b: Buffer) => e.push(b));
  const code = await main(argv, { stdout: out, stderr: err });
  return { code, stdout: Buffer.concat(o).toString(), stderr: Buffer.concat(e).toString() };
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

t.test('live flags without the agents\' profiling: a clear error naming what is missing', async (t) => {
  const r = await coat(['plan', '--service', 'svc', '--to', 'edge-b', '--target-downtime', '1000', '--target-total', '5000']);
  t.equal(r.code, 69);
  t.match(r.stderr, /PLAN_LIVE_UNAVAILABLE: .*needs the agents' profiling.*--state-bytes, --dirty-pages-per-s, --bandwidth-mbit/);
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
