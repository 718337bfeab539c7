/**
 * OVSDB schema (RFC 7047 §3.2), parsed from the JSON `get_schema` returns. Pure.
 */
import { OvsdbDatumError } from './errors.js';
import type { JsonValue } from './jsonrpc.js';

/** RFC 7047 §3.2 <atomic-type>. */
export const ATOMIC_TYPES = ['integer', 'real', 'boolean', 'string', 'uuid'] as const;
export type AtomicType = (typeof ATOMIC_TYPES)[number];

/** RFC 7047 §3.2 <base-type>, with its constraints. */
export interface BaseType {
  type: AtomicType;
  /** Allowed values, kept in wire form and checked by the datum codec. */
  enum?: JsonValue;
  minInteger?: number;
  maxInteger?: number;
  minReal?: number;
  maxReal?: number;
  minLength?: number;
  maxLength?: number;
  refTable?: string;
  refType?: 'strong' | 'weak';
}

/** RFC 7047 §3.2 <column-type>: a set of `key` (or a map key -> value) with `min`..`max` elements. */
export interface ColumnType {
  key: BaseType;
  value?: BaseType;
  min: number;
  max: number; // Infinity for "unlimited"
}

export interface ColumnSchema {
  name: string;
  type: ColumnType;
  ephemeral: boolean;
  mutable: boolean;
}

export interface TableSchema {
  name: string;
  columns: Map<string, ColumnSchema>;
  maxRows?: number;
  isRoot: boolean;
  indexes: string[][];
}

export interface DatabaseSchema {
  name: string;
  version: string;
  cksum?: string;
  tables: Map<string, TableSchema>;
}

/** The shape a column's values take in JS (see datum.ts). */
export type ColumnShape = 'scalar' | 'optional' | 'set' | 'map';

export function columnShape(t: ColumnType): ColumnShape {
  if (t.value) return 'map';
  if (t.min === 1 && t.max === 1) return 'scalar';
  if (t.min === 0 && t.max === 1) return 'optional';
  return 'set';
}

function fail(path: string, msg: string): never {
  throw new OvsdbDatumError('OVSDB_SCHEMA', path, msg);
}

function isObject(v: unknown): v is Record<string, JsonValue> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseAtomicType(v: unknown, path: string): AtomicType {
  if (typeof v !== 'string' || !(ATOMIC_TYPES as readonly string[]).includes(v)) fail(path, `unknown atomic type ${JSON.stringify(v)}`);
  return v as AtomicType;
}

function num(v: unknown, path: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number') fail(path, 'not a number');
  return v;
}

export function parseBaseType(v: unknown, path: string): BaseType {
  if (typeof v === 'string') return { type: parseAtomicType(v, path) };
  if (!isObject(v)) fail(path, 'base type is neither a string nor an object');
  const base: BaseType = { type: parseAtomicType(v.type, `${path}.type`) };
  if (v.enum !== undefined) base.enum = v.enum;
  for (const k of ['minInteger', 'maxInteger', 'minReal', 'maxReal', 'minLength', 'maxLength'] as const) {
    const n = num(v[k], `${path}.${k}`);
    if (n !== undefined) base[k] = n;
  }
  if (v.refTable !== undefined) {
    if (typeof v.refTable !== 'string') fail(`${path}.refTable`, 'not a string');
    base.refTable = v.refTable;
    base.refType = v.refType === 'weak' ? 'weak' : 'strong';
  }
  return base;
}

export function parseColumnType(v: unknown, path: string): ColumnType {
  if (typeof v === 'string') return { key: { type: parseAtomicType(v, path) }, min: 1, max: 1 };
  if (!isObject(v)) fail(path, 'column type is neither a string nor an object');
  const t: ColumnType = { key: parseBaseType(v.key, `${path}.key`), min: 1, max: 1 };
  if (v.value !== undefined) t.value = parseBaseType(v.value, `${path}.value`);
  if (v.min !== undefined) {
    if (v.min !== 0 && v.min !== 1) fail(`${path}.min`, 'must be 0 or 1');
    t.min = v.min;
  }
  if (v.max !== undefined) {
    if (v.max === 'unlimited') t.max = Infinity;
    else if (typeof v.max === 'number' && Number.isInteger(v.max) && v.max >= 1) t.max = v.max;
    else fail(`${path}.max`, 'must be a positive integer or "unlimited"');
  }
  if (t.min > t.max) fail(path, 'min > max');
  return t;
}

/** RFC 7047 §3.2: columns every table has without declaring them. */
const IMPLICIT_COLUMNS: ColumnSchema[] = [
  { name: '_uuid', type: { key: { type: 'uuid' }, min: 1, max: 1 }, ephemeral: false, mutable: false },
  { name: '_version', type: { key: { type: 'uuid' }, min: 1, max: 1 }, ephemeral: false, mutable: false },
];

export function parseSchema(v: unknown): DatabaseSchema {
  if (!isObject(v)) fail('schema', 'not an object');
  if (typeof v.name !== 'string') fail('schema.name', 'not a string');
  if (!isObject(v.tables)) fail('schema.tables', 'not an object');
  const tables = new Map<string, TableSchema>();
  for (const [tname, tv] of Object.entries(v.tables)) {
    if (!isObject(tv) || !isObject(tv.columns)) fail(tname, 'table has no "columns" object');
    const columns = new Map<string, ColumnSchema>();
    for (const c of IMPLICIT_COLUMNS) columns.set(c.name, c);
    for (const [cname, cv] of Object.entries(tv.columns)) {
      if (!isObject(cv)) fail(`${tname}.${cname}`, 'column is not an object');
      columns.set(cname, {
        name: cname,
        type: parseColumnType(cv.type, `${tname}.${cname}`),
        ephemeral: cv.ephemeral === true,
        mutable: cv.mutable !== false,
      });
    }
    const table: TableSchema = {
      name: tname,
      columns,
      isRoot: tv.isRoot === true,
      indexes: Array.isArray(tv.indexes) ? (tv.indexes.filter(Array.isArray) as string[][]) : [],
    };
    if (typeof tv.maxRows === 'number') table.maxRows = tv.maxRows;
    tables.set(tname, table);
  }
  const schema: DatabaseSchema = { name: v.name, version: typeof v.version === 'string' ? v.version : '', tables };
  if (typeof v.cksum === 'string') schema.cksum = v.cksum;
  return schema;
}

export function tableSchema(schema: DatabaseSchema, table: string): TableSchema {
  const t = schema.tables.get(table);
  if (!t) fail(table, `no table ${table} in database ${schema.name}`);
  return t;
}

export function columnSchema(table: TableSchema, column: string): ColumnSchema {
  const c = table.columns.get(column);
  if (!c) fail(`${table.name}.${column}`, `no column ${column} in table ${table.name}`);
  return c;
}
