/**
 * The Open vSwitch configuration coat needs, as single OVSDB transactions (what ovs-vsctl does,
 * without a process per command): bridges with a datapath type, internal / system / vxlan ports,
 * controllers, fail mode, and waiting for ovs-vswitchd to give an interface its OpenFlow port.
 *
 * Each change is one transaction, so it is all-or-nothing (RFC 7047 §4.1.3). Row names are unique
 * by the schema's indexes (Bridge, Port and Interface index "name"), so adding a name that exists
 * fails with ConstraintViolationError unless `mayExist` asks for the existing row. Ports,
 * interfaces and controllers are not root rows: dropping the last reference to them deletes them
 * at commit (RFC 7047 §3.2 "isRoot"), which is how deletes stay clean.
 */
import { hasCode } from '../errors.js';
import { OvsdbClient, type Monitor, type OvsdbClientOptions } from './client.js';
import { VSwitchError } from './errors.js';
import { Transaction, type Condition } from './operations.js';
import type { NamedUuid } from './datum.js';
import { checkTypedRows, type BridgeRow, type ControllerRow, type InterfaceRow, type OpenVSwitchRow, type PortRow, type VSwitchRows, type VSwitchTable } from './rows.js';
import type { DatabaseSchema } from './schema.js';

export const VSWITCH_DB = 'Open_vSwitch';

/** The datapath coat uses by default: this machine has no OVS kernel module (userspace "netdev"). */
export const DEFAULT_DATAPATH_TYPE = 'netdev';

export interface BridgeOptions {
  /** ovs-vswitchd.conf.db(5) Bridge.datapath_type (default DEFAULT_DATAPATH_TYPE). */
  datapathType?: string;
  /** Bridge.other_config:datapath-id, written as 16 hex digits. */
  datapathId?: bigint;
  /** Bridge.other_config:hwaddr, the bridge's local port MAC ("aa:bb:cc:dd:ee:ff"). */
  hwaddr?: string;
  /** Other Bridge.other_config keys. */
  otherConfig?: Record<string, string>;
  /** Bridge.fail_mode. */
  failMode?: 'standalone' | 'secure';
  /** Bridge.protocols, e.g. ["OpenFlow13"]. */
  protocols?: string[];
  externalIds?: Record<string, string>;
  /** Return the existing bridge of this name instead of failing. */
  mayExist?: boolean;
}

export type PortType = 'internal' | 'system' | 'vxlan' | 'geneve' | 'patch' | (string & {});

export interface PortOptions {
  /** Interface.type; "system" (stored as "") is a Linux device that must already exist. Default "system". */
  type?: PortType;
  /** Interface.options. */
  options?: Record<string, string>;
  /** Interface.ofport_request: the OpenFlow port number to ask for. */
  ofportRequest?: number;
  /** Interface.mac (internal ports). */
  mac?: string;
  /** Interface.mtu_request. */
  mtuRequest?: number;
  /** Port.tag (access VLAN). */
  tag?: number;
  externalIds?: Record<string, string>;
  mayExist?: boolean;
}

export interface VxlanPortOptions {
  /** options:remote_ip: the peer VTEP, or "flow" to take it from the flow (set_field tun_dst). */
  remoteIp: string;
  /** options:key: the VNI, or "flow". */
  key?: number | 'flow';
  /** options:local_ip. */
  localIp?: string;
  /** options:dst_port (default 4789 in OVS). */
  dstPort?: number;
  ofportRequest?: number;
  externalIds?: Record<string, string>;
  mayExist?: boolean;
}

export interface ControllerOptions {
  /** "tcp:IP:PORT", "ssl:IP:PORT", "unix:PATH", or a passive "ptcp:PORT". */
  target: string;
  connectionMode?: 'in-band' | 'out-of-band';
  /** Controller.inactivity_probe in ms (0 disables). */
  inactivityProbeMs?: number;
  /** Controller.max_backoff in ms (>= 1000). */
  maxBackoffMs?: number;
}

export interface InterfaceState {
  name: string;
  ofport: number;
  mac: string | null;
}

export interface VSwitchConnectOptions extends OvsdbClientOptions {
  /** Database name (default "Open_vSwitch"). */
  db?: string;
}

function eq(column: string, value: unknown): Condition {
  return [column, '==', value];
}

export class VSwitch {
  private interfaceMonitor: Monitor | undefined;
  private rootMonitor: Monitor | undefined;

  private constructor(
    readonly client: OvsdbClient,
    readonly schema: DatabaseSchema,
    readonly db: string,
  ) {}

  /** Connects, fetches the schema and checks it against the typed rows (rows.ts). */
  static async connect(remote: string, opts: VSwitchConnectOptions = {}): Promise<VSwitch> {
    const client = await OvsdbClient.connect(remote, opts);
    try {
      return await VSwitch.over(client, opts.db);
    } catch (err) {
      client.close();
      throw err;
    }
  }

  /** Uses an existing client. */
  static async over(client: OvsdbClient, db = VSWITCH_DB): Promise<VSwitch> {
    const schema = await client.getSchema(db);
    checkTypedRows(schema);
    return new VSwitch(client, schema, db);
  }

  close(): void {
    this.client.close();
  }

  /** A transaction builder on this database. */
  transaction(): Transaction {
    return new Transaction(this.schema);
  }

  // ---- reads (fresh `select`s, not a replica, so a read after a write sees the write) -------------

  async rows<T extends VSwitchTable>(table: T, where: Condition[] = []): Promise<VSwitchRows[T][]> {
    const tx = this.transaction().select(table, where);
    const [r] = await this.client.transact(this.db, tx);
    // Decoded against the schema, whose shapes checkTypedRows verified at connect.
    return r?.op === 'select' ? (r.rows as unknown as VSwitchRows[T][]) : [];
  }

  async root(): Promise<OpenVSwitchRow> {
    const [row] = await this.rows('Open_vSwitch');
    if (!row) throw new VSwitchError('OVSDB_NOT_FOUND', 'the Open_vSwitch table has no row (run "ovs-vsctl init" once)');
    return row;
  }

  async bridges(): Promise<BridgeRow[]> {
    return this.rows('Bridge');
  }

  async bridge(name: string): Promise<BridgeRow | undefined> {
    return (await this.rows('Bridge', [eq('name', name)]))[0];
  }

  async port(name: string): Promise<PortRow | undefined> {
    return (await this.rows('Port', [eq('name', name)]))[0];
  }

  async interface(name: string): Promise<InterfaceRow | undefined> {
    return (await this.rows('Interface', [eq('name', name)]))[0];
  }

  /** The ports of a bridge, by name. */
  async ports(bridge: string): Promise<PortRow[]> {
    const br = await this.mustBridge(bridge);
    const all = await this.rows('Port');
    const mine = new Set(br.ports);
    return all.filter((p) => mine.has(p._uuid));
  }

  async controllers(bridge: string): Promise<ControllerRow[]> {
    const br = await this.mustBridge(bridge);
    const mine = new Set(br.controller);
    return (await this.rows('Controller')).filter((c) => mine.has(c._uuid));
  }

  private async mustBridge(name: string): Promise<BridgeRow> {
    const br = await this.bridge(name);
    if (!br) throw new VSwitchError('OVSDB_NOT_FOUND', `no bridge named ${name}`);
    return br;
  }

  // ---- bridges -------------------------------------------------------------------------------------

  /**
   * Creates bridge `name` with its local internal port (as ovs-vsctl add-br does) and links it from
   * Open_vSwitch.bridges. Returns the bridge's uuid.
   */
  async addBridge(name: string, opts: BridgeOptions = {}): Promise<string> {
    if (opts.mayExist) {
      const existing = await this.bridge(name);
      if (existing) return existing._uuid;
    }
    const otherConfig: Record<string, string> = { ...opts.otherConfig };
    if (opts.datapathId !== undefined) otherConfig['datapath-id'] = opts.datapathId.toString(16).padStart(16, '0');
    if (opts.hwaddr !== undefined) otherConfig.hwaddr = opts.hwaddr;
    const tx = this.transaction();
    const iface = tx.insert('Interface', { name, type: 'internal' });
    const port = tx.insert('Port', { name, interfaces: [iface] });
    const br = tx.insert('Bridge', {
      name,
      ports: [port],
      datapath_type: opts.datapathType ?? DEFAULT_DATAPATH_TYPE,
      other_config: otherConfig,
      fail_mode: opts.failMode ?? null,
      protocols: opts.protocols ?? [],
      external_ids: opts.externalIds ?? {},
    });
    tx.mutate('Open_vSwitch', [], [['bridges', 'insert', [br]]]);
    tx.comment(`coat: add-br ${name}`);
    const results = await this.client.transact(this.db, tx);
    return (results[2] as { uuid: string }).uuid;
  }

  /** Deletes a bridge; its ports, interfaces and controllers go with it (garbage collection). */
  async deleteBridge(name: string, opts: { ifExists?: boolean } = {}): Promise<void> {
    const br = await this.bridge(name);
    if (!br) {
      if (opts.ifExists) return;
      throw new VSwitchError('OVSDB_NOT_FOUND', `no bridge named ${name}`);
    }
    const tx = this.transaction();
    // The row we read must still be the bridge of that name when the transaction runs.
    tx.wait('Bridge', [eq('_uuid', br._uuid)], ['name'], '==', [{ name }], 0);
    tx.mutate('Open_vSwitch', [], [['bridges', 'delete', [br._uuid]]]);
    tx.delete('Bridge', [eq('_uuid', br._uuid)]);
    tx.comment(`coat: del-br ${name}`);
    await this.transactExpectingRow(tx, `bridge named ${name}`);
  }

  async setFailMode(bridge: string, mode: 'standalone' | 'secure' | null): Promise<void> {
    await this.updateBridge(bridge, { fail_mode: mode });
  }

  /** Bridge.protocols, e.g. ["OpenFlow13"]. */
  async setProtocols(bridge: string, protocols: string[]): Promise<void> {
    await this.updateBridge(bridge, { protocols });
  }

  /** Sets (value) or removes (null) Bridge.other_config keys, leaving the others. */
  async setBridgeOtherConfig(bridge: string, kv: Record<string, string | null>): Promise<void> {
    const remove = Object.keys(kv);
    const add = Object.fromEntries(Object.entries(kv).filter(([, v]) => v !== null)) as Record<string, string>;
    const tx = this.transaction();
    tx.wait('Bridge', [eq('name', bridge)], ['name'], '==', [{ name: bridge }], 0);
    tx.mutate('Bridge', [eq('name', bridge)], [
      ['other_config', 'delete', remove],
      ['other_config', 'insert', add],
    ]);
    await this.transactExpectingRow(tx, `bridge ${bridge}`);
  }

  /**
   * Interface.mtu_request (ovs-vswitchd.conf.db(5)): the MTU ovs-vswitchd gives the interface, e.g.
   * a bridge's internal port, whose MTU otherwise follows the bridge's other ports. null removes
   * the request.
   */
  async setInterfaceMtu(name: string, mtu: number | null): Promise<void> {
    const tx = this.transaction();
    tx.wait('Interface', [eq('name', name)], ['name'], '==', [{ name }], 0);
    tx.update('Interface', [eq('name', name)], { mtu_request: mtu });
    tx.comment(`coat: set Interface ${name} mtu_request=${mtu ?? '[]'}`);
    await this.transactExpectingRow(tx, `interface named ${name}`);
  }

  private async updateBridge(bridge: string, row: Record<string, unknown>): Promise<void> {
    const tx = this.transaction();
    tx.update('Bridge', [eq('name', bridge)], row);
    const [r] = await this.client.transact(this.db, tx);
    if ((r as { count: number }).count === 0) throw new VSwitchError('OVSDB_NOT_FOUND', `no bridge named ${bridge}`);
  }

  /**
   * Runs `tx`, whose first operation is a `wait` that the named row exists (RFC 7047 §5.2.6 with
   * timeout 0: checked once, atomically with the rest), and turns its "timed out" into NOT_FOUND.
   */
  private async transactExpectingRow(tx: Transaction, what: string): Promise<void> {
    try {
      await this.client.transact(this.db, tx);
    } catch (err) {
      if (hasCode(err, 'OVSDB_TIMED_OUT') && (err as { index?: number }).index === 0) throw new VSwitchError('OVSDB_NOT_FOUND', `no ${what}`);
      throw err;
    }
  }

  // ---- ports ---------------------------------------------------------------------------------------

  /** Adds port `name` with one interface of the same name to `bridge`. Returns the Port uuid. */
  async addPort(bridge: string, name: string, opts: PortOptions = {}): Promise<string> {
    if (opts.mayExist) {
      const existing = await this.port(name);
      if (existing) return existing._uuid;
    }
    const tx = this.transaction();
    tx.wait('Bridge', [eq('name', bridge)], ['name'], '==', [{ name: bridge }], 0);
    this.addPortOps(tx, bridge, name, opts);
    tx.comment(`coat: add-port ${bridge} ${name}`);
    try {
      const results = await this.client.transact(this.db, tx);
      return (results[2] as { uuid: string }).uuid;
    } catch (err) {
      if (hasCode(err, 'OVSDB_TIMED_OUT') && (err as { index?: number }).index === 0) throw new VSwitchError('OVSDB_NOT_FOUND', `no bridge named ${bridge}`);
      throw err;
    }
  }

  /**
   * Adds many ports to `bridge` in one transaction: their rows, then one mutation of Bridge.ports
   * with all of them (one growing-set mutation per port would cost the server O(n^2)).
   * Returns the Port uuids in order.
   */
  async addPorts(bridge: string, ports: readonly ({ name: string } & PortOptions)[]): Promise<string[]> {
    const tx = this.transaction();
    tx.wait('Bridge', [eq('name', bridge)], ['name'], '==', [{ name: bridge }], 0);
    const refs = ports.map((p) => this.portOps(tx, p.name, p));
    const firstPortOp = 2; // after the wait and the first Interface insert
    tx.mutate('Bridge', [eq('name', bridge)], [['ports', 'insert', refs]]);
    tx.comment(`coat: add ${ports.length} ports to ${bridge}`);
    try {
      const results = await this.client.transact(this.db, tx);
      return ports.map((_, i) => (results[firstPortOp + 2 * i] as { uuid: string }).uuid);
    } catch (err) {
      if (hasCode(err, 'OVSDB_TIMED_OUT') && (err as { index?: number }).index === 0) throw new VSwitchError('OVSDB_NOT_FOUND', `no bridge named ${bridge}`);
      throw err;
    }
  }

  /**
   * Appends the operations that add one port to `tx` (insert Interface, insert Port, link from the
   * bridge), for callers composing their own transactions.
   */
  addPortOps(tx: Transaction, bridge: string, name: string, opts: PortOptions = {}): void {
    const port = this.portOps(tx, name, opts);
    tx.mutate('Bridge', [eq('name', bridge)], [['ports', 'insert', [port]]]);
  }

  /** Appends the Interface and Port inserts of one port, not yet linked from any bridge. */
  portOps(tx: Transaction, name: string, opts: PortOptions = {}): NamedUuid {
    const type = opts.type === undefined || opts.type === 'system' ? '' : opts.type;
    const ifaceRow: Record<string, unknown> = { name, type, options: opts.options ?? {} };
    if (opts.ofportRequest !== undefined) ifaceRow.ofport_request = opts.ofportRequest;
    if (opts.mac !== undefined) ifaceRow.mac = opts.mac;
    if (opts.mtuRequest !== undefined) ifaceRow.mtu_request = opts.mtuRequest;
    if (opts.externalIds) ifaceRow.external_ids = opts.externalIds;
    const iface = tx.insert('Interface', ifaceRow);
    const portRow: Record<string, unknown> = { name, interfaces: [iface] };
    if (opts.tag !== undefined) portRow.tag = opts.tag;
    if (opts.externalIds) portRow.external_ids = opts.externalIds;
    return tx.insert('Port', portRow);
  }

  /** A `type=vxlan` port (ovs-vswitchd.conf.db(5) "Tunnel Options"). */
  async addVxlanPort(bridge: string, name: string, opts: VxlanPortOptions): Promise<string> {
    return this.addPort(bridge, name, {
      type: 'vxlan',
      options: vxlanOptions(opts),
      ...(opts.ofportRequest !== undefined ? { ofportRequest: opts.ofportRequest } : {}),
      ...(opts.externalIds ? { externalIds: opts.externalIds } : {}),
      ...(opts.mayExist ? { mayExist: true } : {}),
    });
  }

  /** Removes port `name` from `bridge`; the Port and its interfaces are deleted with it. */
  async deletePort(bridge: string, name: string, opts: { ifExists?: boolean } = {}): Promise<void> {
    const port = await this.port(name);
    if (!port) {
      if (opts.ifExists) return;
      throw new VSwitchError('OVSDB_NOT_FOUND', `no port named ${name}`);
    }
    const tx = this.transaction();
    // The port must still be on this bridge when the transaction runs.
    tx.wait('Bridge', [eq('name', bridge), ['ports', 'includes', [port._uuid]]], ['name'], '==', [{ name: bridge }], 0);
    tx.mutate('Bridge', [eq('name', bridge)], [['ports', 'delete', [port._uuid]]]);
    tx.delete('Port', [eq('_uuid', port._uuid)]);
    tx.comment(`coat: del-port ${bridge} ${name}`);
    await this.transactExpectingRow(tx, `port ${name} on bridge ${bridge}`);
  }

  // ---- controllers ---------------------------------------------------------------------------------

  /**
   * Replaces the bridge's controllers (the old Controller rows are garbage-collected) and, when
   * given, its OpenFlow versions. Note: with a controller set, ovs-vswitchd drops its default
   * NORMAL flow (fail_mode "secure" keeps it away even when the controller is unreachable).
   */
  async setControllers(bridge: string, controllers: ControllerOptions[], opts: { protocols?: string[] } = {}): Promise<void> {
    const tx = this.transaction();
    tx.wait('Bridge', [eq('name', bridge)], ['name'], '==', [{ name: bridge }], 0);
    const refs = controllers.map((c) => {
      const row: Record<string, unknown> = { target: c.target };
      if (c.connectionMode !== undefined) row.connection_mode = c.connectionMode;
      if (c.inactivityProbeMs !== undefined) row.inactivity_probe = c.inactivityProbeMs;
      if (c.maxBackoffMs !== undefined) row.max_backoff = c.maxBackoffMs;
      return tx.insert('Controller', row);
    });
    tx.update('Bridge', [eq('name', bridge)], { controller: refs, ...(opts.protocols ? { protocols: opts.protocols } : {}) });
    tx.comment(`coat: set-controller ${bridge}`);
    await this.transactExpectingRow(tx, `bridge ${bridge}`);
  }

  // ---- waiting on ovs-vswitchd -----------------------------------------------------------------------

  /**
   * Waits until ovs-vswitchd has given interface `name` an OpenFlow port (Interface.ofport > 0) and
   * reports it with its MAC (Interface.mac_in_use). ofport -1 or an Interface.error means the
   * interface could not be created: that fails at once with the reason.
   */
  async waitForInterface(name: string, timeoutMs = 5000): Promise<InterfaceState> {
    const mon = await this.interfaces();
    return mon.waitFor(
      `interface ${name} to get an ofport`,
      (r) => {
        for (const row of r.table('Interface').values()) {
          if (row.name !== name) continue;
          const i = row as unknown as InterfaceRow;
          // ovs-vswitchd.conf.db(5) Interface.ofport: -1 when the interface cannot be created; `error` says why.
          if (i.ofport === -1 || i.error !== null) throw new VSwitchError('OVSDB_NOT_FOUND', `interface ${name} failed: ${i.error ?? 'ofport -1'}`);
          if (i.ofport !== null && i.ofport > 0) return { name, ofport: i.ofport, mac: i.mac_in_use };
        }
        return undefined;
      },
      timeoutMs,
    ).catch((err: unknown) => {
      if (hasCode(err, 'OVSDB_WAIT_TIMEOUT')) throw new VSwitchError('OVSDB_WAIT_TIMEOUT', (err as Error).message);
      throw err;
    });
  }

  /**
   * Waits until ovs-vswitchd has applied every change committed so far, as ovs-vsctl does unless
   * told --no-wait: increment Open_vSwitch.next_cfg and wait for ovs-vswitchd to copy it into
   * cur_cfg, which it does only after a complete reconfiguration (ovs-vswitchd.conf.db(5),
   * Open_vSwitch "next_cfg"/"cur_cfg"). A commit alone says nothing about the switch: ports are
   * created and devices removed later, when ovs-vswitchd next reads the database. Needs a running
   * ovs-vswitchd (against ovsdb-server alone it times out with OVSDB_WAIT_TIMEOUT).
   */
  async waitForVswitchd(timeoutMs = 10_000): Promise<number> {
    const tx = this.transaction();
    tx.mutate('Open_vSwitch', [], [['next_cfg', '+=', 1]]);
    tx.select('Open_vSwitch', [], ['next_cfg']);
    tx.comment('coat: wait for ovs-vswitchd');
    const results = await this.client.transact(this.db, tx);
    const rows = (results[1] as { rows?: { next_cfg?: unknown }[] }).rows;
    const target = rows?.[0]?.next_cfg;
    if (typeof target !== 'number') throw new VSwitchError('OVSDB_NOT_FOUND', 'no Open_vSwitch row with a next_cfg');
    if (!this.rootMonitor?.active) {
      this.rootMonitor = await this.client.monitor(this.db, { Open_vSwitch: { columns: ['cur_cfg'] } });
    }
    return this.rootMonitor
      .waitFor(
        `ovs-vswitchd to apply configuration ${target} (Open_vSwitch.cur_cfg)`,
        (r) => {
          for (const row of r.table('Open_vSwitch').values()) {
            const cur = (row as unknown as OpenVSwitchRow).cur_cfg;
            if (typeof cur === 'number' && cur >= target) return cur;
          }
          return undefined;
        },
        timeoutMs,
      )
      .catch((err: unknown) => {
        if (hasCode(err, 'OVSDB_WAIT_TIMEOUT')) throw new VSwitchError('OVSDB_WAIT_TIMEOUT', (err as Error).message);
        throw err;
      });
  }

  /** A monitor of the Interface columns coat waits on, started on first use. */
  private async interfaces(): Promise<Monitor> {
    if (!this.interfaceMonitor?.active) {
      this.interfaceMonitor = await this.client.monitor(this.db, { Interface: { columns: ['name', 'ofport', 'mac_in_use', 'error'] } });
    }
    return this.interfaceMonitor;
  }
}

/** The options map of a vxlan interface. */
export function vxlanOptions(o: Pick<VxlanPortOptions, 'remoteIp' | 'key' | 'localIp' | 'dstPort'>): Record<string, string> {
  const out: Record<string, string> = { remote_ip: o.remoteIp };
  if (o.key !== undefined) out.key = String(o.key);
  if (o.localIp !== undefined) out.local_ip = o.localIp;
  if (o.dstPort !== undefined) out.dst_port = String(o.dstPort);
  return out;
}
