/**
 * OpenFlow connection methods in Open vSwitch's syntax (ovs-vswitchd.conf.db(5), "Controller
 * Targets"), so one string configures coat and OVS alike:
 *
 *   active:  tcp:HOST[:PORT]   ssl:HOST[:PORT]   unix:FILE
 *   passive: ptcp:[PORT][:IP]  pssl:[PORT][:IP]  punix:FILE
 *
 * IPv6 addresses go in brackets (`tcp:[::1]:6653`). The default port is 6653, the IANA port
 * for OpenFlow (OpenFlow 1.3.5 §6.3.1). Pure: parsing only, no sockets.
 */
import { ControllerError, ControllerErrorCode } from './errors.js';

export const OPENFLOW_PORT = 6653;

export type Endpoint =
  | { kind: 'tcp'; tls: boolean; host: string; port: number }
  | { kind: 'unix'; path: string };

export interface ParsedEndpoint {
  /** `true` for ptcp/pssl/punix: we listen; `false`: we connect. */
  passive: boolean;
  endpoint: Endpoint;
}

function bad(text: string, why: string): never {
  throw new ControllerError(ControllerErrorCode.Endpoint, `bad connection method "${text}": ${why}`);
}

function parsePort(text: string, s: string | undefined): number {
  if (s === undefined || s === '') return OPENFLOW_PORT;
  if (!/^\d+$/.test(s)) bad(text, `port "${s}" is not a number`);
  const port = Number(s);
  if (port > 65535) bad(text, `port ${port} is above 65535`);
  return port;
}

/** Splits `HOST[:PORT]` / `PORT[:IP]` remembering brackets around IPv6 addresses. */
function splitAddress(rest: string): [string, string | undefined] {
  if (rest.startsWith('[')) {
    const end = rest.indexOf(']');
    if (end < 0) return [rest, undefined];
    const host = rest.slice(1, end);
    const after = rest.slice(end + 1);
    return [host, after.startsWith(':') ? after.slice(1) : undefined];
  }
  const colon = rest.indexOf(':');
  return colon < 0 ? [rest, undefined] : [rest.slice(0, colon), rest.slice(colon + 1)];
}

export function parseEndpoint(text: string): ParsedEndpoint {
  const colon = text.indexOf(':');
  if (colon < 0) bad(text, 'expected METHOD:ARGS, e.g. tcp:127.0.0.1:6653 or punix:/run/coat.sock');
  const method = text.slice(0, colon);
  const rest = text.slice(colon + 1);
  switch (method) {
    case 'unix':
    case 'punix':
      if (rest === '') bad(text, 'no socket path');
      return { passive: method === 'punix', endpoint: { kind: 'unix', path: rest } };
    case 'tcp':
    case 'ssl': {
      const [host, port] = splitAddress(rest);
      if (host === '') bad(text, 'no host');
      return { passive: false, endpoint: { kind: 'tcp', tls: method === 'ssl', host, port: parsePort(text, port) } };
    }
    case 'ptcp':
    case 'pssl': {
      // ptcp:[PORT][:IP]: the port comes first here, unlike the active form.
      const colon2 = rest.indexOf(':');
      const portText = colon2 < 0 ? rest : rest.slice(0, colon2);
      let host = colon2 < 0 ? '' : rest.slice(colon2 + 1);
      if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
      return { passive: true, endpoint: { kind: 'tcp', tls: method === 'pssl', host: host || '0.0.0.0', port: parsePort(text, portText) } };
    }
    default:
      return bad(text, `unknown method "${method}" (expected tcp, ssl, unix, ptcp, pssl or punix)`);
  }
}

/** The endpoint back in OVS syntax, for logs. */
export function formatEndpoint(p: ParsedEndpoint): string {
  const e = p.endpoint;
  if (e.kind === 'unix') return `${p.passive ? 'p' : ''}unix:${e.path}`;
  const host = e.host.includes(':') ? `[${e.host}]` : e.host;
  const method = (p.passive ? 'p' : '') + (e.tls ? 'ssl' : 'tcp');
  return p.passive ? `${method}:${e.port}:${host}` : `${method}:${host}:${e.port}`;
}
