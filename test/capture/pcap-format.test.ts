import t from 'tap';
import fc from 'fast-check';
import { decodePcapFileHeader, encodePcapFileHeader, encodePcapRecord, parsePcap, PcapStreamParser, PCAP_MAGIC_NS } from '../../src/capture/pcap-format.js';

const file = (records: [number, Buffer][]): Buffer => Buffer.concat([encodePcapFileHeader(256), ...records.map(([ts, d]) => encodePcapRecord(ts, d))]);

t.test('round trip, fed whole or one byte at a time', async (t) => {
  const recs: [number, Buffer][] = [
    [1_700_000_000_123_456, Buffer.from('first frame')],
    [1_700_000_000_223_457, Buffer.alloc(0)],
    [1_700_000_001_000_000, Buffer.alloc(300, 1)],
  ];
  const bytes = file(recs);
  const whole = parsePcap(bytes);
  t.same(whole.header, { snapLength: 256, linkType: 1, nanoseconds: false, littleEndian: true });
  t.same(whole.records.map((r) => [r.tsUs, r.data.toString('hex'), r.origLength]), recs.map(([ts, d]) => [ts, d.toString('hex'), d.length]));
  const p = new PcapStreamParser();
  const got = [];
  for (let i = 0; i < bytes.length; i++) got.push(...p.push(bytes.subarray(i, i + 1)));
  t.same(got.map((r) => r.tsUs), recs.map(([ts]) => ts));
  t.equal(p.leftover, 0);
});

t.test('property: any split of the stream yields the same records', async () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }), fc.array(fc.nat({ max: 5000 }), { maxLength: 10 }), (frames, cuts) => {
      const bytes = file(frames.map((f, i) => [1e15 + i * 1000, Buffer.from(f)]));
      const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      const p = new PcapStreamParser();
      const out = [];
      let prev = 0;
      for (const c of [...points, bytes.length]) {
        out.push(...p.push(bytes.subarray(prev, c)));
        prev = c;
      }
      return out.length === frames.length && out.every((r, i) => Buffer.compare(r.data, Buffer.from(frames[i]!)) === 0) && p.leftover === 0;
    }),
  );
});

t.test('big-endian and nanosecond files are read; malformed ones fail naming the offset', async (t) => {
  const h = Buffer.alloc(24);
  h.writeUInt32BE(PCAP_MAGIC_NS, 0);
  h.writeUInt16BE(2, 4);
  h.writeUInt16BE(4, 6);
  h.writeUInt32BE(65535, 16);
  h.writeUInt32BE(1, 20);
  const r = Buffer.alloc(16 + 2);
  r.writeUInt32BE(10, 0);
  r.writeUInt32BE(5_000_999, 4);
  r.writeUInt32BE(2, 8);
  r.writeUInt32BE(60, 12);
  const parsed = parsePcap(Buffer.concat([h, r]));
  t.same(parsed.header, { snapLength: 65535, linkType: 1, nanoseconds: true, littleEndian: false });
  t.equal(parsed.records[0]!.tsUs, 10_005_000);
  t.equal(parsed.records[0]!.origLength, 60);

  t.throws(() => parsePcap(Buffer.alloc(10)), { code: 'CAPTURE_BAD_PCAP', offset: 0 });
  t.throws(() => decodePcapFileHeader(Buffer.from('0a0d0d0a' + '00'.repeat(20), 'hex')), { code: 'CAPTURE_BAD_PCAP', message: /pcapng/ });
  const v1 = encodePcapFileHeader(100);
  v1.writeUInt16LE(1, 4);
  t.throws(() => parsePcap(v1), { code: 'CAPTURE_BAD_PCAP', offset: 4 }, 'major version checked');
  const good = file([[1, Buffer.alloc(50)]]);
  t.throws(() => parsePcap(good.subarray(0, good.length - 1)), { code: 'CAPTURE_BAD_PCAP', offset: 24 });
  const huge = Buffer.from(good);
  huge.writeUInt32LE(1 << 30, 24 + 8);
  t.throws(() => parsePcap(huge), { code: 'CAPTURE_BAD_PCAP', offset: 32 });
});
