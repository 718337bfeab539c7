/**
 * Bad input from a scriptable fake OVSDB server built on our own framer (MQTT.js's fake-broker
 * pattern): every case must end in a typed error, never a crash or a hang.
 */
import t from 'tap';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { newTag } from '../../lab/tag.js';
import { JsonFramer } from '../../src/ovsdb/framer.js';
import { decodeMessage, type RpcMessage, type RpcRequest } from '../../src/ovsdb/jsonrpc.js';
import { OvsdbClient, OvsdbError, OvsdbRpcError, type OvsdbClientOptions } from '../../src/ovsdb/index.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

type Script = (msg: RpcMessage, sock: Socket, all: RpcMessage[]) => void;

interface Fake {
  path: string;
  received: RpcMessage[];
  server: Server;
  /** Destroys every open connection (the server keeps listening). */
  drop(): void;
}

async function fakeServer(t: Teardown, script: Script): Promise<Fake> {
  const path = join(tmpdir(), `coat-${newTag()}-ovsdb-fake.sock`);
  const received: RpcMessage[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    const framer = new JsonFramer();
    sock.on('data', (b) => {
      for (const text of framer.push(b)) {
        const msg = decodeMessage(text);
        received.push(msg);
        script(msg, sock, received);
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
    await rm(path, { force: true });
  });
  return { path, received, server, drop: () => sockets.forEach((s) => s.destroy()) };
}

async function client(t: Teardown, fake: Fake, opts: OvsdbClientOptions = {}): Promise<OvsdbClient> {
  const c = await OvsdbClient.connect(`unix:${fake.path}`, { probeIntervalMs: 0, callTimeoutMs: 2000, ...opts });
  t.teardown(() => c.close());
  return c;
}

async function failure(p: Promise<unknown>): Promise<OvsdbError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof OvsdbError) return err;
    throw new Error(`not a typed OVSDB error: ${String(err)}`);
  }
  throw new Error('expected a failure, got a result');
}

const reqId = (m: RpcMessage) => (m as RpcRequest).id;

t.test('truncated JSON and then the peer closes: OVSDB_CONNECTION_LOST naming the partial message', async (t) => {
  const fake = await fakeServer(t, (m, sock) => {
    sock.write(`{"id":${JSON.stringify(reqId(m))},"result":["Open_vS`);
    setTimeout(() => sock.end(), 20);
  });
  const c = await client(t, fake);
  const disconnected = new Promise<OvsdbError>((r) => c.once('disconnected', r));
  const err = await failure(c.listDbs());
  t.equal(err.code, 'OVSDB_CONNECTION_LOST');
  t.match(err.message, /in the middle of a message \(\d+ bytes buffered\)/);
  t.equal((await disconnected).code, 'OVSDB_CONNECTION_LOST');
  t.equal((await failure(c.listDbs())).code, 'OVSDB_CONNECTION_LOST', 'later calls fail at once');
});

t.test('truncated JSON and then silence: the call deadline fires (OVSDB_CALL_TIMEOUT)', async (t) => {
  const fake = await fakeServer(t, (m, sock) => sock.write(`{"id":${JSON.stringify(reqId(m))},"result":[`));
  const c = await client(t, fake);
  const started = Date.now();
  const err = await failure(c.call('list_dbs', [], 300));
  t.equal(err.code, 'OVSDB_CALL_TIMEOUT');
  t.ok(Date.now() - started < 2000, 'no hang');
});

t.test('a reply with an id we never sent: OVSDB_UNKNOWN_REPLY_ID', async (t) => {
  const fake = await fakeServer(t, (_m, sock) => sock.write('{"id":424242,"result":[],"error":null}'));
  const c = await client(t, fake);
  const err = await failure(c.listDbs());
  t.equal(err.code, 'OVSDB_UNKNOWN_REPLY_ID');
  t.match(err.message, /424242/);
  // The id as a string is another id (JSON-RPC compares ids as JSON values).
  const strId = await fakeServer(t, (m, sock) => sock.write(JSON.stringify({ id: String(reqId(m)), result: [], error: null })));
  t.equal((await failure((await client(t, strId)).listDbs())).code, 'OVSDB_UNKNOWN_REPLY_ID');
});

t.test('an error object where a result was expected: OvsdbRpcError with the server error', async (t) => {
  const fake = await fakeServer(t, (m, sock) =>
    sock.write(JSON.stringify({ id: reqId(m), result: null, error: { error: 'unknown database', details: 'no db Nope' } })),
  );
  const c = await client(t, fake);
  const err = await failure(c.getSchema('Nope'));
  t.ok(err instanceof OvsdbRpcError);
  t.equal(err.code, 'OVSDB_RPC_ERROR');
  t.equal((err as OvsdbRpcError).error, 'unknown database');
  t.equal((err as OvsdbRpcError).details, 'no db Nope');
  t.equal((err as OvsdbRpcError).method, 'get_schema');
  t.ok(c.connected, 'an RPC error does not end the session');
});

t.test('a result of the wrong shape: OVSDB_MALFORMED_REPLY; the session survives', async (t) => {
  const fake = await fakeServer(t, (m, sock) => {
    const r = m as RpcRequest;
    const result = r.method === 'list_dbs' ? { not: 'an array' } : r.method === 'lock' ? {} : r.method === 'get_schema' ? (r.params[0] === 'Y' ? { name: 'Y', tables: {} } : { name: 'X', tables: 3 }) : { rows: 1 };
    sock.write(JSON.stringify({ id: r.id, result, error: null }));
  });
  const c = await client(t, fake);
  t.equal((await failure(c.listDbs())).code, 'OVSDB_MALFORMED_REPLY');
  t.equal((await failure(c.lock('x'))).code, 'OVSDB_MALFORMED_REPLY');
  t.equal((await failure(c.getSchema('X'))).code, 'OVSDB_SCHEMA');
  t.equal((await failure(c.transact('Y', [{ op: 'comment', comment: 'x' }]))).code, 'OVSDB_MALFORMED_REPLY');
  t.ok(c.connected);
});

t.test('a huge message: OVSDB_MESSAGE_TOO_LARGE before it is all buffered', async (t) => {
  const fake = await fakeServer(t, (m, sock) => {
    sock.write(`{"id":${JSON.stringify(reqId(m))},"result":["`);
    const chunk = 'x'.repeat(256 * 1024);
    for (let i = 0; i < 8; i++) sock.write(chunk); // 2 MiB, never closed
  });
  const c = await client(t, fake, { maxMessageBytes: 1024 * 1024 });
  const err = await failure(c.listDbs());
  t.equal(err.code, 'OVSDB_MESSAGE_TOO_LARGE');
  t.notOk(c.connected, 'a stream that lost its framing is closed');
});

t.test('non-UTF-8 bytes: OVSDB_BAD_UTF8 with the offset', async (t) => {
  const fake = await fakeServer(t, (m, sock) => {
    sock.write(Buffer.concat([Buffer.from(`{"id":${JSON.stringify(reqId(m))},"result":["ab`), Buffer.from([0xff, 0xfe]), Buffer.from('"],"error":null}')]));
  });
  const c = await client(t, fake);
  const err = await failure(c.listDbs());
  t.equal(err.code, 'OVSDB_BAD_UTF8');
  t.match(err.message, /0xff at stream offset \d+/);
});

t.test('garbage that is not JSON-RPC: OVSDB_FRAMING / OVSDB_BAD_JSON', async (t) => {
  const a = await fakeServer(t, (_m, sock) => sock.write('HTTP/1.1 400 Bad Request\r\n\r\n'));
  t.equal((await failure((await client(t, a)).listDbs())).code, 'OVSDB_FRAMING');
  const b = await fakeServer(t, (_m, sock) => sock.write('{"id":0,"result":[1,],"error":null}'));
  t.equal((await failure((await client(t, b)).listDbs())).code, 'OVSDB_BAD_JSON');
});

t.test('echo from the server is answered with its params (RFC 7047 §4.1.11)', async (t) => {
  let answered: (m: RpcMessage) => void;
  const got = new Promise<RpcMessage>((r) => (answered = r));
  const fake = await fakeServer(t, (m, sock) => {
    if (m.kind === 'request' && m.method === 'list_dbs') sock.write(JSON.stringify({ method: 'echo', params: ['ping', 1], id: 'srv-echo' }));
    if (m.kind === 'response') answered(m);
  });
  const c = await client(t, fake);
  void c.listDbs().catch(() => {});
  t.same(await got, { kind: 'response', id: 'srv-echo', result: ['ping', 1], error: null });
});

t.test('keepalive: an idle client sends echo; a peer that never answers is declared lost', async (t) => {
  const live = await fakeServer(t, (m, sock) => {
    if (m.kind === 'request') sock.write(JSON.stringify({ id: m.id, result: m.params, error: null }));
  });
  const c1 = await client(t, live, { probeIntervalMs: 50 });
  await new Promise((r) => setTimeout(r, 400));
  t.ok(live.received.filter((m) => m.kind === 'request' && m.method === 'echo').length >= 2, 'echo probes sent while idle');
  t.ok(c1.connected, 'an answering peer stays connected');

  const dead = await fakeServer(t, () => {});
  const c2 = await client(t, dead, { probeIntervalMs: 50 });
  const err = await new Promise<OvsdbError>((r) => c2.once('disconnected', r));
  t.equal(err.code, 'OVSDB_CONNECTION_LOST');
  t.match(err.message, /echo probe/);
});

t.test('connecting to nothing: OVSDB_CONNECT; a bad remote string too', async (t) => {
  const err = await failure(OvsdbClient.connect(`unix:${join(tmpdir(), `coat-${newTag()}-absent.sock`)}`));
  t.equal(err.code, 'OVSDB_CONNECT');
  t.equal((await failure(OvsdbClient.connect('carrier-pigeon:1'))).code, 'OVSDB_CONNECT');
});

t.test('close() fails calls in flight with OVSDB_CLOSED', async (t) => {
  const fake = await fakeServer(t, () => {});
  const c = await client(t, fake);
  const p = c.listDbs();
  c.close();
  t.equal((await failure(p)).code, 'OVSDB_CLOSED');
  t.equal((await failure(c.listDbs())).code, 'OVSDB_CLOSED');
});

t.test('monitor_cond_since: update3 tracks the last txn id; a reconnect asks for changes since it and keeps the replica when found', async (t) => {
  const schema = { name: 'T', version: '1.0.0', tables: { Tbl: { columns: { name: { type: 'string' } } } } };
  const U = (n: number) => `00000000-0000-4000-8000-00000000000${n}`;
  const TXN = (n: number) => `aaaaaaaa-0000-4000-8000-00000000000${n}`;
  const sinceParams: unknown[] = [];
  let connection = 0;
  const fake = await fakeServer(t, (m, sock) => {
    if (m.kind !== 'request') return;
    const reply = (result: unknown) => sock.write(JSON.stringify({ id: m.id, result, error: null }));
    if (m.method === 'get_schema') return reply(schema);
    if (m.method === 'lock') return reply({ locked: true });
    if (m.method !== 'monitor_cond_since') return sock.write(JSON.stringify({ id: m.id, result: null, error: { error: 'unknown method' } }));
    sinceParams.push(m.params[3]);
    connection++;
    if (connection === 1) {
      reply([false, TXN(1), { Tbl: { [U(1)]: { initial: { name: 'a' } } } }]);
      sock.write(JSON.stringify({ method: 'update3', params: [m.params[1], TXN(2), { Tbl: { [U(2)]: { insert: { name: 'b' } } } }], id: null }));
    } else {
      reply([true, TXN(3), { Tbl: { [U(1)]: { delete: null } } }]);
    }
  });
  const c = await client(t, fake, { reconnect: { initialDelayMs: 20 } });
  const mon = await c.monitor('T', { Tbl: {} });
  t.equal(mon.method, 'monitor_cond_since');
  await mon.waitFor('b', (r) => r.table('Tbl').has(U(2)), 1000);
  t.equal(mon.lastTxnId, TXN(2), 'update3 advanced the last txn id');
  t.ok(await c.lock('coat_lk'));

  // Drop the connection from the server side; the client comes back by itself.
  const rebuilt = new Promise<{ found: boolean }>((r) => mon.once('rebuilt', r));
  const relocked = new Promise<string>((r) => c.once('locked', r));
  fake.drop();
  t.same(await rebuilt, { found: true });
  t.equal(await relocked, 'coat_lk', 'wanted locks are requested again');
  t.same(sinceParams, ['00000000-0000-0000-0000-000000000000', TXN(2)], 'the reconnect asked for changes after the last txn seen');
  t.same([...mon.replica.table('Tbl').values()].map((r) => r.name), ['b'], 'found: the replica kept its rows and applied only the changes');
  t.equal(mon.lastTxnId, TXN(3));
});

t.test('a server without monitor_cond_since: the client falls back to monitor_cond', async (t) => {
  const schema = { name: 'T', tables: { Tbl: { columns: { name: { type: 'string' } } } } };
  const fake = await fakeServer(t, (m, sock) => {
    if (m.kind !== 'request') return;
    const reply = (result: unknown, error: unknown = null) => sock.write(JSON.stringify({ id: m.id, result, error }));
    if (m.method === 'get_schema') return reply(schema);
    if (m.method === 'monitor_cond') {
      reply({ Tbl: { '00000000-0000-4000-8000-000000000001': { initial: { name: 'x' } } } });
      return sock.write(JSON.stringify({ method: 'update2', params: [m.params[1], { Tbl: { '00000000-0000-4000-8000-000000000001': { modify: { name: 'y' } } } }], id: null }));
    }
    reply(null, { error: 'unknown method', details: m.method });
  });
  const c = await client(t, fake);
  const mon = await c.monitor('T', { Tbl: {} });
  t.equal(mon.method, 'monitor_cond');
  await mon.waitFor('modify', (r) => [...r.table('Tbl').values()].some((x) => x.name === 'y'), 1000);
  t.pass('update2 modify applied');
});
