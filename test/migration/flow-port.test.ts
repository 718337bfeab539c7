/**
 * LiveFlowPort's switch across bridges, against fake switches speaking coat's codec: every
 * bridge's bundle is prepared (opened, filled, checked) before any bridge commits, and a bridge
 * that refuses its bundle before the commit leaves every bridge unchanged (the others discard).
 */
import t, { type Test } from 'tap';

process.env.COAT_LOG_LEVEL ??= 'silent';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Controller } from '../../src/controller/index.js';
import type { OfpMessage, Port } from '../../src/openflow/index.js';
import { LiveFlowPort } from '../../src/migration/live/flow-port.js';
import type { MigrationRef } from '../../src/migration/ports.js';
import { defaultTopology } from '../../src/vxlan/topology.js';
import { hostLayout } from '../../src/vxlan/layout.js';
import { FakeSwitch } from '../controller/fake-switch.js';

const PREFIX = 'fp';
const SERVICE_PORT = 7;

function port(portNo: number, name: string): Port {
  return { portNo, hwAddr: '02:00:00:00:00:01', name, config: 0, state: 0, curr: 0, advertised: 0, supported: 0, peer: 0, currSpeed: 0, maxSpeed: 0 };
}

async function setup(t: Test) {
  const dir = await mkdtemp(join(tmpdir(), 'coat-flow-port-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ctl = new Controller({ echoIntervalMs: 5000, deadAfterMs: 15000, requestTimeoutMs: 2000 });
  t.teardown(() => ctl.close());
  const path = join(dir, 'ctl.sock');
  await ctl.listen(`punix:${path}`);
  const topology = defaultTopology();
  const fakes: Record<string, FakeSwitch> = {};
  t.teardown(() => Object.values(fakes).forEach((f) => f.close()));
  for (const h of topology.hosts) {
    const dpid = hostLayout(topology, PREFIX, h.name).integrationDpid;
    const up = ctl.waitForSwitch(dpid, 5000);
    fakes[h.name] = await FakeSwitch.connect(path, { dpid, ports: [port(SERVICE_PORT, `svc-${h.name}`)] });
    await up;
  }
  const flows = new LiveFlowPort({
    controller: ctl,
    topology,
    prefix: PREFIX,
    hostPorts: (host) => ({
      host,
      endpointPorts: host === 'client' ? { client: 1 } : ({} as Record<string, number>),
      tunnelPorts: Object.fromEntries(topology.hosts.filter((p) => p.name !== host).map((p, i) => [p.name, 1000 + i])),
      uplinkPort: 1,
    }),
    servicePortName: (host) => `svc-${host}`,
    timeoutMs: 2000,
  });
  const svc = topology.endpoints.find((e) => e.name === 'service')!;
  const m: MigrationRef = {
    migrationId: 'm-flow-port',
    service: { name: 'service', netns: 'unused', ip: svc.ip, mac: svc.mac },
    source: 'edge-a',
    destination: 'edge-b',
    executor: 'tcp-repair',
  };
  // Every test starts where a migration's prepare step leaves the flows: the destination staged.
  const signal = new AbortController().signal;
  await flows.stageDestination(m, signal);
  return { flows, fakes, m, signal };
}

const control = (f: FakeSwitch, kind: string) =>
  f.received.filter((x: OfpMessage) => x.type === 'bundle_control' && x.controlType === kind).length;
const adds = (f: FakeSwitch) => f.received.filter((x: OfpMessage) => x.type === 'bundle_add').length;
/** A count per host's fake switch, e.g. perBridge(fakes, adds). */
const perBridge = (fakes: Record<string, FakeSwitch>, count: (f: FakeSwitch, host: string) => number): Record<string, number> =>
  Object.fromEntries(Object.entries(fakes).map(([h, f]) => [h, count(f, h)]));
const commits = (f: FakeSwitch) => control(f, 'commit_request');

t.test('holdAndSwitch commits on no bridge before every bridge has its bundle prepared', async (t) => {
  const { flows, fakes, m, signal } = await setup(t);
  const commitsBefore = perBridge(fakes, commits);
  const addsBefore = perBridge(fakes, adds);
  // edge-b's switch sits on the barrier that checks its adds: its bundle is not prepared yet.
  fakes['edge-b']!.holdBarriers = true;
  const switched = flows.holdAndSwitch(m, signal);
  await new Promise((r) => setTimeout(r, 150));
  const changed = Object.keys(fakes).filter((h) => adds(fakes[h]!) > addsBefore[h]!);
  t.ok(changed.length >= 2 && changed.includes('edge-b'), `bundles filled on ${changed.join(', ')}`);
  t.same(perBridge(fakes, commits), commitsBefore, 'no commit while one bridge is still preparing');
  fakes['edge-b']!.releaseBarriers();
  const r = await switched;
  t.equal(r.bridges, changed.length);
  t.ok(r.switchMs >= 0 && r.switchMs < 1000, `switch ${r.switchMs.toFixed(3)} ms`);
  for (const h of changed) t.equal(commits(fakes[h]!), commitsBefore[h]! + 1, `${h}: one commit`);
});

t.test('a bridge refusing its bundle before the commit: every bridge unchanged, and a retry sends the same change', async (t) => {
  const { flows, fakes, m, signal } = await setup(t);
  const commitsBefore = perBridge(fakes, commits);
  const addsBefore = perBridge(fakes, adds);
  fakes.client!.refuseBundleAdds = true;
  const err = await flows.holdAndSwitch(m, signal).catch((e: unknown) => e);
  t.match(err, { code: 'LIVE_FLOWS', message: /client: .*\(no bridge changed\)/ });
  t.same(perBridge(fakes, commits), commitsBefore, 'no bridge committed');
  const firstAdds = perBridge(fakes, (f, h) => adds(f) - addsBefore[h]!);
  for (const h of ['edge-a', 'edge-b']) {
    if (firstAdds[h]! > 0) t.equal(control(fakes[h]!, 'discard_request'), 1, `${h}: its prepared bundle discarded`);
  }
  // The port still holds the staged state for every bridge: the retry diffs against it.
  fakes.client!.refuseBundleAdds = false;
  const addsMid = perBridge(fakes, adds);
  await flows.holdAndSwitch(m, signal);
  const secondAdds = perBridge(fakes, (f, h) => adds(f) - addsMid[h]!);
  t.same(secondAdds, firstAdds, 'the retry sends the same flow-mods to every bridge');
});
