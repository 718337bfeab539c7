import t from 'tap';
import { startOvs } from './fixtures/ovs.js';

t.test('an OVS instance starts in its own run directory and stops by pid', async (t) => {
  const ovs = await startOvs(t);
  const dbPid = await ovs.pid('ovsdb-server');
  const vsPid = await ovs.pid('ovs-vswitchd');
  t.ok(dbPid, 'ovsdb-server running');
  t.ok(vsPid, 'ovs-vswitchd running');
  await ovs.vsctl(['add-br', 'br0', '--', 'set', 'bridge', 'br0', 'datapath_type=netdev']);
  t.match(await ovs.vsctl(['list-br']), /^br0$/m);
  await ovs.stop();
  t.equal(await ovs.pid('ovs-vswitchd'), undefined);
  t.throws(() => process.kill(vsPid!, 0), 'the vswitchd pid is gone');
});
