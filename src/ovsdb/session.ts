/**
 * One JSON-RPC 1.0 session over one connected stream (RFC 7047 §4): frames incoming bytes, matches
 * responses to calls by id, answers the server's `echo`, probes an idle peer with `echo` as a
 * keepalive (ovsdb-server's own inactivity probe does the same), and gives every call a deadline.
 *
 * Any failure ends the session: bad bytes, a reply to an unknown id, a dead peer. Every call still
 * in flight is then rejected with the typed error that ended it, and `onClose` reports it once.
 * Reconnecting is the client's job (client.ts), not this one's.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from '../log.js';
import { OvsdbError, OvsdbProtocolError, OvsdbRpcError, OvsdbTimeoutError, OvsdbTransportError } from './errors.js';
import { JsonFramer } from './framer.js';
import { asErrorObject, decodeMessage, encodeRequest, encodeResponse, type JsonValue, type RpcMessage } from './jsonrpc.js';

export interface SessionOptions {
  /** Remote name for errors and logs. */
  remote: string;
  /** Largest message accepted from the peer (default: framer.ts DEFAULT_MAX_MESSAGE_BYTES). */
  maxMessageBytes?: number;
  /** Send an `echo` after this long without input, and give up after as long again (default 5000; 0: never). */
  probeIntervalMs?: number;
  /** Deadline for calls that do not name one (default 10 s). */
  defaultTimeoutMs?: number;
  log?: Logger;
}

export interface SessionHandlers {
  /** A notification (`update`, `update2`, `update3`, `locked`, `stolen`). */
  onNotification(method: string, params: JsonValue[]): void;
  /** The session ended; `err` says why. Called exactly once. */
  onClose(err: OvsdbError): void;
}

interface Pending {
  method: string;
  /** Runs on the reply before any later message is dispatched (see `call`). */
  handle: ((v: JsonValue) => unknown) | undefined;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export class JsonRpcSession {
  private readonly framer: JsonFramer;
  private readonly pending = new Map<string, Pending>();
  private nextId = 0;
  private lastInput = Date.now();
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private ended: OvsdbError | undefined;
  readonly defaultTimeoutMs: number;

  constructor(
    private readonly stream: Duplex,
    private readonly opts: SessionOptions,
    private readonly handlers: SessionHandlers,
  ) {
    this.framer = new JsonFramer(opts.maxMessageBytes !== undefined ? { maxMessageBytes: opts.maxMessageBytes } : {});
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? 10_000;
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (err) => this.fail(new OvsdbTransportError('OVSDB_CONNECTION_LOST', opts.remote, `connection to ${opts.remote} failed: ${err.message}`, { cause: err })));
    stream.on('close', () => {
      const partial = this.framer.hasPartial ? ` in the middle of a message (${this.framer.bufferedBytes} bytes buffered)` : '';
      this.fail(new OvsdbTransportError('OVSDB_CONNECTION_LOST', opts.remote, `connection to ${opts.remote} closed by the peer${partial}`));
    });
    const probe = opts.probeIntervalMs ?? 5000;
    if (probe > 0) {
      this.probeTimer = setInterval(() => this.probe(probe), probe);
      this.probeTimer.unref();
    }
  }

  get closed(): boolean {
    return this.ended !== undefined;
  }

  /**
   * Calls `method`; resolves to its result (or to what `handle` returns), rejects with a typed
   * error. `handle` runs synchronously when the reply is dispatched, before any message that
   * follows it in the stream: a monitor reply must load the replica before the update
   * notifications the server sends right after it are applied.
   */
  call<T = JsonValue>(method: string, params: JsonValue[], timeoutMs = this.defaultTimeoutMs, handle?: (result: JsonValue) => T): Promise<T> {
    if (this.ended) return Promise.reject(this.ended);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(JSON.stringify(id));
        this.opts.log?.warn({ event: 'ovsdb.call_timeout', method, id, timeoutMs }, 'no reply before the deadline');
        reject(new OvsdbTimeoutError(method, timeoutMs));
      }, timeoutMs);
      // Keyed by the id's JSON text: a reply must carry the very id sent (0, not "0").
      this.pending.set(JSON.stringify(id), { method, handle, resolve: resolve as (v: unknown) => void, reject, timer });
      this.stream.write(encodeRequest(method, params, id));
    });
  }

  /** Ends the session from our side; calls in flight get OVSDB_CLOSED. */
  close(): void {
    this.fail(new OvsdbTransportError('OVSDB_CLOSED', this.opts.remote, `session to ${this.opts.remote} closed by this client`));
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    this.lastInput = Date.now();
    let texts: string[];
    try {
      texts = this.framer.push(chunk);
    } catch (err) {
      this.fail(err as OvsdbError);
      return;
    }
    for (const text of texts) {
      let msg: RpcMessage;
      try {
        msg = decodeMessage(text);
      } catch (err) {
        this.fail(err as OvsdbError);
        return;
      }
      this.dispatch(msg);
      if (this.ended) return;
    }
  }

  private dispatch(msg: RpcMessage): void {
    switch (msg.kind) {
      case 'request':
        // RFC 7047 §4.1.11: echo is answered with its own params. ovsdb-server sends no other requests.
        if (msg.method === 'echo') this.stream.write(encodeResponse(msg.id, msg.params));
        else this.stream.write(encodeResponse(msg.id, null, { error: 'unknown method', details: msg.method }));
        return;
      case 'notification':
        try {
          this.handlers.onNotification(msg.method, msg.params);
        } catch (err) {
          // A notification we cannot apply means our replica is wrong: end the session loudly.
          this.fail(err instanceof OvsdbError ? err : new OvsdbProtocolError('OVSDB_MALFORMED_REPLY', `${msg.method}: ${(err as Error).message}`, undefined, { cause: err }));
        }
        return;
      case 'response': {
        const key = JSON.stringify(msg.id);
        const p = this.pending.get(key);
        if (!p) {
          this.fail(new OvsdbProtocolError('OVSDB_UNKNOWN_REPLY_ID', `reply with id ${JSON.stringify(msg.id)}, which matches no call in flight`));
          return;
        }
        this.pending.delete(key);
        clearTimeout(p.timer);
        if (msg.error !== null) {
          const e = asErrorObject(msg.error);
          p.reject(new OvsdbRpcError(p.method, e?.error ?? JSON.stringify(msg.error), e?.details));
        } else if (p.handle) {
          try {
            p.resolve(p.handle(msg.result));
          } catch (err) {
            p.reject(err as Error);
          }
        } else p.resolve(msg.result);
      }
    }
  }

  private probe(intervalMs: number): void {
    if (this.ended || this.probing || Date.now() - this.lastInput < intervalMs) return;
    this.probing = true;
    this.call('echo', [], intervalMs).then(
      () => {
        this.probing = false;
      },
      (err: unknown) => {
        this.probing = false;
        if (err instanceof OvsdbTimeoutError) {
          this.fail(new OvsdbTransportError('OVSDB_CONNECTION_LOST', this.opts.remote, `${this.opts.remote} did not answer an echo probe within ${intervalMs} ms`));
        }
      },
    );
  }

  private fail(err: OvsdbError): void {
    if (this.ended) return;
    this.ended = err;
    if (this.probeTimer) clearInterval(this.probeTimer);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.stream.destroy();
    this.handlers.onClose(err);
  }
}
