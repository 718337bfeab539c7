/**
 * The Mininet topology (Debian's mininet, OVS user-space switches) with the real `coat controller`
 * as remote controller: endpoints on different switches reach each other, ARP answered by coat,
 * and nothing with the run's tag is left afterwards.
 */
import t from 'tap';
import { coat, leftovers } from './helpers.js';

t.test('coat lab mininet --test: hosts on different switches talk through coat-programmed switches', async (t) => {
  const r = await coat(['lab', 'mininet', '--test', '--json'], 200_000);
  t.equal(r.code, 0, `exit 0: ${r.stderr.slice(-1500)}`);
  t.match(r.stderr, /Open vSwitch in[\s\S]*coat controller on 127\.0\.0\.1:\d+[\s\S]*Mininet \(3 OVS user-space switches, 2 hosts\)/);
  const j = JSON.parse(r.stdout) as { tag: string; pairs: number; failures: string[]; arp: { replies: number } };
  t.equal(j.pairs, 2, 'service -> client and client -> service');
  t.same(j.failures, []);
  t.ok(j.arp.replies >= 2, `coat answered ${j.arp.replies} ARP requests`);
  t.same(await leftovers(j.tag, []), [], 'no namespace, link or process with the tag is left');
});
