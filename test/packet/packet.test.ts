import t from 'tap';
import fc from 'fast-check';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec } from '../../src/exec.js';
import {
  ArpOp, decodeArp, decodeEthernet, decodeFrame, decodeIpv4, decodeTcp, encodeArp, encodeArpReplyFrame, encodeArpRequestFrame,
  encodeEthernet, encodeGratuitousArpFrame, encodeIpv4, encodeTcp, encodeTcpFrame, encodeUdpFrame, ethernetEncodingLength,
  internetChecksum, ipv4EncodingLength, PacketError, tcpChecksum, tcpEncodingLength, tcpFlags, type ArpPacket, type Ipv4Header, type TcpHeader,
} from '../../src/packet/index.js';

// An ARP request "who has 10.0.0.1? tell 10.0.0.2" as Wireshark shows it (hand-checked against RFC 826
// field order), padded to 60 bytes.
const ARP_REQUEST_HEX =
  'ffffffffffff' + '020000000002' + '0806' + '0001' + '0800' + '06' + '04' + '0001' + '020000000002' + '0a000002' + '000000000000' + '0a000001' + '00'.repeat(18);

t.test('golden ARP request decodes to its fields and re-encodes to the same bytes', async (t) => {
  const buf = Buffer.from(ARP_REQUEST_HEX, 'hex');
  const f = decodeFrame(buf);
  t.same(f.eth, { dst: 'ff:ff:ff:ff:ff:ff', src: '02:00:00:00:00:02', ethertype: 0x0806 });
  t.same(f.arp, { op: ArpOp.REQUEST, senderMac: '02:00:00:00:00:02', senderIp: '10.0.0.2', targetMac: '00:00:00:00:00:00', targetIp: '10.0.0.1' });
  t.equal(encodeArpRequestFrame('02:00:00:00:00:02', '10.0.0.2', '10.0.0.1').toString('hex'), ARP_REQUEST_HEX);
});

t.test('ARP reply for a request swaps roles and is unicast to the asker', async (t) => {
  const req = decodeFrame(Buffer.from(ARP_REQUEST_HEX, 'hex')).arp!;
  const reply = decodeFrame(encodeArpReplyFrame(req, '02:aa:00:00:00:01'));
  t.same(reply.eth, { dst: '02:00:00:00:00:02', src: '02:aa:00:00:00:01', ethertype: 0x0806 });
  t.same(reply.arp, { op: ArpOp.REPLY, senderMac: '02:aa:00:00:00:01', senderIp: '10.0.0.1', targetMac: '02:00:00:00:00:02', targetIp: '10.0.0.2' });
  const garp = decodeFrame(encodeGratuitousArpFrame('02:aa:00:00:00:01', '10.0.0.1')).arp!;
  t.equal(garp.senderIp, garp.targetIp);
});

t.test('IPv4 header checksum is computed on encode and verifies on decode', async (t) => {
  // RFC 1071-style check: the checksum of a header including its checksum field is 0.
  const h: Ipv4Header = { dscp: 0, ecn: 0, totalLength: 40, identification: 0x1c46, df: true, mf: false, fragmentOffset: 0, ttl: 64, protocol: 6, src: '172.16.10.99', dst: '172.16.10.12' };
  const buf = encodeIpv4(h);
  t.equal(internetChecksum(buf), 0);
  // The classic worked example (Wikipedia "IPv4 header checksum"): 4500 0073 0000 4000 4011 *b861* c0a8 0001 c0a8 00c7.
  const ex = encodeIpv4({ dscp: 0, ecn: 0, totalLength: 0x73, identification: 0, df: true, mf: false, fragmentOffset: 0, ttl: 64, protocol: 17, src: '192.168.0.1', dst: '192.168.0.199' });
  t.equal(ex.toString('hex'), '450000730000400040 11b861c0a80001c0a800c7'.replaceAll(' ', ''));
  ex[15] = ex[15]! ^ 1;
  t.throws(() => decodeIpv4(ex, 0, { verifyChecksum: true }), { code: 'PKT_BAD_FIELD', offset: 10 });
  t.doesNotThrow(() => decodeIpv4(ex, 0));
});

t.test('truncated and malformed inputs fail with PacketError naming the offset', async (t) => {
  const arp = Buffer.from(ARP_REQUEST_HEX, 'hex').subarray(0, 14 + 27);
  t.throws(() => decodeFrame(arp), { code: 'PKT_TRUNCATED', offset: 14 });
  t.throws(() => decodeEthernet(Buffer.alloc(13)), { code: 'PKT_TRUNCATED', offset: 0 });
  const v6 = encodeIpv4({ dscp: 0, ecn: 0, totalLength: 20, identification: 0, df: false, mf: false, fragmentOffset: 0, ttl: 1, protocol: 6, src: '1.2.3.4', dst: '5.6.7.8' });
  v6[0] = 0x65;
  t.throws(() => decodeIpv4(v6), { code: 'PKT_BAD_FIELD', offset: 0 });
  const badArp = encodeArp({ op: 1, senderMac: '00:00:00:00:00:01', senderIp: '1.1.1.1', targetMac: '00:00:00:00:00:00', targetIp: '2.2.2.2' });
  badArp.writeUInt16BE(6, 0);
  t.throws(() => decodeArp(badArp), { code: 'PKT_BAD_FIELD', offset: 0 });
  t.throws(() => encodeEthernet({ dst: 'zz', src: '00:00:00:00:00:01', ethertype: 0x800 }), { code: 'PKT_BAD_ADDRESS' });
  t.throws(() => encodeTcp({ srcPort: 70000, dstPort: 1, seq: 0, ack: 0, flags: tcpFlags({}), window: 0, urgentPointer: 0 }), { code: 'PKT_BAD_VALUE' });
  // an IPv4 total length that runs past the frame
  const tcp = encodeTcpFrame({ srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', srcIp: '10.0.0.1', dstIp: '10.0.0.2', srcPort: 1, dstPort: 2, seq: 1, ack: 0, flags: { syn: true } });
  tcp.writeUInt16BE(1000, 16);
  t.throws(() => decodeFrame(tcp), { code: 'PKT_TRUNCATED', offset: 16 });
});

const mac = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'));
const ip = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
const u16 = fc.nat(0xffff);
const u32 = fc.nat(0xffffffff);

t.test('property: ethernet, arp, ipv4, tcp round-trip, also at an offset inside a larger buffer', async (t) => {
  fc.assert(
    fc.property(mac, mac, fc.option(fc.record({ pcp: fc.nat(7), dei: fc.nat(1), vid: fc.nat(0xfff) }), { nil: undefined }), fc.integer({ min: 0x600, max: 0xffff }).filter((x) => x !== 0x8100), fc.nat(7), (dst, src, vlan, ethertype, pad) => {
      const h = { dst, src, ...(vlan ? { vlan } : {}), ethertype };
      const buf = Buffer.alloc(pad + ethernetEncodingLength(h) + 3);
      encodeEthernet(h, buf, pad);
      const d = decodeEthernet(buf, pad);
      return d.length === ethernetEncodingLength(h) && JSON.stringify(d.header) === JSON.stringify(h);
    }),
  );
  fc.assert(
    fc.property(fc.constantFrom(1 as const, 2 as const), mac, ip, mac, ip, fc.nat(9), (op, sm, si, tm, ti, pad) => {
      const a: ArpPacket = { op, senderMac: sm, senderIp: si, targetMac: tm, targetIp: ti };
      const buf = Buffer.alloc(pad + 28);
      encodeArp(a, buf, pad);
      return JSON.stringify(decodeArp(buf, pad).header) === JSON.stringify(a);
    }),
  );
  fc.assert(
    fc.property(ip, ip, u16, u16, u32, u32, u16, fc.nat(255), fc.nat(10), fc.uint8Array({ maxLength: 40 }), (src, dst, sp, dp, seq, ack, win, fbits, optWords, payload) => {
      const options = optWords > 0 ? Buffer.alloc(optWords * 4, 1) : undefined;
      const h: TcpHeader = {
        srcPort: sp, dstPort: dp, seq, ack, window: win, urgentPointer: 0,
        flags: tcpFlags({ fin: !!(fbits & 1), syn: !!(fbits & 2), rst: !!(fbits & 4), psh: !!(fbits & 8), ack: !!(fbits & 16), urg: !!(fbits & 32), ece: !!(fbits & 64), cwr: !!(fbits & 128) }),
        ...(options ? { options } : {}),
      };
      const frame = encodeTcpFrame({ srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', srcIp: src, dstIp: dst, srcPort: sp, dstPort: dp, seq, ack, flags: h.flags, window: win, ...(options ? { options } : {}), payload: Buffer.from(payload) });
      const f = decodeFrame(frame, { verifyChecksum: true });
      const tcp = f.tcp!;
      const tcpStart = 14 + ipv4EncodingLength({});
      const segLen = f.ipv4!.totalLength - 20;
      return (
        tcp.seq === seq && tcp.ack === ack && tcp.window === win && JSON.stringify(tcp.flags) === JSON.stringify(h.flags) &&
        Buffer.compare(f.payload, Buffer.from(payload)) === 0 && tcpEncodingLength(h) === decodeTcp(frame, tcpStart).length &&
        tcpChecksum(frame, tcpStart, segLen, src, dst) === tcp.checksum
      );
    }),
  );
});

t.test('property: random bytes decode or fail with PacketError, never anything else', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
      try {
        decodeFrame(Buffer.from(bytes), { verifyChecksum: true });
      } catch (e) {
        return e instanceof PacketError;
      }
      return true;
    }),
    { numRuns: 20000 },
  );
  // Frames that are valid up to the transport layer, then cut at every length.
  const full = encodeTcpFrame({ srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', srcIp: '10.0.0.1', dstIp: '10.0.0.2', srcPort: 5, dstPort: 6, seq: 7, ack: 8, flags: { ack: true }, payload: Buffer.from('hello') });
  for (let n = 0; n < full.length; n++) {
    try {
      decodeFrame(full.subarray(0, n));
    } catch (e) {
      t.ok(e instanceof PacketError, 'cut at ' + String(n));
    }
  }
});

t.test('tshark, an independent decoder, agrees on the frames coat builds (checksums included)', async (t) => {
  const which = await exec('sh', ['-c', 'command -v tshark'], { allowFailure: true });
  t.equal(which.code, 0, 'tshark is installed (scripts/setup.sh)');
  const frames = [
    encodeArpReplyFrame(decodeFrame(Buffer.from(ARP_REQUEST_HEX, 'hex')).arp!, '02:aa:00:00:00:01'),
    encodeTcpFrame({ srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', srcIp: '10.9.8.7', dstIp: '10.0.0.2', srcPort: 40000, dstPort: 5201, seq: 0xfffffff0, ack: 12345, flags: { psh: true, ack: true }, window: 501, payload: Buffer.from('odd-length payload!') }),
    encodeUdpFrame({ srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', srcIp: '10.0.0.1', dstIp: '10.0.0.2', srcPort: 4789, dstPort: 53, payload: Buffer.from('abc') }),
  ];
  // the TCP frame with one payload byte flipped: tshark must call its TCP checksum bad, proving the check can fail
  const corrupted = Buffer.from(frames[1]!);
  corrupted[corrupted.length - 1]! ^= 0x20;
  frames.push(corrupted);
  // classic pcap file: global header + one record per frame (LINKTYPE_ETHERNET = 1)
  const parts: Buffer[] = [];
  const gh = Buffer.alloc(24);
  gh.writeUInt32LE(0xa1b2c3d4, 0); gh.writeUInt16LE(2, 4); gh.writeUInt16LE(4, 6); gh.writeUInt32LE(65535, 16); gh.writeUInt32LE(1, 20);
  parts.push(gh);
  for (const f of frames) {
    const rh = Buffer.alloc(16);
    rh.writeUInt32LE(f.length, 8); rh.writeUInt32LE(f.length, 12);
    parts.push(rh, f);
  }
  const dir = await mkdtemp(join(tmpdir(), 'coat-pkt-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'f.pcap');
  await writeFile(file, Buffer.concat(parts));
  const out = await exec('tshark', ['-r', file, '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=|',
    '-e', 'arp.opcode', '-e', 'arp.src.proto_ipv4', '-e', 'ip.checksum.status', '-e', 'tcp.checksum.status', '-e', 'tcp.seq_raw', '-e', 'udp.checksum.status', '-e', 'tcp.len'], { timeoutMs: 30_000 });
  const rows = out.stdout.trim().split('\n').map((l) => l.split('|'));
  t.same(rows[0]!.slice(0, 2), ['2', '10.0.0.1']);
  // tshark's checksum status enum: 0 bad, 1 good, 2 unverified
  t.equal(rows[1]![2], '1', 'ip checksum good');
  t.equal(rows[1]![3], '1', 'tcp checksum good');
  t.equal(rows[1]![4], String(0xfffffff0));
  t.equal(rows[1]![6], '19');
  t.equal(rows[2]![5], '1', 'udp checksum good');
  t.equal(rows[3]![3], '0', 'tcp checksum of the corrupted frame is bad');
});
