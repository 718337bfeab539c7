import t from 'tap';
import { startOvs } from './fixtures/ovs.js';

t.test('an OVS instance starts in its own run directory and stops by pid', async (t) => {
  const { newTag } = await import('../lab/tag.js');
  const { exec } = await import('../src/exec.js');
  const ns = `${newTag()}-ovs`;
  await exec('ip', ['netns', 'add', ns]);
  t.teardown(() => exec('ip', ['netns', 'del', ns], { allowFailure: true }));
  const ovs = await startOvs(t, { netns: ns });
  const dbPid = await ovs.pid('ovsdb-server');
  const vsPid = await ovs.pid('ovs-vswitchd');
  t.ok(dbPid, 'ovsdb-server running');
  t.ok(vsPid, 'ovs-vswitchd running');
  await ovs.vsctl(['add-br', 'br0', '--', 'set', 'bridge', 'br0', 'datapath_type=netdev']);
  t.match(await ovs.vsctl(['list-br']), /^br0$/m);
  await ovs.stop();
  t.equal(await ovs.pid('ovs-vswitchd'), undefined);
  t.notOk((await import('../lab/process.js')).isAlive(vsPid), 'the vswitchd pid is gone (exited; a zombie until reaped)');
});

t.test('destroy removes the tap devices the netdev datapath left in the namespace', async (t) => {
  const { newTag } = await import('../lab/tag.js');
  const { exec } = await import('../src/exec.js');
  const ns = `${newTag()}-ovs`;
  await exec('ip', ['netns', 'add', ns]);
  t.teardown(() => exec('ip', ['netns', 'del', ns], { allowFailure: true }));
  const ovs = await startOvs(t, { netns: ns });
  await ovs.vsctl(['add-br', 'brx', '--', 'set', 'bridge', 'brx', 'datapath_type=netdev']);
  await ovs.vsctl(['add-port', 'brx', 'ix1', '--', 'set', 'interface', 'ix1', 'type=internal']);
  const links = async () => (await exec('ip', ['-br', 'link'], { netns: ns })).stdout;
  await (await import('../lab/ovs-daemons.js')).OvsInstance.waitFor('taps', async () => /ix1/.test(await links()));
  t.match(await links(), /ovs-netdev/);
  await ovs.destroy();
  const after = await links();
  t.notMatch(after, /ovs-netdev|brx|ix1/, 'no tap left behind');
});
