/**
 * The analyser on hand-made segments, each case checked against tshark on the same bytes (a pcap
 * file this test writes): new data, a full and a partial retransmission, a keep-alive (not one),
 * a SYN retransmission, a RST, and sequence numbers that wrap past 2^32.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeTcpFrame } from '../../src/packet/frame.js';
import { encodePcapFileHeader, encodePcapRecord, type PcapRecord } from '../../src/capture/pcap-format.js';
import { analyseTcp } from '../../src/capture/tcp-analysis.js';
import { exec } from '../../src/exec.js';

const C = { ip: '10.0.0.1', mac: '02:00:00:00:00:01', port: 40000 };
const S = { ip: '10.0.0.10', mac: '02:00:00:00:00:10', port: 5201 };

function seg(fromClient: boolean, seq: number, ack: number, flags: Record<string, boolean>, len = 0): Buffer {
  const [a, b] = fromClient ? [C, S] : [S, C];
  return encodeTcpFrame({ srcMac: a.mac, dstMac: b.mac, srcIp: a.ip, dstIp: b.ip, srcPort: a.port, dstPort: b.port, seq: seq >>> 0, ack: ack >>> 0, flags, payload: Buffer.alloc(len, 0x61) });
}

/** Segments 20 ms apart (beyond Wireshark's 3 ms out-of-order window). */
function records(frames: Buffer[]): PcapRecord[] {
  return frames.map((data, i) => ({ tsUs: 1_700_000_000_000_000 + i * 20_000, origLength: data.length, data }));
}

async function tshark(recs: PcapRecord[], filter: string, t: { teardown(fn: () => void): void }): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), 'coat-ana-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'x.pcap');
  writeFileSync(f, Buffer.concat([encodePcapFileHeader(65535), ...recs.map((r) => encodePcapRecord(r.tsUs, r.data))]));
  const r = await exec('tshark', ['-n', '-r', f, '-Y', filter, '-T', 'fields', '-e', 'frame.number'], { timeoutMs: 60_000 });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

function stream(isn: number, sisn: number): Buffer[] {
  return [
    seg(true, isn, 0, { syn: true }), // 1
    seg(true, isn, 0, { syn: true }), // 2 SYN retransmitted
    seg(false, sisn, isn + 1, { syn: true, ack: true }), // 3
    seg(true, isn + 1, sisn + 1, { ack: true }), // 4
    seg(true, isn + 1, sisn + 1, { ack: true, psh: true }, 1000), // 5 data 0..1000
    seg(true, isn + 1001, sisn + 1, { ack: true, psh: true }, 1000), // 6 data 1000..2000
    seg(false, sisn + 1, isn + 2001, { ack: true }), // 7 ack all
    seg(true, isn + 1001, sisn + 1, { ack: true, psh: true }, 1000), // 8 full retransmission
    seg(true, isn + 1501, sisn + 1, { ack: true, psh: true }, 1000), // 9 partial: 1500..2500
    seg(true, isn + 2500, sisn + 1, { ack: true }, 1), // 10 keep-alive: 1 byte at nextSeq-1
    seg(true, isn + 2501, sisn + 1, { ack: true, psh: true }, 500), // 11 new data
    seg(false, sisn + 1, isn + 3001, { rst: true, ack: true }), // 12 RST
  ];
}

for (const [name, isn] of [
  ['plain sequence numbers', 1000],
  ['sequence numbers wrapping past 2^32', 0xffffffff - 1500],
] as const) {
  t.test(`${name}: the same retransmissions and resets as tshark`, async (t) => {
    const recs = records(stream(isn, 0x7000_0000));
    const a = analyseTcp(recs, { clientIp: C.ip });
    t.same(a.retransmittedFrames, [2, 8, 9], 'SYN, full and partial; not the keep-alive');
    t.same(a.retransmittedFrames, await tshark(recs, 'tcp.analysis.retransmission', t), 'tshark agrees');
    t.equal(a.resets, 1);
    t.same(await tshark(recs, 'tcp.flags.reset == 1', t), [12]);
    const c = a.connections[0]!;
    t.equal(c.id, `${C.ip}:${C.port}-${S.ip}:${S.port}`);
    t.equal(c.directions[0].bytes, 1000 + 1000 + 1000 + 1000 + 1 + 500);
    t.equal(c.directions[0].retransmittedBytes, 2000);
    t.equal(c.directions[0].retransmissions, 3);
    t.equal(c.directions[1].resets, 1);
    t.equal(c.directions[0].maxGapMs, 40, 'the largest spacing of client data segments: frame 6 -> 8');
  });
}

t.test('timeline buckets, gaps and RTT samples', async (t) => {
  const isn = 5000;
  const frames: PcapRecord[] = [];
  const at = (ms: number, data: Buffer): void => void frames.push({ tsUs: 1e15 + ms * 1000, origLength: data.length, data });
  at(0, seg(true, isn, 0, { syn: true }));
  at(1, seg(false, 9000, isn + 1, { syn: true, ack: true }));
  at(2, seg(true, isn + 1, 9001, { ack: true }));
  // server streams 100 bytes every 50 ms for 300 ms, client ACKs 2 ms later
  let sseq = 9001;
  for (let ms = 10; ms <= 310; ms += 50) {
    at(ms, seg(false, sseq, isn + 1, { ack: true }, 100));
    sseq += 100;
    at(ms + 2, seg(true, isn + 1, sseq, { ack: true }));
  }
  // a 400 ms hole, then the client sends 10 bytes answered in 3 ms
  at(710, seg(false, sseq, isn + 1, { ack: true }, 100));
  at(720, seg(true, isn + 1, sseq + 100, { ack: true, psh: true }, 10));
  at(723, seg(false, sseq + 100, isn + 11, { ack: true }));
  const a = analyseTcp(frames, { clientIp: C.ip, bucketMs: 100 });
  t.same(a.timeline.buckets.map((b) => [b.tMs, b.rxBytes, b.txBytes]), [
    [0, 200, 0],
    [100, 200, 0],
    [200, 200, 0],
    [300, 100, 0],
    [400, 0, 0],
    [500, 0, 0],
    [600, 0, 0],
    [700, 100, 10],
  ]);
  t.equal(a.connections[0]!.directions[1].maxGapMs, 400, 'server data 310 -> 710 ms');
  t.equal(a.maxGapMs, 400);
  t.same(a.rtt, [{ tMs: 1, rttMs: 1 }, { tMs: 723, rttMs: 3 }], "only the client's SYN and data give RTT samples at the client");
  const all = analyseTcp(frames, { bucketMs: 100 });
  // + the SYN-ACK, 7 server segments and the one acked by the client's data segment
  t.equal(all.rtt.length, 11, 'without clientIp both directions are sampled');
});

t.test('what is not Ethernet/IPv4/TCP, or is cut short, is skipped and counted, never thrown', async (t) => {
  const tcp = seg(true, 1, 0, { syn: true });
  const arp = Buffer.from(tcp);
  arp.writeUInt16BE(0x0806, 12);
  const a = analyseTcp([
    { tsUs: 1, origLength: 60, data: arp },
    { tsUs: 2, origLength: 60, data: tcp.subarray(0, 30) },
    { tsUs: 3, origLength: 3, data: Buffer.from([1, 2, 3]) },
    { tsUs: 4, origLength: tcp.length, data: tcp },
  ]);
  t.equal(a.packets, 4);
  t.equal(a.skipped, 3);
  t.equal(a.tcpSegments, 1);
  t.throws(() => analyseTcp([], { bucketMs: 0 }), RangeError);
});

t.test('property: random frames and mutated TCP frames never throw', async () => {
  const fc = (await import('fast-check')).default;
  const base = seg(true, 1, 2, { ack: true }, 10);
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.uint8Array({ maxLength: 120 }).map((a) => Buffer.from(a)),
          fc.tuple(fc.nat({ max: base.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
            const b = Buffer.from(base);
            b[i] = v;
            return b;
          }),
        ),
        { maxLength: 50 },
      ),
      (frames) => {
        const a = analyseTcp(frames.map((data, i) => ({ tsUs: i * 1000, origLength: data.length, data })));
        return a.packets === frames.length && a.tcpSegments + a.skipped === frames.length;
      },
    ),
    { numRuns: 500 },
  );
});

/** A SACK option (RFC 2018 §3) after two NOPs, blocks [left, right). */
function sack(...blocks: [number, number][]): Buffer {
  const b = Buffer.alloc(2 + 2 + blocks.length * 8);
  b[0] = 1;
  b[1] = 1;
  b[2] = 5;
  b[3] = 2 + blocks.length * 8;
  blocks.forEach(([l, r], i) => {
    b.writeUInt32BE(l >>> 0, 4 + i * 8);
    b.writeUInt32BE(r >>> 0, 8 + i * 8);
  });
  return b;
}

function segOpt(fromClient: boolean, seq: number, ack: number, options: Buffer): Buffer {
  const [a, b] = fromClient ? [C, S] : [S, C];
  return encodeTcpFrame({ srcMac: a.mac, dstMac: b.mac, srcIp: a.ip, dstIp: b.ip, srcPort: a.port, dstPort: b.port, seq: seq >>> 0, ack: ack >>> 0, flags: { ack: true }, payload: Buffer.alloc(0), options });
}

t.test('spurious retransmissions: already acknowledged, or D-SACKed later (RFC 2883); lost ones stay lost; stream bytes and gaps', async (t) => {
  const c = 1000;
  const s = 0xfffffff0; // the server's sequence numbers wrap inside the stream
  const frames = [
    seg(true, c, 0, { syn: true }), // 1
    seg(false, s, c + 1, { syn: true, ack: true }), // 2
    seg(true, c + 1, s + 1, { ack: true }), // 3
    seg(false, s + 1, c + 1, { ack: true }, 100), // 4 data [s+1, s+101)
    seg(true, c + 1, s + 101, { ack: true }), // 5 client has it
    seg(false, s + 1, c + 1, { ack: true }, 100), // 6 retransmission of acknowledged data: spurious
    seg(false, s + 101, c + 1, { ack: true }, 100), // 7 data [s+101, s+201)
    seg(false, s + 101, c + 1, { ack: true }, 100), // 8 retransmission, not yet acknowledged...
    segOpt(true, c + 1, s + 201, sack([s + 101, s + 201])), // 9 ...then D-SACKed: spurious
    seg(false, s + 201, c + 1, { ack: true }, 100), // 10 data [s+201, s+301), lost on the way
    seg(false, s + 201, c + 1, { ack: true }, 100), // 11 retransmission of a lost segment
    seg(true, c + 1, s + 301, { ack: true }), // 12
  ];
  const recs = records(frames);
  const a = analyseTcp(recs, { gapListMinMs: 30 });
  t.same(a.retransmittedFrames, [6, 8, 11]);
  t.same(
    a.retransmissionEvents.map((e) => [e.frame, e.spurious]),
    [
      [6, true],
      [8, true],
      [11, false],
    ],
  );
  t.equal(a.spuriousRetransmissions, 2);
  const server = a.connections[0]!.directions.find((d) => d.src === `${S.ip}:${S.port}`)!;
  t.equal(server.streamBytes, 300, 'highest sequence end minus the SYN, across the wrap');
  t.equal(server.spuriousRetransmissions, 2);
  t.same(server.gaps.map((g) => g.ms), [40, 40], 'gaps of >= 30 ms between the server data segments (frames 4->6, 8->10)');
  // tshark agrees that frame 6 is spurious (acknowledged before); D-SACK is coat's own reading.
  t.same(await tshark(recs, 'tcp.analysis.spurious_retransmission', t), [6]);
});
