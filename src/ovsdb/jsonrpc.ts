/**
 * JSON-RPC 1.0 messages as OVSDB uses them (RFC 7047 §4). Pure: text <-> typed message.
 *
 * - request:      {"method": string, "params": [...], "id": <non-null>}
 * - notification: {"method": string, "params": [...], "id": null}
 * - response:     {"result": <json>, "error": <json> | null, "id": <same as the request>}
 */
import { OvsdbProtocolError } from './errors.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export type RpcId = Exclude<JsonValue, null>;

export interface RpcRequest {
  kind: 'request';
  method: string;
  params: JsonValue[];
  id: RpcId;
}

export interface RpcNotification {
  kind: 'notification';
  method: string;
  params: JsonValue[];
}

export interface RpcResponse {
  kind: 'response';
  id: RpcId;
  result: JsonValue;
  error: JsonValue;
}

export type RpcMessage = RpcRequest | RpcNotification | RpcResponse;

function isObject(v: unknown): v is { [key: string]: JsonValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses one framed message. `offset` is its stream offset, for errors. */
export function decodeMessage(text: string, offset?: number): RpcMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new OvsdbProtocolError('OVSDB_BAD_JSON', `message is not valid JSON: ${(err as Error).message}`, offset, { cause: err });
  }
  if (!isObject(value)) throw new OvsdbProtocolError('OVSDB_BAD_MESSAGE', 'message is not a JSON object', offset);
  const id = value.id === undefined ? null : value.id;
  if ('method' in value) {
    if (typeof value.method !== 'string') throw new OvsdbProtocolError('OVSDB_BAD_MESSAGE', '"method" is not a string', offset);
    if (!Array.isArray(value.params)) throw new OvsdbProtocolError('OVSDB_BAD_MESSAGE', `${value.method}: "params" is not an array`, offset);
    if (id === null) return { kind: 'notification', method: value.method, params: value.params };
    return { kind: 'request', method: value.method, params: value.params, id };
  }
  if ('result' in value || 'error' in value) {
    if (id === null) throw new OvsdbProtocolError('OVSDB_BAD_MESSAGE', 'response with a null id', offset);
    return { kind: 'response', id, result: value.result ?? null, error: value.error ?? null };
  }
  throw new OvsdbProtocolError('OVSDB_BAD_MESSAGE', 'object is neither a request nor a response (no "method", "result" or "error")', offset);
}

export function encodeRequest(method: string, params: JsonValue[], id: RpcId): string {
  return JSON.stringify({ method, params, id });
}

export function encodeNotification(method: string, params: JsonValue[]): string {
  return JSON.stringify({ method, params, id: null });
}

export function encodeResponse(id: RpcId, result: JsonValue, error: JsonValue = null): string {
  return JSON.stringify({ id, result, error });
}

/** RFC 7047 §3.1 <error>: {"error": string, "details": string?}. Returns undefined for anything else. */
export function asErrorObject(v: JsonValue): { error: string; details: string | undefined } | undefined {
  if (typeof v === 'string') return { error: v, details: undefined };
  if (!isObject(v) || typeof v.error !== 'string') return undefined;
  return { error: v.error, details: typeof v.details === 'string' ? v.details : undefined };
}
