/**
 * The image sha256: one digest over a whole step directory, computed the same way by the sender
 * (as it reads), by the receiver (as chunks arrive, in order) and by `digestImageDir`, so the
 * trailer proves the image arrived complete and in the right shape, not just byte for byte.
 *
 * It is a hash list (BitTorrent v2's and Merkle's idea, one level deep) over the protocol's fixed
 * chunks, so each byte is hashed once per side (the chunk hash) instead of twice:
 *
 *   sha256( "coat-image-v1" | u32 CHUNK_BYTES |
 *           for each file in list order: u32 path length | path (UTF-8) | u64 size |
 *                                        sha256 of each CHUNK_BYTES piece of the file, in order )
 *
 * Names, sizes and every chunk's hash are inside it, so a renamed, reordered, resized or altered
 * file changes it; finding two images with the same digest means finding a SHA-256 collision.
 * Pure: feed it file starts and chunk hashes.
 */
import { createHash, type Hash } from 'node:crypto';
import { CHUNK_BYTES, type ImageFile } from './frames.js';

export class ImageDigest {
  private readonly hash: Hash = createHash('sha256');

  constructor() {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(CHUNK_BYTES, 0);
    this.hash.update('coat-image-v1', 'utf8');
    this.hash.update(head);
  }

  startFile(f: Pick<ImageFile, 'path' | 'size'>): void {
    const p = Buffer.from(f.path, 'utf8');
    const head = Buffer.allocUnsafe(12);
    head.writeUInt32BE(p.length, 0);
    head.writeBigUInt64BE(BigInt(f.size), 4);
    this.hash.update(head.subarray(0, 4));
    this.hash.update(p);
    this.hash.update(head.subarray(4));
  }

  /** The sha256 of the file's next CHUNK_BYTES piece (shorter only at the end of the file). */
  addChunk(sha256: Buffer): void {
    this.hash.update(sha256);
  }

  digest(): Buffer {
    return this.hash.digest();
  }
}
