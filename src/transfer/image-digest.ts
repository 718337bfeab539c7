/**
 * The image sha256: one digest over a whole step directory, computed the same way by the sender
 * (reading files) and by the receiver (as chunks arrive, in order), so the trailer can prove the
 * image arrived complete and in the right shape, not just byte for byte.
 *
 *   sha256( for each file in list order: u32 path length | path (UTF-8) | u64 size | file bytes )
 *
 * Names and sizes are inside the digest, so a renamed, reordered or resized file changes it.
 * Pure: feed it file starts and file bytes.
 */
import { createHash, type Hash } from 'node:crypto';
import type { ImageFile } from './frames.js';

export class ImageDigest {
  private readonly hash: Hash = createHash('sha256');

  startFile(f: Pick<ImageFile, 'path' | 'size'>): void {
    const p = Buffer.from(f.path, 'utf8');
    const head = Buffer.allocUnsafe(12);
    head.writeUInt32BE(p.length, 0);
    head.writeBigUInt64BE(BigInt(f.size), 4);
    this.hash.update(head.subarray(0, 4));
    this.hash.update(p);
    this.hash.update(head.subarray(4));
  }

  update(bytes: Buffer): void {
    this.hash.update(bytes);
  }

  digest(): Buffer {
    return this.hash.digest();
  }
}
