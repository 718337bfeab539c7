/**
 * Property: whatever bytes a peer sends after its HELLO, in whatever chunks, a SwitchConnection
 * never throws out of its socket handlers, and either stays open or closes with a CloseReason of a
 * documented code. (mqtt-packet's and nats' fuzzing lesson, applied to the channel.)
 */
import t from 'tap';

process.env.COAT_LOG_LEVEL ??= 'silent';
import { Duplex } from 'node:stream';
import fc from 'fast-check';
import { SwitchConnection } from '../../src/controller/index.js';
import { encodeMessage, hello } from '../../src/openflow/index.js';
import { FakeClock } from './fake-clock.js';

const CODES = new Set(['OFC_PROTOCOL', 'OFC_HANDSHAKE', 'OFC_EOF', 'OFC_KEEPALIVE', 'OFC_LOCAL']);

/** A socket whose far side is the test: bytes arrive as 'data' events, writes are swallowed. */
function memorySocket(): Duplex {
  return new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
}

/** Plausible OpenFlow-ish frames: version 4 or not, any type, honest or lying length. */
const frame = fc.record({
  version: fc.oneof(fc.constant(4), fc.integer({ min: 0, max: 255 })),
  type: fc.oneof(fc.integer({ min: 0, max: 35 }), fc.integer({ min: 0, max: 255 })),
  body: fc.uint8Array({ maxLength: 64 }),
  lie: fc.oneof(fc.constant(0), fc.integer({ min: -16, max: 16 })),
  xid: fc.integer({ min: 0, max: 0xffffffff }),
}).map(({ version, type, body, lie, xid }) => {
  const b = Buffer.alloc(8 + body.length);
  b[0] = version;
  b[1] = type;
  b.writeUInt16BE(Math.max(0, Math.min(0xffff, 8 + body.length + lie)), 2);
  b.writeUInt32BE(xid, 4);
  Buffer.from(body).copy(b, 8);
  return b;
});

t.test('random frames and random bytes after HELLO never escape as exceptions', async (t) => {
  let cases = 0;
  const seen = new Map<string, number>();
  fc.assert(
    fc.property(fc.array(fc.oneof(frame, fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u))), { maxLength: 12 }), fc.integer({ min: 1, max: 50 }), (chunks, cut) => {
      cases++;
      const socket = memorySocket();
      const clock = new FakeClock();
      const conn = new SwitchConnection(socket, 'fuzz', { clock, handshakeTimeoutMs: 1000 });
      conn.handshake().catch(() => {});
      const stream = Buffer.concat([encodeMessage(hello(1, [4])), ...chunks]);
      // Deliver in pieces of `cut` bytes: framing must not depend on chunk boundaries.
      // ('data' is emitted directly so that every handler runs inside this property, synchronously.)
      for (let off = 0; off < stream.length && !conn.closed; off += cut) socket.emit('data', stream.subarray(off, off + cut));
      clock.advance(2000); // past the handshake deadline: must close with a reason, not hang
      if (!conn.closed) return false;
      seen.set(conn.closeReason!.code, (seen.get(conn.closeReason!.code) ?? 0) + 1);
      return CODES.has(conn.closeReason!.code);
    }),
    { numRuns: 300 },
  );
  t.equal(cases, 300);
  // The bytes were really read: many runs end on a protocol error, not on the deadline alone.
  t.ok((seen.get('OFC_PROTOCOL') ?? 0) > 30, JSON.stringify(Object.fromEntries(seen)));
});
