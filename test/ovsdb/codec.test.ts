/**
 * The pure OVSDB codecs against the real Open_vSwitch schema file: datum/atom encode and decode,
 * schema checks, transactions, result decoding with the RFC 7047 error mapping, and the replica's
 * update/update2 application.
 */
import t from 'tap';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { VSWITCH_SCHEMA } from '../../lab/ovs-daemons.js';
import {
  applyDiff,
  checkTypedRows,
  columnSchema,
  decodeDatum,
  decodeDiff,
  decodeTransactResult,
  encodeDatum,
  NamedUuid,
  OPERATION_ERRORS,
  OvsdbDatumError,
  OvsdbOperationError,
  OvsdbProtocolError,
  parseColumnType,
  parseSchema,
  Replica,
  tableSchema,
  Transaction,
  type Datum,
} from '../../src/ovsdb/index.js';

const schema = parseSchema(JSON.parse(readFileSync(VSWITCH_SCHEMA, 'utf8')));
const col = (table: string, column: string) => columnSchema(tableSchema(schema, table), column).type;
const U1 = '6f3a6e0e-6d3b-4a58-9b7c-0e1f2a3b4c5d';
const U2 = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';

function errCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code ?? `untyped: ${String(err)}`;
  }
  return undefined;
}

t.test('schema: the vswitch schema parses, and the typed rows agree with it', async (t) => {
  t.equal(schema.name, 'Open_vSwitch');
  t.ok(tableSchema(schema, 'Open_vSwitch').isRoot);
  t.notOk(tableSchema(schema, 'Port').isRoot, 'ports are garbage-collected');
  t.same(col('Bridge', 'fail_mode'), { key: { type: 'string', enum: ['set', ['standalone', 'secure']] }, min: 0, max: 1 });
  t.equal(col('Open_vSwitch', 'bridges').max, Infinity);
  t.doesNotThrow(() => checkTypedRows(schema));
  const broken = parseSchema(JSON.parse(readFileSync(VSWITCH_SCHEMA, 'utf8')));
  tableSchema(broken, 'Interface').columns.get('ofport')!.type.max = 5;
  t.equal(errCode(() => checkTypedRows(broken)), 'OVSDB_SCHEMA', 'a schema disagreeing with the typed rows is refused');
  t.equal(errCode(() => tableSchema(schema, 'Nope')), 'OVSDB_SCHEMA');
  t.equal(errCode(() => parseColumnType({ key: 'string', max: 0 }, 'x')), 'OVSDB_SCHEMA');
});

t.test('datum: wire forms of each shape (RFC 7047 §5.1)', async (t) => {
  t.same(encodeDatum(col('Bridge', 'name'), 'br0', 'p'), 'br0', 'scalar: the bare atom');
  t.same(encodeDatum(col('Bridge', 'fail_mode'), null, 'p'), ['set', []], 'optional empty: the empty set');
  t.same(encodeDatum(col('Bridge', 'fail_mode'), 'secure', 'p'), ['set', ['secure']]);
  t.same(encodeDatum(col('Bridge', 'ports'), [U1, new NamedUuid('p0')], 'p'), ['set', [['uuid', U1], ['named-uuid', 'p0']]]);
  t.same(encodeDatum(col('Bridge', 'other_config'), { 'datapath-id': '0000000000000001' }, 'p'), ['map', [['datapath-id', '0000000000000001']]]);
  t.same(encodeDatum(col('Bridge', 'other_config'), new Map([['a', 'b']]), 'p'), ['map', [['a', 'b']]]);
  t.same(encodeDatum(col('Interface', 'ofport_request'), 7, 'p'), ['set', [7]]);

  t.equal(decodeDatum(col('Bridge', 'name'), 'br0', 'p'), 'br0');
  t.equal(decodeDatum(col('Bridge', 'fail_mode'), ['set', []], 'p'), null);
  t.equal(decodeDatum(col('Bridge', 'fail_mode'), 'secure', 'p'), 'secure', 'a one-element set may be the bare atom');
  t.same(decodeDatum(col('Bridge', 'ports'), ['uuid', U1], 'p'), [U1]);
  t.same(decodeDatum(col('Bridge', 'ports'), ['set', [['uuid', U1], ['uuid', U2]]], 'p'), [U1, U2]);
  t.same(decodeDatum(col('Interface', 'statistics'), ['map', [['rx_packets', 5]]], 'p'), new Map([['rx_packets', 5]]));
});

t.test('datum: values that break the schema are refused before sending, naming the path', async (t) => {
  const cases: [string, () => unknown][] = [
    ['wrong atom type', () => encodeDatum(col('Bridge', 'name'), 5, 'Bridge.name')],
    ['enum', () => encodeDatum(col('Bridge', 'fail_mode'), 'sometimes', 'Bridge.fail_mode')],
    ['set too small', () => encodeDatum(col('Port', 'interfaces'), [], 'Port.interfaces')],
    ['set too large', () => encodeDatum(col('Bridge', 'fail_mode'), ['secure', 'standalone'], 'Bridge.fail_mode')],
    ['integer range', () => encodeDatum(col('Interface', 'ofport_request'), 70000, 'Interface.ofport_request')],
    ['not a uuid', () => encodeDatum(col('Bridge', 'ports'), ['nope'], 'Bridge.ports')],
    ['unsafe integer', () => encodeDatum(col('Open_vSwitch', 'next_cfg'), 2 ** 60, 'x')],
    ['bigint beyond 2^53', () => encodeDatum(col('Open_vSwitch', 'next_cfg'), 2n ** 60n, 'x')],
    ['map value type', () => encodeDatum(col('Bridge', 'other_config'), { a: 1 }, 'x')],
    ['bad named-uuid', () => new NamedUuid('1abc')],
    ['decode: wrong wire type', () => decodeDatum(col('Interface', 'ofport'), 'one', 'x')],
    ['decode: malformed uuid', () => decodeDatum(col('Bridge', 'ports'), ['uuid', 'zz'], 'x')],
    ['decode: map not a map', () => decodeDatum(col('Bridge', 'other_config'), ['set', []], 'x')],
    ['decode: scalar with two atoms', () => decodeDatum(col('Bridge', 'name'), ['set', ['a', 'b']], 'x')],
  ];
  for (const [what, fn] of cases) t.equal(errCode(fn), 'OVSDB_DATUM', what);
  try {
    encodeDatum(col('Bridge', 'other_config'), { 'datapath-id': 7 }, 'Bridge.other_config');
  } catch (err) {
    t.ok(err instanceof OvsdbDatumError);
    t.equal((err as OvsdbDatumError).path, 'Bridge.other_config[datapath-id]');
  }
});

t.test('datum: encode then decode is the identity (property)', async () => {
  const str = fc.string({ maxLength: 8 });
  fc.assert(
    fc.property(fc.dictionary(str, str), fc.uniqueArray(fc.integer({ min: 0, max: 4095 }), { maxLength: 20 }), fc.option(fc.integer({ min: 1, max: 65279 }), { nil: null }), (map, vlans, ofp) => {
      const m = decodeDatum(col('Bridge', 'other_config'), encodeDatum(col('Bridge', 'other_config'), map, 'x'), 'x') as Map<string, string>;
      const v = decodeDatum(col('Bridge', 'flood_vlans'), JSON.parse(JSON.stringify(encodeDatum(col('Bridge', 'flood_vlans'), vlans, 'x'))), 'x');
      const o = decodeDatum(col('Interface', 'ofport_request'), encodeDatum(col('Interface', 'ofport_request'), ofp, 'x'), 'x');
      return JSON.stringify(Object.fromEntries(m)) === JSON.stringify(map) && JSON.stringify(v) === JSON.stringify(vlans) && o === ofp;
    }),
  );
});

t.test('update2 diffs (ovsdb-server(7) §4.1.14): diff(old,new) applied to old gives new (property)', async () => {
  const setDiff = (a: number[], b: number[]) => [...a.filter((x) => !b.includes(x)), ...b.filter((x) => !a.includes(x))];
  const mapDiff = (a: Record<string, string>, b: Record<string, string>) => {
    const d: [string, string][] = [];
    for (const [k, v] of Object.entries(a)) if (!(k in b)) d.push([k, v]);
    for (const [k, v] of Object.entries(b)) if (a[k] !== v) d.push([k, v]);
    return d;
  };
  const str = fc.constantFrom('a', 'b', 'c', 'd');
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 0, max: 30 })),
      fc.uniqueArray(fc.integer({ min: 0, max: 30 })),
      fc.dictionary(str, str),
      fc.dictionary(str, str),
      fc.option(fc.constantFrom('secure', 'standalone'), { nil: null }),
      fc.option(fc.constantFrom('secure', 'standalone'), { nil: null }),
      (s1, s2, m1, m2, o1, o2) => {
        const sT = col('Bridge', 'flood_vlans');
        const mT = col('Bridge', 'other_config');
        const oT = col('Bridge', 'fail_mode');
        const s = applyDiff(sT, s1, decodeDiff(sT, ['set', setDiff(s1, s2)], 'x')) as number[];
        const m = applyDiff(mT, new Map(Object.entries(m1)), decodeDiff(mT, ['map', mapDiff(m1, m2)], 'x')) as Map<string, string>;
        const od = o1 === o2 ? [] : [o1, o2].filter((x) => x !== null);
        const o = applyDiff(oT, o1, decodeDiff(oT, ['set', od], 'x'));
        return (
          JSON.stringify([...s].sort((a, b) => a - b)) === JSON.stringify([...s2].sort((a, b) => a - b)) &&
          JSON.stringify(Object.fromEntries([...m].sort())) === JSON.stringify(Object.fromEntries(Object.entries(m2).sort())) &&
          o === o2
        );
      },
    ),
  );
});

t.test('transaction builder: every RFC 7047 §5.2 operation in wire form', async (t) => {
  const tx = new Transaction(schema);
  const iface = tx.insert('Interface', { name: 'p1', type: 'internal' }, { uuidName: 'iface' });
  tx.insert('Port', { name: 'p1', interfaces: [iface] });
  tx.select('Bridge', [['name', '==', 'br0']], ['name', 'ports']);
  tx.update('Bridge', [['_uuid', '==', U1]], { fail_mode: 'secure' });
  tx.mutate('Bridge', [['name', '==', 'br0']], [['ports', 'insert', [U2]], ['other_config', 'delete', ['hwaddr']]]);
  tx.mutate('Open_vSwitch', [], [['next_cfg', '+=', 1]]);
  tx.delete('Port', [['name', '!=', 'x']]);
  tx.wait('Bridge', [['name', '==', 'br0']], ['name'], '==', [{ name: 'br0' }], 0);
  tx.commit(false).abort().comment('hi').assert('lk');
  t.same(tx.operations, [
    { op: 'insert', table: 'Interface', row: { name: 'p1', type: 'internal' }, 'uuid-name': 'iface' },
    { op: 'insert', table: 'Port', row: { name: 'p1', interfaces: ['set', [['named-uuid', 'iface']]] }, 'uuid-name': 'Port_0' },
    { op: 'select', table: 'Bridge', where: [['name', '==', 'br0']], columns: ['name', 'ports'] },
    { op: 'update', table: 'Bridge', where: [['_uuid', '==', ['uuid', U1]]], row: { fail_mode: ['set', ['secure']] } },
    { op: 'mutate', table: 'Bridge', where: [['name', '==', 'br0']], mutations: [['ports', 'insert', ['set', [['uuid', U2]]]], ['other_config', 'delete', ['set', ['hwaddr']]]] },
    { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['next_cfg', '+=', 1]] },
    { op: 'delete', table: 'Port', where: [['name', '!=', 'x']] },
    { op: 'wait', table: 'Bridge', where: [['name', '==', 'br0']], columns: ['name'], until: '==', rows: [{ name: 'br0' }], timeout: 0 },
    { op: 'commit', durable: false },
    { op: 'abort' },
    { op: 'comment', comment: 'hi' },
    { op: 'assert', lock: 'lk' },
  ]);
  t.equal(errCode(() => tx.select('Bridge', [['name', '<', 'x']])), 'OVSDB_DATUM', 'ordering on a string');
  t.equal(errCode(() => tx.update('Bridge', [], { nope: 1 })), 'OVSDB_SCHEMA', 'unknown column');
  t.equal(errCode(() => tx.insert('Bridge', { _uuid: U1 })), 'OVSDB_DATUM', '_uuid is read-only');
});

t.test('transact results: decoded per operation; each RFC 7047 error string maps to its class and names the operation', async (t) => {
  const tx = new Transaction(schema);
  tx.insert('Bridge', { name: 'b' });
  tx.select('Bridge', [], ['name', 'fail_mode']);
  tx.delete('Bridge', [['name', '==', 'b']]);
  const ok = decodeTransactResult(schema, tx.operations, [{ uuid: ['uuid', U1] }, { rows: [{ name: 'b', fail_mode: ['set', []] }] }, { count: 1 }]);
  t.same(ok, [{ op: 'insert', uuid: U1 }, { op: 'select', rows: [{ name: 'b', fail_mode: null }] }, { op: 'delete', count: 1 }]);

  const codes = new Set<string>();
  for (const [text, Cls] of Object.entries(OPERATION_ERRORS)) {
    let err: unknown;
    try {
      decodeTransactResult(schema, tx.operations, [{ uuid: ['uuid', U1] }, { error: text, details: 'why' }, null]);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof Cls, `${text} -> ${Cls.name}`);
    t.equal((err as OvsdbOperationError).index, 1);
    t.equal((err as OvsdbOperationError).op, 'select');
    t.equal((err as OvsdbOperationError).details, 'why');
    codes.add((err as OvsdbOperationError).code);
  }
  t.equal(codes.size, 11, 'eleven RFC 7047 errors, eleven codes');
  let commitErr: unknown;
  try {
    decodeTransactResult(schema, tx.operations, [{ uuid: ['uuid', U1] }, { rows: [] }, { count: 0 }, { error: 'referential integrity violation' }]);
  } catch (e) {
    commitErr = e;
  }
  t.equal((commitErr as OvsdbOperationError).code, 'OVSDB_REFERENTIAL_INTEGRITY');
  t.equal((commitErr as OvsdbOperationError).index, 3, 'the commit failure is the extra element');
  t.equal((commitErr as OvsdbOperationError).op, 'commit');
  t.equal(errCode(() => decodeTransactResult(schema, tx.operations, [{ error: 'syntax error or unknown column' }])), 'OVSDB_OPERATION_FAILED');
  t.equal(errCode(() => decodeTransactResult(schema, tx.operations, { not: 'array' })), 'OVSDB_MALFORMED_REPLY');
  t.equal(errCode(() => decodeTransactResult(schema, tx.operations, [{ uuid: 'x' }, { rows: [] }, { count: 0 }])), 'OVSDB_MALFORMED_REPLY');
  t.equal(errCode(() => decodeTransactResult(schema, tx.operations, [{ uuid: ['uuid', U1] }])), 'OVSDB_MALFORMED_REPLY', 'too few results');
  t.ok(new OvsdbProtocolError('OVSDB_MALFORMED_REPLY', 'x') instanceof Error);
});

t.test('replica: update (RFC 7047 §4.1.6) and update2 (initial/insert/modify/delete), defaults filled in', async (t) => {
  const r = new Replica(schema, { Bridge: ['name', 'ports', 'other_config', 'fail_mode'] });
  let ch = r.applyUpdate2({ Bridge: { [U1]: { initial: { name: 'br0' } } } });
  t.same(ch.map((c) => c.kind), ['insert']);
  t.same(r.table('Bridge').get(U1), { _uuid: U1, name: 'br0', ports: [], other_config: new Map(), fail_mode: null });
  ch = r.applyUpdate2({ Bridge: { [U1]: { modify: { ports: ['uuid', U2], other_config: ['map', [['a', '1']]], fail_mode: 'secure' } } } });
  t.same(ch[0]!.kind, 'modify');
  t.same(r.table('Bridge').get(U1)!.ports, [U2]);
  r.applyUpdate2({ Bridge: { [U1]: { modify: { ports: ['uuid', U2], other_config: ['map', [['a', '1'], ['b', '2']]], fail_mode: ['set', ['secure', 'standalone']] } } } });
  const row = r.table('Bridge').get(U1)!;
  t.same(row.ports, []);
  t.same(row.other_config, new Map([['b', '2']]));
  t.equal(row.fail_mode, 'standalone');
  ch = r.applyUpdate2({ Bridge: { [U1]: { delete: null } } });
  t.same(ch.map((c) => [c.kind, (c.old as Record<string, Datum>).name]), [['delete', 'br0']]);
  t.equal(r.table('Bridge').size, 0);

  r.applyUpdate({ Bridge: { [U2]: { new: { name: 'br1', ports: ['set', []], other_config: ['map', []], fail_mode: ['set', []] } } } });
  r.applyUpdate({ Bridge: { [U2]: { old: { name: 'br1' }, new: { name: 'br2', ports: ['set', []], other_config: ['map', []], fail_mode: ['set', []] } } } });
  t.equal(r.table('Bridge').get(U2)!.name, 'br2');
  r.applyUpdate({ Bridge: { [U2]: { old: { name: 'br2' } } } });
  t.equal(r.table('Bridge').size, 0);

  t.equal(errCode(() => r.applyUpdate2({ Port: {} })), 'OVSDB_MALFORMED_REPLY', 'table not monitored');
  t.equal(errCode(() => r.applyUpdate2({ Bridge: { [U1]: { modify: { name: 'x' } } } })), 'OVSDB_MALFORMED_REPLY', 'modify of an unknown row');
  t.equal(errCode(() => r.applyUpdate2({ Bridge: { [U1]: { insert: { name: 3 } } } })), 'OVSDB_DATUM');
});

t.test('every error code raised in src/ovsdb is documented in docs/ovsdb.md', async (t) => {
  const { readdirSync } = await import('node:fs');
  const dir = new URL('../../src/ovsdb/', import.meta.url);
  const docs = readFileSync(new URL('../../docs/ovsdb.md', import.meta.url), 'utf8');
  const codes = new Set<string>();
  for (const f of readdirSync(dir)) {
    for (const m of readFileSync(new URL(f, dir), 'utf8').matchAll(/'(OVSDB_[A-Z0-9_]+)'/g)) codes.add(m[1]!);
  }
  t.ok(codes.size >= 25, `${codes.size} codes found`);
  for (const code of codes) t.ok(docs.includes('`' + code + '`'), `${code} documented`);
  for (const [text, Cls] of Object.entries(OPERATION_ERRORS)) t.ok(docs.includes(Cls.name), `${text}: ${Cls.name} documented`);
});
