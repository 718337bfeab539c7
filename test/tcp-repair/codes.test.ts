/** Every stable error code of the TCP_REPAIR boundary and the tcp-repair executor is documented in docs/executors.md (undici's docs-match-classes test). */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO } from './fixture.js';
import { TCP_REPAIR_CODES } from '../../src/tcp-repair/errors.js';
import { IMAGE_CODES } from '../../src/tcp-repair/image.js';
import { TREX_CODES } from '../../src/executors/tcp-repair.js';

t.test('codes in docs/executors.md', async (t) => {
  const doc = await readFile(join(REPO, 'docs', 'executors.md'), 'utf8');
  const codes = [...Object.keys(TCP_REPAIR_CODES), ...Object.keys(IMAGE_CODES), ...Object.keys(TREX_CODES)];
  for (const c of codes) t.ok(doc.includes('`' + c + '`'), `${c} is documented`);
  const documented = new Set([...doc.matchAll(/`((?:TCPR|SKIMG|TREX)_[A-Z_]+)`/g)].map((m) => m[1]));
  for (const c of documented) t.ok(codes.includes(c!), `documented ${c} exists`);
});
