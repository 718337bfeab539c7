/**
 * OVSDB client (RFC 7047): the methods of §4.1 over one JsonRpcSession at a time, monitors that
 * feed local replicas, locks, and optional automatic reconnection that re-issues the monitors and
 * rebuilds the replicas (the job python/ovs/db/idl.py and libovsdb's client do).
 *
 * While the connection is down every call fails at once with OVSDB_CONNECTION_LOST; nothing is
 * queued, so a caller never waits on a server that may not come back.
 *
 * Events: `disconnected` (err), `reconnected` (), `locked` (name), `stolen` (name), `closed` ().
 * Monitor events: `change` (RowChange[]), `rebuilt` ({ found }) after a reconnect.
 */
import { EventEmitter } from 'node:events';
import { logger as rootChild, type Logger } from '../log.js';
import { OvsdbError, OvsdbProtocolError, OvsdbRpcError, OvsdbTransportError } from './errors.js';
import type { JsonValue } from './jsonrpc.js';
import { checkLockName, decodeTransactResult, encodeCondition, Transaction, type Condition, type OperationResult, type WireOperation } from './operations.js';
import { Replica, type RowChange } from './replica.js';
import { parseSchema, tableSchema, type DatabaseSchema } from './schema.js';
import { JsonRpcSession } from './session.js';
import { openSocket, type ConnectOptions } from './transport.js';
import { ZERO_UUID } from './datum.js';

export interface ReconnectOptions {
  /** First delay before reconnecting (default 100 ms); doubles up to `maxDelayMs`. */
  initialDelayMs?: number;
  /** Longest delay between attempts (default 4000 ms). */
  maxDelayMs?: number;
}

export interface OvsdbClientOptions extends ConnectOptions {
  /** Largest message accepted from the server (default 64 MiB). */
  maxMessageBytes?: number;
  /** Idle time before an echo keepalive probe (default 5000 ms; 0 disables). */
  probeIntervalMs?: number;
  /** Deadline of a call that does not name one (default 10 s). */
  callTimeoutMs?: number;
  /** Reconnect automatically after the connection drops (default: off). */
  reconnect?: boolean | ReconnectOptions;
  log?: Logger;
}

export type MonitorMethod = 'monitor' | 'monitor_cond' | 'monitor_cond_since';

export interface MonitorTable {
  /** Columns to replicate (default: all). */
  columns?: string[];
  /** Rows to replicate, for monitor_cond / monitor_cond_since (default: all). */
  where?: Condition[];
}

export interface MonitorOptions {
  /** Force a method; default: the newest the server offers (monitor_cond_since, then monitor_cond, then monitor). */
  method?: MonitorMethod;
  timeoutMs?: number;
}

/** A live monitor and the replica it feeds. */
export class Monitor extends EventEmitter {
  /** RFC 7047 §4.1.5 <json-value>: our handle on this monitor in notifications. */
  readonly id: string;
  /** ovsdb-server(7) §4.1.15: the last transaction this replica includes (monitor_cond_since only). */
  lastTxnId: string | undefined;
  active = true;

  constructor(
    private readonly client: OvsdbClient,
    readonly db: string,
    readonly tables: Record<string, MonitorTable>,
    readonly method: MonitorMethod,
    readonly replica: Replica,
    id: string,
  ) {
    super();
    this.id = id;
  }

  /** RFC 7047 §4.1.7 monitor_cancel. */
  async cancel(): Promise<void> {
    if (!this.active) return;
    this.active = false;
    await this.client.cancelMonitor(this);
  }

  /**
   * Resolves with the first truthy `predicate(replica)` (checked now and after every change or
   * rebuild); rejects with what the predicate throws, or OVSDB_WAIT_TIMEOUT after `timeoutMs`.
   */
  waitFor<T>(what: string, predicate: (r: Replica) => T | undefined | false, timeoutMs = 5000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // The predicate runs inside 'change' listeners: its exceptions reject this wait and never
      // reach the session that emitted the change.
      const check = () => {
        let v: T | undefined | false;
        try {
          v = predicate(this.replica);
        } catch (err) {
          cleanup();
          reject(err);
          return;
        }
        if (v) {
          cleanup();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new OvsdbError('OVSDB_WAIT_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('change', check);
        this.off('rebuilt', check);
      };
      this.on('change', check);
      this.on('rebuilt', check);
      check();
    });
  }
}

function isObject(v: unknown): v is Record<string, JsonValue> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class OvsdbClient extends EventEmitter {
  private session: JsonRpcSession | undefined;
  private readonly schemas = new Map<string, DatabaseSchema>();
  private readonly monitors = new Map<string, Monitor>();
  private readonly wantedLocks = new Set<string>();
  private monitorSeq = 0;
  private closing = false;
  /** A reconnect loop is running; sessions it opens and loses do not start another. */
  private reconnecting = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private lastError: OvsdbError | undefined;
  /** Methods the server refused as unknown; not retried on this client. */
  private readonly unsupported = new Set<string>();
  readonly log: Logger;

  private constructor(
    readonly remote: string,
    private readonly opts: OvsdbClientOptions,
  ) {
    super();
    this.log = opts.log ?? rootChild('ovsdb', { endpoint: remote });
  }

  /** Connects to `remote` (`unix:PATH`, `tcp:HOST:PORT`, `ssl:HOST:PORT`). */
  static async connect(remote: string, opts: OvsdbClientOptions = {}): Promise<OvsdbClient> {
    const client = new OvsdbClient(remote, opts);
    await client.open();
    return client;
  }

  get connected(): boolean {
    return this.session !== undefined && !this.session.closed;
  }

  private async open(): Promise<void> {
    const socket = await openSocket(this.remote, this.opts);
    if (this.closing) {
      // close() was called while a reconnect attempt was connecting.
      socket.destroy();
      throw new OvsdbTransportError('OVSDB_CLOSED', this.remote, `client for ${this.remote} is closed`);
    }
    const session = new JsonRpcSession(
      socket,
      {
        remote: this.remote,
        ...(this.opts.maxMessageBytes !== undefined ? { maxMessageBytes: this.opts.maxMessageBytes } : {}),
        ...(this.opts.probeIntervalMs !== undefined ? { probeIntervalMs: this.opts.probeIntervalMs } : {}),
        ...(this.opts.callTimeoutMs !== undefined ? { defaultTimeoutMs: this.opts.callTimeoutMs } : {}),
        log: this.log,
      },
      {
        onNotification: (method, params) => this.onNotification(session, method, params),
        onClose: (err) => this.onSessionClose(session, err),
      },
    );
    this.session = session;
    this.log.debug({ event: 'ovsdb.connected' }, 'connected');
  }

  /**
   * Calls a raw JSON-RPC method (RFC 7047 §4.1). `handle`, when given, runs on the result before
   * any later message from the server is processed (session.ts `call`).
   */
  call<T = JsonValue>(method: string, params: JsonValue[], timeoutMs?: number, handle?: (result: JsonValue) => T): Promise<T> {
    const s = this.session;
    if (this.closing) return Promise.reject(new OvsdbTransportError('OVSDB_CLOSED', this.remote, `client for ${this.remote} is closed`));
    if (!s || s.closed) {
      return Promise.reject(
        new OvsdbTransportError('OVSDB_CONNECTION_LOST', this.remote, `not connected to ${this.remote}${this.lastError ? ` (${this.lastError.message})` : ''}`),
      );
    }
    return s.call(method, params, timeoutMs, handle);
  }

  /** RFC 7047 §4.1.1. */
  async listDbs(): Promise<string[]> {
    const r = await this.call('list_dbs', []);
    if (!Array.isArray(r) || !r.every((x) => typeof x === 'string')) throw new OvsdbProtocolError('OVSDB_MALFORMED_REPLY', 'list_dbs: result is not an array of strings');
    return r as string[];
  }

  /** RFC 7047 §4.1.2; cached per database for the client's life. */
  async getSchema(db: string): Promise<DatabaseSchema> {
    const cached = this.schemas.get(db);
    if (cached) return cached;
    const schema = parseSchema(await this.call('get_schema', [db]));
    this.schemas.set(db, schema);
    return schema;
  }

  /** A transaction builder for `db`, checked against its schema. */
  async transaction(db: string): Promise<Transaction> {
    return new Transaction(await this.getSchema(db));
  }

  /**
   * RFC 7047 §4.1.3. Resolves to one decoded result per operation; rejects with the typed error of
   * the first failing operation (errors.ts), in which case the server committed nothing.
   */
  async transact(db: string, tx: Transaction | WireOperation[], timeoutMs?: number): Promise<OperationResult[]> {
    const schema = tx instanceof Transaction ? tx.schema : await this.getSchema(db);
    const ops = tx instanceof Transaction ? tx.operations : tx;
    const started = performance.now();
    const result = await this.call('transact', [db, ...(ops as unknown as JsonValue[])], timeoutMs);
    try {
      return decodeTransactResult(schema, ops, result);
    } finally {
      this.log.debug({ event: 'ovsdb.transact', db, ops: ops.length, ms: Math.round((performance.now() - started) * 10) / 10 }, 'transaction done');
    }
  }

  /** RFC 7047 §4.1.11. */
  async echo(timeoutMs?: number): Promise<void> {
    await this.call('echo', [], timeoutMs);
  }

  // ---- monitors --------------------------------------------------------------------------------

  /** Starts a monitor of `tables` in `db`; its replica holds the current rows when this resolves. */
  async monitor(db: string, tables: Record<string, MonitorTable>, opts: MonitorOptions = {}): Promise<Monitor> {
    const schema = await this.getSchema(db);
    for (const name of Object.keys(tables)) tableSchema(schema, name);
    const replica = new Replica(schema, Object.fromEntries(Object.entries(tables).map(([k, v]) => [k, v.columns])));
    const candidates: MonitorMethod[] = opts.method ? [opts.method] : ['monitor_cond_since', 'monitor_cond', 'monitor'];
    const id = `coat-monitor-${this.monitorSeq++}`;
    let lastErr: unknown;
    for (const method of candidates) {
      if (!opts.method && this.unsupported.has(method)) continue;
      const mon = new Monitor(this, db, tables, method, replica, id);
      this.monitors.set(id, mon);
      try {
        await this.subscribe(mon, opts.timeoutMs);
        this.log.debug({ event: 'ovsdb.monitor', db, method, tables: Object.keys(tables) }, 'monitor started');
        return mon;
      } catch (err) {
        this.monitors.delete(id);
        lastErr = err;
        // ovsdb-server answers a method it does not know with the error "unknown method".
        if (!opts.method && err instanceof OvsdbRpcError && /unknown method|not supported/i.test(err.error)) {
          this.unsupported.add(method);
          continue;
        }
        throw err;
      }
    }
    throw lastErr;
  }

  /**
   * Sends the monitor request for `mon` and loads its replica from the reply. The replica is
   * loaded inside the reply's dispatch, so updates that follow the reply apply on top of it.
   */
  private async subscribe(mon: Monitor, timeoutMs?: number): Promise<{ found: boolean }> {
    const schema = mon.replica.schema;
    if (mon.method === 'monitor') {
      // RFC 7047 §4.1.5: <monitor-requests> has no conditions.
      const reqs: Record<string, JsonValue> = {};
      for (const [name, t] of Object.entries(mon.tables)) {
        if (t.where?.length) throw new OvsdbError('OVSDB_MONITOR_UNSUPPORTED', `the server has no monitor_cond; cannot filter ${name} rows`);
        reqs[name] = t.columns ? { columns: t.columns } : {};
      }
      return this.call('monitor', [mon.db, mon.id, reqs], timeoutMs, (r) => {
        this.emitChanges(mon, [...mon.replica.clear(), ...mon.replica.applyUpdate(r)]);
        return { found: false };
      });
    }
    // ovsdb-server(7) §4.1.12: <monitor-cond-request> adds "where".
    const reqs: Record<string, JsonValue> = {};
    for (const [name, t] of Object.entries(mon.tables)) {
      const tbl = tableSchema(schema, name);
      const req: Record<string, JsonValue> = {};
      if (t.columns) req.columns = t.columns;
      if (t.where) req.where = t.where.map((c) => encodeCondition(tbl, c)) as unknown as JsonValue;
      reqs[name] = [req];
    }
    if (mon.method === 'monitor_cond') {
      return this.call('monitor_cond', [mon.db, mon.id, reqs], timeoutMs, (r) => {
        this.emitChanges(mon, [...mon.replica.clear(), ...mon.replica.applyUpdate2(r)]);
        return { found: false };
      });
    }
    // ovsdb-server(7) §4.1.15: result [found, last-txn-id, <table-updates2>]; when found, the
    // updates are the changes since our last-txn-id, applied on top of what the replica holds.
    return this.call('monitor_cond_since', [mon.db, mon.id, reqs, mon.lastTxnId ?? ZERO_UUID], timeoutMs, (r) => {
      if (!Array.isArray(r) || r.length !== 3 || typeof r[0] !== 'boolean' || typeof r[1] !== 'string') {
        throw new OvsdbProtocolError('OVSDB_MALFORMED_REPLY', 'monitor_cond_since: result is not [found, last-txn-id, updates]');
      }
      const found = r[0];
      this.emitChanges(mon, [...(found ? [] : mon.replica.clear()), ...mon.replica.applyUpdate2(r[2])]);
      mon.lastTxnId = r[1];
      return { found };
    });
  }

  /** RFC 7047 §4.1.7. */
  async cancelMonitor(mon: Monitor): Promise<void> {
    mon.active = false;
    this.monitors.delete(mon.id);
    if (this.connected) await this.call('monitor_cancel', [mon.id]);
  }

  private emitChanges(mon: Monitor, changes: RowChange[]): void {
    if (changes.length > 0) mon.emit('change', changes);
  }

  private onNotification(session: JsonRpcSession, method: string, params: JsonValue[]): void {
    if (session !== this.session) return;
    switch (method) {
      case 'update': // RFC 7047 §4.1.6: [json-value, table-updates]
      case 'update2': // ovsdb-server(7) §4.1.14: [json-value, table-updates2]
      case 'update3': {
        // ovsdb-server(7) §4.1.16: [json-value, last-txn-id, table-updates2]
        const mon = this.monitors.get(String(params[0]));
        if (!mon) return; // a notification racing a monitor_cancel
        if (method === 'update') this.emitChanges(mon, mon.replica.applyUpdate(params[1]));
        else if (method === 'update2') this.emitChanges(mon, mon.replica.applyUpdate2(params[1]));
        else {
          if (typeof params[1] !== 'string') throw new OvsdbProtocolError('OVSDB_MALFORMED_REPLY', 'update3: last-txn-id is not a string');
          this.emitChanges(mon, mon.replica.applyUpdate2(params[2]));
          mon.lastTxnId = params[1];
        }
        return;
      }
      case 'locked': // RFC 7047 §4.1.9
      case 'stolen': // RFC 7047 §4.1.10
        if (typeof params[0] === 'string') {
          this.log.info({ event: `ovsdb.${method}`, lock: params[0] }, `lock ${method}`);
          this.emit(method, params[0]);
        }
        return;
      default:
        this.log.warn({ event: 'ovsdb.unknown_notification', method }, 'notification ignored');
    }
  }

  // ---- locks (RFC 7047 §4.1.8) --------------------------------------------------------------------

  /** Requests `lock`; true when granted now, false when queued (a `locked` event follows when granted). */
  async lock(name: string): Promise<boolean> {
    checkLockName(name);
    this.wantedLocks.add(name);
    return this.lockResult('lock', await this.call('lock', [name]));
  }

  /** Takes `lock` from its holder, who gets `stolen`. */
  async steal(name: string): Promise<boolean> {
    checkLockName(name);
    this.wantedLocks.add(name);
    return this.lockResult('steal', await this.call('steal', [name]));
  }

  /** Releases `lock` (or leaves its queue). */
  async unlock(name: string): Promise<void> {
    this.wantedLocks.delete(name);
    await this.call('unlock', [name]);
  }

  private lockResult(method: string, r: JsonValue): boolean {
    if (!isObject(r) || typeof r.locked !== 'boolean') throw new OvsdbProtocolError('OVSDB_MALFORMED_REPLY', `${method}: result has no boolean "locked"`);
    return r.locked;
  }

  // ---- connection life -----------------------------------------------------------------------------

  private onSessionClose(session: JsonRpcSession, err: OvsdbError): void {
    if (session !== this.session) return;
    this.lastError = err;
    if (this.closing || this.reconnecting) return;
    this.log.warn({ event: 'ovsdb.disconnected', code: err.code, err: err.message }, 'connection lost');
    this.emit('disconnected', err);
    if (this.opts.reconnect) {
      this.reconnecting = true;
      this.scheduleReconnect(0);
    }
  }

  private scheduleReconnect(attempt: number): void {
    const r = typeof this.opts.reconnect === 'object' ? this.opts.reconnect : {};
    const delay = Math.min((r.initialDelayMs ?? 100) * 2 ** attempt, r.maxDelayMs ?? 4000);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.reconnect().then(
        () => undefined,
        (e: unknown) => {
          if (this.closing) return;
          this.log.debug({ event: 'ovsdb.reconnect_failed', attempt, err: (e as Error).message }, 'reconnect attempt failed');
          this.session?.close();
          this.scheduleReconnect(attempt + 1);
        },
      );
    }, delay);
  }

  /** Reconnects, re-issues every monitor (rebuilding its replica) and re-requests wanted locks. */
  private async reconnect(): Promise<void> {
    await this.open();
    for (const mon of this.monitors.values()) {
      const { found } = await this.subscribe(mon);
      this.log.info({ event: 'ovsdb.replica_rebuilt', monitor: mon.id, method: mon.method, found }, 'monitor re-issued');
      mon.emit('rebuilt', { found });
    }
    for (const name of this.wantedLocks) {
      if (await this.lockResult('lock', await this.call('lock', [name]))) this.emit('locked', name);
    }
    this.reconnecting = false;
    this.log.info({ event: 'ovsdb.reconnected' }, 'reconnected');
    this.emit('reconnected');
  }

  /** Closes the connection and stops reconnecting; calls in flight fail with OVSDB_CLOSED. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    for (const m of this.monitors.values()) m.active = false;
    this.monitors.clear();
    this.session?.close();
    this.emit('closed');
  }
}
