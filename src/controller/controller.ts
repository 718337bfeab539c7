/**
 * The controller endpoint: listens for switches (ptcp:/pssl:/punix:) and connects to switches
 * that listen (tcp:/ssl:/unix: to an OVS `ptcp:`/`punix:` controller target), keeps one
 * `SwitchConnection` per datapath id, and re-emits their events with the switch attached.
 *
 * A switch that comes back (same dpid, new connection) replaces its old connection and, when the
 * application registered desired flows for that dpid, is reconciled before `switch_up` fires, so
 * the switch ends with exactly coat's flows (resync after a restart of ovs-vswitchd).
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { FlowRemoved, PacketIn, PortStatus } from '../openflow/index.js';
import { dpidString, logger as makeLogger, type Logger } from '../log.js';
import { SwitchConnection, type ConnectionOptions, type OfpErrorReply, type ReconcileResult, type RoleName } from './connection.js';
import { formatEndpoint, parseEndpoint } from './endpoint.js';
import { ControllerError, ControllerErrorCode, type CloseReason } from './errors.js';
import { connect as connectSocket, listen as listenSocket, type Listener, type TlsOptions } from './transport.js';
import type { DesiredFlows } from './reconcile.js';

export interface ControllerOptions extends Omit<ConnectionOptions, 'logger'> {
  /** Key, certificate and CA for ssl:/pssl: (switches must present a certificate from `ca`). */
  tls?: TlsOptions;
  logger?: Logger;
  /** Active connections: first retry after this long, doubling up to `reconnectMaxMs`. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
}

export interface SwitchUpInfo {
  /** This dpid was connected before (a reconnect, e.g. after ovs-vswitchd restarted). */
  reconnect: boolean;
  /** The reconciliation run before this event, when desired flows are registered for the dpid. */
  resync?: ReconcileResult;
}

export interface ControllerEvents {
  switch_up: [sw: SwitchConnection, info: SwitchUpInfo];
  switch_down: [sw: SwitchConnection, reason: CloseReason];
  /** A connection that closed before its handshake completed (bad peer, wrong version, ...). */
  connection_failed: [peer: string, reason: CloseReason];
  packet_in: [sw: SwitchConnection, msg: PacketIn];
  port_status: [sw: SwitchConnection, msg: PortStatus];
  flow_removed: [sw: SwitchConnection, msg: FlowRemoved];
  ofp_error: [sw: SwitchConnection, err: OfpErrorReply];
  /** Reconciliation on connect failed; the switch stays connected with whatever flows it had. */
  resync_failed: [sw: SwitchConnection, err: Error];
}

export class Controller extends EventEmitter<ControllerEvents> {
  /** Connected switches (handshake complete), by datapath id. */
  readonly switches = new Map<bigint, SwitchConnection>();
  private readonly seen = new Set<bigint>();
  private readonly desired = new Map<bigint, DesiredFlows>();
  private readonly endpoints: Listener[] = [];
  private readonly connecting = new Set<SwitchConnection>();
  private readonly log: Logger;
  private closed = false;
  private readonly stopRetries: (() => void)[] = [];
  private generation = 0n;

  constructor(private readonly opts: ControllerOptions = {}) {
    super();
    this.log = opts.logger ?? makeLogger('controller');
  }

  /** Listens on `ptcp:[PORT][:IP]`, `pssl:[PORT][:IP]` or `punix:FILE`; returns the real address. */
  async listen(method: string): Promise<Listener> {
    const p = parseEndpoint(method);
    if (!p.passive) throw new ControllerError(ControllerErrorCode.Endpoint, `listen needs a passive method (ptcp:, pssl:, punix:), got "${method}"`);
    const l = await listenSocket(
      p.endpoint,
      this.opts.tls,
      (socket, peer) => void this.adopt(socket, peer).catch(() => {}),
      (err, peer) => {
        const reason: CloseReason = { code: 'OFC_SOCKET', message: `TLS handshake failed: ${err.message}` };
        this.log.warn({ event: 'connection_failed', endpoint: peer, reason: reason.code }, reason.message);
        this.emit('connection_failed', peer, reason);
      },
    );
    this.endpoints.push(l);
    this.log.info({ event: 'listening', endpoint: l.address }, 'listening for switches');
    return l;
  }

  /**
   * Connects to a switch listening on `tcp:HOST[:PORT]`, `ssl:HOST[:PORT]` or `unix:FILE`; resolves
   * with the connection once its handshake is done. With `reconnect`, a lost connection is
   * retried with exponential backoff until `close()`.
   */
  async connect(method: string, opts: { reconnect?: boolean; timeoutMs?: number } = {}): Promise<SwitchConnection> {
    const p = parseEndpoint(method);
    if (p.passive) throw new ControllerError(ControllerErrorCode.Endpoint, `connect needs an active method (tcp:, ssl:, unix:), got "${method}"`);
    const target = formatEndpoint(p);
    const once = async () => this.adopt(await connectSocket(p.endpoint, this.opts.tls, opts.timeoutMs ?? 5000), target);
    const sw = await once();
    if (opts.reconnect) {
      let stopped = false;
      let timer: NodeJS.Timeout | undefined;
      this.stopRetries.push(() => {
        stopped = true;
        clearTimeout(timer);
      });
      const min = this.opts.reconnectMinMs ?? 100;
      const max = this.opts.reconnectMaxMs ?? 8000;
      const retry = (delay: number) => {
        if (stopped || this.closed) return;
        timer = setTimeout(() => {
          once().then(
            // It may already have died during its resync: then retry now, no 'close' will come.
            (next) => (next.closed ? retry(min) : next.once('close', () => retry(min))),
            (err: Error) => {
              this.log.debug({ event: 'reconnect_failed', endpoint: target, err: err.message, retryInMs: Math.min(delay * 2, max) }, 'reconnect failed');
              retry(Math.min(delay * 2, max));
            },
          );
        }, delay);
      };
      sw.once('close', () => retry(min));
    }
    return sw;
  }

  /** Runs the handshake on an accepted or connected socket and registers the switch. */
  private async adopt(socket: Duplex, peer: string): Promise<SwitchConnection> {
    const sw = new SwitchConnection(socket, peer, { ...this.opts, logger: this.log.child({ endpoint: peer }) });
    if (this.closed) {
      sw.close({ code: 'OFC_LOCAL', message: 'controller is closing' });
      throw new ControllerError(ControllerErrorCode.Closed, 'controller is closing');
    }
    this.connecting.add(sw);
    sw.on('packet_in', (m) => this.emit('packet_in', sw, m));
    sw.on('port_status', (m) => this.emit('port_status', sw, m));
    sw.on('flow_removed', (m) => this.emit('flow_removed', sw, m));
    sw.on('ofp_error', (e) => this.emit('ofp_error', sw, e));
    sw.once('close', (reason) => {
      this.connecting.delete(sw);
      if (this.switches.get(sw.dpid) === sw) {
        this.switches.delete(sw.dpid);
        this.emit('switch_down', sw, reason);
      } else if (sw.features === undefined) {
        this.emit('connection_failed', peer, reason);
      }
    });
    await sw.handshake(); // rejects (and closes) on a failed handshake: connection_failed above
    this.connecting.delete(sw);
    const old = this.switches.get(sw.dpid);
    if (old && old !== sw) {
      // The switch reconnected before we noticed the old connection die (OVS does this after a
      // restart): the new connection wins.
      this.switches.delete(sw.dpid);
      old.close({ code: 'OFC_REPLACED', message: `replaced by a new connection from ${peer}` });
    }
    this.switches.set(sw.dpid, sw);
    const reconnect = this.seen.has(sw.dpid);
    this.seen.add(sw.dpid);
    const info: SwitchUpInfo = { reconnect };
    const desired = this.desired.get(sw.dpid);
    if (desired) {
      try {
        info.resync = await sw.reconcile(desired);
      } catch (err) {
        sw.log.error({ event: 'resync_failed', err: (err as Error).message }, 'reconciliation on connect failed');
        this.emit('resync_failed', sw, err as Error);
      }
    }
    if (!sw.closed) this.emit('switch_up', sw, info);
    return sw;
  }

  /** The connected switch with this dpid, or a NoSwitch error. */
  switch(dpid: bigint): SwitchConnection {
    const sw = this.switches.get(dpid);
    if (!sw) throw new ControllerError(ControllerErrorCode.NoSwitch, `no switch ${dpidString(dpid)} is connected`);
    return sw;
  }

  /** Resolves when the switch with `dpid` is up (and resynced), now or later. */
  waitForSwitch(dpid: bigint, timeoutMs = 10_000): Promise<SwitchConnection> {
    const sw = this.switches.get(dpid);
    if (sw) return Promise.resolve(sw);
    return new Promise((resolve, reject) => {
      const onUp = (s: SwitchConnection) => {
        if (s.dpid !== dpid) return;
        clearTimeout(timer);
        this.off('switch_up', onUp);
        resolve(s);
      };
      const timer = setTimeout(() => {
        this.off('switch_up', onUp);
        reject(new ControllerError(ControllerErrorCode.NoSwitch, `switch ${dpidString(dpid)} did not connect within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('switch_up', onUp);
    });
  }

  /**
   * Registers the flows coat wants on switch `dpid` (flow-mods from `coatFlowMods`). Reconciles
   * now when the switch is connected (resolving with the result) and again on every reconnect.
   */
  async setDesiredFlows(dpid: bigint, flows: DesiredFlows): Promise<ReconcileResult | undefined> {
    this.desired.set(dpid, flows);
    const sw = this.switches.get(dpid);
    return sw ? sw.reconcile(flows) : undefined;
  }

  /**
   * Registers `flows` as what coat wants on switch `dpid` for its next reconnect, without
   * reconciling now: for a caller that has just applied exactly these and seen them confirmed (a
   * bundle with its barrier), where a reconcile would only add a flow dump's round trip. The live
   * flow port does this right after the hold bundle, while the client's packets are held.
   */
  recordDesiredFlows(dpid: bigint, flows: DesiredFlows): void {
    this.desired.set(dpid, flows);
  }

  desiredFlows(dpid: bigint): DesiredFlows | undefined {
    return this.desired.get(dpid);
  }

  /**
   * A generation id for role requests (OpenFlow 1.3.5 §6.3.6), larger than any this process gave
   * before and, being time-based, than any an earlier run of coat gave.
   */
  nextGenerationId(): bigint {
    const t = BigInt(Date.now()) << 16n;
    this.generation = this.generation >= t ? this.generation + 1n : t;
    return this.generation;
  }

  /** Asks switch `dpid` for `role`, with a fresh generation id for master/slave. */
  requestRole(dpid: bigint, role: RoleName): Promise<{ role: RoleName; generationId: bigint }> {
    const gen = role === 'master' || role === 'slave' ? this.nextGenerationId() : 0n;
    return this.switch(dpid).requestRole(role, gen);
  }

  /** Stops listening and retrying, closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    for (const stop of this.stopRetries) stop();
    for (const sw of [...this.switches.values(), ...this.connecting]) sw.close({ code: 'OFC_LOCAL', message: 'controller shutting down' });
    await Promise.all(this.endpoints.map((l) => l.close()));
  }
}
