/**
 * The criu executor against CRIU's real contract: argv checked flag by flag against the installed
 * `criu --help`, log and exit parsing against output captured from the real criu 3.17 on this machine
 * (test/executors/criu-fixtures/, see README there), real runs of the executor against real criu,
 * and a live checkpoint where `criu check` passes (skipped with criu's own words where it does not).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { exec } from '../../src/exec.js';
import { logger } from '../../src/log.js';
import { createExecutor } from '../../src/migration/executor.js';
import { checkArgv, dumpArgv, pageServerArgv, preDumpArgv, restoreArgv } from '../../src/executors/criu-argv.js';
import { CriuError, criuFailure, parseCriuOutput } from '../../src/executors/criu-log.js';
import { isAlive } from '../../src/executors/criu-proc.js';
import type { ExecutorContext } from '../../src/migration/executor.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'criu-fixtures');
const fixture = (name: string) => readFile(join(fixtures, name), 'utf8');

t.test('argv: pre-dump, dump, restore, page-server, check', async (t) => {
  t.same(preDumpArgv({ pid: 42, imagesDir: '/img/pre-0' }), { file: 'criu', args: ['pre-dump', '--tree', '42', '--images-dir', '/img/pre-0', '--track-mem', '--log-file', 'pre-dump.log', '-v4', '--display-stats'] });
  t.same(preDumpArgv({ pid: 42, imagesDir: '/img/pre-1', prevImagesDir: '../pre-0', shellJob: true }).args, ['pre-dump', '--tree', '42', '--images-dir', '/img/pre-1', '--track-mem', '--prev-images-dir', '../pre-0', '--log-file', 'pre-dump.log', '-v4', '--display-stats', '--shell-job']);
  t.same(dumpArgv({ pid: 42, imagesDir: '/img/dump' }).args, ['dump', '--tree', '42', '--images-dir', '/img/dump', '--tcp-established', '--leave-stopped', '--log-file', 'dump.log', '-v4', '--display-stats']);
  t.same(dumpArgv({ pid: 7, imagesDir: '/img/dump', prevImagesDir: '../pre-1', pageServer: { address: '10.0.0.2', port: 27000 }, fileLocks: true }).args, [
    'dump', '--tree', '7', '--images-dir', '/img/dump', '--tcp-established', '--leave-stopped', '--track-mem', '--prev-images-dir', '../pre-1',
    '--page-server', '--address', '10.0.0.2', '--port', '27000', '--log-file', 'dump.log', '-v4', '--display-stats', '--file-locks',
  ]);
  t.same(restoreArgv({ imagesDir: '/img/dump', pidFile: '/img/restore/restored.pid', workDir: '/img/restore' }).args, [
    'restore', '--images-dir', '/img/dump', '--tcp-established', '--restore-detached', '--leave-stopped', '--pidfile', '/img/restore/restored.pid', '--work-dir', '/img/restore', '--log-file', 'restore.log', '-v4', '--display-stats',
  ]);
  t.same(pageServerArgv({ imagesDir: '/img/pre-0', port: 27000, address: '0.0.0.0', pidFile: '/img/ps.pid' }).args, ['page-server', '--images-dir', '/img/pre-0', '--port', '27000', '--address', '0.0.0.0', '--daemon', '--pidfile', '/img/ps.pid', '--log-file', 'page-server.log', '-v4']);
  t.same(dumpArgv({ pid: 42, imagesDir: '/i', netns: 'c1abcd-svc' }), { file: 'nsenter', args: ['--net=/run/netns/c1abcd-svc', '--', 'criu', 'dump', '--tree', '42', '--images-dir', '/i', '--tcp-established', '--leave-stopped', '--log-file', 'dump.log', '-v4', '--display-stats'] });
  t.same(checkArgv(), { file: 'criu', args: ['check'] });
  t.same(checkArgv({ feature: 'mem_dirty_track' }).args, ['check', '--feature', 'mem_dirty_track']);
  t.throws(() => dumpArgv({ pid: 0, imagesDir: '/i' }), RangeError);
  t.throws(() => pageServerArgv({ imagesDir: '/i', port: 70000 }), RangeError);
});

t.test('every flag coat passes is one the installed criu documents', async (t) => {
  const help = await exec('criu', ['--help'], { timeoutMs: 10_000, allowFailure: true }).catch(() => undefined);
  if (!help) return t.skip('criu is not installed', () => {});
  const text = help.stdout + help.stderr;
  const all = [
    preDumpArgv({ pid: 1, imagesDir: '/i', prevImagesDir: '../p', shellJob: true, pageServer: { address: 'a', port: 1 } }),
    dumpArgv({ pid: 1, imagesDir: '/i', prevImagesDir: '../p', fileLocks: true }),
    restoreArgv({ imagesDir: '/i', pidFile: '/p', workDir: '/w' }),
    pageServerArgv({ imagesDir: '/i', port: 1, address: 'a', pidFile: '/p' }),
  ].flatMap((a) => a.args);
  const flags = [...new Set(all.filter((a) => /^--?[a-zA-Z]/.test(a)).map((a) => a.replace(/^-v\d$/, '-v')))];
  t.ok(flags.length >= 15, `${flags.length} distinct flags`);
  for (const f of flags) {
    const re = f.startsWith('--') ? new RegExp(`(^|[\\s|])${f}(\\s|$|\\[|=)`, 'm') : new RegExp(`(^|[\\s|])${f}(\\s|\\||\\[)`, 'm');
    t.ok(re.test(text), `criu --help documents ${f}`);
  }
  for (const cmd of ['pre-dump', 'dump', 'restore', 'page-server', 'check']) t.match(text, new RegExp(`^\\s+${cmd}\\s`, 'm'), `command ${cmd}`);
});

t.test('real criu output captured on this machine: typed errors with the root cause', async (t) => {
  const dump = criuFailure('dump', 1, await fixture('dump-vdso-v4.log'), '/x/dump.log');
  t.ok(dump instanceof CriuError);
  t.equal(dump!.code, 'CRIU_KERNEL_UNSUPPORTED');
  t.match(dump!.message, /criu\/vdso\.c:381: vdso: Unexpected rt vDSO area bounds/);
  t.match(dump!.message, /exit 1; log \/x\/dump\.log/);
  t.ok(dump!.errors.length >= 4, 'CRIU\'s error lines kept');
  t.equal(dump!.errors[1]!.at, 0.009424, 'timestamps parsed');

  const pre = criuFailure('pre-dump', 1, await fixture('pre-dump-track-mem.log'));
  t.equal(pre!.code, 'CRIU_NO_MEMORY_TRACKING');
  t.match(pre!.message, /kerndat\.c:424: Tracking memory is not available/);

  const restore = criuFailure('restore', 1, await fixture('restore-vdso.log'));
  t.equal(restore!.code, 'CRIU_KERNEL_UNSUPPORTED');

  const noDir = criuFailure('dump', 1, await fixture('dump-no-images-dir.stderr'));
  t.equal(noDir!.code, 'CRIU_IMAGES_DIR');
  t.match(noDir!.message, /Can't open dir \/nonexistent\/x/);

  const check = criuFailure('check', Number((await fixture('check.rc')).trim()), (await fixture('check.stdout')) + (await fixture('check.stderr')));
  t.equal(check!.code, 'CRIU_KERNEL_UNSUPPORTED');

  // CRIU prints its errors to the log and again to stderr: the merged text keeps each once.
  const log = await fixture('dump-vdso-v4.log');
  t.equal(log.split('\n').filter((l) => l.includes('vdso.c:381')).length, 1, 'the captured log has it once');
  const merged = parseCriuOutput(log + '\nError (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n');
  t.equal(merged.errors.filter((e) => e.line === 381).length, 1, 'kept once');
});

t.test('success markers and --display-stats, in the format of CRIU 3.17 stats.c / cr-dump.c', async (t) => {
  // Lines as CRIU's display_stats() and cr_dump_tasks() print them (format strings from criu/stats.c).
  const dumpOut = [
    '(00.170276) Writing stats',
    'Displaying dump stats:',
    'Freezing time: 61234 us',
    'Frozen time: 42310 us',
    'Memory dump time: 2011 us',
    'Memory write time: 9120 us',
    'IRMAP resolve time: 0 us',
    'Memory pages scanned: 2441 (0x989)',
    'Memory pages skipped from parent: 2300 (0x8fc)',
    'Memory pages written: 141 (0x8d)',
    'Lazy memory pages: 0 (0x0)',
    '(00.170300) Dumping finished successfully',
  ].join('\n');
  const p = parseCriuOutput(dumpOut);
  t.equal(p.succeeded, 'dump');
  t.same(p.dump, { freezingUs: 61234, frozenUs: 42310, memdumpUs: 2011, memwriteUs: 9120, pagesScanned: 2441, pagesSkippedParent: 2300, pagesWritten: 141 });
  t.equal(criuFailure('dump', 0, dumpOut), undefined);
  t.equal(criuFailure('pre-dump', 0, dumpOut)?.code, 'CRIU_FAILED', 'exit 0 without the pre-dump marker is not a pre-dump success');
  t.equal(parseCriuOutput('(66.658902) Pre-dumping finished successfully').succeeded, 'pre-dump');
  const r = parseCriuOutput('Displaying restore stats:\nPages compared: 0 (0x0)\nPages skipped COW: 0 (0x0)\nPages restored: 2441 (0x989)\nRestore time: 44000 us\nForking time: 1200 us\n(00.113549) Restore finished successfully. Tasks resumed.');
  t.equal(r.succeeded, 'restore');
  t.same(r.restore, { pagesRestored: 2441, restoreUs: 44000, forkingUs: 1200 });
  t.equal(criuFailure('dump', 1, '(00.1) Error (criu/sk-inet.c:199): inet: Connected TCP socket, consider using --tcp-established option.\n(00.2) Error (criu/cr-dump.c:2099): Dumping FAILED.')?.code, 'CRIU_TCP_ESTABLISHED');
  t.equal(criuFailure('dump', 1, 'garbage\n\u0000\u0001 no structure at all')?.code, 'CRIU_FAILED', 'unstructured output: still a typed error');
});

async function runCriuRaw(args: string[]): Promise<{ code: number; text: string }> {
  const r = await exec('criu', args, { timeoutMs: 20_000, allowFailure: true });
  return { code: r.code, text: r.stdout + r.stderr };
}

t.test('real criu: a rejected option is CRIU_USAGE', async (t) => {
  const r = await runCriuRaw(['dump', '--no-such-flag-coat']).catch(() => undefined);
  if (!r) return t.skip('criu is not installed', () => {});
  const e = criuFailure('dump', r.code, r.text);
  t.equal(e?.code, 'CRIU_USAGE', r.text.slice(0, 200));
  t.match(e!.message, /--no-such-flag-coat/);
});

function startSleeper(): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
    child.on('error', reject);
    child.on('spawn', () => resolve(child.pid!));
    child.unref();
  });
}

function context(dir: string, pid: number, stepName: string): ExecutorContext {
  return { migrationId: `criu-test-${process.pid}`, service: { name: 'sleeper', netns: '', ip: '10.0.0.1', mac: '02:00:00:00:00:01', pid }, imageDir: dir, stepDir: join(dir, stepName), stepName, log: logger('test-criu') };
}

t.test('criu executor against the real criu: live checkpoint where `criu check` passes', async (t) => {
  const check = await runCriuRaw(['check']).catch(() => undefined);
  if (!check) return t.skip('criu is not installed', () => {});
  const dir = await mkdtemp(join(tmpdir(), 'coat-criu-'));
  const pid = await startSleeper();
  t.teardown(async () => {
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  const executor = await createExecutor('criu', { shellJob: false });
  t.equal(executor.name, 'criu');
  t.same(executor.capabilities, { preCopy: true, tcpEstablished: true });

  if (check.code !== 0) {
    // This kernel: prepare and dump fail with a typed error naming CRIU's own reason, and the
    // service is still running afterwards (untouched).
    const prep = await executor.prepare(context(dir, pid, 'prepare'), 'source').then(() => undefined, (e: unknown) => e);
    t.ok(prep instanceof CriuError && prep.code === 'CRIU_KERNEL_UNSUPPORTED', String(prep));
    const dump = await executor.dump(context(dir, pid, 'dump')).then(() => undefined, (e: unknown) => e);
    t.ok(dump instanceof CriuError, String(dump));
    t.equal((dump as CriuError).code, 'CRIU_KERNEL_UNSUPPORTED');
    t.match((dump as CriuError).logPath ?? '', /dump\/dump\.log$/);
    t.ok(isAlive(pid), 'the source process is still running');
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    t.match(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3), /[SR]/, 'and not stopped');
    const gone = await executor.dump(context(dir, 999_999_999, 'dump2')).then(() => undefined, (e: unknown) => e);
    t.ok(gone instanceof CriuError && gone.code === 'CRIU_NO_PROCESS', String(gone));
    const missing = await (await createExecutor('criu', { criu: '/nonexistent/criu' })).dump(context(dir, pid, 'dump3')).then(() => undefined, (e: unknown) => e);
    t.ok(missing instanceof CriuError && missing.code === 'CRIU_NOT_INSTALLED', String(missing));
    t.skip(`live checkpoint/restore skipped: criu check fails on this kernel:\n${check.text.trim()}`, () => {});
    return;
  }
  // A kernel where CRIU works: dump leaves the sleeper stopped, abort thaws it.
  await executor.prepare(context(dir, pid, 'prepare'), 'source');
  const res = await executor.dump(context(dir, pid, 'dump'));
  t.ok(res.bytes > 0 && res.pages > 0, `dump wrote ${res.bytes} B, ${res.pages} pages`);
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  t.equal(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3), 'T', 'left stopped');
  await executor.abort(context(dir, pid, 'dump'), 'source');
  const after = await readFile(`/proc/${pid}/stat`, 'utf8');
  t.not(after.slice(after.lastIndexOf(')') + 2, after.lastIndexOf(')') + 3), 'T', 'thawed by abort');
});

t.test('property: any output parses without throwing, and a failure is always a CriuError', async (t) => {
  const fc = (await import('fast-check')).default;
  const real = await fixture('dump-vdso-v4.log');
  fc.assert(
    fc.property(fc.string({ maxLength: 400 }), fc.integer({ min: -1, max: 255 }), fc.nat(real.length), (noise, code, cut) => {
      const text = real.slice(0, cut) + noise;
      parseCriuOutput(text);
      const e = criuFailure('dump', code, text);
      return code === 0 && /Dumping finished successfully/.test(text) ? true : e instanceof CriuError && typeof e.code === 'string';
    }),
    { numRuns: 1000 },
  );
  t.pass('1000 truncated/noisy outputs');
});
