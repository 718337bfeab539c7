/**
 * Unit tests of the codec's edges: typed errors with their offsets and checks, encoder input
 * validation, builders, bundles, version negotiation, opaque entries, and the docs' error table.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  applyActions, bundleAdd, bundleControl, decodeMessage, encodeMessage, encodingLength, errorName, flowDelete, flowMod,
  gotoTable, hello, joinMultipartReplyBodies, match, OFP_ERROR_CODE_MEANINGS, OFPBF, OFPFC, OFPP, OFPTT, OfpError, oxm, oxmName, output, packetOut,
  peekLength, setField, type OfpMessage,
} from '../../src/openflow/index.js';

function caught(fn: () => unknown): OfpError {
  try {
    fn();
  } catch (err) {
    if (err instanceof OfpError) return err;
    throw new Error(`expected OfpError, got ${String(err)}`);
  }
  throw new Error('expected OfpError, nothing thrown');
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

t.test('decode errors name the code, the offset and the check', async (t) => {
  let e = caught(() => decodeMessage(hex('04 00 00 04 00000001')));
  t.same([e.code, e.offset, e.check], ['OFP_BAD_LENGTH', 2, 'ofp_header.length >= 8']);

  e = caught(() => decodeMessage(hex('05 0e 00 08 00000001')));
  t.same([e.code, e.offset], ['OFP_BAD_VERSION', 0]);

  e = caught(() => decodeMessage(hex('04 63 00 08 00000001')));
  t.same([e.code, e.offset], ['OFP_BAD_TYPE', 1]);

  // barrier_request with 4 extra bytes
  e = caught(() => decodeMessage(hex('04 14 00 0c 00000001 00000000')));
  t.same([e.code, e.offset], ['OFP_TRAILING_BYTES', 8]);

  // multipart request of type 99
  e = caught(() => decodeMessage(hex('04 12 00 10 00000001 0063 0000 00000000')));
  t.same([e.code, e.offset], ['OFP_BAD_MULTIPART', 8]);

  // packet_in whose match says OXM in_port with a 2-byte payload (must be 4)
  const pin = hex('04 0a 00 28 00000001  ffffffff 0000 00 00 0000000000000000  0001 000a 80000002 0001 000000 0000 aaaa');
  e = caught(() => decodeMessage(pin));
  t.same([e.code, e.offset, e.check], ['OFP_BAD_OXM', 28, 'OXM in_port length is 4']);

  // match type 0 (deprecated standard match)
  const badMatch = Buffer.from(pin);
  badMatch.writeUInt16BE(0, 24);
  t.equal(caught(() => decodeMessage(badMatch)).code, 'OFP_BAD_MATCH');

  // an action whose length points past its instruction
  const fm = encodeMessage(flowMod({ instructions: [applyActions(output(1))] }));
  const lying = Buffer.from(fm);
  lying.writeUInt16BE(64, fm.length - 16 + 2); // the output action's len
  e = caught(() => decodeMessage(lying));
  t.equal(e.code, 'OFP_TRUNCATED');
  t.equal(e.offset, fm.length - 16, 'offset of the lying action');

  // action length not a multiple of 8
  const odd = Buffer.from(fm);
  odd.writeUInt16BE(12, fm.length - 16 + 2);
  t.equal(caught(() => decodeMessage(odd)).code, 'OFP_BAD_LENGTH');
});

t.test('the golden flow_mod cut at 64 bytes, and every shorter prefix, is OFP_TRUNCATED', async (t) => {
  const full = readFileSync('/work/shared/testdata/openflow13/libofproto-OFP13-flow_mod.packet');
  for (let n = 0; n < full.length; n++) {
    const e = caught(() => decodeMessage(full.subarray(0, n)));
    if (e.code !== 'OFP_TRUNCATED') t.fail(`prefix ${n}: ${e.code}`);
  }
  // The same bytes with the header length fixed to 64: the inner structures are now the liars.
  const cut = Buffer.from(full.subarray(0, 64));
  cut.writeUInt16BE(64, 2);
  const e = caught(() => decodeMessage(cut));
  t.equal(e.code, 'OFP_TRUNCATED');
  t.ok(e.offset >= 48 && e.offset < 64, `inner offset ${e.offset} (${e.check})`);
});

t.test('encoder validates its input with typed errors', async (t) => {
  const bad: [string, OfpMessage][] = [
    ['xid too large', { type: 'barrier_request', xid: 2 ** 32 }],
    ['cookie not bigint', { ...flowMod(), cookie: 5 as unknown as bigint }],
    ['bad MAC', flowMod({ match: [oxm('eth_dst', '00:11:22:33:44')] })],
    ['bad IPv4', flowMod({ match: [oxm('ipv4_dst', '10.0.0.256')] })],
    ['bad IPv6', flowMod({ match: [oxm('ipv6_dst', '1::2::3')] })],
    ['u8 field out of range', flowMod({ match: [oxm('ip_proto', 256)] })],
    ['unknown field', flowMod({ match: [{ field: 'nope', value: 1 } as never] })],
    ['unknown type', { type: 'nope', xid: 1 } as unknown as OfpMessage],
    ['port name too long', { type: 'port_status', xid: 1, reason: 0, port: { portNo: 1, hwAddr: '00:00:00:00:00:01', name: 'x'.repeat(17), config: 0, state: 0, curr: 0, advertised: 0, supported: 0, peer: 0, currSpeed: 0, maxSpeed: 0 } }],
  ];
  for (const [what, m] of bad) {
    const e = caught(() => encodeMessage(m));
    t.equal(e.code, 'OFP_ENCODE_INVALID', what);
  }
  const huge: OfpMessage = { type: 'echo_request', xid: 1, data: Buffer.alloc(70_000) };
  t.equal(caught(() => encodeMessage(huge)).code, 'OFP_ENCODE_TOO_LONG');
});

t.test('builders fill the spec defaults and round-trip', async (t) => {
  const fm = flowMod({ match: match({ tcp_dst: 80, eth_type: 0x0800, ip_proto: 6 }), instructions: [applyActions(output('controller')), gotoTable(1)] });
  t.same(fm.match.map((f) => f.field), ['eth_type', 'ip_proto', 'tcp_dst'], 'fields in spec order (prerequisites first)');
  t.equal(fm.command, OFPFC.add);
  t.equal(fm.priority, 0x8000);
  t.equal(fm.bufferId, 0xffffffff);
  t.equal(fm.outPort, OFPP.any);
  t.same(decodeMessage(encodeMessage(fm)), fm);
  const del = flowDelete({ match: match({ in_port: 3 }) });
  t.equal(del.command, OFPFC.delete);
  t.equal(del.tableId, OFPTT.all);
  t.same(output('controller'), { type: 'output', port: OFPP.controller, maxLen: 0xffff });
  const po = packetOut(Buffer.from('frame'), [output(1)]);
  t.equal(po.inPort, OFPP.controller);
  t.same(decodeMessage(encodeMessage(po)), po);
  const masked = match({ ipv6_src: ['2001:db8::', 'ffff:ffff::'], metadata: [1n, 0xffn] });
  t.same(decodeMessage(encodeMessage(flowMod({ match: masked }))), flowMod({ match: masked }));
  t.same(setField('vlan_vid', 0x1005), { type: 'set_field', field: { field: 'vlan_vid', value: 0x1005 } });
});

t.test('bundle control and bundle add (ONF EXT-230) on the wire', async (t) => {
  const inner = flowMod({ xid: 77, match: match({ in_port: 1 }), instructions: [applyActions(output(2))] });
  const add = bundleAdd(9, inner, OFPBF.atomic | OFPBF.ordered);
  t.equal(add.xid, 77, 'outer xid is the inner xid');
  const bytes = encodeMessage(add);
  t.equal(bytes[1], 4, 'travels as OFPT_EXPERIMENTER');
  t.equal(bytes.readUInt32BE(8), 0x4f4e4600, 'ONF experimenter id');
  t.equal(bytes.readUInt32BE(12), 2301, 'exp_type ONF_ET_BUNDLE_ADD_MESSAGE');
  t.equal(bytes.readUInt32BE(16), 9, 'bundle_id');
  t.equal(bytes.readUInt16BE(22), 3, 'flags');
  t.same(bytes.subarray(24), encodeMessage(inner), 'then the whole inner message');
  t.same(decodeMessage(bytes), add);
  const ctl = bundleControl(5, 9, 'commit_request', OFPBF.atomic);
  const cb = encodeMessage(ctl);
  t.equal(cb.length, 24);
  t.same([cb.readUInt32BE(12), cb.readUInt32BE(16), cb.readUInt16BE(20), cb.readUInt16BE(22)], [2300, 9, 4, 1]);
  t.same(decodeMessage(cb), ctl);
  // An unknown bundle control type is a typed error; a broken inner message too.
  const badCtl = Buffer.from(cb);
  badCtl.writeUInt16BE(99, 20);
  t.same([caught(() => decodeMessage(badCtl)).code, caught(() => decodeMessage(badCtl)).offset], ['OFP_BAD_TYPE', 20]);
  const badInner = Buffer.from(bytes);
  badInner.writeUInt16BE(4, 26); // inner ofp_header.length = 4
  t.equal(caught(() => decodeMessage(badInner)).code, 'OFP_BAD_LENGTH');
  // A bundle inside a bundle is refused (OpenFlow 1.4 §7.3.9.6), which also bounds recursion.
  t.equal(caught(() => encodeMessage({ ...add, message: ctl })).code, 'OFP_ENCODE_INVALID', 'the encoder refuses it too');
  const nested = Buffer.from(encodeMessage({ ...add, message: { type: 'experimenter', xid: 1, experimenter: 0x4f4e4600, expType: 2300, data: Buffer.alloc(8) } }));
  const ne = caught(() => decodeMessage(nested));
  t.same([ne.code, ne.offset], ['OFP_BAD_TYPE', 24]);
  let deep: Buffer = encodeMessage(inner);
  for (let i = 0; i < 2000; i++) {
    const h = Buffer.from(deep.subarray(0, 24));
    h.writeUInt16BE(deep.length + 24, 2);
    h.writeUInt8(4, 1);
    h.writeUInt32BE(0x4f4e4600, 8);
    h.writeUInt32BE(2301, 12);
    deep = Buffer.concat([h, deep]);
    if (deep.length > 60_000) break;
  }
  t.equal(caught(() => decodeMessage(deep)).code, 'OFP_BAD_TYPE', 'deeply nested bundles: a typed error, no stack overflow');
  t.equal(caught(() => decodeMessage(deep, -1)).code, 'OFP_TRUNCATED', 'negative offset');
});

t.test('hello of another version decodes (negotiation); other messages of another version do not', async (t) => {
  const h = { ...hello(3, [1, 4, 5, 6]), version: 6 };
  const b = encodeMessage(h);
  t.equal(b[0], 6);
  t.same(b.subarray(8), hex('0001 0008 00000072'), 'bitmap element with bits 1, 4, 5, 6');
  t.same(decodeMessage(b), h);
  t.same(decodeMessage(encodeMessage(hello(1))), hello(1));
});

t.test('experimenter errors and error names', async (t) => {
  const e: OfpMessage = { type: 'error', xid: 1, errorType: 0xffff, expType: 7, experimenter: 0x2320, data: Buffer.from('x') };
  t.same(decodeMessage(encodeMessage(e)), e);
  t.equal(errorName(5, 2), 'flow_mod_failed/bad_table_id');
  t.equal(errorName(1, 13), 'bad_request/multipart_buffer_overflow');
  t.equal(errorName(0xffff, 0), 'experimenter');
  t.equal(errorName(99, 0), undefined);
});

t.test('opaque OXM entries keep their class, field and bytes', async (t) => {
  const reg3 = { field: 'opaque' as const, oxmClass: 0x0001, oxmField: 3, hasMask: true, payload: hex('0000002a ffffffff') };
  const m = flowMod({ match: [reg3] });
  const back = decodeMessage(encodeMessage(m));
  t.same(back, m);
  t.equal(oxmName(reg3), 'reg3');
});

t.test('multipart replies split with OFPMPF_REPLY_MORE join into one body', async (t) => {
  const port = (portNo: number) => ({ portNo, hwAddr: '00:00:00:00:00:01', name: `p${portNo}`, config: 0, state: 0, curr: 0, advertised: 0, supported: 0, peer: 0, currSpeed: 0, maxSpeed: 0 });
  const joined = joinMultipartReplyBodies([
    { type: 'port_desc', ports: [port(1), port(2)] },
    { type: 'port_desc', ports: [port(3)] },
  ]);
  t.same(joined.type === 'port_desc' && joined.ports.map((p) => p.portNo), [1, 2, 3]);
  const exp = joinMultipartReplyBodies([
    { type: 'experimenter', experimenter: 1, expType: 2, data: Buffer.from('ab') },
    { type: 'experimenter', experimenter: 1, expType: 2, data: Buffer.from('cd') },
  ]);
  t.same(exp.type === 'experimenter' && exp.data.toString(), 'abcd');
  t.equal(caught(() => joinMultipartReplyBodies([{ type: 'port_desc', ports: [] }, { type: 'flow', stats: [] }])).code, 'OFP_BAD_MULTIPART');
  const desc = { type: 'desc' as const, mfrDesc: '', hwDesc: '', swDesc: '', serialNum: '', dpDesc: '' };
  t.equal(caught(() => joinMultipartReplyBodies([desc, desc])).code, 'OFP_BAD_MULTIPART');
  t.equal(caught(() => joinMultipartReplyBodies([])).code, 'OFP_BAD_MULTIPART');
});

t.test('peekLength and encodingLength', async (t) => {
  const b = encodeMessage(hello(1));
  t.equal(peekLength(b), b.length);
  t.equal(peekLength(b.subarray(0, 3)), undefined);
  t.equal(encodingLength(hello(1)), 16);
});

t.test('docs/openflow.md documents exactly the error codes the codec raises', async (t) => {
  const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'openflow.md'), 'utf8');
  const rows = [...doc.matchAll(/^\| `(OFP_[A-Z_]+)` \| (.+) \|$/gm)].map((m) => [m[1]!, m[2]!.replace(/`/g, '')] as const);
  t.same(rows.map((r) => r[0]), Object.keys(OFP_ERROR_CODE_MEANINGS), 'same codes, same order');
  for (const [k, meaning] of Object.entries(OFP_ERROR_CODE_MEANINGS)) {
    t.equal(rows.find((r) => r[0] === k)?.[1], meaning, `${k}: the documented meaning is the code's`);
  }
  // Every code is one the sources can actually raise.
  const src = ['errors', 'wire', 'oxm', 'actions', 'structs', 'multipart', 'messages', 'stream']
    .map((f) => readFileSync(join(import.meta.dirname, '..', '..', 'src', 'openflow', `${f}.ts`), 'utf8'))
    .join('\n');
  for (const k of Object.keys(OFP_ERROR_CODE_MEANINGS)) t.ok(new RegExp(`new OfpError\\('${k}'`).test(src), `${k} is raised somewhere`);
});
