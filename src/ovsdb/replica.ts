/**
 * A local replica of monitored tables, kept current by monitor results and notifications. Pure:
 * the client feeds it wire updates; it decodes them against the schema and reports row changes.
 *
 * Two update formats:
 * - <table-updates> (RFC 7047 §4.1.6, "monitor" / "update"): per row {"old"?, "new"?}; "new" holds
 *   the row's monitored columns after the change.
 * - <table-updates2> (ovsdb-server(7) §4.1.14, "monitor_cond" / "update2" / "update3"): per row one
 *   of "initial", "insert", "modify" (a difference, see datum.ts `applyDiff`) or "delete".
 * Initial and inserted rows omit columns equal to their default; the replica fills them in.
 */
import { OvsdbProtocolError } from './errors.js';
import { applyDiff, decodeDatum, decodeDiff, defaultDatum, type Datum, type Row } from './datum.js';
import { tableSchema, type DatabaseSchema, type TableSchema } from './schema.js';

export interface RowChange {
  table: string;
  uuid: string;
  kind: 'insert' | 'modify' | 'delete';
  old?: Row;
  new?: Row;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function malformed(msg: string): never {
  throw new OvsdbProtocolError('OVSDB_MALFORMED_REPLY', `monitor update: ${msg}`);
}

export class Replica {
  readonly tables = new Map<string, Map<string, Row>>();
  /** Columns monitored per table (all columns when the request named none). */
  private readonly columns = new Map<string, string[]>();

  constructor(
    readonly schema: DatabaseSchema,
    monitored: Record<string, string[] | undefined>,
  ) {
    for (const [name, cols] of Object.entries(monitored)) {
      const t = tableSchema(schema, name);
      this.columns.set(name, cols ?? [...t.columns.keys()].filter((c) => c !== '_uuid' && c !== '_version'));
      this.tables.set(name, new Map());
    }
  }

  /** Rows of a monitored table, by uuid. */
  table(name: string): Map<string, Row> {
    const t = this.tables.get(name);
    if (!t) throw new OvsdbProtocolError('OVSDB_MALFORMED_REPLY', `table ${name} is not monitored`);
    return t;
  }

  /** Empties every table (before a full resync after reconnect). */
  clear(): RowChange[] {
    const changes: RowChange[] = [];
    for (const [name, rows] of this.tables) {
      for (const [uuid, row] of rows) changes.push({ table: name, uuid, kind: 'delete', old: row });
      rows.clear();
    }
    return changes;
  }

  private fresh(t: TableSchema, uuid: string): Row {
    const row: Record<string, Datum> = { _uuid: uuid };
    for (const c of this.columns.get(t.name)!) row[c] = defaultDatum(t.columns.get(c)!.type);
    return row as Row;
  }

  private each(updates: unknown, fn: (t: TableSchema, rows: Map<string, Row>, uuid: string, u: Record<string, unknown>) => RowChange | undefined): RowChange[] {
    if (!isObject(updates)) malformed('<table-updates> is not an object');
    const changes: RowChange[] = [];
    for (const [tname, tu] of Object.entries(updates)) {
      const rows = this.tables.get(tname);
      if (!rows) malformed(`update for table ${tname}, which is not monitored`);
      if (!isObject(tu)) malformed(`<table-update> for ${tname} is not an object`);
      const t = tableSchema(this.schema, tname);
      for (const [uuid, u] of Object.entries(tu)) {
        if (!isObject(u)) malformed(`<row-update> ${tname}/${uuid} is not an object`);
        const c = fn(t, rows, uuid, u);
        if (c) changes.push(c);
      }
    }
    return changes;
  }

  /** Applies RFC 7047 §4.1.6 <table-updates> (monitor reply or "update" notification). */
  applyUpdate(updates: unknown): RowChange[] {
    return this.each(updates, (t, rows, uuid, u) => {
      const old = rows.get(uuid);
      if (u.new === undefined || u.new === null) {
        if (!old) return undefined;
        rows.delete(uuid);
        return { table: t.name, uuid, kind: 'delete', old };
      }
      if (!isObject(u.new)) malformed(`${t.name}/${uuid} "new" is not an object`);
      const row = old ? ({ ...old } as Row) : this.fresh(t, uuid);
      for (const [c, w] of Object.entries(u.new)) row[c] = decodeDatum(this.column(t, c), w, `${t.name}.${c}`);
      rows.set(uuid, row);
      return old ? { table: t.name, uuid, kind: 'modify', old, new: row } : { table: t.name, uuid, kind: 'insert', new: row };
    });
  }

  /** Applies <table-updates2> (monitor_cond reply, "update2", "update3"). */
  applyUpdate2(updates: unknown): RowChange[] {
    return this.each(updates, (t, rows, uuid, u) => {
      const old = rows.get(uuid);
      const body = u.initial ?? u.insert ?? u.modify;
      if ('delete' in u) {
        if (!old) return undefined;
        rows.delete(uuid);
        return { table: t.name, uuid, kind: 'delete', old };
      }
      if (!isObject(body)) malformed(`${t.name}/${uuid}: no "initial", "insert", "modify" or "delete"`);
      if ('modify' in u) {
        if (!old) malformed(`${t.name}/${uuid}: "modify" for a row the replica does not have`);
        const row = { ...old } as Row;
        for (const [c, w] of Object.entries(body)) {
          const type = this.column(t, c);
          row[c] = applyDiff(type, old[c] ?? defaultDatum(type), decodeDiff(type, w, `${t.name}.${c}`));
        }
        rows.set(uuid, row);
        return { table: t.name, uuid, kind: 'modify', old, new: row };
      }
      const row = this.fresh(t, uuid);
      for (const [c, w] of Object.entries(body)) row[c] = decodeDatum(this.column(t, c), w, `${t.name}.${c}`);
      rows.set(uuid, row);
      return old ? { table: t.name, uuid, kind: 'modify', old, new: row } : { table: t.name, uuid, kind: 'insert', new: row };
    });
  }

  private column(t: TableSchema, c: string) {
    const col = t.columns.get(c);
    if (!col) malformed(`${t.name} has no column ${c}`);
    return col.type;
  }
}
