/**
 * The page delta: the pages of one state file copied in one pre-copy round or in the dump. Pure
 * codec, binary, big-endian, with a SHA-256 trailer (same discipline as the socket image).
 *
 *   0   8  magic "COATPAGE"
 *   8   2  version (1)          10  2  reserved, 0
 *  12   4  page size (4096)
 *  16   8  file size in bytes (the state file's size at this round)
 *  24   4  page count N         28  2  name length L
 *  30   L  file name (UTF-8, a plain name inside the state directory)
 *  30+L    N x { u32 page index, page size bytes }, indexes strictly increasing
 *  end-32  SHA-256 of every byte before it
 */
import { createHash } from 'node:crypto';
import { CoatError } from '../../errors.js';

export const DELTA_MAGIC = Buffer.from('COATPAGE', 'ascii');
export const DELTA_VERSION = 1;

export class PageDeltaError extends CoatError {
  declare readonly code: 'PGDELTA_TRUNCATED' | 'PGDELTA_BAD_MAGIC' | 'PGDELTA_VERSION' | 'PGDELTA_CHECKSUM' | 'PGDELTA_INVALID';
  constructor(code: PageDeltaError['code'], readonly offset: number, message: string) {
    super(code, `page delta: ${message} (offset ${offset})`);
  }
}

export interface PageDelta {
  name: string;
  pageSize: number;
  fileSize: bigint;
  /** Page index -> content (pageSize bytes; the last page of a file is zero-padded). */
  pages: { index: number; data: Uint8Array }[];
}

export function encodePageDelta(d: PageDelta): Buffer {
  const name = Buffer.from(d.name, 'utf8');
  if (!/^[A-Za-z0-9._-]+$/.test(d.name) || name.length > 255) throw new TypeError(`page delta: bad file name ${JSON.stringify(d.name)}`);
  const total = 30 + name.length + d.pages.length * (4 + d.pageSize) + 32;
  const b = Buffer.alloc(total);
  DELTA_MAGIC.copy(b, 0);
  b.writeUInt16BE(DELTA_VERSION, 8);
  b.writeUInt32BE(d.pageSize, 12);
  b.writeBigUInt64BE(d.fileSize, 16);
  b.writeUInt32BE(d.pages.length, 24);
  b.writeUInt16BE(name.length, 28);
  name.copy(b, 30);
  let off = 30 + name.length;
  let last = -1;
  for (const p of d.pages) {
    if (p.index <= last) throw new TypeError('page delta: page indexes must increase');
    if (p.data.length !== d.pageSize) throw new TypeError(`page delta: page ${p.index} has ${p.data.length} bytes, want ${d.pageSize}`);
    last = p.index;
    b.writeUInt32BE(p.index, off);
    b.set(p.data, off + 4);
    off += 4 + d.pageSize;
  }
  createHash('sha256').update(b.subarray(0, off)).digest().copy(b, off);
  return b;
}

export function decodePageDelta(buf: Uint8Array): PageDelta {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 30 + 32) throw new PageDeltaError('PGDELTA_TRUNCATED', b.length, `${b.length} bytes, the header and trailer alone need 62`);
  if (!b.subarray(0, 8).equals(DELTA_MAGIC)) throw new PageDeltaError('PGDELTA_BAD_MAGIC', 0, 'magic is not "COATPAGE"');
  const version = b.readUInt16BE(8);
  if (version !== DELTA_VERSION) throw new PageDeltaError('PGDELTA_VERSION', 8, `version ${version}, this build reads ${DELTA_VERSION}`);
  const pageSize = b.readUInt32BE(12);
  if (pageSize === 0 || pageSize % 512 !== 0 || pageSize > 1 << 20) throw new PageDeltaError('PGDELTA_INVALID', 12, `page size ${pageSize}`);
  const fileSize = b.readBigUInt64BE(16);
  const count = b.readUInt32BE(24);
  const nameLen = b.readUInt16BE(28);
  const total = 30 + nameLen + count * (4 + pageSize) + 32;
  if (b.length < total) throw new PageDeltaError('PGDELTA_TRUNCATED', b.length, `${count} pages need ${total} bytes, have ${b.length}`);
  if (b.length > total) throw new PageDeltaError('PGDELTA_INVALID', total, `${b.length - total} bytes after the trailer`);
  const body = total - 32;
  if (!createHash('sha256').update(b.subarray(0, body)).digest().equals(b.subarray(body))) throw new PageDeltaError('PGDELTA_CHECKSUM', body, 'SHA-256 mismatch: the delta is corrupted');
  const name = b.subarray(30, 30 + nameLen).toString('utf8');
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new PageDeltaError('PGDELTA_INVALID', 30, `file name ${JSON.stringify(name)} is not a plain name`);
  const pages: PageDelta['pages'] = [];
  let off = 30 + nameLen;
  let last = -1;
  const maxPages = Number((fileSize + BigInt(pageSize) - 1n) / BigInt(pageSize));
  for (let i = 0; i < count; i++) {
    const index = b.readUInt32BE(off);
    if (index <= last || index >= maxPages) throw new PageDeltaError('PGDELTA_INVALID', off, `page index ${index} out of order or beyond the file's ${maxPages} pages`);
    last = index;
    pages.push({ index, data: b.subarray(off + 4, off + 4 + pageSize) });
    off += 4 + pageSize;
  }
  return { name, pageSize, fileSize, pages };
}

/** Applies deltas in order to a file image (pure): later rounds overwrite earlier pages. */
export function applyDeltas(deltas: PageDelta[]): Buffer {
  const last = deltas.at(-1);
  if (!last) return Buffer.alloc(0);
  const out = Buffer.alloc(Number(last.fileSize));
  for (const d of deltas) {
    for (const p of d.pages) {
      const at = p.index * d.pageSize;
      if (at >= out.length) continue; // the file shrank after this round
      out.set(p.data.subarray(0, Math.min(d.pageSize, out.length - at)), at);
    }
  }
  return out;
}
