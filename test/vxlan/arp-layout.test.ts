import t from 'tap';
import { ArpResponder, bridgeOfDpid, defaultTopology, hostLayout, overlayLayout, parseTopology } from '../../src/vxlan/index.js';
import { decodeFrame, encodeArpRequestFrame, encodeTcpFrame, ArpOp } from '../../src/packet/index.js';

t.test('ARP responder answers for overlay endpoints only, and counts', async (t) => {
  const r = ArpResponder.fromTopology(defaultTopology());
  const d = r.answer(encodeArpRequestFrame('02:c0:a7:00:00:20', '10.10.0.20', '10.10.0.10'));
  t.equal(d.kind, 'reply');
  if (d.kind !== 'reply') return;
  const f = decodeFrame(d.frame);
  t.same(f.eth, { dst: '02:c0:a7:00:00:20', src: '02:c0:a7:00:00:10', ethertype: 0x0806 });
  t.same(f.arp, { op: ArpOp.REPLY, senderMac: '02:c0:a7:00:00:10', senderIp: '10.10.0.10', targetMac: '02:c0:a7:00:00:20', targetIp: '10.10.0.20' });
  t.match(r.answer(encodeArpRequestFrame('02:c0:a7:00:00:20', '10.10.0.20', '10.10.0.99')), { kind: 'ignore', reason: 'unknown-ip', detail: '10.10.0.99' });
  // duplicate address detection by the owner itself gets no answer (RFC 5227)
  t.match(r.answer(encodeArpRequestFrame('02:c0:a7:00:00:10', '0.0.0.0', '10.10.0.10')), { kind: 'ignore', reason: 'self' });
  t.match(r.answer(encodeTcpFrame({ srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', srcIp: '1.1.1.1', dstIp: '2.2.2.2', srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: {} })), { kind: 'ignore', reason: 'not-arp' });
  t.match(r.answer(Buffer.from('0011', 'hex')), { kind: 'ignore', reason: 'malformed' });
  t.same(r.counters, { requests: 3, replies: 1, unknownIp: 1, malformed: 1, other: 2 });
  // a migration that changes the service's MAC updates the table
  r.set('10.10.0.10', '02:c0:a7:00:00:11');
  const d2 = r.answer(encodeArpRequestFrame('02:c0:a7:00:00:20', '10.10.0.20', '10.10.0.10'));
  t.equal(d2.kind === 'reply' && d2.answerMac, '02:c0:a7:00:00:11');
});

t.test('layout: names fit IFNAMSIZ, port numbers and dpids are stable and distinct', async (t) => {
  const topo = defaultTopology();
  const layouts = overlayLayout(topo, 'c3k9x1');
  const names = layouts.flatMap((l) => [l.integrationBridge, l.underlayBridge, l.uplink, ...Object.values(l.tunnels).map((x) => x.port), ...Object.values(l.endpoints).map((x) => x.port)]);
  for (const n of names) t.ok(n.length <= 15 && n.startsWith('c3k9x1-'), `${n} fits and carries the prefix`);
  const dpids = layouts.flatMap((l) => [l.integrationDpid, l.underlayDpid]);
  t.equal(new Set(dpids).size, 6);
  t.same(bridgeOfDpid(layouts, layouts[1]!.underlayDpid)?.layout.host, 'edge-b');
  t.equal(bridgeOfDpid(layouts, 42n), undefined);
  const a = hostLayout(topo, 'c3k9x1', 'edge-a');
  t.same(a.endpoints, { service: { port: 'c3k9x1-e0', ofport: 1 } });
  t.same(a.tunnels, { 'edge-b': { port: 'c3k9x1-vx1', ofport: 1001, remoteIp: '192.168.100.12' }, client: { port: 'c3k9x1-vx2', ofport: 1002, remoteIp: '192.168.100.13' } });
  // kernel tunnels: one device per host for every peer
  const k = hostLayout(parseTopology(JSON.stringify({ ...topo, tunnel: 'kernel' })), 'c3k9x1', 'edge-a');
  t.same(new Set(Object.values(k.tunnels).map((x) => `${x.port}/${x.ofport}`)), new Set(['c3k9x1-vxk/1000']));
  t.throws(() => hostLayout(topo, 'much-too-long-prefix', 'edge-a'), { code: 'LAYOUT_INVALID' });
  t.throws(() => hostLayout(topo, 'c3k9x1', 'nowhere'), { code: 'LAYOUT_INVALID' });
});
