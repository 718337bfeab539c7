/**
 * The workload protocol (src/workload/protocol.ts): the stream is a pure function of its offset,
 * the verifier finds the first wrong byte, and a ping server rebuilt from any pair of stream
 * offsets (what the executor reads from the kernel at a dump) continues the response stream
 * exactly as the uninterrupted server would have.
 */
import t from 'tap';
import fc from 'fast-check';
import { PING_SIZE, PingServerState, record, request, response, responseBytes, streamBytes, StreamVerifier } from '../../src/workload/protocol.js';

t.test('stream bytes at any offset agree with the records', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 32, max: 300 }), fc.nat(5000), fc.nat(2000), (rs, off, len) => {
      const whole = Buffer.concat(Array.from({ length: Math.ceil((off + len) / rs) + 1 }, (_, i) => record(BigInt(i), rs)));
      const part = streamBytes(BigInt(off), len, rs);
      if (!part.equals(whole.subarray(off, off + len))) throw new Error(`streamBytes(${off}, ${len}, ${rs}) differs`);
    }),
    { numRuns: 300 },
  );
  t.pass('300 random (record size, offset, length) agree');
});

t.test('the verifier accepts the stream in any chunking and pins the first wrong byte', async (t) => {
  const rs = 100;
  const data = streamBytes(0n, 10_000, rs);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 40 }), fc.option(fc.nat(9999), { nil: undefined }), (cuts, flip) => {
      const d = Buffer.from(data);
      if (flip !== undefined) d[flip] = d[flip]! ^ 1;
      const v = new StreamVerifier(rs);
      let pos = 0;
      let bad = -1n;
      for (let i = 0; pos < d.length; i++) {
        const n = cuts[i % cuts.length]!;
        bad = v.push(d.subarray(pos, pos + n));
        if (bad >= 0n) break;
        pos += n;
      }
      const want = flip === undefined ? -1n : BigInt(flip);
      if (bad !== want) throw new Error(`verifier said ${bad}, want ${want}`);
    }),
    { numRuns: 300 },
  );
  t.pass('300 chunkings, with and without a flipped byte');
});

t.test('a ping server rebuilt from stream offsets continues the responses exactly', async (t) => {
  const N = 40;
  const requests = Buffer.concat(Array.from({ length: N }, (_, i) => request(BigInt(i))));
  const allResponses = responseBytes(0n, N * PING_SIZE);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: N * PING_SIZE }), fc.nat(3), fc.nat(PING_SIZE - 1), fc.array(fc.integer({ min: 1, max: 90 }), { minLength: 1, maxLength: 10 }), (read, lagResponses, partial, cuts) => {
      // The old process consumed `read` request bytes and had written `written` response bytes:
      // at most one response per whole request consumed, possibly lagging and cut mid-response.
      const answerable = Math.floor(read / PING_SIZE) * PING_SIZE;
      const written = Math.max(0, answerable - lagResponses * PING_SIZE - (partial % PING_SIZE === 0 ? 0 : PING_SIZE) + partial);
      const w = Math.min(written, answerable);
      const st = new PingServerState({ read: BigInt(read), written: BigInt(w) });
      const out: Buffer[] = [st.start()];
      let pos = read;
      for (let i = 0; pos < requests.length; i++) {
        const n = cuts[i % cuts.length]!;
        out.push(st.push(requests.subarray(pos, pos + n)));
        pos += n;
      }
      const got = Buffer.concat(out);
      if (!got.equals(allResponses.subarray(w))) throw new Error(`read ${read} written ${w}: ${got.length} bytes, want ${allResponses.length - w}`);
      if (st.errors !== 0) throw new Error(st.lastError);
    }),
    { numRuns: 500 },
  );
  t.pass('500 random freeze points');
});

t.test('a wrong request is counted, not answered wrongly', async (t) => {
  const st = new PingServerState({ read: 0n, written: 0n });
  const bad = request(0n);
  bad[20] = bad[20]! ^ 0xff;
  const out = st.push(bad);
  t.equal(st.errors, 1);
  t.match(st.lastError, /content or crc/);
  t.same(out, response(0n), 'the response stream stays aligned');
});
