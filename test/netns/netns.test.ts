import t from 'tap';
import { newTag } from '../../lab/tag.js';
import { exec } from '../../src/exec.js';
import { createNetns, deleteNetns, disableTxOffload, listNetns, netnsExists, openNetns, shapeEgress, type NetnsClient } from '../../src/netns/index.js';

t.test('two namespaces joined by a veth made and configured over rtnetlink reach each other', async (t) => {
  const tag = newTag();
  const a = `${tag}-a`;
  const b = `${tag}-b`;
  const clients: NetnsClient[] = [];
  t.teardown(async () => {
    for (const c of clients) await c.close();
    await deleteNetns(a);
    await deleteNetns(b);
  });
  await createNetns(a);
  await createNetns(b);
  t.ok(await netnsExists(a));
  const ca = await openNetns(a);
  const cb = await openNetns(b);
  clients.push(ca, cb);

  // veth created inside a, its peer created directly inside b (IFLA_NET_NS_FD in VETH_INFO_PEER)
  await ca.createVeth({ name: `${tag}-va`, peer: `${tag}-vb`, mac: '02:00:00:00:0a:01', peerMac: '02:00:00:00:0b:01', mtu: 1400, peerNetns: b });
  const la = await ca.getLink(`${tag}-va`);
  const lb = await cb.getLink(`${tag}-vb`);
  t.equal(la.mac, '02:00:00:00:0a:01');
  t.equal(lb.mac, '02:00:00:00:0b:01');
  t.equal(la.mtu, 1400);
  t.equal(lb.mtu, 1400);
  t.notOk(la.up);
  await ca.setLink(`${tag}-va`, { up: true });
  await cb.setLink(`${tag}-vb`, { up: true });
  t.ok((await ca.getLink(`${tag}-va`)).up);
  await ca.addAddress(`${tag}-va`, '10.77.0.1/24');
  await cb.addAddress(`${tag}-vb`, '10.77.0.2/24');
  t.same((await ca.listAddresses()).filter((x) => x.dev === `${tag}-va`), [{ dev: `${tag}-va`, cidr: '10.77.0.1/24' }]);
  await cb.addRoute({ dst: '10.88.0.0/16', gateway: '10.77.0.1' });
  const routes = (await exec('ip', ['-n', b, '-4', 'route', 'show', '10.88.0.0/16'], { timeoutMs: 5000 })).stdout;
  t.match(routes, /10\.88\.0\.0\/16 via 10\.77\.0\.1/);

  // a static neighbour entry, visible to iproute2, then flushed
  await ca.setNeighbor(`${tag}-va`, '10.77.0.2', '02:00:00:00:0b:01');
  t.match((await exec('ip', ['-n', a, 'neigh', 'show', 'dev', `${tag}-va`], { timeoutMs: 5000 })).stdout, /10\.77\.0\.2 lladdr 02:00:00:00:0b:01 PERMANENT/);
  await exec('ip', ['netns', 'exec', a, 'ping', '-c', '1', '-W', '2', '10.77.0.2'], { timeoutMs: 5000 });
  t.equal(await ca.flushNeighbors(`${tag}-va`), 1);
  t.equal((await exec('ip', ['-n', a, 'neigh', 'show', 'dev', `${tag}-va`], { timeoutMs: 5000 })).stdout.trim(), '');
  // traffic resolves ARP again after the flush
  await exec('ip', ['netns', 'exec', b, 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.77.0.1'], { timeoutMs: 5000 });

  // ethtool and tc fallbacks
  await disableTxOffload(`${tag}-va`, a);
  t.match((await exec('ethtool', ['-k', `${tag}-va`], { netns: a, timeoutMs: 5000 })).stdout, /tx-checksumming: off/);
  await shapeEgress(`${tag}-va`, { mbit: 100 }, a);
  t.match((await exec('tc', ['qdisc', 'show', 'dev', `${tag}-va`], { netns: a, timeoutMs: 5000 })).stdout, /tbf .*rate 100Mbit/);

  // errors are typed and name what failed
  await t.rejects(ca.getLink('nope0'), { code: 'NETNS_LINK_NOT_FOUND' });
  await t.rejects(ca.createVeth({ name: `${tag}-va`, peer: `${tag}-vz` }), { code: 'NETNS_NETLINK', errno: 'EEXIST' });
  await t.rejects(ca.createVeth({ name: 'way-too-long-name0', peer: 'x' }), { code: 'NETNS_BAD_NAME' });
  await t.rejects(ca.setLink(`${tag}-va`, { netns: `${tag}-missing` }), { code: 'NETNS_NOT_FOUND' });

  // moving a link between namespaces, bridges and enslaving
  await ca.createBridge(`${tag}-br`);
  await ca.createVeth({ name: `${tag}-m1`, peer: `${tag}-m2` });
  await ca.setLink(`${tag}-m1`, { master: `${tag}-br` });
  t.equal((await ca.getLink(`${tag}-m1`)).master, (await ca.getLink(`${tag}-br`)).index);
  await ca.setLink(`${tag}-m2`, { netns: b });
  await t.rejects(ca.getLink(`${tag}-m2`), { code: 'NETNS_LINK_NOT_FOUND' });
  t.ok(await cb.getLink(`${tag}-m2`));
  await cb.deleteLink(`${tag}-m2`);
  await t.rejects(ca.getLink(`${tag}-m1`), { code: 'NETNS_LINK_NOT_FOUND' }, 'deleting one end of a veth removes both');
});

t.test('kernel vxlan device created over rtnetlink carries its VNI and remote', async (t) => {
  const tag = newTag();
  const a = `${tag}-x`;
  t.teardown(() => deleteNetns(a));
  await createNetns(a);
  const c = await openNetns(a);
  t.teardown(() => c.close());
  await c.createBridge(`${tag}-u`);
  await c.setLink(`${tag}-u`, { up: true });
  await c.addAddress(`${tag}-u`, '192.0.2.1/24');
  await c.createVxlan(`${tag}-vx`, { vni: 4242, local: '192.0.2.1', remote: '192.0.2.2', underlay: `${tag}-u` });
  const out = (await exec('ip', ['-d', '-n', a, 'link', 'show', `${tag}-vx`], { timeoutMs: 5000 })).stdout;
  t.match(out, /vxlan id 4242 remote 192\.0\.2\.2 local 192\.0\.2\.1/);
  t.match(out, /dstport 4789/);
  t.match(out, /nolearning/);
});

t.test('a worker for a namespace that does not exist fails with a typed error', async (t) => {
  await t.rejects(openNetns(`${newTag()}-none`, 5000), { code: 'NETNS_WORKER' });
  t.notOk((await listNetns()).some((n) => n.endsWith('-none')));
});
