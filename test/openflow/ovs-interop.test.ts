/**
 * Interoperation with the real Open vSwitch tools (3.1):
 * - what we encode, `ovs-ofctl ofp-parse` reads as the message we meant;
 * - what `ovs-ofctl` sends to a switch (including Nicira actions, NXM matches and ONF bundles)
 *   we decode, and re-encode byte-identical. Our side is a minimal fake switch on loopback that
 *   answers hello, barrier, features and bundle control with the codec itself.
 */
import t from 'tap';
import { createServer, type Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec } from '../../src/exec.js';
import {
  applyActions, bundleAdd, bundleControl, encodeMessage, flowMod, flowStatsRequest, match, OFPBF, OfpStreamParser, oxmName,
  output, packetOut, roleRequest, setField, OFPCR_ROLE, type OfpMessage, type FlowMod, type MessageOf, type TableFeatureProperty,
} from '../../src/openflow/index.js';

const dir = mkdtempSync(join(tmpdir(), 'coat-openflow-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

async function ofpParse(msgs: OfpMessage[]): Promise<string> {
  const file = join(dir, `msgs-${Math.random().toString(36).slice(2)}.bin`);
  writeFileSync(file, Buffer.concat(msgs.map((m) => encodeMessage(m))));
  return (await exec('ovs-ofctl', ['ofp-parse', file], { timeoutMs: 10_000 })).stdout;
}

t.test('ovs-ofctl ofp-parse reads what we encode', async (t) => {
  const fm = flowMod({
    xid: 7,
    priority: 100,
    cookie: 0x1234n,
    tableId: 3,
    idleTimeout: 30,
    match: match({ in_port: 1, eth_type: 0x0800, ipv4_dst: ['10.0.0.0', '255.255.255.0'], tcp_dst: undefined }),
    instructions: [applyActions(setField('eth_dst', '00:00:00:00:00:02'), output(2))],
  });
  const out = await ofpParse([
    fm,
    bundleControl(1, 5, 'open_request', OFPBF.atomic),
    bundleAdd(5, { ...fm, xid: 8 }, OFPBF.atomic),
    bundleControl(2, 5, 'commit_request', OFPBF.atomic),
    packetOut(Buffer.alloc(60, 0xab), [output('flood')], { xid: 9 }),
    flowStatsRequest(10, match({ in_port: 4 })),
    roleRequest(11, OFPCR_ROLE.master, 0x0102030405060708n),
  ]);
  t.match(out, /OFPT_FLOW_MOD \(OF1\.3\) \(xid=0x7\): ADD table:3 priority=100,ip,in_port=1,nw_dst=10\.0\.0\.0\/24 cookie:0x1234 idle:30 actions=set_field:00:00:00:00:00:02->eth_dst,output:2/);
  t.match(out, /ONFT_BUNDLE_CONTROL \(OF1\.3\) \(xid=0x1\):\s+bundle_id=0x5 type=OPEN_REQUEST flags=atomic/);
  t.match(out, /ONFT_BUNDLE_ADD_MESSAGE \(OF1\.3\) \(xid=0x8\):\s+bundle_id=0x5 flags=atomic\s+OFPT_FLOW_MOD \(OF1\.3\) \(xid=0x8\): ADD/);
  t.match(out, /ONFT_BUNDLE_CONTROL \(OF1\.3\) \(xid=0x2\):\s+bundle_id=0x5 type=COMMIT_REQUEST flags=atomic/);
  t.match(out, /OFPT_PACKET_OUT \(OF1\.3\) \(xid=0x9\): in_port=CONTROLLER actions=FLOOD data_len=60/);
  t.match(out, /OFPST_FLOW request \(OF1\.3\) \(xid=0xa\): in_port=4/);
  t.match(out, /OFPT_ROLE_REQUEST \(OF1\.3\) \(xid=0xb\):\s+role=(master|primary) generation_id=72623859790382856/);
  t.notMatch(out, /bad|error|warn/i, 'no complaint from Open vSwitch');
});

/**
 * A fake switch: accepts one connection, speaks OpenFlow 1.3 with the codec, records every
 * message and the raw bytes, and answers what ovs-ofctl waits for.
 */
async function fakeSwitch(t: { teardown(fn: () => unknown): void }, run: (port: number) => Promise<unknown>): Promise<{ msgs: OfpMessage[]; raw: Buffer }> {
  const msgs: OfpMessage[] = [];
  const raw: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    const parser = new OfpStreamParser();
    const send = (m: OfpMessage) => sock.write(encodeMessage(m));
    send({ type: 'hello', xid: 1, elements: [{ type: 'versionbitmap', versions: [4] }] });
    sock.on('data', (chunk: Buffer) => {
      raw.push(chunk);
      for (const m of parser.push(chunk)) {
        msgs.push(m);
        if (m.type === 'echo_request') send({ type: 'echo_reply', xid: m.xid, data: m.data });
        else if (m.type === 'barrier_request') send({ type: 'barrier_reply', xid: m.xid });
        else if (m.type === 'multipart_request' && m.body.type === 'table_features') {
          // ovs-ofctl asks which tables exist before it sends flows; OVS insists on the 8 required properties.
          const properties: TableFeatureProperty[] = [
            { type: 'instructions', instructionIds: [] }, { type: 'next_tables', tableIds: [] },
            { type: 'write_actions', actionIds: [] }, { type: 'apply_actions', actionIds: [] },
            { type: 'match', oxmIds: [] }, { type: 'wildcards', oxmIds: [] },
            { type: 'write_setfield', oxmIds: [] }, { type: 'apply_setfield', oxmIds: [] },
          ];
          const tables = [0, 1, 2, 3].map((tableId) => ({
            tableId, name: `t${tableId}`, metadataMatch: 0xffffffffffffffffn, metadataWrite: 0xffffffffffffffffn, config: 0, maxEntries: 1000, properties,
          }));
          send({ type: 'multipart_reply', xid: m.xid, flags: 0, body: { type: 'table_features', tables } });
        } else if (m.type === 'multipart_request' && m.body.type === 'port_desc') {
          send({ type: 'multipart_reply', xid: m.xid, flags: 0, body: { type: 'port_desc', ports: [] } });
        } else if (m.type === 'features_request') {
          send({ type: 'features_reply', xid: m.xid, datapathId: 1n, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0, reserved: 0 });
        } else if (m.type === 'bundle_control') {
          const reply = { open_request: 'open_reply', close_request: 'close_reply', commit_request: 'commit_reply', discard_request: 'discard_reply' } as const;
          const r = reply[m.controlType as keyof typeof reply];
          if (r) send({ ...m, controlType: r });
        }
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  await run(port);
  return { msgs, raw: Buffer.concat(raw) };
}

const FLOWS = [
  'table=0,priority=10,in_port=1,reg0=5,actions=resubmit(,1),load:0x2a->NXM_NX_REG1[],output:2',
  'table=1,priority=20,ip,nw_src=10.0.0.1,actions=conjunction(7,1/2)',
  'table=1,priority=20,ip,conj_id=7,actions=learn(table=2,idle_timeout=60,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),ct(commit,zone=3),mod_vlan_vid:10,group:4',
  'table=2,priority=5,tun_id=0x64,tcp,tp_dst=80,actions=set_field:00:00:00:00:00:09->eth_dst,write_metadata:0x1/0xff,goto_table:3',
  'table=3,priority=1,ipv6,ipv6_dst=fe80::1/64,actions=meter:2,output:1',
];

t.test('we decode what ovs-ofctl sends a switch, and re-encode it byte-identical', async (t) => {
  const flowsFile = join(dir, 'flows.txt');
  writeFileSync(flowsFile, FLOWS.join('\n') + '\n');
  for (const bundle of [false, true]) {
    const { msgs, raw } = await fakeSwitch(t, (port) =>
      exec('ovs-ofctl', ['-O', 'OpenFlow13', ...(bundle ? ['--bundle'] : []), 'add-flows', `tcp:127.0.0.1:${port}`, flowsFile], { timeoutMs: 15_000 }),
    );
    t.equal(Buffer.concat(msgs.map((m) => encodeMessage(m))).equals(raw), true, `${bundle ? 'bundle' : 'plain'}: the whole stream re-encodes byte-identical`);
    const flowMods: FlowMod[] = bundle
      ? msgs.filter((m): m is MessageOf<'bundle_add'> => m.type === 'bundle_add').map((m) => m.message as FlowMod)
      : msgs.filter((m): m is FlowMod => m.type === 'flow_mod');
    t.equal(flowMods.length, FLOWS.length, `${bundle ? 'bundle' : 'plain'}: one flow_mod per flow`);
    if (bundle) {
      t.same(
        msgs.filter((m) => m.type === 'bundle_control').map((m) => (m as MessageOf<'bundle_control'>).controlType),
        ['open_request', 'commit_request'],
        'bundle opened and committed',
      );
    }
    const [f0, f1, f2, f3, f4] = flowMods as [FlowMod, FlowMod, FlowMod, FlowMod, FlowMod];
    t.same(f0.match.map(oxmName), ['in_port', 'reg0'], 'reg0 match kept as an NXM_1 entry');
    const a0 = f0.instructions[0]?.type === 'apply_actions' ? f0.instructions[0].actions : [];
    t.same(a0.map((a) => (a.type === 'experimenter' ? `nx:${a.data.readUInt16BE(0)}` : a.type)), ['nx:14', 'nx:7', 'output'], 'resubmit and reg_load are Nicira experimenter actions');
    t.equal(f1.match.find((f) => f.field === 'ipv4_src')?.value, '10.0.0.1');
    t.same(f2.match.map(oxmName), ['conj_id', 'eth_type'], 'conj_id kept as an NXM_1 entry');
    const a2 = f2.instructions[0]?.type === 'apply_actions' ? f2.instructions[0].actions : [];
    t.ok(a2.some((a) => a.type === 'experimenter' && a.experimenter === 0x2320 && a.data.readUInt16BE(0) === 16), 'learn is kept opaque');
    t.ok(a2.some((a) => a.type === 'group' && a.groupId === 4), 'group action decoded');
    t.same(f3.instructions.map((i) => i.type), ['apply_actions', 'write_metadata', 'goto_table']);
    t.same(f4.match.find((f) => f.field === 'ipv6_dst'), { field: 'ipv6_dst', value: 'fe80::', mask: 'ffff:ffff:ffff:ffff::' });
    t.same(f4.instructions.map((i) => i.type), ['meter', 'apply_actions']);
  }
});
