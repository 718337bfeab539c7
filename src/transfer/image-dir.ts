/**
 * Reading a step directory from disk: the file list a HELLO carries, and the image sha256 of a
 * directory (what the sender sends in its trailer, and what tests compare at both ends).
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, type Dirent } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { TransferError } from './errors.js';
import { CHUNK_BYTES, type ImageFile } from './frames.js';
import { ImageDigest } from './image-digest.js';

/**
 * Regular files under `dir`, recursively, sorted by path (byte order) so both ends agree on the
 * order. Symlinks, devices and sockets are refused: an image is plain files.
 *
 * Synchronous inside (readdir + lstat of a handful of entries): the final dump's image is listed
 * inside the service's downtime, where one thread-pool hop per entry waited behind other I/O.
 */
export async function listImage(dir: string): Promise<ImageFile[]> {
  const out: ImageFile[] = [];
  function walk(rel: string): void {
    const abs = rel ? join(dir, rel) : dir;
    let entries: Dirent[];
    try {
      entries = readdirSync(abs, { withFileTypes: true });
    } catch (e) {
      throw new TransferError('TRANSFER_IO', `cannot list ${abs}: ${(e as Error).message}`, { cause: e });
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else if (e.isFile()) {
        const st = lstatSync(join(dir, r));
        out.push({ path: r, size: st.size, mode: st.mode & 0o7777 });
      } else throw new TransferError('TRANSFER_IO', `${join(dir, r)} is not a regular file or directory; images hold plain files only`);
    }
  }
  walk('');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Total bytes of a file list. */
export function imageBytes(files: ImageFile[]): number {
  return files.reduce((n, f) => n + f.size, 0);
}

/** The image sha256 (hex) of a directory, as defined in image-digest.ts. */
export async function digestImageDir(dir: string): Promise<{ sha256: string; files: ImageFile[]; bytes: number }> {
  const files = await listImage(dir);
  const d = new ImageDigest();
  const buf = Buffer.allocUnsafe(CHUNK_BYTES);
  for (const f of files) {
    d.startFile(f);
    const fh = await open(join(dir, f.path), 'r');
    try {
      for (let off = 0; off < f.size; off += CHUNK_BYTES) {
        const want = Math.min(CHUNK_BYTES, f.size - off);
        const { bytesRead } = await fh.read(buf, 0, want, off);
        if (bytesRead !== want) throw new TransferError('TRANSFER_IO', `${f.path} changed while being hashed`, { file: f.path, offset: off });
        d.addChunk(createHash('sha256').update(buf.subarray(0, want)).digest());
      }
    } finally {
      await fh.close();
    }
  }
  return { sha256: d.digest().toString('hex'), files, bytes: imageBytes(files) };
}
