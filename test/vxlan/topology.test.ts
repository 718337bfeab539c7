import t from 'tap';
import { readFile } from 'node:fs/promises';
import { defaultTopology, parseTopology, TopologyError, DEFAULT_TOPOLOGY_YAML } from '../../src/vxlan/topology.js';

t.test('the default topology is COAT testbed: edge-a 100 Mbit/s, edge-b 500 Mbit/s, client', async (t) => {
  const d = defaultTopology();
  t.same(d.hosts.map((h) => [h.name, h.underlay.mbit]), [['edge-a', 100], ['edge-b', 500], ['client', undefined]]);
  t.same(d.endpoints.map((e) => [e.name, e.host, e.role]), [['service', 'edge-a', 'service'], ['client', 'client', 'client']]);
  t.equal(d.datapath, 'netdev');
  t.equal(d.tunnel, 'ovs');
  t.equal(d.overlay.mtu, 1400);
  t.equal(d.underlay.mtu, 9000, 'a jumbo underlay: the lab links carry the rate they are shaped to');
  // the file shipped in lab/topologies is the same document
  t.equal(await readFile(new URL('../../lab/topologies/coat-testbed.yaml', import.meta.url), 'utf8'), DEFAULT_TOPOLOGY_YAML);
});

function problems(text: string): string[] {
  try {
    parseTopology(text);
  } catch (e) {
    if (e instanceof TopologyError) return e.problems;
    throw e;
  }
  return [];
}

const base = (patch: string) => DEFAULT_TOPOLOGY_YAML.replace(/^endpoints:[\s\S]*$/m, patch);

t.test('every problem is reported with the path of the bad key', async (t) => {
  t.same(problems(DEFAULT_TOPOLOGY_YAML.replace('ip: 192.168.100.12', 'ip: 192.168.100.300')), ['hosts[1].underlay.ip: "192.168.100.300" is not an IPv4 address']);
  t.same(problems(DEFAULT_TOPOLOGY_YAML.replace('vni: 5000', 'vni: 16777216')), ['overlay.vni: must be an integer in 1..16777215, got 16777216']);
  t.same(problems(DEFAULT_TOPOLOGY_YAML.replace('tunnel: ovs ', 'tunnel: gre ')), ['(top).tunnel: must be one of ovs, kernel, got "gre"']);
  t.same(problems(DEFAULT_TOPOLOGY_YAML.replace('  mtu: 9000', '  mtu: 70000')), ['underlay.mtu: must be an integer in 1280..9216, got 70000']);
  t.same(problems(DEFAULT_TOPOLOGY_YAML.replace('  mtu: 9000', '  mtu: 1449')), ['overlay.mtu: 1400 + 50 bytes of VXLAN encapsulation does not fit underlay.mtu 1449']);
  t.same(problems(DEFAULT_TOPOLOGY_YAML.replace('  mtu: 9000', '  mtu: 1450')), [], '1400 + 50 fits exactly');
  t.equal(parseTopology(DEFAULT_TOPOLOGY_YAML.replace(/\n  mtu: 9000/, '')).underlay.mtu, undefined, 'absent: the links keep theirs');
  t.same(problems(DEFAULT_TOPOLOGY_YAML.replace('  mtu: 1400', '  mtu: 1400\n  colour: blue')), ['overlay.colour: unknown key (allowed: subnet, vni, mtu)']);
  t.same(
    problems(base('endpoints:\n  - { name: service, host: edge-z, ip: 10.20.0.1, mac: "03:00:00:00:00:01" }\n  - { name: service, host: edge-a, ip: 10.10.0.5, mac: "zz" }\n')),
    [
      'endpoints[0].host: no host named "edge-z" (hosts: edge-a, edge-b, client)',
      'endpoints[0].ip: 10.20.0.1 is outside overlay.subnet 10.10.0.0/24',
      'endpoints[0].mac: 03:00:00:00:00:01 is a multicast address',
      'endpoints[1].mac: "zz" is not a MAC address like 02:00:00:00:00:01',
      'endpoints[1].name: endpoint service is defined twice',
    ],
  );
  t.same(problems(DEFAULT_TOPOLOGY_YAML.replace('ip: 192.168.100.12', 'ip: 192.168.100.11')), ['hosts[1].underlay.ip: 192.168.100.11 is used by another host']);
  t.same(problems(DEFAULT_TOPOLOGY_YAML.replace('- name: edge-b', '- name: Edge_B')), [
    'hosts[1].name: "Edge_B" must start with a letter and have at most 16 characters of [a-z0-9-]',
  ]);
  t.same(problems('hosts: 3\nendpoints: []\n'), ['overlay.subnet: is required', 'overlay.vni: is required', 'hosts: must be a list of at least two hosts']);
});

t.test('YAML syntax errors say where', async (t) => {
  const p = problems('hosts:\n  - name: a\n   bad: [\n');
  t.equal(p.length, 1);
  t.match(p[0], /not valid YAML\/JSON \(line \d+, column \d+\)/);
  t.match(problems('{"hosts": 1, "hosts": 2}')[0], /not valid YAML\/JSON/);
});

t.test('JSON is accepted, and real-host topologies need an ovsdb remote on every host', async (t) => {
  const d = defaultTopology();
  const json = JSON.stringify({ ...d, hosts: d.hosts.map((h, i) => ({ ...h, ovsdb: `tcp:192.168.100.${11 + i}:6640` })) });
  t.equal(parseTopology(json).hosts[2]!.ovsdb, 'tcp:192.168.100.13:6640');
  const half = JSON.stringify({ ...d, hosts: d.hosts.map((h, i) => (i === 0 ? { ...h, ovsdb: 'tcp:1.2.3.4:6640' } : h)) });
  t.same(problems(half), ['hosts: either every host names its ovsdb remote (real hosts) or none does (lab)']);
});
