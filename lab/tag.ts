/**
 * Per-run unique tags. Every namespace, interface and run directory a lab or a test creates carries
 * one, so that teardown (and a sweep after a crash) removes exactly what this run made and nothing
 * of anybody else's. Interface names are at most 15 bytes (IFNAMSIZ - 1), so tags are short:
 * `c` + 5 base-36 characters, e.g. `c3k9x1`, leaving 9 characters for the role ("c3k9x1-ea-v0").
 */
import { randomBytes } from 'node:crypto';

export const TAG_PATTERN = /^c[0-9a-z]{5}$/;

export function newTag(): string {
  const n = randomBytes(4).readUInt32BE(0) % 36 ** 5;
  return 'c' + n.toString(36).padStart(5, '0');
}
