/**
 * Typed rows for the Open_vSwitch tables coat uses (vswitch.ovsschema 8.x; ovs-vswitchd.conf.db(5)).
 * Only the columns coat reads are typed; a decoded row carries every monitored column anyway.
 *
 * The JS shape of each column follows from its schema type (datum.ts); `TYPED_COLUMNS` states the
 * shape each interface below assumes, and `checkTypedRows` verifies it against the schema the
 * server actually serves, so a schema change fails loudly at connect time instead of as a wrong
 * read later.
 */
import { OvsdbDatumError } from './errors.js';
import { columnShape, type ColumnShape, type DatabaseSchema } from './schema.js';

type StrMap = Map<string, string>;

export interface OpenVSwitchRow {
  _uuid: string;
  bridges: string[];
  next_cfg: number;
  cur_cfg: number;
  ovs_version: string | null;
  db_version: string | null;
  datapath_types: string[];
  iface_types: string[];
  other_config: StrMap;
  external_ids: StrMap;
}

export interface BridgeRow {
  _uuid: string;
  name: string;
  datapath_type: string;
  /** Set by ovs-vswitchd: 16 hex digits. */
  datapath_id: string | null;
  fail_mode: 'standalone' | 'secure' | null;
  ports: string[];
  controller: string[];
  protocols: string[];
  other_config: StrMap;
  external_ids: StrMap;
  status: StrMap;
}

export interface PortRow {
  _uuid: string;
  name: string;
  interfaces: string[];
  tag: number | null;
  trunks: number[];
  other_config: StrMap;
  external_ids: StrMap;
}

export interface InterfaceRow {
  _uuid: string;
  name: string;
  /** "" (system), "internal", "vxlan", "patch", ... */
  type: string;
  options: StrMap;
  /** Set by ovs-vswitchd: the OpenFlow port number, -1 when the interface could not be created. */
  ofport: number | null;
  ofport_request: number | null;
  mac_in_use: string | null;
  mac: string | null;
  error: string | null;
  admin_state: 'up' | 'down' | null;
  link_state: 'up' | 'down' | null;
  mtu: number | null;
  mtu_request: number | null;
  other_config: StrMap;
  external_ids: StrMap;
  status: StrMap;
}

export interface ControllerRow {
  _uuid: string;
  target: string;
  connection_mode: 'in-band' | 'out-of-band' | null;
  inactivity_probe: number | null;
  max_backoff: number | null;
  is_connected: boolean;
  role: 'other' | 'master' | 'slave' | null;
  other_config: StrMap;
  external_ids: StrMap;
  status: StrMap;
}

export interface VSwitchRows {
  Open_vSwitch: OpenVSwitchRow;
  Bridge: BridgeRow;
  Port: PortRow;
  Interface: InterfaceRow;
  Controller: ControllerRow;
}

export type VSwitchTable = keyof VSwitchRows;

/** The shape each typed column assumes (see datum.ts for what each shape is in JS). */
export const TYPED_COLUMNS: { readonly [T in VSwitchTable]: { readonly [C in Exclude<keyof VSwitchRows[T], '_uuid'>]: ColumnShape } } = {
  Open_vSwitch: {
    bridges: 'set',
    next_cfg: 'scalar',
    cur_cfg: 'scalar',
    ovs_version: 'optional',
    db_version: 'optional',
    datapath_types: 'set',
    iface_types: 'set',
    other_config: 'map',
    external_ids: 'map',
  },
  Bridge: {
    name: 'scalar',
    datapath_type: 'scalar',
    datapath_id: 'optional',
    fail_mode: 'optional',
    ports: 'set',
    controller: 'set',
    protocols: 'set',
    other_config: 'map',
    external_ids: 'map',
    status: 'map',
  },
  Port: { name: 'scalar', interfaces: 'set', tag: 'optional', trunks: 'set', other_config: 'map', external_ids: 'map' },
  Interface: {
    name: 'scalar',
    type: 'scalar',
    options: 'map',
    ofport: 'optional',
    ofport_request: 'optional',
    mac_in_use: 'optional',
    mac: 'optional',
    error: 'optional',
    admin_state: 'optional',
    link_state: 'optional',
    mtu: 'optional',
    mtu_request: 'optional',
    other_config: 'map',
    external_ids: 'map',
    status: 'map',
  },
  Controller: {
    target: 'scalar',
    connection_mode: 'optional',
    inactivity_probe: 'optional',
    max_backoff: 'optional',
    is_connected: 'scalar',
    role: 'optional',
    other_config: 'map',
    external_ids: 'map',
    status: 'map',
  },
};

/** Throws OVSDB_SCHEMA when the server's schema disagrees with the typed rows above. */
export function checkTypedRows(schema: DatabaseSchema): void {
  for (const [table, columns] of Object.entries(TYPED_COLUMNS)) {
    const t = schema.tables.get(table);
    if (!t) throw new OvsdbDatumError('OVSDB_SCHEMA', table, `the server's ${schema.name} schema has no table ${table}`);
    for (const [column, shape] of Object.entries(columns)) {
      const c = t.columns.get(column);
      if (!c) throw new OvsdbDatumError('OVSDB_SCHEMA', `${table}.${column}`, 'missing from the server schema');
      const actual = columnShape(c.type);
      if (actual !== shape) throw new OvsdbDatumError('OVSDB_SCHEMA', `${table}.${column}`, `typed as ${shape}, but the server schema makes it ${actual}`);
    }
  }
}
