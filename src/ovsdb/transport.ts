/**
 * OVSDB remotes in Open vSwitch's syntax (ovsdb-server(1) "--remote", ovs-vsctl "--db"):
 * `unix:PATH`, `tcp:HOST:PORT`, `ssl:HOST:PORT` (IPv6 hosts in brackets: `tcp:[::1]:6640`).
 * Opens the socket; nothing else.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { OvsdbTransportError } from './errors.js';

export type Remote = { kind: 'unix'; path: string } | { kind: 'tcp' | 'ssl'; host: string; port: number };

/** RFC 7047 §6: the registered OVSDB port. */
export const OVSDB_PORT = 6640;

export function parseRemote(remote: string): Remote {
  const bad = (why: string): never => {
    throw new OvsdbTransportError('OVSDB_CONNECT', remote, `bad OVSDB remote ${JSON.stringify(remote)}: ${why}`);
  };
  const colon = remote.indexOf(':');
  if (colon < 0) return bad('expected unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT');
  const kind = remote.slice(0, colon);
  const rest = remote.slice(colon + 1);
  if (kind === 'unix') return rest ? { kind, path: rest } : bad('empty path');
  if (kind !== 'tcp' && kind !== 'ssl') return bad(`unknown method ${kind}`);
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(rest);
  if (!m) return bad('expected HOST:PORT');
  const port = m[3] === undefined ? OVSDB_PORT : Number(m[3]);
  if (!(port > 0 && port < 65536)) return bad(`port ${m[3]} out of range`);
  return { kind, host: (m[1] ?? m[2])!, port };
}

export interface ConnectOptions {
  /** TLS options for `ssl:` remotes (key, cert, ca, ...). */
  tls?: ConnectionOptions;
  /** Give up connecting after this long (default 5 s). */
  timeoutMs?: number;
}

/** Opens a connected socket to `remote`; rejects with OvsdbTransportError(OVSDB_CONNECT). */
export function openSocket(remote: string, opts: ConnectOptions = {}): Promise<Socket> {
  const r = parseRemote(remote);
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const socket =
      r.kind === 'unix'
        ? netConnect({ path: r.path })
        : r.kind === 'tcp'
          ? netConnect({ host: r.host, port: r.port })
          : tlsConnect({ host: r.host, port: r.port, ...opts.tls });
    const ready = r.kind === 'ssl' ? 'secureConnect' : 'connect';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new OvsdbTransportError('OVSDB_CONNECT', remote, `no connection to ${remote} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once(ready, () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      if (r.kind !== 'unix') socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new OvsdbTransportError('OVSDB_CONNECT', remote, `cannot connect to ${remote}: ${err.message}`, { cause: err }));
    });
  });
}
