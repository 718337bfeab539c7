import t from 'tap';
import fc from 'fast-check';
import { JsonFramer, firstInvalidUtf8 } from '../../src/ovsdb/framer.js';
import { decodeMessage } from '../../src/ovsdb/jsonrpc.js';
import { OvsdbProtocolError } from '../../src/ovsdb/errors.js';

const tricky = [
  { id: 1, result: ['a}b', '{"x"', 'q\\"}]', '\\\\'], error: null },
  { method: 'update2', params: ['m', { Bridge: { u: { insert: { name: 'é€😀 }{' } } } }], id: null },
  { id: 'x', result: {}, error: null },
];
const stream = Buffer.from(tricky.map((m) => JSON.stringify(m)).join('\n  '), 'utf8');

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof OvsdbProtocolError ? err.code : `not typed: ${String(err)}`;
  }
  return undefined;
}

t.test('messages back to back, braces and escaped quotes inside strings', async (t) => {
  const f = new JsonFramer();
  const out = f.push(stream);
  t.same(out.map((s) => JSON.parse(s)), tricky);
  t.equal(f.hasPartial, false);
});

t.test('one byte at a time (multi-byte UTF-8 split across chunks) gives the same messages', async (t) => {
  const f = new JsonFramer();
  const out: string[] = [];
  for (const b of stream) out.push(...f.push(Buffer.from([b])));
  t.same(out.map((s) => JSON.parse(s)), tricky);
});

t.test('any chunking gives the same messages (property)', async () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 12 }), (cuts) => {
      const f = new JsonFramer();
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const out: string[] = [];
      let prev = 0;
      for (const p of [...points, stream.length]) {
        out.push(...f.push(stream.subarray(prev, p)));
        prev = p;
      }
      return JSON.stringify(out.map((s) => JSON.parse(s))) === JSON.stringify(tricky);
    }),
  );
});

t.test('random JSON-RPC objects survive random chunking (property)', async () => {
  fc.assert(
    fc.property(fc.array(fc.jsonValue(), { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 17 }), (values, step) => {
      const msgs = values.map((v, i) => ({ id: i, result: v, error: null }));
      const bytes = Buffer.from(msgs.map((m) => JSON.stringify(m)).join(''), 'utf8');
      const f = new JsonFramer();
      const out: string[] = [];
      for (let i = 0; i < bytes.length; i += step) out.push(...f.push(bytes.subarray(i, i + step)));
      return out.length === msgs.length && out.every((s, i) => JSON.stringify(JSON.parse(s)) === JSON.stringify(msgs[i]));
    }),
  );
});

t.test('a truncated message stays partial, then completes', async (t) => {
  const f = new JsonFramer();
  const text = JSON.stringify({ id: 7, result: 'x', error: null });
  t.same(f.push(Buffer.from(text.slice(0, 10))), []);
  t.equal(f.hasPartial, true);
  t.equal(f.bufferedBytes, 10);
  t.same(f.push(Buffer.from(text.slice(10))), [text]);
});

t.test('non-UTF-8 bytes: OVSDB_BAD_UTF8 with the stream offset of the bad byte', async (t) => {
  const f = new JsonFramer();
  const prefix = Buffer.from('{"id":1,"result":"ok","error":null} {"id":2,"result":"');
  const bad = Buffer.concat([prefix, Buffer.from([0xc3, 0x28]), Buffer.from('","error":null}')]);
  let err: unknown;
  try {
    f.push(bad);
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof OvsdbProtocolError);
  t.equal((err as OvsdbProtocolError).code, 'OVSDB_BAD_UTF8');
  t.equal((err as OvsdbProtocolError).offset, prefix.length);
  t.equal(codeOf(() => f.push(Buffer.from('{}'))), 'OVSDB_BAD_UTF8', 'the framer stays failed');
});

t.test('UTF-8 validator: overlongs, surrogates, truncation, above U+10FFFF', async (t) => {
  t.equal(firstInvalidUtf8(Buffer.from('aé€😀', 'utf8')), -1);
  t.equal(firstInvalidUtf8(Buffer.from([0x61, 0xc0, 0x80])), 1, 'overlong NUL');
  t.equal(firstInvalidUtf8(Buffer.from([0xed, 0xa0, 0x80])), 0, 'UTF-16 surrogate');
  t.equal(firstInvalidUtf8(Buffer.from([0x61, 0x62, 0xe2, 0x82])), 2, 'truncated sequence');
  t.equal(firstInvalidUtf8(Buffer.from([0xf4, 0x90, 0x80, 0x80])), 0, 'above U+10FFFF');
  t.equal(firstInvalidUtf8(Buffer.from([0x80])), 0, 'lone continuation byte');
});

t.test('a message over the limit fails while still partial (no unbounded buffering)', async (t) => {
  const f = new JsonFramer({ maxMessageBytes: 1000 });
  t.same(f.push(Buffer.from('{"id":1,"result":"')), []);
  t.equal(codeOf(() => f.push(Buffer.alloc(2000, 0x61))), 'OVSDB_MESSAGE_TOO_LARGE');
  const g = new JsonFramer({ maxMessageBytes: 20 });
  t.equal(codeOf(() => g.push(Buffer.from(JSON.stringify({ id: 1, result: 'x'.repeat(30), error: null })))), 'OVSDB_MESSAGE_TOO_LARGE', 'complete in one chunk');
});

t.test('anything but an object at top level is a framing error at its offset', async (t) => {
  const f = new JsonFramer();
  const text = '  {"id":1,"result":1,"error":null} [1]';
  let err: unknown;
  try {
    f.push(Buffer.from(text));
  } catch (e) {
    err = e;
  }
  t.equal((err as OvsdbProtocolError).code, 'OVSDB_FRAMING');
  t.equal((err as OvsdbProtocolError).offset, text.indexOf('['));
});

t.test('JSON-RPC shapes: request, notification, response; bad JSON and bad shapes are typed', async (t) => {
  t.same(decodeMessage('{"method":"echo","params":[],"id":"e"}'), { kind: 'request', method: 'echo', params: [], id: 'e' });
  t.same(decodeMessage('{"method":"update","params":["m",{}],"id":null}'), { kind: 'notification', method: 'update', params: ['m', {}] });
  t.same(decodeMessage('{"id":3,"result":[1],"error":null}'), { kind: 'response', id: 3, result: [1], error: null });
  t.equal(codeOf(() => decodeMessage('{"id":3,"result":}')), 'OVSDB_BAD_JSON');
  t.equal(codeOf(() => decodeMessage('{"method":1,"params":[],"id":1}')), 'OVSDB_BAD_MESSAGE');
  t.equal(codeOf(() => decodeMessage('{"method":"x","params":{},"id":1}')), 'OVSDB_BAD_MESSAGE');
  t.equal(codeOf(() => decodeMessage('{"id":1}')), 'OVSDB_BAD_MESSAGE');
  t.equal(codeOf(() => decodeMessage('{"result":1,"error":null,"id":null}')), 'OVSDB_BAD_MESSAGE');
});

t.test('random bytes: only messages or our typed errors (fuzz)', async () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const f = new JsonFramer({ maxMessageBytes: 150 });
      try {
        for (const text of f.push(bytes)) decodeMessage(text);
        return true;
      } catch (err) {
        return err instanceof OvsdbProtocolError;
      }
    }),
    { numRuns: 20_000 },
  );
});
