/**
 * `coat ovsdb` against a real ovsdb-server, through the CLI dispatcher.
 */
import t from 'tap';
import { runCoat, type CliRun } from '../fixtures/cli.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newTag } from '../../lab/tag.js';
import { startOvs } from '../fixtures/ovs.js';
import { formatDatum } from '../../src/cli/commands/ovsdb.js';

function coat(argv: string[]): Promise<CliRun> {
  return runCoat(argv);
}

t.test('coat ovsdb list-dbs | schema | dump | show', async (t) => {
  const ovs = await startOvs(t, { vswitchd: false });
  await ovs.vsctl([
    '--no-wait',
    'add-br', 'br-cli', '--', 'set', 'Bridge', 'br-cli', 'datapath_type=netdev', 'fail_mode=secure', 'other_config:hwaddr=02:00:00:00:00:01',
    '--', 'add-port', 'br-cli', 'vx0', '--', 'set', 'Interface', 'vx0', 'type=vxlan', 'options:remote_ip=10.1.1.2', 'options:key=7',
    '--', 'set-controller', 'br-cli', 'tcp:127.0.0.1:6653',
  ]);
  const db = ['--db', ovs.dbRemote];

  let r = await coat(['ovsdb', ...db, 'list-dbs']);
  t.equal(r.code, 0);
  t.equal(r.stdout, 'Open_vSwitch\n_Server\n');
  r = await coat(['ovsdb', ...db, 'list-dbs', '--json']);
  t.same(JSON.parse(r.stdout), ['Open_vSwitch', '_Server']);

  r = await coat(['ovsdb', ...db, 'schema']);
  t.equal(r.code, 0);
  t.match(r.stdout, /^Open_vSwitch \d+\.\d+\.\d+\n/);
  t.match(r.stdout, /\n {2}ports\s+uuid->Port \[0\.\.\*\]\n/);
  t.match(r.stdout, /\n {2}fail_mode\s+string \[0\.\.1\]\n/);
  r = await coat(['ovsdb', ...db, 'schema', '--json']);
  t.equal(JSON.parse(r.stdout).name, 'Open_vSwitch');

  r = await coat(['ovsdb', ...db, 'dump', 'Bridge', '--columns', 'name,fail_mode,other_config']);
  t.equal(r.code, 0);
  t.match(r.stdout, /name\s+: br-cli\n/);
  t.match(r.stdout, /fail_mode\s+: secure\n/);
  t.match(r.stdout, /other_config\s+: \{hwaddr="02:00:00:00:00:01"\}\n/);
  r = await coat(['ovsdb', ...db, 'dump', 'Interface', '--json']);
  const ifaces = JSON.parse(r.stdout) as { name: string; options: Record<string, string>; _uuid: string }[];
  t.same(ifaces.find((i) => i.name === 'vx0')?.options, { key: '7', remote_ip: '10.1.1.2' });
  t.same(
    ifaces.map((i) => i._uuid).sort(),
    (await ovs.vsctl(['--bare', '--columns=_uuid', 'list', 'Interface'])).trim().split(/\s+/).sort(),
    'the same rows ovs-vsctl sees',
  );

  r = await coat(['ovsdb', ...db, 'show']);
  t.equal(r.code, 0);
  t.match(r.stdout, /Bridge br-cli\n {8}Controller "tcp:127.0.0.1:6653"\n {8}fail_mode: secure\n {8}datapath_type: netdev\n/);
  t.match(r.stdout, /Port vx0\n {12}Interface vx0\n {16}type: vxlan\n {16}options: \{key="7", remote_ip="10.1.1.2"\}\n/);
  r = await coat(['ovsdb', ...db, 'show', '--json']);
  const shown = JSON.parse(r.stdout) as { bridges: { name: string; fail_mode: string; controllers: { target: string }[]; ports: { name: string }[] }[] };
  t.equal(shown.bridges[0]?.name, 'br-cli');
  t.same(shown.bridges[0]?.controllers.map((c) => c.target), ['tcp:127.0.0.1:6653']);
  t.same(shown.bridges[0]?.ports.map((p) => p.name).sort(), ['br-cli', 'vx0']);
});

t.test('coat ovsdb: usage errors, unknown table, unreachable server', async (t) => {
  t.equal((await coat(['ovsdb', '--help'])).code, 0);
  t.match((await coat(['ovsdb', '--help'])).stdout, /list-dbs/);
  t.equal((await coat(['ovsdb'])).code, 64);
  t.equal((await coat(['ovsdb', 'frobnicate'])).code, 64);
  t.equal((await coat(['ovsdb', 'dump'])).code, 64);
  t.equal((await coat(['ovsdb', '--bogus', 'list-dbs'])).code, 64);
  const absent = await coat(['ovsdb', '--db', `unix:${join(tmpdir(), `coat-${newTag()}-absent.sock`)}`, 'list-dbs']);
  t.equal(absent.code, 69);
  t.match(absent.stderr, /OVSDB_CONNECT/);

  const ovs = await startOvs(t, { vswitchd: false });
  const r = await coat(['ovsdb', '--db', ovs.dbRemote, 'dump', 'NoSuchTable']);
  t.equal(r.code, 69);
  t.match(r.stderr, /OVSDB_SCHEMA/);
});

t.test('formatDatum follows ovs-vsctl text forms', async (t) => {
  t.equal(formatDatum(null), '[]');
  t.equal(formatDatum('secure'), 'secure');
  t.equal(formatDatum('00:11'), '"00:11"');
  t.equal(formatDatum(7), '7');
  t.equal(formatDatum(['a', 'b c']), '[a, "b c"]');
  t.equal(formatDatum(new Map([['k', 'v 1']])), '{k="v 1"}');
});
