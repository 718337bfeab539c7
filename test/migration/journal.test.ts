import t from 'tap';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal, journalPath, listJournals, parseJournal, readJournal, summarizeJournal, unfinishedMigrations } from '../../src/migration/journal.js';

function dir(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'coat-journal-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

t.test('records round-trip through the file and summarize into steps and state', async (t) => {
  const d = dir(t);
  const j = Journal.create(d, 'm-1', { ref: { migrationId: 'm-1' } }, 1000);
  j.append({ type: 'step-start', step: 'plan', atMs: 1001 });
  j.append({ type: 'step-end', step: 'plan', atMs: 1002, ok: true, detail: { strategy: 'cold' } });
  j.append({ type: 'step-start', step: 'precopy', round: 1, atMs: 1003 });
  j.append({ type: 'step-end', step: 'precopy', round: 1, atMs: 1004, ok: true });
  j.append({ type: 'step-start', step: 'precopy', round: 2, atMs: 1005 });
  j.append({ type: 'step-end', step: 'precopy', round: 2, atMs: 1007, ok: false, error: { code: 'X', message: 'boom' } });
  j.close();
  const s = summarizeJournal(readJournal(journalPath(d, 'm-1')).records);
  t.equal(s.migrationId, 'm-1');
  t.equal(s.state, 'precopy');
  t.equal(s.failedStep, 'precopy');
  t.same(s.error, { code: 'X', message: 'boom' });
  t.same(s.steps.map((x) => [x.name, x.round, x.startMs, x.endMs, x.ok]), [
    ['plan', undefined, 1001, 1002, true],
    ['precopy', 1, 1003, 1004, true],
    ['precopy', 2, 1005, 1007, false],
  ]);
  t.same(s.startedSteps, ['plan', 'precopy']);
  t.same(unfinishedMigrations(d).map((x) => x.migrationId), ['m-1']);
  t.throws(() => Journal.create(d, 'm-1', {}, 0), { code: 'MIGRATION_JOURNAL_EXISTS' });
  t.throws(() => journalPath(d, '../etc/passwd'), { code: 'MIGRATION_JOURNAL_CORRUPT' });
});

t.test('a torn last line is ignored and cut on reopen; a bad line elsewhere is corruption', async (t) => {
  const d = dir(t);
  const j = Journal.create(d, 'm-2', {}, 0);
  j.append({ type: 'step-start', step: 'plan', atMs: 1 });
  j.close();
  const p = journalPath(d, 'm-2');
  appendFileSync(p, '{"type":"step-end","st');
  const r = readJournal(p);
  t.ok(r.tornTail);
  t.equal(r.records.length, 2);
  const k = Journal.reopen(d, 'm-2');
  k.append({ type: 'end', state: 'rolled-back', atMs: 5 });
  k.close();
  const again = readJournal(p);
  t.notOk(again.tornTail);
  t.equal(summarizeJournal(again.records).state, 'rolled-back');
  t.equal(readFileSync(p, 'utf8').split('\n').filter(Boolean).length, 3);
  t.same(unfinishedMigrations(d), []);

  t.throws(() => parseJournal('{"type":"begin","migrationId":"a","atMs":0,"request":{}}\nnot json\n{"type":"end","state":"done","atMs":1}\n'), {
    code: 'MIGRATION_JOURNAL_CORRUPT',
    message: /:2: not JSON/,
  });
  t.throws(() => parseJournal('{"type":"begin","migrationId":"a","atMs":0,"request":{}}\n{"type":"step-start","step":"teleport","atMs":1}\n'), { message: /unknown step 'teleport'/ });
  t.throws(() => parseJournal('{"type":"step-start","step":"plan","atMs":1}\n'), { message: /first record must be 'begin'/ });
  t.throws(() => parseJournal('{"type":"begin","atMs":"x"}\n'), { message: /numeric 'atMs'/ });
});

t.test('listJournals: every migration, oldest first; an empty data dir has none', async (t) => {
  const d = dir(t);
  t.same(listJournals(d), []);
  mkdirSync(join(d, 'migrations'), { recursive: true });
  writeFileSync(join(d, 'migrations', 'README.txt'), 'not a journal');
  Journal.create(d, 'late', {}, 20).close();
  Journal.create(d, 'early', {}, 10).close();
  t.same(listJournals(d).map((s) => s.migrationId), ['early', 'late']);
});
