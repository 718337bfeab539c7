/**
 * Per-chunk compression with node's zlib (raw DEFLATE, RFC 1951; Brotli, RFC 7932), run on the
 * libuv thread pool so a large image does not block the agent's event loop. Decompression is capped
 * at the chunk's announced raw length, so a hostile chunk cannot inflate without bound.
 */
import { promisify } from 'node:util';
import { brotliCompress, brotliDecompress, constants, deflateRaw, inflateRaw } from 'node:zlib';
import type { Compression } from './frames.js';

const deflateP = promisify(deflateRaw);
const inflateP = promisify(inflateRaw);
const brotliP = promisify(brotliCompress);
const unbrotliP = promisify(brotliDecompress);

export async function compressChunk(c: Compression, raw: Buffer): Promise<Buffer> {
  switch (c) {
    case 'none':
      return raw;
    case 'deflate':
      // Level 1: images stream on the migration's critical path; speed beats ratio.
      return deflateP(raw, { level: 1 });
    case 'brotli':
      // Quality 4 and a size hint: Brotli's default (11) is far too slow for live migration.
      return brotliP(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 4, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length } });
  }
}

export async function decompressChunk(c: Compression, data: Buffer, rawLength: number): Promise<Buffer> {
  switch (c) {
    case 'none':
      return data;
    case 'deflate':
      return inflateP(data, { maxOutputLength: Math.max(1, rawLength) });
    case 'brotli':
      return unbrotliP(data, { maxOutputLength: Math.max(1, rawLength) });
  }
}
