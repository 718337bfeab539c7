/**
 * A small executor for the agent's tests: it moves a "service" whose whole state is the files of
 * its state directory. Real work on real files, so the agent's step handling, journal and image
 * streaming are exercised end to end; no process is frozen (that is the real executors' job).
 *
 * - preDump(round): copies every state file into stepDir.
 * - dump: writes `memory.bin` (options.dumpBytes random bytes, the "frozen memory") and
 *   `state.json` (file list with sha256) into stepDir.
 * - restore: checks `dump/state.json` against the received files, copies them into the
 *   destination's stateDir.
 * - resume / release / abort: write a marker into the state directory.
 * Options: { dumpBytes?: number, delayMs?: { [step]: ms } } (a delay waits on ctx.signal, to let
 * tests hold a step open: deadline expiry, agent killed mid-command).
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CoatError } from '../../../src/errors.js';
import type { DumpResult, Executor, ExecutorContext, ExecutorOptions } from '../../../src/migration/executor.js';

interface Options {
  dumpBytes?: number;
  delayMs?: Partial<Record<'prepare' | 'preDump' | 'dump' | 'restore' | 'resume' | 'release' | 'abort', number>>;
}

function delay(ms: number | undefined, signal?: AbortSignal): Promise<void> {
  if (!ms) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new CoatError('TEST_EXECUTOR_ABORTED', 'step aborted by its deadline'));
    }, { once: true });
  });
}

async function copyState(from: string, to: string): Promise<number> {
  let bytes = 0;
  await mkdir(to, { recursive: true });
  for (const e of await readdir(from, { withFileTypes: true })) {
    if (!e.isFile()) continue;
    await copyFile(join(from, e.name), join(to, e.name));
    bytes += (await stat(join(to, e.name))).size;
  }
  return bytes;
}

export function createExecutor(options: ExecutorOptions): Executor {
  const o = options as Options;
  const stateDir = (ctx: ExecutorContext) => {
    if (!ctx.service.stateDir) throw new CoatError('TEST_EXECUTOR_NO_STATE', 'service.stateDir is required');
    return ctx.service.stateDir;
  };
  const mark = async (ctx: ExecutorContext, what: string) => {
    await mkdir(stateDir(ctx), { recursive: true });
    await writeFile(join(stateDir(ctx), `${what}.marker`), `${ctx.migrationId}\n`);
  };
  return {
    name: 'hooks',
    capabilities: { preCopy: true, tcpEstablished: false },
    async prepare(ctx, role) {
      await delay(o.delayMs?.prepare, ctx.signal);
      if (role === 'source') await stat(stateDir(ctx));
    },
    async preDump(ctx, round): Promise<DumpResult> {
      await delay(o.delayMs?.preDump, ctx.signal);
      const bytes = await copyState(stateDir(ctx), ctx.stepDir);
      return { bytes, pages: Math.ceil(bytes / 4096), frozenMs: 0, timings: { round, copyMs: 0 } };
    },
    async dump(ctx): Promise<DumpResult> {
      const t0 = performance.now();
      await delay(o.delayMs?.dump, ctx.signal);
      const mem = randomBytes(o.dumpBytes ?? 64 * 1024);
      await writeFile(join(ctx.stepDir, 'memory.bin'), mem);
      const stateBytes = await copyState(stateDir(ctx), join(ctx.stepDir, 'state'));
      const files: Record<string, string> = { 'memory.bin': createHash('sha256').update(mem).digest('hex') };
      for (const f of await readdir(join(ctx.stepDir, 'state'))) files[`state/${f}`] = createHash('sha256').update(await readFile(join(ctx.stepDir, 'state', f))).digest('hex');
      await writeFile(join(ctx.stepDir, 'state.json'), JSON.stringify({ files }));
      const bytes = mem.length + stateBytes;
      return { bytes, pages: Math.ceil(bytes / 4096), frozenMs: performance.now() - t0, timings: { writeMs: performance.now() - t0 } };
    },
    async restore(ctx) {
      await delay(o.delayMs?.restore, ctx.signal);
      const dump = join(ctx.imageDir, 'dump');
      const { files } = JSON.parse(await readFile(join(dump, 'state.json'), 'utf8')) as { files: Record<string, string> };
      for (const [f, sha] of Object.entries(files)) {
        const got = createHash('sha256').update(await readFile(join(dump, f))).digest('hex');
        if (got !== sha) throw new CoatError('TEST_EXECUTOR_CORRUPT', `${f}: sha256 ${got} != ${sha}`);
      }
      await copyState(join(dump, 'state'), stateDir(ctx));
      return { sockets: 0, timings: { verifyMs: 0 } };
    },
    async resume(ctx) {
      await delay(o.delayMs?.resume, ctx.signal);
      await mark(ctx, 'resumed');
    },
    async release(ctx) {
      await delay(o.delayMs?.release, ctx.signal);
      await mark(ctx, 'released');
    },
    async abort(ctx, role) {
      await delay(o.delayMs?.abort, ctx.signal);
      await mark(ctx, `aborted-${role}`);
    },
  };
}
