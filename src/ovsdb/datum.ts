/**
 * OVSDB atoms and datums (RFC 7047 §5.1) <-> JS values, checked against the column type from the
 * schema. Pure.
 *
 * JS shapes, chosen by the column type (schema.ts `columnShape`):
 * - scalar   (min 1, max 1):  the atom itself;
 * - optional (min 0, max 1):  the atom or `null` (wire: the empty set);
 * - set      (max > 1):       an array of atoms;
 * - map      (value present): a `Map` from key atom to value atom.
 * Atoms: integer and real -> number, boolean -> boolean, string -> string, uuid -> the UUID string
 * (wire `["uuid", "..."]`). A reference to a row inserted earlier in the same transaction is a
 * `NamedUuid` (wire `["named-uuid", "..."]`, RFC 7047 §5.1), accepted only when encoding.
 *
 * Integers travel as JSON numbers; JSON.parse keeps them exact up to 2^53, so the encoder refuses
 * integers that are not safe integers rather than send a rounded value.
 */
import { OvsdbDatumError } from './errors.js';
import type { JsonValue } from './jsonrpc.js';
import { columnShape, columnSchema, type BaseType, type ColumnType, type TableSchema } from './schema.js';

/** A reference to the row an `insert` with this uuid-name creates (RFC 7047 §5.2.1). */
export class NamedUuid {
  constructor(readonly name: string) {
    if (!NAMED_UUID.test(name)) throw new OvsdbDatumError('OVSDB_DATUM', 'named-uuid', `${JSON.stringify(name)} is not an <id> ([_a-zA-Z][_a-zA-Z0-9]*)`);
  }
  toJSON(): WireAtom {
    return ['named-uuid', this.name];
  }
}

export type Atom = number | boolean | string;
export type AtomInput = Atom | NamedUuid;
export type Datum = Atom | null | Atom[] | Map<Atom, Atom>;
export type DatumInput = AtomInput | null | undefined | AtomInput[] | Set<AtomInput> | Map<AtomInput, AtomInput> | Record<string, AtomInput>;

/** Wire forms (RFC 7047 §5.1). */
export type WireAtom = number | boolean | string | ['uuid', string] | ['named-uuid', string];
export type WireSet = ['set', WireAtom[]];
export type WireMap = ['map', [WireAtom, WireAtom][]];
export type WireDatum = WireAtom | WireSet | WireMap;
export type WireRow = Record<string, WireDatum>;

export const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const NAMED_UUID = /^[_a-zA-Z][_a-zA-Z0-9]*$/;
export const ZERO_UUID = '00000000-0000-0000-0000-000000000000';

function fail(path: string, msg: string): never {
  throw new OvsdbDatumError('OVSDB_DATUM', path, msg);
}

// ---- atoms -------------------------------------------------------------------------------------

/** Checks an atom against its base type's constraints (RFC 7047 §3.2 <base-type>). */
function checkConstraints(base: BaseType, v: Atom, path: string): void {
  if (base.enum !== undefined) {
    const allowed = decodeEnum(base);
    if (!allowed.includes(v)) fail(path, `${JSON.stringify(v)} is not one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
  }
  if (typeof v === 'number') {
    const lo = base.type === 'integer' ? base.minInteger : base.minReal;
    const hi = base.type === 'integer' ? base.maxInteger : base.maxReal;
    if (lo !== undefined && v < lo) fail(path, `${v} is below the minimum ${lo}`);
    if (hi !== undefined && v > hi) fail(path, `${v} is above the maximum ${hi}`);
  }
  if (typeof v === 'string' && base.type === 'string') {
    // RFC 7047 §3.2: the length of a string is counted in Unicode code points, as ovsdb-server does.
    const n = [...v].length;
    if (base.minLength !== undefined && n < base.minLength) fail(path, `string of ${n} characters is shorter than ${base.minLength}`);
    if (base.maxLength !== undefined && n > base.maxLength) fail(path, `string of ${n} characters is longer than ${base.maxLength}`);
  }
}

const enumCache = new WeakMap<BaseType, Atom[]>();

function decodeEnum(base: BaseType): Atom[] {
  let out = enumCache.get(base);
  if (!out) {
    const e = base.enum as JsonValue;
    const items = Array.isArray(e) && e[0] === 'set' && Array.isArray(e[1]) ? e[1] : [e];
    out = items.map((a, i) => decodeAtom({ type: base.type }, a, `enum[${i}]`));
    enumCache.set(base, out);
  }
  return out;
}

export function encodeAtom(base: BaseType, v: unknown, path: string): WireAtom {
  switch (base.type) {
    case 'integer':
      if (typeof v === 'bigint') {
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) fail(path, `integer ${v} does not fit a JSON number exactly`);
        v = Number(v);
      }
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail(path, `expected an integer, got ${describe(v)}`);
      break;
    case 'real':
      if (typeof v !== 'number' || !Number.isFinite(v)) fail(path, `expected a real, got ${describe(v)}`);
      break;
    case 'boolean':
      if (typeof v !== 'boolean') fail(path, `expected a boolean, got ${describe(v)}`);
      break;
    case 'string':
      if (typeof v !== 'string') fail(path, `expected a string, got ${describe(v)}`);
      break;
    case 'uuid':
      if (v instanceof NamedUuid) return ['named-uuid', v.name];
      if (typeof v !== 'string' || !UUID.test(v)) fail(path, `expected a UUID, got ${describe(v)}`);
      return ['uuid', v.toLowerCase()];
  }
  checkConstraints(base, v as Atom, path);
  return v as Atom;
}

export function decodeAtom(base: BaseType, w: unknown, path: string): Atom {
  switch (base.type) {
    case 'integer':
      if (typeof w !== 'number' || !Number.isInteger(w)) fail(path, `expected an integer atom, got ${describe(w)}`);
      return w;
    case 'real':
      if (typeof w !== 'number') fail(path, `expected a real atom, got ${describe(w)}`);
      return w;
    case 'boolean':
      if (typeof w !== 'boolean') fail(path, `expected a boolean atom, got ${describe(w)}`);
      return w;
    case 'string':
      if (typeof w !== 'string') fail(path, `expected a string atom, got ${describe(w)}`);
      return w;
    case 'uuid':
      if (!Array.isArray(w) || w.length !== 2 || w[0] !== 'uuid' || typeof w[1] !== 'string' || !UUID.test(w[1])) {
        fail(path, `expected ["uuid", <uuid>], got ${describe(w)}`);
      }
      return w[1] as string;
  }
}

function describe(v: unknown): string {
  if (v instanceof NamedUuid) return `named-uuid ${v.name}`;
  if (typeof v === 'bigint') return `bigint ${v}`;
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + '...' : s;
}

// ---- datums ------------------------------------------------------------------------------------

export interface EncodeOptions {
  /**
   * Skip the min/max element count: mutation and condition values are sets of any size
   * (RFC 7047 §5.1 <mutation> "insert"/"delete", <condition> "includes"/"excludes").
   */
  anySize?: boolean;
}

function checkSize(t: ColumnType, n: number, path: string, opts: EncodeOptions): void {
  if (opts.anySize) return;
  if (n < t.min) fail(path, `needs at least ${t.min} element(s), got ${n}`);
  if (n > t.max) fail(path, `takes at most ${t.max} element(s), got ${n}`);
}

function entriesOf(v: unknown, path: string): [unknown, unknown][] {
  if (v instanceof Map) return [...v.entries()];
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Set) && !(v instanceof NamedUuid)) return Object.entries(v);
  fail(path, `expected a Map or an object, got ${describe(v)}`);
}

/** A JS object key is always a string; give integer- and boolean-keyed maps their atom back. */
function keyFromObject(base: BaseType, k: unknown): unknown {
  if (typeof k !== 'string') return k;
  if (base.type === 'integer' || base.type === 'real') return k.trim() === '' ? k : Number(k);
  if (base.type === 'boolean') return k === 'true' ? true : k === 'false' ? false : k;
  return k;
}

export function encodeDatum(t: ColumnType, v: unknown, path: string, opts: EncodeOptions = {}): WireDatum {
  if (t.value) {
    const entries = entriesOf(v ?? new Map(), path);
    checkSize(t, entries.length, path, opts);
    const pairs: [WireAtom, WireAtom][] = entries.map(([k, val]) => {
      const key = keyFromObject(t.key, k);
      return [encodeAtom(t.key, key, `${path}[${String(k)}]`), encodeAtom(t.value!, val, `${path}[${String(k)}]`)];
    });
    return ['map', pairs];
  }
  let items: unknown[];
  if (v === null || v === undefined) items = [];
  else if (Array.isArray(v)) items = v;
  else if (v instanceof Set) items = [...v];
  else items = [v];
  checkSize(t, items.length, path, opts);
  const atoms = items.map((a, i) => encodeAtom(t.key, a, items.length > 1 ? `${path}[${i}]` : path));
  // RFC 7047 §5.1: a one-element set may be sent as the bare atom; scalars always are.
  if (atoms.length === 1 && columnShape(t) === 'scalar') return atoms[0]!;
  return ['set', atoms];
}

function wireSetItems(w: unknown, path: string): unknown[] {
  if (Array.isArray(w) && w[0] === 'set') {
    if (w.length !== 2 || !Array.isArray(w[1])) fail(path, 'malformed ["set", [...]]');
    return w[1];
  }
  return [w]; // RFC 7047 §5.1: a set of exactly one atom may be the atom itself
}

export function decodeDatum(t: ColumnType, w: unknown, path: string): Datum {
  const shape = columnShape(t);
  if (shape === 'map') {
    if (!Array.isArray(w) || w[0] !== 'map' || w.length !== 2 || !Array.isArray(w[1])) fail(path, `expected ["map", [...]], got ${describe(w)}`);
    const out = new Map<Atom, Atom>();
    for (const pair of w[1] as unknown[]) {
      if (!Array.isArray(pair) || pair.length !== 2) fail(path, `map entry is not a [key, value] pair: ${describe(pair)}`);
      const k = decodeAtom(t.key, pair[0], `${path}[key]`);
      out.set(k, decodeAtom(t.value!, pair[1], `${path}[${String(k)}]`));
    }
    return out;
  }
  const atoms = wireSetItems(w, path).map((a) => decodeAtom(t.key, a, path));
  if (shape === 'scalar') {
    if (atoms.length !== 1) fail(path, `expected exactly one atom, got ${atoms.length}`);
    return atoms[0]!;
  }
  if (shape === 'optional') {
    if (atoms.length > 1) fail(path, `expected at most one atom, got ${atoms.length}`);
    return atoms[0] ?? null;
  }
  return atoms;
}

/** RFC 7047 §5.1: the default of a column: the empty set/map, or the atom type's zero for scalars. */
export function defaultDatum(t: ColumnType): Datum {
  switch (columnShape(t)) {
    case 'map':
      return new Map();
    case 'set':
      return [];
    case 'optional':
      return null;
    case 'scalar':
      switch (t.key.type) {
        case 'integer':
        case 'real':
          return 0;
        case 'boolean':
          return false;
        case 'string':
          return '';
        case 'uuid':
          return ZERO_UUID;
      }
  }
}

// ---- rows --------------------------------------------------------------------------------------

/** A decoded row: column name -> datum, plus `_uuid`. */
export type Row = Record<string, Datum> & { _uuid: string };

export function encodeRow(table: TableSchema, row: Record<string, unknown>): WireRow {
  const out: WireRow = {};
  for (const [name, v] of Object.entries(row)) {
    if (v === undefined) continue;
    if (name === '_uuid' || name === '_version') fail(`${table.name}.${name}`, 'is read-only');
    out[name] = encodeDatum(columnSchema(table, name).type, v, `${table.name}.${name}`);
  }
  return out;
}

/** Decodes the columns present in a wire row (a select result or a monitor <row>). */
export function decodeRow(table: TableSchema, w: unknown, path = table.name): Record<string, Datum> {
  if (typeof w !== 'object' || w === null || Array.isArray(w)) fail(path, `row is not an object: ${describe(w)}`);
  const out: Record<string, Datum> = {};
  for (const [name, v] of Object.entries(w)) {
    const col = table.columns.get(name);
    if (!col) fail(`${path}.${name}`, `no column ${name} in table ${table.name}`);
    out[name] = decodeDatum(col.type, v, `${path}.${name}`);
  }
  return out;
}

// ---- comparison and update2 diffs ----------------------------------------------------------------

export function datumEquals(a: Datum, b: Datum): boolean {
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map) || !(b instanceof Map) || a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || b.get(k) !== v) return false;
    return true;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    const s = new Set<Atom>(a);
    return b.every((x) => s.has(x));
  }
  return a === b;
}

/**
 * Decodes an update2 "modify" difference for one column (ovsdb-server(7) §4.1.14). A scalar's
 * difference is its new value; for sets (also optional columns, sets of at most one) it is a set of
 * any size; for maps a map.
 */
export function decodeDiff(t: ColumnType, w: unknown, path: string): Datum {
  const shape = columnShape(t);
  if (shape === 'scalar' || shape === 'map') return decodeDatum(t, w, path);
  return wireSetItems(w, path).map((a) => decodeAtom(t.key, a, path));
}

/**
 * Applies a decoded update2 difference to a column value: a set's difference is the elements in
 * exactly one of old and new; a map's is the pairs whose key is in one map only, plus the changed
 * pairs with their new value.
 */
export function applyDiff(t: ColumnType, old: Datum, diff: Datum): Datum {
  const shape = columnShape(t);
  if (shape === 'scalar') return diff;
  if (shape === 'map') {
    const out = new Map<Atom, Atom>(old instanceof Map ? old : []);
    for (const [k, v] of diff instanceof Map ? diff : []) {
      if (out.has(k) && out.get(k) === v) out.delete(k);
      else out.set(k, v);
    }
    return out;
  }
  const before: Atom[] = Array.isArray(old) ? old : old === null || old instanceof Map ? [] : [old];
  const out = new Set<Atom>(before);
  for (const x of Array.isArray(diff) ? diff : []) {
    if (out.has(x)) out.delete(x);
    else out.add(x);
  }
  const items = [...out];
  return shape === 'optional' ? (items[0] ?? null) : items;
}
