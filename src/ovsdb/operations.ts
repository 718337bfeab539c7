/**
 * Transactions (RFC 7047 §4.1.3, §5.2): a builder that turns JS values into wire operations checked
 * against the schema, and the decoder of `transact` results that maps a failed operation to its
 * typed error. Pure.
 */
import { operationErrorFor, OvsdbDatumError, OvsdbProtocolError } from './errors.js';
import { decodeAtom, decodeRow, encodeAtom, encodeDatum, encodeRow, NamedUuid, type Datum, type WireDatum, type WireRow } from './datum.js';
import type { JsonValue } from './jsonrpc.js';
import { columnSchema, tableSchema, type DatabaseSchema, type TableSchema } from './schema.js';

/** RFC 7047 §5.1 <function>. */
export type ConditionFunction = '<' | '<=' | '==' | '!=' | '>=' | '>' | 'includes' | 'excludes';
/** RFC 7047 §5.1 <mutator>. */
export type Mutator = '+=' | '-=' | '*=' | '/=' | '%=' | 'insert' | 'delete';

/** A condition in JS form: [column, function, value]. */
export type Condition = readonly [column: string, fn: ConditionFunction, value: unknown];
export type Mutation = readonly [column: string, mutator: Mutator, value: unknown];

export type WireCondition = [string, ConditionFunction, WireDatum];
export type WireMutation = [string, Mutator, WireDatum];

/** RFC 7047 §5.2 operations, in wire form. */
export type WireOperation =
  | { op: 'insert'; table: string; row: WireRow; 'uuid-name'?: string }
  | { op: 'select'; table: string; where: WireCondition[]; columns?: string[] }
  | { op: 'update'; table: string; where: WireCondition[]; row: WireRow }
  | { op: 'mutate'; table: string; where: WireCondition[]; mutations: WireMutation[] }
  | { op: 'delete'; table: string; where: WireCondition[] }
  | { op: 'wait'; table: string; where: WireCondition[]; columns: string[]; until: '==' | '!='; rows: WireRow[]; timeout?: number }
  | { op: 'commit'; durable: boolean }
  | { op: 'abort' }
  | { op: 'comment'; comment: string }
  | { op: 'assert'; lock: string };

/** Decoded result of one operation (RFC 7047 §5.2.x "result"). */
export type OperationResult =
  | { op: 'insert'; uuid: string }
  | { op: 'select'; rows: Record<string, Datum>[] }
  | { op: 'update' | 'mutate' | 'delete'; count: number }
  | { op: 'wait' | 'commit' | 'abort' | 'comment' | 'assert' };

const ORDERING: ReadonlySet<ConditionFunction> = new Set(['<', '<=', '>=', '>']);
const ARITHMETIC: ReadonlySet<Mutator> = new Set(['+=', '-=', '*=', '/=', '%=']);

export function encodeCondition(table: TableSchema, [column, fn, value]: Condition): WireCondition {
  const col = columnSchema(table, column);
  const path = `${table.name}.${column} ${fn}`;
  if (ORDERING.has(fn)) {
    // RFC 7047 §5.1: ordering functions apply to integer and real scalars (or optional ones) only.
    if (col.type.value || col.type.max !== 1 || (col.type.key.type !== 'integer' && col.type.key.type !== 'real')) {
      throw new OvsdbDatumError('OVSDB_DATUM', path, `"${fn}" needs an integer or real column`);
    }
    return [column, fn, encodeAtom({ type: col.type.key.type }, value, path)];
  }
  // includes/excludes compare with a subset, so the value may have any size (RFC 7047 §5.1).
  const anySize = fn === 'includes' || fn === 'excludes';
  return [column, fn, encodeDatum(col.type, value, path, { anySize })];
}

export function encodeMutation(table: TableSchema, [column, mutator, value]: Mutation): WireMutation {
  const col = columnSchema(table, column);
  const path = `${table.name}.${column} ${mutator}`;
  if (ARITHMETIC.has(mutator)) {
    // RFC 7047 §5.1: arithmetic mutators take a scalar of the column's key type and drop its constraints.
    if (col.type.key.type !== 'integer' && col.type.key.type !== 'real') {
      throw new OvsdbDatumError('OVSDB_DATUM', path, `"${mutator}" needs an integer or real column`);
    }
    return [column, mutator, encodeAtom({ type: col.type.key.type }, value, path)];
  }
  if (mutator === 'delete' && col.type.value && !(value instanceof Map) && (Array.isArray(value) || value instanceof Set)) {
    // A map "delete" may name just the keys: a set of the key type (RFC 7047 §5.1).
    return [column, mutator, encodeDatum({ key: col.type.key, min: 0, max: Infinity }, value, path, { anySize: true })];
  }
  return [column, mutator, encodeDatum(col.type, value, path, { anySize: true })];
}

export interface InsertOptions {
  /** Name the new row so later operations can refer to it (RFC 7047 §5.2.1 "uuid-name"). */
  uuidName?: string;
}

/**
 * Builds one transaction. Every method validates its values against the schema now, so a typo in a
 * column name or a wrong type fails here, before anything is sent.
 */
export class Transaction {
  readonly operations: WireOperation[] = [];
  private names = 0;

  constructor(readonly schema: DatabaseSchema) {}

  private table(name: string): TableSchema {
    return tableSchema(this.schema, name);
  }

  /** A fresh uuid-name, unique within this transaction. */
  newName(prefix = 'row'): NamedUuid {
    return new NamedUuid(`${prefix.replace(/[^_a-zA-Z0-9]/g, '_')}_${this.names++}`);
  }

  /** RFC 7047 §5.2.1. Returns the NamedUuid later operations use to reference the new row. */
  insert(table: string, row: Record<string, unknown>, opts: InsertOptions = {}): NamedUuid {
    const name = opts.uuidName !== undefined ? new NamedUuid(opts.uuidName) : this.newName(table);
    this.operations.push({ op: 'insert', table, row: encodeRow(this.table(table), row), 'uuid-name': name.name });
    return name;
  }

  /** RFC 7047 §5.2.2. */
  select(table: string, where: readonly Condition[], columns?: string[]): this {
    const t = this.table(table);
    if (columns) for (const c of columns) columnSchema(t, c);
    this.operations.push({ op: 'select', table, where: where.map((c) => encodeCondition(t, c)), ...(columns ? { columns } : {}) });
    return this;
  }

  /** RFC 7047 §5.2.3. */
  update(table: string, where: readonly Condition[], row: Record<string, unknown>): this {
    const t = this.table(table);
    this.operations.push({ op: 'update', table, where: where.map((c) => encodeCondition(t, c)), row: encodeRow(t, row) });
    return this;
  }

  /** RFC 7047 §5.2.4. */
  mutate(table: string, where: readonly Condition[], mutations: readonly Mutation[]): this {
    const t = this.table(table);
    this.operations.push({ op: 'mutate', table, where: where.map((c) => encodeCondition(t, c)), mutations: mutations.map((m) => encodeMutation(t, m)) });
    return this;
  }

  /** RFC 7047 §5.2.5. */
  delete(table: string, where: readonly Condition[]): this {
    const t = this.table(table);
    this.operations.push({ op: 'delete', table, where: where.map((c) => encodeCondition(t, c)) });
    return this;
  }

  /**
   * RFC 7047 §5.2.6: wait until the rows matching `where`, projected on `columns`, are (`==`) or
   * are not (`!=`) exactly `rows`; fail with "timed out" after `timeoutMs` (0: check once).
   */
  wait(table: string, where: readonly Condition[], columns: string[], until: '==' | '!=', rows: Record<string, unknown>[], timeoutMs?: number): this {
    const t = this.table(table);
    for (const c of columns) columnSchema(t, c);
    this.operations.push({
      op: 'wait',
      table,
      where: where.map((c) => encodeCondition(t, c)),
      columns,
      until,
      rows: rows.map((r) => encodeRow(t, r)),
      ...(timeoutMs !== undefined ? { timeout: timeoutMs } : {}),
    });
    return this;
  }

  /** RFC 7047 §5.2.7. */
  commit(durable: boolean): this {
    this.operations.push({ op: 'commit', durable });
    return this;
  }

  /** RFC 7047 §5.2.8: makes the whole transaction fail with "aborted". */
  abort(): this {
    this.operations.push({ op: 'abort' });
    return this;
  }

  /** RFC 7047 §5.2.9: a comment the server logs with the transaction. */
  comment(text: string): this {
    this.operations.push({ op: 'comment', comment: text });
    return this;
  }

  /** RFC 7047 §5.2.10: fail with "not owner" unless this session holds `lock`. */
  assert(lock: string): this {
    checkLockName(lock);
    this.operations.push({ op: 'assert', lock });
    return this;
  }

  get length(): number {
    return this.operations.length;
  }
}

/** RFC 7047 §4.1.8: a lock name is an <id> ([a-zA-Z_][a-zA-Z0-9_]*); ovsdb-server rejects others as a syntax error. */
export function checkLockName(name: string): void {
  if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name)) throw new OvsdbDatumError('OVSDB_DATUM', 'lock', `${JSON.stringify(name)} is not an <id> ([a-zA-Z_][a-zA-Z0-9_]*)`);
}

function isObject(v: unknown): v is Record<string, JsonValue> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Decodes a `transact` result (RFC 7047 §4.1.3) for `ops`: one element per operation; the first
 * failing operation's element is an <error>; an extra trailing <error> means the commit failed.
 * Throws the typed error of the first failure, or OvsdbProtocolError for a malformed reply.
 */
export function decodeTransactResult(schema: DatabaseSchema, ops: readonly WireOperation[], result: JsonValue): OperationResult[] {
  if (!Array.isArray(result)) throw new OvsdbProtocolError('OVSDB_MALFORMED_REPLY', `transact: result is not an array`);
  for (let i = 0; i < result.length; i++) {
    const r = result[i];
    if (isObject(r) && typeof r.error === 'string') {
      const op = i < ops.length ? ops[i]!.op : 'commit';
      throw operationErrorFor(i, op, r.error, typeof r.details === 'string' ? r.details : undefined);
    }
  }
  if (result.length < ops.length) {
    throw new OvsdbProtocolError('OVSDB_MALFORMED_REPLY', `transact: ${ops.length} operations sent, ${result.length} results received and none failed`);
  }
  return ops.map((op, i) => decodeOperationResult(schema, op, result[i]!, i));
}

function decodeOperationResult(schema: DatabaseSchema, op: WireOperation, r: JsonValue, i: number): OperationResult {
  const bad = (what: string): never => {
    throw new OvsdbProtocolError('OVSDB_MALFORMED_REPLY', `transact: result ${i} (${op.op}): ${what}`);
  };
  if (!isObject(r)) bad('not an object');
  const obj = r as Record<string, JsonValue>;
  switch (op.op) {
    case 'insert':
      try {
        return { op: 'insert', uuid: decodeAtom({ type: 'uuid' }, obj.uuid, `result[${i}].uuid`) as string };
      } catch {
        return bad('no ["uuid", ...] in "uuid"');
      }
    case 'select': {
      if (!Array.isArray(obj.rows)) return bad('no "rows" array');
      const t = tableSchema(schema, op.table);
      return { op: 'select', rows: obj.rows.map((row, k) => decodeRow(t, row, `${op.table}[${k}]`)) };
    }
    case 'update':
    case 'mutate':
    case 'delete':
      if (typeof obj.count !== 'number') return bad('no "count" number');
      return { op: op.op, count: obj.count };
    default:
      return { op: op.op };
  }
}
