/**
 * The codec against a real ovs-vswitchd (Open vSwitch 3.1, userspace datapath): the switch
 * connects to a listener of ours as its OpenFlow 1.3 controller; we speak to it with messages the
 * codec encodes, decode everything it sends (features, port desc, its full table features, packet-in,
 * port status, bundle replies, flow/group/meter stats) and check that every received message
 * re-encodes to the exact bytes the switch sent.
 */
import t from 'tap';
import { createServer, type Socket } from 'node:net';
import { newTag } from '../../lab/tag.js';
import { exec } from '../../src/exec.js';
import { startOvs } from '../fixtures/ovs.js';
import {
  applyActions, bundleAdd, bundleControl, decodeMessage, encodeMessage, flowMod, flowStatsRequest, joinMultipartReplyBodies,
  match, multipartRequest, OFPBF, OFPCR_ROLE, OFPMPF, OFPP, OfpStreamParser, output, packetOut, peekLength,
  roleRequest, type MessageOf, type MultipartReplyBody, type OfpMessage,
} from '../../src/openflow/index.js';

/** A controller-side connection: requests by xid, collects unsolicited async messages. */
class Conn {
  private xid = 100;
  private readonly parser = new OfpStreamParser();
  private readonly waiting = new Map<number, { parts: OfpMessage[]; done: (m: OfpMessage[]) => void }>();
  readonly async: OfpMessage[] = [];
  readonly raw: Buffer[] = [];
  private asyncWaiters: (() => void)[] = [];

  constructor(private readonly sock: Socket) {
    sock.on('data', (chunk: Buffer) => {
      this.raw.push(chunk);
      for (const m of this.parser.push(chunk)) this.dispatch(m);
    });
  }

  private dispatch(m: OfpMessage): void {
    if (m.type === 'echo_request') return void this.send({ type: 'echo_reply', xid: m.xid, data: m.data });
    const w = this.waiting.get(m.xid);
    if (!w) {
      this.async.push(m);
      for (const f of this.asyncWaiters.splice(0)) f();
      return;
    }
    w.parts.push(m);
    const more = m.type === 'multipart_reply' && (m.flags & OFPMPF.more) !== 0;
    if (!more) {
      this.waiting.delete(m.xid);
      w.done(w.parts);
    }
  }

  send(m: OfpMessage): void {
    this.sock.write(encodeMessage(m));
  }

  nextXid(): number {
    return ++this.xid;
  }

  /** Sends `m` (xid assigned) and resolves with the reply messages (all parts of a multipart). */
  request(m: OfpMessage, timeoutMs = 5000): Promise<OfpMessage[]> {
    const msg = { ...m, xid: m.xid || this.nextXid() } as OfpMessage;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${msg.type} xid ${msg.xid}`)), timeoutMs);
      this.waiting.set(msg.xid, { parts: [], done: (parts) => (clearTimeout(timer), resolve(parts)) });
      this.send(msg);
    });
  }

  async multipart(body: Parameters<typeof multipartRequest>[1]): Promise<MultipartReplyBody> {
    const parts = await this.request(multipartRequest(0, body));
    if (parts.some((p) => p.type !== 'multipart_reply')) throw new Error(`multipart ${body.type}: ${JSON.stringify(parts.map((p) => p.type))}`);
    return joinMultipartReplyBodies(parts.map((p) => (p as MessageOf<'multipart_reply'>).body));
  }

  async waitAsync<T extends OfpMessage>(pred: (m: OfpMessage) => m is T, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.async.find(pred);
      if (found) return found;
      if (Date.now() > deadline) throw new Error('async message did not arrive');
      await new Promise<void>((r) => {
        this.asyncWaiters.push(r);
        setTimeout(r, 100);
      });
    }
  }
}

t.test('a real ovs-vswitchd speaks with the codec', async (t) => {
  const tag = newTag();
  const ovs = await startOvs(t, { tag });
  const bridge = `${tag}-br`;
  // The userspace datapath's tap devices outlive ovs-vswitchd: remove them explicitly, by name.
  t.teardown(async () => {
    await ovs.vsctl(['--if-exists', 'del-br', bridge]).catch(() => undefined);
    for (const dev of [bridge, `${tag}-p1`]) await exec('ip', ['link', 'del', dev], { allowFailure: true, timeoutMs: 5000 });
  });
  const server = createServer();
  const sockets: Socket[] = [];
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const connected = new Promise<Socket>((resolve) => server.once('connection', (s) => (sockets.push(s), resolve(s))));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await ovs.vsctl([
    'add-br', bridge, '--', 'set', 'bridge', bridge, 'datapath_type=netdev', 'protocols=OpenFlow13',
    'other-config:datapath-id=0000000000c0a7e5', 'fail_mode=secure',
    '--', 'set-controller', bridge, `tcp:127.0.0.1:${port}`,
  ]);
  const sock = await connected;
  const conn = new Conn(sock);
  conn.send({ type: 'hello', xid: 1, elements: [{ type: 'versionbitmap', versions: [4] }] });

  const [features] = await conn.request({ type: 'features_request', xid: 0 });
  t.equal(features?.type, 'features_reply');
  t.equal(features?.type === 'features_reply' && features.datapathId, 0xc0a7e5n, 'datapath id as configured');

  const [role] = await conn.request(roleRequest(0, OFPCR_ROLE.master, 1n));
  t.same(role?.type === 'role_reply' && [role.role, role.generationId], [OFPCR_ROLE.master, 1n]);

  const ports = await conn.multipart({ type: 'port_desc' });
  t.ok(ports.type === 'port_desc' && ports.ports.some((p) => p.portNo === OFPP.local && p.name === bridge), 'LOCAL port named after the bridge');

  // OVS's full table features: many multipart parts, every property type.
  const tf = await conn.multipart({ type: 'table_features', tables: [] });
  t.equal(tf.type === 'table_features' && tf.tables.length, 254, '254 tables');
  const propTypes = new Set(tf.type === 'table_features' ? tf.tables.flatMap((x) => x.properties.map((p) => p.type)) : []);
  for (const p of ['instructions', 'instructions_miss', 'next_tables', 'next_tables_miss', 'write_actions', 'apply_actions', 'match', 'wildcards', 'write_setfield', 'apply_setfield']) {
    t.ok(propTypes.has(p as never), `table features carry ${p}`);
  }

  // An atomic bundle with two flows, then the flows back through flow stats and ovs-ofctl.
  const bundleId = 7;
  const f1 = flowMod({ xid: conn.nextXid(), cookie: 0xc0a7_0001n, priority: 200, match: match({ in_port: OFPP.local, eth_type: 0x0806 }), instructions: [applyActions(output('controller'))] });
  const f2 = flowMod({ xid: conn.nextXid(), cookie: 0xc0a7_0002n, priority: 100, tableId: 0, match: match({ eth_dst: ['01:00:00:00:00:00', '01:00:00:00:00:00'] }), instructions: [applyActions(output('flood'))] });
  const [opened] = await conn.request(bundleControl(0, bundleId, 'open_request', OFPBF.atomic));
  t.same(opened?.type === 'bundle_control' && opened.controlType, 'open_reply');
  conn.send(bundleAdd(bundleId, f1, OFPBF.atomic));
  conn.send(bundleAdd(bundleId, f2, OFPBF.atomic));
  const [committed] = await conn.request(bundleControl(0, bundleId, 'commit_request', OFPBF.atomic));
  t.same(committed?.type === 'bundle_control' && committed.controlType, 'commit_reply', 'bundle committed');
  const flows = await conn.multipart(flowStatsRequest(0).body);
  const cookies = flows.type === 'flow' ? flows.stats.map((s) => s.cookie).sort() : [];
  t.same(cookies, [0xc0a70001n, 0xc0a70002n], 'both flows installed, cookies as bigint');
  const dumped = await ovs.ofctl(['-O', 'OpenFlow13', 'dump-flows', bridge]);
  t.match(dumped, /cookie=0xc0a70001.*priority=200,arp,in_port=LOCAL actions=CONTROLLER:65535/);

  // packet-out through the table -> our flow -> packet-in with the same frame.
  const frame = Buffer.concat([Buffer.from('ffffffffffff02000000c0a70806', 'hex'), Buffer.alloc(46, 0x42)]);
  conn.send(packetOut(frame, [output('table')], { xid: conn.nextXid(), inPort: OFPP.local }));
  const pin = await conn.waitAsync((m): m is MessageOf<'packet_in'> => m.type === 'packet_in');
  t.same(pin.data, frame, 'packet-in carries the frame');
  t.equal(pin.cookie, 0xc0a70001n);
  t.same(pin.match.find((f) => f.field === 'in_port'), { field: 'in_port', value: OFPP.local });

  // A group and a meter, read back.
  const groupMod: OfpMessage = { type: 'group_mod', xid: conn.nextXid(), command: 0, groupType: 0, groupId: 5, buckets: [{ weight: 0, watchPort: OFPP.any, watchGroup: 0xffffffff, actions: [output(OFPP.local)] }] };
  conn.send(groupMod);
  const groups = await conn.multipart({ type: 'group_desc' });
  t.same(groups.type === 'group_desc' && groups.groups.map((g) => [g.groupId, g.buckets.length]), [[5, 1]]);
  conn.send({ type: 'meter_mod', xid: conn.nextXid(), command: 0, flags: 1 | 8, meterId: 3, bands: [{ type: 'drop', rate: 1000, burstSize: 0 }] });
  const meters = await conn.multipart({ type: 'meter_config', meterId: 0xffffffff });
  t.same(meters.type === 'meter_config' && meters.configs.map((c) => [c.meterId, c.bands[0]?.type]), [[3, 'drop']]);
  const mf = await conn.multipart({ type: 'meter_features' });
  t.ok(mf.type === 'meter_features' && mf.maxMeter > 0, 'meter features');

  // Port status when a port is added.
  await ovs.vsctl(['add-port', bridge, `${tag}-p1`, '--', 'set', 'interface', `${tag}-p1`, 'type=internal']);
  const ps = await conn.waitAsync((m): m is MessageOf<'port_status'> => m.type === 'port_status' && m.port.name === `${tag}-p1`);
  t.equal(ps.reason, 0, 'OFPPR_ADD');

  const [echo] = await conn.request({ type: 'echo_request', xid: 0, data: Buffer.from('ping') });
  t.same(echo?.type === 'echo_reply' && echo.data.toString(), 'ping');
  const [barrier] = await conn.request({ type: 'barrier_request', xid: 0 });
  t.equal(barrier?.type, 'barrier_reply');

  // Every message the switch sent re-encodes to its exact bytes.
  const all = Buffer.concat(conn.raw);
  let off = 0;
  let n = 0;
  const mismatches: string[] = [];
  while (off < all.length) {
    const len = peekLength(all, off)!;
    const raw = all.subarray(off, off + len);
    const again = encodeMessage(decodeMessage(raw));
    if (!again.equals(raw)) mismatches.push(`${decodeMessage(raw).type} at ${off}`);
    off += len;
    n++;
  }
  t.same(mismatches, [], `all ${n} messages from ovs-vswitchd re-encode byte-identical`);
  t.ok(n > 20, `received ${n} messages`);
});
