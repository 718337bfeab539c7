/**
 * The classic libpcap file format (pure): what `tcpdump -w` writes and tshark reads
 * (draft-ietf-opsawg-pcap, "PCAP Capture File Format", §4 file header, §5 packet record).
 * The capture child streams exactly this on its stdout, so the same bytes are a file tshark can
 * check and a stream the analyser reads as it arrives.
 *
 * Written little-endian with microsecond timestamps (magic 0xA1B2C3D4). Read: both byte orders,
 * microsecond or nanosecond magic (0xA1B23C4D); timestamps are returned in microseconds.
 */
import { CaptureError } from './errors.js';

export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;
export const PCAP_FILE_HEADER_LENGTH = 24;
export const PCAP_RECORD_HEADER_LENGTH = 16;
/** LINKTYPE_ETHERNET (tcpdump.org/linktypes.html). */
export const LINKTYPE_ETHERNET = 1;
/** No sane capture record is bigger; a larger incl_len means the stream is out of step. */
const MAX_RECORD = 262_144;

export interface PcapFileHeader {
  snapLength: number;
  linkType: number;
  nanoseconds: boolean;
  littleEndian: boolean;
}

export interface PcapRecord {
  /** Capture time, microseconds since the epoch. */
  tsUs: number;
  /** Bytes on the wire (the frame may be cut to the snap length). */
  origLength: number;
  /** The captured bytes (caplen of them). */
  data: Buffer;
}

export function encodePcapFileHeader(snapLength: number, linkType = LINKTYPE_ETHERNET): Buffer {
  const b = Buffer.alloc(PCAP_FILE_HEADER_LENGTH);
  b.writeUInt32LE(PCAP_MAGIC_US, 0);
  b.writeUInt16LE(2, 4); // version 2.4
  b.writeUInt16LE(4, 6);
  b.writeInt32LE(0, 8); // thiszone (unused, 0)
  b.writeUInt32LE(0, 12); // sigfigs (unused, 0)
  b.writeUInt32LE(snapLength, 16);
  b.writeUInt32LE(linkType, 20);
  return b;
}

export function encodePcapRecord(tsUs: number, data: Buffer, origLength = data.length): Buffer {
  const b = Buffer.alloc(PCAP_RECORD_HEADER_LENGTH + data.length);
  b.writeUInt32LE(Math.floor(tsUs / 1e6), 0);
  b.writeUInt32LE(Math.round(tsUs % 1e6), 4);
  b.writeUInt32LE(data.length, 8);
  b.writeUInt32LE(origLength, 12);
  data.copy(b, PCAP_RECORD_HEADER_LENGTH);
  return b;
}

export function decodePcapFileHeader(b: Buffer): PcapFileHeader {
  if (b.length < PCAP_FILE_HEADER_LENGTH) throw new CaptureError('CAPTURE_BAD_PCAP', `pcap file header needs ${PCAP_FILE_HEADER_LENGTH} bytes, got ${b.length}`, 0);
  const le = b.readUInt32LE(0);
  const be = b.readUInt32BE(0);
  let littleEndian: boolean;
  let nanoseconds: boolean;
  if (le === PCAP_MAGIC_US || le === PCAP_MAGIC_NS) {
    littleEndian = true;
    nanoseconds = le === PCAP_MAGIC_NS;
  } else if (be === PCAP_MAGIC_US || be === PCAP_MAGIC_NS) {
    littleEndian = false;
    nanoseconds = be === PCAP_MAGIC_NS;
  } else {
    throw new CaptureError('CAPTURE_BAD_PCAP', `bad pcap magic 0x${be.toString(16).padStart(8, '0')} at offset 0 (pcapng is not supported)`, 0);
  }
  const u32 = (o: number): number => (littleEndian ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const major = littleEndian ? b.readUInt16LE(4) : b.readUInt16BE(4);
  if (major !== 2) throw new CaptureError('CAPTURE_BAD_PCAP', `pcap major version ${major} at offset 4, expected 2`, 4);
  return { snapLength: u32(16), linkType: u32(20) & 0x0fffffff, nanoseconds, littleEndian };
}

/**
 * Incremental reader: feed chunks as they come (a pipe splits records anywhere), get whole
 * records. Keeps the leftover bytes between pushes, like mqtt-packet's parser.
 */
export class PcapStreamParser {
  private pending: Buffer = Buffer.alloc(0);
  private consumed = 0;
  header: PcapFileHeader | undefined;

  push(chunk: Buffer): PcapRecord[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: PcapRecord[] = [];
    let off = 0;
    if (!this.header) {
      if (this.pending.length < PCAP_FILE_HEADER_LENGTH) return out;
      this.header = decodePcapFileHeader(this.pending);
      off = PCAP_FILE_HEADER_LENGTH;
    }
    const h = this.header;
    const u32 = (o: number): number => (h.littleEndian ? this.pending.readUInt32LE(o) : this.pending.readUInt32BE(o));
    while (this.pending.length - off >= PCAP_RECORD_HEADER_LENGTH) {
      const incl = u32(off + 8);
      if (incl > MAX_RECORD) {
        throw new CaptureError('CAPTURE_BAD_PCAP', `record at offset ${this.consumed + off} claims ${incl} captured bytes (limit ${MAX_RECORD})`, this.consumed + off + 8);
      }
      if (this.pending.length - off - PCAP_RECORD_HEADER_LENGTH < incl) break;
      const sec = u32(off);
      const frac = u32(off + 4);
      const start = off + PCAP_RECORD_HEADER_LENGTH;
      out.push({
        tsUs: sec * 1e6 + (h.nanoseconds ? Math.floor(frac / 1000) : frac),
        origLength: u32(off + 12),
        data: Buffer.from(this.pending.subarray(start, start + incl)),
      });
      off = start + incl;
    }
    this.consumed += off;
    this.pending = this.pending.subarray(off);
    return out;
  }

  /** Bytes of an unfinished record left at the end (a capture cut mid-record). */
  get leftover(): number {
    return this.pending.length;
  }
}

/** Parses a whole pcap file. A record cut at the end is an error naming its offset. */
export function parsePcap(file: Buffer): { header: PcapFileHeader; records: PcapRecord[] } {
  const p = new PcapStreamParser();
  const records = p.push(file);
  if (!p.header) throw new CaptureError('CAPTURE_BAD_PCAP', `pcap file header needs ${PCAP_FILE_HEADER_LENGTH} bytes, got ${file.length}`, 0);
  if (p.leftover > 0) throw new CaptureError('CAPTURE_BAD_PCAP', `truncated record at offset ${file.length - p.leftover} (${p.leftover} bytes left)`, file.length - p.leftover);
  return { header: p.header, records };
}
