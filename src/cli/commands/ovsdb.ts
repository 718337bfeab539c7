/**
 * `coat ovsdb`: look into an OVSDB server with coat's own client (see docs/ovsdb.md).
 */
import { ExitCode, parseFlags, UsageError, writeJson, type CliIO, type Command } from '../command.js';
import { OvsdbClient, VSwitch, VSWITCH_DB, type Datum, type JsonValue, type Row } from '../../ovsdb/index.js';

const DEFAULT_DB = 'unix:/var/run/openvswitch/db.sock';

const HELP = `usage: coat ovsdb [--db REMOTE] VERB [ARGS] [--json]

Talks RFC 7047 to an OVSDB server (ovsdb-server) with coat's client.

verbs:
  list-dbs               databases the server holds
  schema [DB]            tables and column types of DB (default Open_vSwitch)
  dump TABLE             every row of TABLE (--columns a,b to choose columns)
  show                   bridges, ports, interfaces and controllers, as ovs-vsctl show does

options:
  --db REMOTE            unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT
                         (default $COAT_OVSDB or ${DEFAULT_DB})
  --database NAME        database for dump (default Open_vSwitch)
  --columns A,B          columns for dump
  --timeout MS           deadline for each call (default 5000)
  --json                 machine-readable output
  -h, --help             this help

Exit status: 0 ok, 64 usage, 69 the server could not be reached or refused.
`;

/** A datum in ovs-vsctl's text form: strings quoted only when they need it, [] sets, {} maps. */
export function formatDatum(d: Datum): string {
  const atom = (a: string | number | boolean) => (typeof a === 'string' ? (/^[A-Za-z0-9_.:/-]+$/.test(a) && !/^\d/.test(a) ? a : JSON.stringify(a)) : String(a));
  if (d === null) return '[]';
  if (d instanceof Map) return `{${[...d].map(([k, v]) => `${atom(k)}=${atom(v)}`).join(', ')}}`;
  if (Array.isArray(d)) return `[${d.map(atom).join(', ')}]`;
  return atom(d);
}

/** A datum as plain JSON: maps become objects, sets arrays, empty optionals null. */
export function datumToJson(d: Datum): JsonValue {
  if (d instanceof Map) return Object.fromEntries([...d].map(([k, v]) => [String(k), v]));
  return d;
}

function rowToJson(row: Record<string, Datum>): Record<string, JsonValue> {
  return Object.fromEntries(Object.entries(row).map(([k, v]) => [k, datumToJson(v)]));
}

async function show(vs: VSwitch): Promise<{ text: string; json: JsonValue }> {
  const [root, bridges, ports, ifaces, ctls] = await Promise.all([
    vs.root(),
    vs.bridges(),
    vs.rows('Port'),
    vs.rows('Interface'),
    vs.rows('Controller'),
  ]);
  const portBy = new Map(ports.map((p) => [p._uuid, p]));
  const ifaceBy = new Map(ifaces.map((i) => [i._uuid, i]));
  const ctlBy = new Map(ctls.map((c) => [c._uuid, c]));
  const lines = [root._uuid];
  const json: JsonValue[] = [];
  for (const br of [...bridges].sort((a, b) => a.name.localeCompare(b.name))) {
    lines.push(`    Bridge ${br.name}`);
    const brJson: Record<string, JsonValue> = {
      name: br.name,
      uuid: br._uuid,
      datapath_type: br.datapath_type,
      datapath_id: br.datapath_id,
      fail_mode: br.fail_mode,
      protocols: br.protocols,
      controllers: [],
      ports: [],
    };
    for (const c of br.controller.map((u) => ctlBy.get(u)).filter((c) => c !== undefined)) {
      lines.push(`        Controller "${c.target}"${c.is_connected ? '\n            is_connected: true' : ''}`);
      (brJson.controllers as JsonValue[]).push({ target: c.target, is_connected: c.is_connected, connection_mode: c.connection_mode });
    }
    if (br.fail_mode) lines.push(`        fail_mode: ${br.fail_mode}`);
    lines.push(`        datapath_type: ${br.datapath_type}`);
    for (const p of br.ports.map((u) => portBy.get(u)).filter((p) => p !== undefined).sort((a, b) => a.name.localeCompare(b.name))) {
      lines.push(`        Port ${p.name}`);
      if (p.tag !== null) lines.push(`            tag: ${p.tag}`);
      const pJson: Record<string, JsonValue> = { name: p.name, tag: p.tag, interfaces: [] };
      for (const i of p.interfaces.map((u) => ifaceBy.get(u)).filter((i) => i !== undefined)) {
        lines.push(`            Interface ${i.name}`);
        if (i.type) lines.push(`                type: ${i.type}`);
        if (i.options.size) lines.push(`                options: ${formatDatum(i.options)}`);
        if (i.ofport !== null) lines.push(`                ofport: ${i.ofport}`);
        if (i.error) lines.push(`                error: ${JSON.stringify(i.error)}`);
        (pJson.interfaces as JsonValue[]).push({ name: i.name, type: i.type, options: datumToJson(i.options), ofport: i.ofport, mac_in_use: i.mac_in_use, error: i.error });
      }
      (brJson.ports as JsonValue[]).push(pJson);
    }
    json.push(brJson);
  }
  if (root.ovs_version) lines.push(`    ovs_version: "${root.ovs_version}"`);
  return { text: lines.join('\n') + '\n', json: { uuid: root._uuid, ovs_version: root.ovs_version, bridges: json } };
}

export const command: Command = {
  summary: 'inspect an OVSDB server: list-dbs, schema, dump TABLE, show',
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parseFlags(argv, {
      db: { type: 'string' },
      database: { type: 'string' },
      columns: { type: 'string' },
      timeout: { type: 'string' },
    });
    if (values.help) {
      io.stdout.write(HELP);
      return ExitCode.ok;
    }
    const [verb, ...args] = positionals;
    if (!verb) throw new UsageError('missing VERB (list-dbs, schema, dump, show); --help for usage');
    if (!['list-dbs', 'schema', 'dump', 'show'].includes(verb)) throw new UsageError(`unknown verb ${verb} (list-dbs, schema, dump, show)`);
    if (verb === 'dump' && args.length !== 1) throw new UsageError('dump takes one TABLE');
    const timeoutMs = values.timeout === undefined ? 5000 : Number(values.timeout);
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError(`--timeout ${String(values.timeout)}: expected a positive integer (ms)`);
    const remote = (values.db as string | undefined) ?? process.env.COAT_OVSDB ?? DEFAULT_DB;
    const json = values.json === true;

    const client = await OvsdbClient.connect(remote, { timeoutMs, callTimeoutMs: timeoutMs, probeIntervalMs: 0 });
    try {
      switch (verb) {
        case 'list-dbs': {
          const dbs = await client.listDbs();
          if (json) writeJson(io.stdout, dbs);
          else io.stdout.write(dbs.map((d) => d + '\n').join(''));
          return ExitCode.ok;
        }
        case 'schema': {
          const db = args[0] ?? VSWITCH_DB;
          if (json) {
            writeJson(io.stdout, await client.call('get_schema', [db]));
            return ExitCode.ok;
          }
          const schema = await client.getSchema(db);
          const lines = [`${schema.name} ${schema.version}`];
          for (const t of [...schema.tables.values()].sort((a, b) => a.name.localeCompare(b.name))) {
            lines.push(`${t.name}${t.isRoot ? ' (root)' : ''}`);
            for (const c of t.columns.values()) {
              if (c.name.startsWith('_')) continue;
              const ty = c.type;
              const base = (b: typeof ty.key) => b.type + (b.refTable ? `->${b.refTable}` : '');
              const body = ty.value ? `map ${base(ty.key)} -> ${base(ty.value)}` : base(ty.key);
              const card = ty.min === 1 && ty.max === 1 ? '' : ` [${ty.min}..${ty.max === Infinity ? '*' : ty.max}]`;
              lines.push(`  ${c.name.padEnd(28)} ${body}${card}`);
            }
          }
          io.stdout.write(lines.join('\n') + '\n');
          return ExitCode.ok;
        }
        case 'dump': {
          const table = args[0]!;
          const db = (values.database as string | undefined) ?? VSWITCH_DB;
          const columns = typeof values.columns === 'string' ? values.columns.split(',').filter(Boolean) : undefined;
          const tx = await client.transaction(db);
          tx.select(table, [], columns);
          const [r] = await client.transact(db, tx, timeoutMs);
          const rows = (r?.op === 'select' ? r.rows : []) as Row[];
          if (json) {
            writeJson(io.stdout, rows.map(rowToJson));
            return ExitCode.ok;
          }
          const out: string[] = [];
          for (const row of rows) {
            const keys = Object.keys(row).sort((a, b) => (a === '_uuid' ? -1 : b === '_uuid' ? 1 : a.localeCompare(b)));
            const width = Math.max(...keys.map((k) => k.length));
            out.push(keys.map((k) => `${k.padEnd(width)} : ${formatDatum(row[k]!)}`).join('\n'));
          }
          io.stdout.write(out.join('\n\n') + (out.length ? '\n' : ''));
          return ExitCode.ok;
        }
        default: {
          const vs = await VSwitch.over(client, VSWITCH_DB);
          const s = await show(vs);
          if (json) writeJson(io.stdout, s.json);
          else io.stdout.write(s.text);
          return ExitCode.ok;
        }
      }
    } finally {
      client.close();
    }
  },
};
