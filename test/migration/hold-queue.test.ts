import t from 'tap';
import fc from 'fast-check';
import { HoldQueue } from '../../src/migration/hold-queue.js';

const frame = (n: number, len = 60): Buffer => {
  const b = Buffer.alloc(len);
  b.writeUInt32BE(n, 0);
  return b;
};

t.test('keeps arrival order and copies the frame', async (t) => {
  const q = new HoldQueue();
  const f = frame(1);
  t.equal(q.push(f, 10, { dpid: 5n, inPort: 2 }), 'queued');
  f.writeUInt32BE(99, 0); // the channel reuses its buffer
  q.push(frame(2), 11);
  const out = q.drain();
  t.same(out.map((p) => p.frame.readUInt32BE(0)), [1, 2]);
  t.same(out.map((p) => p.seq), [0, 1]);
  t.equal(out[0]!.dpid, 5n);
  t.equal(out[0]!.inPort, 2);
  t.same(q.drain(), [], 'drained');
});

t.test('bounded in packets and in bytes: tail drop, counted', async (t) => {
  const byCount = new HoldQueue({ maxPackets: 2 });
  t.same([1, 2, 3].map((n) => byCount.push(frame(n), n)), ['queued', 'queued', 'dropped']);
  t.match(byCount.stats(), { held: 3, dropped: 1, queuedPackets: 2 });
  const byBytes = new HoldQueue({ maxBytes: 150 });
  t.same([byBytes.push(frame(1, 100), 0), byBytes.push(frame(2, 100), 0), byBytes.push(frame(3, 50), 0)], ['queued', 'dropped', 'queued']);
  t.match(byBytes.stats(), { held: 3, dropped: 1, queuedBytes: 150, peakBytes: 150 });
  t.same(byBytes.drain().map((p) => p.seq), [0, 2], 'seq shows the gap where the drop was');
  t.throws(() => new HoldQueue({ maxPackets: -1 }), RangeError);
});

t.test('closed: later packet-ins are not held (the caller forwards them)', async (t) => {
  const q = new HoldQueue();
  q.push(frame(1), 0);
  q.close();
  t.equal(q.push(frame(2), 1), 'closed');
  t.equal(q.stats().held, 1);
  t.equal(q.drain().length, 1, 'what was queued can still be replayed');
});

t.test('property: order kept, held == replayed + dropped, bounds never exceeded', async () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('push' as const), len: fc.integer({ min: 0, max: 1600 }) }),
    fc.record({ kind: fc.constant('drain' as const), refuse: fc.nat({ max: 3 }) }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 20_000 }), fc.array(op, { maxLength: 200 }), (maxPackets, maxBytes, ops) => {
      const q = new HoldQueue({ maxPackets, maxBytes });
      const replayed: number[] = [];
      let n = 0;
      const replay = (refuse: number): void => {
        const batch = q.drain();
        const ok = batch.slice(0, Math.max(0, batch.length - refuse));
        replayed.push(...ok.map((p) => p.frame.readUInt32BE(0)));
        q.replayDone(ok.length);
        q.replayFailed(batch.length - ok.length);
      };
      for (const o of ops) {
        if (o.kind === 'push') {
          q.push(frame(n++, Math.max(4, o.len)), n);
          const s = q.stats();
          if (s.queuedPackets > maxPackets || s.queuedBytes > maxBytes) return false;
        } else replay(o.refuse);
      }
      replay(0);
      const s = q.stats();
      const increasing = replayed.every((v, i) => i === 0 || v > replayed[i - 1]!);
      return increasing && s.held === n && s.held === s.replayed + s.dropped && s.replayed === replayed.length;
    }),
  );
});
