/**
 * The capture process: opens a libpcap session (the `pcap` package) on one interface and writes
 * what it captures to stdout as a classic pcap stream (pcap-format.ts).
 *
 * Why a child process: a packet socket captures in the network namespace it was created in, and
 * Node has no setns(2). Running this file under `ip netns exec NS` creates the socket inside the
 * namespace without a native addon of our own; the stream over a pipe costs ~1 copy per packet.
 *
 * Protocol with the parent (capture.ts):
 * - stderr line `listening on IFACE, link-type N, snaplen S` once pcap_activate returned: the
 *   packet socket is bound, so every packet from then on is captured (tcpdump prints the same line
 *   at the same moment; Faucet's harness waits for it before traffic starts);
 * - stdin line `stop` (or stdin closed): read what the kernel still holds, print
 *   `stats {"ps_recv":..,"ps_drop":..,"ps_ifdrop":..}` on stderr, end stdout, exit 0.
 *
 * argv: IFACE [FILTER] [SNAPLEN]. Immediate mode (buffer_timeout 0): each packet is delivered
 * when it arrives, not when a TPACKET_V3 block fills.
 */
import pcap from 'pcap';
import { encodePcapFileHeader, LINKTYPE_ETHERNET } from './pcap-format.js';

const LINKTYPES: Record<string, number> = { LINKTYPE_NULL: 0, LINKTYPE_ETHERNET: LINKTYPE_ETHERNET, LINKTYPE_RAW: 101, LINKTYPE_LINUX_SLL: 113, LINKTYPE_IEEE802_11_RADIO: 127 };

const [iface, filter = '', snapArg = '65535'] = process.argv.slice(2);
if (!iface) {
  process.stderr.write('usage: capture-child IFACE [FILTER] [SNAPLEN]\n');
  process.exit(64);
}
const snapLength = Number(snapArg);

interface RawSession {
  link_type: string;
  buf: Buffer;
  header: Buffer;
  session: { dispatch(buf: Buffer, header: Buffer): number };
  on(ev: 'packet', fn: (p: { buf: Buffer; header: Buffer }) => void): void;
  stats(): { ps_recv: number; ps_drop: number; ps_ifdrop: number };
  close(): void;
}

let session: RawSession;
try {
  session = pcap.createSession(iface, { filter, snap_length: snapLength, buffer_timeout: 0, promiscuous: false }) as unknown as RawSession;
} catch (err) {
  process.stderr.write(`error: cannot capture on ${iface}: ${(err as Error).message}\n`);
  process.exit(69);
}
const linkType = LINKTYPES[session.link_type] ?? 1;
process.stdout.write(encodePcapFileHeader(snapLength, linkType));
session.on('packet', (p) => {
  // The record header libpcap's node binding fills is ts_sec, ts_usec, caplen, len as host-endian
  // u32s: the pcap record header itself on a little-endian host (our file header says LE).
  const caplen = p.header.readUInt32LE(8);
  process.stdout.write(Buffer.concat([p.header.subarray(0, 16), p.buf.subarray(0, caplen)]));
});
process.stderr.write(`listening on ${iface}, link-type ${linkType}, snaplen ${snapLength}\n`);

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  // Drain what the kernel still holds (the handle is non-blocking: 0 when empty).
  for (let i = 0; i < 10_000 && session.session.dispatch(session.buf, session.header) > 0; i++);
  const st = session.stats();
  process.stderr.write(`stats ${JSON.stringify({ ps_recv: st.ps_recv, ps_drop: st.ps_drop, ps_ifdrop: st.ps_ifdrop })}\n`);
  session.close();
  process.stdout.end(() => process.exit(0));
}
let input = '';
process.stdin.on('data', (b: Buffer) => {
  input += b.toString();
  if (input.includes('stop')) stop();
});
process.stdin.on('end', stop);
process.on('SIGTERM', stop);
