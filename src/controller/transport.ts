/**
 * Sockets for OpenFlow channels: TCP, TLS and unix, passive (we listen and switches connect, the
 * usual OVS `set-controller br tcp:...`) and active (we connect to a switch listening with
 * `set-controller br ptcp:...`/`punix:...`). Only sockets here; framing and protocol live in
 * connection.ts. OpenFlow 1.3.5 §6.3.3: "The OpenFlow channel is usually encrypted using TLS, but
 * may be run directly over TCP".
 */
import net from 'node:net';
import tls from 'node:tls';
import { lstat, unlink } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import type { Endpoint } from './endpoint.js';
import { ControllerError, ControllerErrorCode } from './errors.js';

/** Key material for `ssl:`/`pssl:` (PEM). The peer must present a certificate signed by `ca`. */
export interface TlsOptions {
  key: string | Buffer;
  cert: string | Buffer;
  ca: string | Buffer;
}

export interface Listener {
  /** Where it actually listens (the real port when 0 was asked). */
  address: string;
  close(): Promise<void>;
}

/** Listens on a passive endpoint; `onSocket` gets each accepted connection once it is usable. */
export async function listen(
  endpoint: Endpoint,
  tlsOpts: TlsOptions | undefined,
  onSocket: (s: Duplex, peer: string) => void,
  onTlsError: (err: Error, peer: string) => void = () => {},
): Promise<Listener> {
  let server: net.Server;
  if (endpoint.kind === 'tcp' && endpoint.tls) {
    if (!tlsOpts) throw new ControllerError(ControllerErrorCode.Endpoint, 'pssl: needs TLS key, certificate and CA (ControllerOptions.tls)');
    server = tls.createServer({ ...tlsOpts, requestCert: true, rejectUnauthorized: true }, (s) => {
      onSocket(s, `${s.remoteAddress}:${s.remotePort}`);
    });
    // A peer without a certificate from our CA never becomes a connection; the caller hears why.
    server.on('tlsClientError', (err, s) => onTlsError(err, `${s.remoteAddress}:${s.remotePort}`));
  } else {
    server = net.createServer((s) => {
      s.setNoDelay(true);
      onSocket(s, endpoint.kind === 'unix' ? `unix:${endpoint.path}` : `${s.remoteAddress}:${s.remotePort}`);
    });
  }
  if (endpoint.kind === 'unix') {
    // A socket file left by an earlier run would make listen() fail with EADDRINUSE (OVS's punix
    // unlinks it likewise); anything that is not a socket is left alone.
    const st = await lstat(endpoint.path).catch(() => undefined);
    if (st?.isSocket()) await unlink(endpoint.path);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (endpoint.kind === 'unix') server.listen(endpoint.path, resolve);
    else server.listen(endpoint.port, endpoint.host, resolve);
  });
  const a = server.address();
  const address = typeof a === 'string' || a === null ? `punix:${endpoint.kind === 'unix' ? endpoint.path : ''}` : `p${endpoint.kind === 'tcp' && endpoint.tls ? 'ssl' : 'tcp'}:${a.port}:${a.address}`;
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  };
}

/** Connects to an active endpoint; resolves once the socket (and TLS handshake) is up. */
export function connect(endpoint: Endpoint, tlsOpts: TlsOptions | undefined, timeoutMs: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    let s: net.Socket;
    const onError = (e: Error) => {
      clearTimeout(timer);
      s.destroy();
      reject(e);
    };
    const timer = setTimeout(() => onError(new Error(`connect timed out after ${timeoutMs} ms`)), timeoutMs);
    const ready = () => {
      clearTimeout(timer);
      s.removeListener('error', onError);
      if (!(s instanceof tls.TLSSocket)) s.setNoDelay(true);
      resolve(s);
    };
    if (endpoint.kind === 'unix') {
      s = net.connect(endpoint.path, ready);
    } else if (endpoint.tls) {
      if (!tlsOpts) {
        clearTimeout(timer);
        reject(new ControllerError(ControllerErrorCode.Endpoint, 'ssl: needs TLS key, certificate and CA (ControllerOptions.tls)'));
        return;
      }
      // OVS certificates name a switch, not a host name, so only the CA signature is checked.
      s = tls.connect({ host: endpoint.host, port: endpoint.port, ...tlsOpts, checkServerIdentity: () => undefined }, ready);
    } else {
      s = net.connect(endpoint.port, endpoint.host, ready);
    }
    s.once('error', onError);
  });
}
