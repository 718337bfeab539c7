/**
 * The built-in `tcp-repair` executor: moves a coat-aware service (one that keeps its state in its
 * state directory through the SDK, src/workload/sdk.ts) with its established TCP connections,
 * using the TCP_REPAIR boundary (src/tcp-repair/) instead of a whole-process checkpoint.
 *
 * Source:       prepare -> preDump* -> dump ........ release | abort
 *   prepare  moves the service's tree into its freezer cgroup (slow, outside the downtime).
 *   preDump  copies the pages of each state file that changed since the previous round (the first
 *            round copies all); `compare` and `hash` tracking need no freeze, `soft-dirty` freezes only for the
 *            pagemap read + clear_refs (dirty-pages.ts).
 *   dump     freezes the tree (cgroup v1 freezer, else SIGSTOP), takes every TCP socket of the main
 *            process with pidfd_getfd, puts the established ones in repair mode and saves them,
 *            records the listening ones, copies the last dirty pages, and links the state files
 *            no round copied into the image whole (linkWholeFiles). The source stays frozen with
 *            its sockets in repair mode: nothing it holds can send a FIN or RST. Dump, restore and
 *            resume lie inside the downtime: synchronous calls only there (no thread-pool queueing),
 *            no process start, no fsync.
 *   release  closes our references in repair mode and SIGKILLs the frozen tree: silent.
 *   abort    takes the sockets out of repair mode and thaws the tree: it carries on untouched.
 * Destination:  prepare -> restore -> resume | abort
 *   prepare  starts the service as a standby in its namespace (handover.ts): it loads its code,
 *            opens nothing on the network and waits on its control channel; and follows the image
 *            directory, applying each pre-copy round's pages into the state files as it arrives
 *            (state-applier.ts). Both happen while the source still runs, outside the downtime.
 *   restore  verifies every image not yet applied (checksums, versions) before touching anything,
 *            applies the dump's pages, moves its whole files in, renames the state files into
 *            place, rebuilds the sockets in repair mode inside the service's namespace (setns in
 *            the addon), recreates the listeners, and hands them to the standby, which takes
 *            them with pidfd_getfd;
 *            returns once it reports it holds them. No standby (prepare not called, or it died):
 *            it starts one first, logged, and the process start is inside restore again.
 *   resume   takes the sockets out of repair mode, writes the never-sent tails, records the stream
 *            origins for the next migration (coat-sockets.json in the state directory), then
 *            tells the service to go and waits for its acknowledgement.
 *
 * Image layout under ctx.imageDir, one directory per step (the agent streams each):
 *   STEP/round.json                 { kind: "pre" | "dump", round, ... }
 *   STEP/state/NAME.pages           page delta of state file NAME (page-delta.ts)
 *   dump/state/NAME.whole           state file NAME as it is, when no pre-copy round copied it
 *                                   (a hard link to the frozen service's file; see linkWholeFiles)
 *   dump/sockets/NNN.skimg          socket images (src/tcp-repair/image.ts)
 *   dump/listeners.json             listening endpoints to recreate
 */
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { closeSync, copyFileSync, existsSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, writeFileSync, type Dirent } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { CoatError } from '../errors.js';
import type { DumpResult, Executor, ExecutorContext, ExecutorOptions, RestoreResult } from '../migration/executor.js';
import { native } from '../tcp-repair/native.js';
import { RepairSocket, listenIn, netnsPath, ZERO_ORIGIN, type StreamOrigin } from '../tcp-repair/socket.js';
import { decode as decodeImage, encode as encodeImage, type Endpoint, type SocketImage } from '../tcp-repair/image.js';
import { tcpSocketsOf, TCP_STATE } from '../tcp-repair/proc.js';
import { enterFreezerCgroup, freeze, isAlive, processTree, thawByName, type Frozen, type FreezerCgroup, type FreezerKind } from './tcp-repair/freezer.js';
import { CompareTracker, HashTracker, PAGE_SIZE, SoftDirtyTracker, softDirtyAvailable, type DirtyTracking, type RoundResult } from './tcp-repair/dirty-pages.js';
import { decodePageDelta, encodePageDelta, type PageDelta } from './tcp-repair/page-delta.js';
import { handoverFor, startStandby, type Standby } from './tcp-repair/handover.js';
import { StateApplier, TMP_SUFFIX } from './tcp-repair/state-applier.js';

export const TREX_CODES = {
  TREX_NO_PID: 'the service spec has no pid (the source needs the main pid)',
  TREX_NO_PROCESS: 'the source process is gone',
  TREX_NO_STATE_DIR: 'the service spec has no stateDir, or it is not a directory',
  TREX_NO_COMMAND: 'the destination needs service.command to start the restored service',
  TREX_NO_NETNS: 'the service namespace does not exist on this host',
  TREX_IMAGE_MISSING: 'the image directory has no dump step, or a step lacks a file it names',
  TREX_IMAGE_INVALID: 'an image file is not what its step says it is',
  TREX_SEQUENCE: 'a method was called out of the contract order (e.g. resume without restore)',
} as const;
export type TrexCode = keyof typeof TREX_CODES;

export class TcpRepairExecutorError extends CoatError {
  declare readonly code: TrexCode;
}

export interface TcpRepairExecutorOptions {
  /** Dirty-page tracking; 'auto' = soft-dirty where the kernel supports it, else compare. */
  dirtyTracking: DirtyTracking | 'auto';
  /** How to stop the source; 'auto' = cgroup v1 freezer where mounted, else SIGSTOP. */
  freezer: FreezerKind | 'auto';
  /** Longest wait for the restored service to acknowledge "resume" (and to take its sockets). */
  resumeTimeoutMs: number;
  /** Longest wait for the service to load its code and report standby (prepare, or restore's fallback). */
  startTimeoutMs: number;
}

export function parseOptions(o: ExecutorOptions): TcpRepairExecutorOptions {
  const pick = <T extends string>(v: unknown, allowed: readonly T[], dflt: T, name: string): T => {
    if (v === undefined) return dflt;
    if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
    throw new TypeError(`tcp-repair executor: option ${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  };
  const timeout = o.resumeTimeoutMs ?? 10_000;
  if (typeof timeout !== 'number' || !(timeout > 0)) throw new TypeError('tcp-repair executor: resumeTimeoutMs must be a positive number');
  const start = o.startTimeoutMs ?? 30_000;
  if (typeof start !== 'number' || !(start > 0)) throw new TypeError('tcp-repair executor: startTimeoutMs must be a positive number');
  return {
    dirtyTracking: pick(o.dirtyTracking, ['hash', 'compare', 'soft-dirty', 'auto'] as const, 'auto', 'dirtyTracking'),
    freezer: pick(o.freezer, ['cgroup', 'signal', 'auto'] as const, 'auto', 'freezer'),
    resumeTimeoutMs: timeout,
    startTimeoutMs: start,
  };
}

/** Files of the state directory that are coat's own bookkeeping, not service state. */
export const ORIGINS_FILE = 'coat-sockets.json';

interface OriginsFile {
  version: 1;
  migrationId: string;
  connections: { local: Endpoint; remote: Endpoint; written: string; read: string }[];
}

const key = (local: Endpoint, remote: Endpoint) => `${local.address}:${local.port}-${remote.address}:${remote.port}`;

interface SourceRun {
  pid: number;
  tracker: HashTracker | CompareTracker | SoftDirtyTracker;
  /** The freezer cgroup prepare moved the tree into (so the dump's freeze is one write). */
  cgroup?: FreezerCgroup;
  frozen?: Frozen;
  sockets: RepairSocket[];
}

interface DestRun {
  sockets: { socket: RepairSocket; image: SocketImage }[];
  listenerFds: number[];
  service?: Standby;
  stateFiles: string[];
}

/** What prepare leaves at the destination for restore: the waiting service and the state applier. */
interface DestPrepared {
  standby?: Standby;
  applier: StateApplier;
}

interface RoundMeta {
  kind: 'pre' | 'dump';
  round: number;
  /** State files with a page delta in this step (STEP/state/NAME.pages). */
  files: string[];
  /** The dump's state files sent whole (STEP/state/NAME.whole): no earlier round copied them. */
  whole?: WholeFile[];
  sockets?: string[];
  pid?: number;
}

interface WholeFile {
  name: string;
  size: number;
  /** SHA-256 of the file, hex: checked at restore, as a page delta's trailer is. */
  sha256: string;
}

/**
 * Size and SHA-256 of a file in one pass, read synchronously in 1 MiB pieces into one buffer
 * (inside the downtime: no thread pool, no 10 MiB allocation to fault in). ~7 ms for 10 MiB here.
 */
function fileDigest(path: string): { size: number; sha256: string } {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(path, 'r');
  let size = 0;
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; size += n) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return { size, sha256: h.digest('hex') };
}

/** The service's state files: plain names, not coat's own bookkeeping or temp files. */
function stateFileNames(entries: Dirent[]): string[] {
  return entries.filter((e) => e.isFile() && e.name !== ORIGINS_FILE && !e.name.endsWith(TMP_SUFFIX) && FILE_NAME_RE.test(e.name)).map((e) => e.name).sort();
}
const FILE_NAME_RE = /^[A-Za-z0-9._-]+$/;

/**
 * The dump's state files that no round copied yet (all of them without pre-copy) go into the image
 * whole, as hard links to the frozen service's files, not copied into a page delta. The service is
 * frozen, so the link holds exactly the checkpoint (the page cache is the file: pages the service
 * dirtied through its mapping are what a read returns). The agent then streams the file chunk by
 * chunk, reading while it sends, and the destination renames it into place. This spares a cold
 * dump three copies of the state inside the downtime (into the delta, out of it at restore, into
 * the state file; 10 MiB: ~75 ms here). The stream's per-chunk hashes and image digest cover every byte in
 * transit; the file's own SHA-256 in round.json covers it at rest, as a delta's trailer does (the
 * lab's corrupt-image fault flips bytes on the destination's disk after the stream checked them).
 * Across filesystems: a copy (copy_file_range, in the kernel).
 */
function linkWholeFiles(ctx: ExecutorContext, names: string[]): WholeFile[] {
  if (!names.length) return [];
  const dir = ctx.service.stateDir!;
  mkdirSync(join(ctx.stepDir, 'state'), { recursive: true });
  return names.map((name) => {
    const from = join(dir, name);
    const to = join(ctx.stepDir, 'state', `${name}.whole`);
    try {
      linkSync(from, to);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      copyFileSync(from, to);
    }
    return { name, ...fileDigest(to) };
  });
}

export class TcpRepairExecutor implements Executor {
  readonly name = 'tcp-repair' as const;
  readonly capabilities = { preCopy: true, tcpEstablished: true };
  readonly options: TcpRepairExecutorOptions;
  private readonly sources = new Map<string, SourceRun>();
  private readonly dests = new Map<string, DestRun>();
  private readonly prepared = new Map<string, DestPrepared>();

  constructor(options: TcpRepairExecutorOptions) {
    this.options = options;
  }

  async prepare(ctx: ExecutorContext, role: 'source' | 'destination'): Promise<void> {
    native(); // throws TCPR_ADDON_MISSING when the addon is not built
    if (role === 'source') {
      const pid = requirePid(ctx);
      if (!(await isAlive(pid))) throw new TcpRepairExecutorError('TREX_NO_PROCESS', `source process ${pid} is gone`);
      if (ctx.service.stateDir) await requireDir(ctx.service.stateDir);
      // Into the freezer cgroup now: moving a process there costs milliseconds, freezing it there
      // a fraction of one (freezer.ts), and the dump's freeze is inside the downtime.
      const run = await this.sourceRun(ctx);
      if (!run.cgroup && !run.frozen) {
        const t0 = performance.now();
        const cg = await enterFreezerCgroup(pid, cgroupName(ctx.migrationId), this.options.freezer);
        if (cg) run.cgroup = cg;
        ctx.log.debug({ pid, cgroup: cg?.dir, ms: performance.now() - t0 }, 'source tree in its freezer cgroup');
      }
    } else {
      if (!ctx.service.command?.length) throw new TcpRepairExecutorError('TREX_NO_COMMAND', `service ${ctx.service.name} has no command to start at the destination`);
      if (!ctx.service.stateDir) throw new TcpRepairExecutorError('TREX_NO_STATE_DIR', `service ${ctx.service.name} has no stateDir`);
      await mkdir(ctx.service.stateDir, { recursive: true });
      if (ctx.service.netns && !existsSync(netnsPath(ctx.service.netns))) throw new TcpRepairExecutorError('TREX_NO_NETNS', `namespace ${ctx.service.netns} does not exist (${netnsPath(ctx.service.netns)})`);
      await this.prepareDestination(ctx);
    }
    ctx.log.debug({ role, executor: this.name }, 'prepared');
  }

  /** Pid of the standby service prepare started for this migration, while it waits. */
  standbyPid(migrationId: string): number | undefined {
    return this.prepared.get(migrationId)?.standby?.pid;
  }

  private async prepareDestination(ctx: ExecutorContext): Promise<void> {
    // A second prepare for the same migration (a retried step) replaces the first.
    await this.dropPrepared(ctx);
    await mkdir(ctx.imageDir, { recursive: true });
    const applier = new StateApplier(ctx.imageDir, ctx.service.stateDir!, ctx.log);
    await applier.start();
    const entry: DestPrepared = { applier };
    this.prepared.set(ctx.migrationId, entry);
    const t0 = performance.now();
    entry.standby = startStandby(this.standbyOptions(ctx));
    try {
      await entry.standby.standby(this.options.startTimeoutMs);
    } catch (err) {
      entry.standby.kill();
      delete entry.standby;
      throw err; // a service that cannot start is better known before the downtime
    }
    ctx.log.info({ pid: entry.standby.pid, startMs: performance.now() - t0, netns: ctx.service.netns }, 'standby service started; it waits for its sockets');
  }

  private standbyOptions(ctx: ExecutorContext) {
    return {
      command: ctx.service.command!,
      ...(ctx.service.netns ? { netns: ctx.service.netns } : {}),
      ...(ctx.service.env ? { env: ctx.service.env } : {}),
      logPath: join(ctx.imageDir, 'service.log'),
    };
  }

  private async dropPrepared(ctx: ExecutorContext): Promise<void> {
    const p = this.prepared.get(ctx.migrationId);
    if (!p) return;
    this.prepared.delete(ctx.migrationId);
    p.standby?.kill();
    await p.applier.discard();
    if (p.standby) ctx.log.info({ pid: p.standby.pid }, 'standby service killed');
  }

  async preDump(ctx: ExecutorContext, round: number): Promise<DumpResult> {
    const t0 = performance.now();
    const run = await this.sourceRun(ctx);
    if (!(await isAlive(run.pid))) throw new TcpRepairExecutorError('TREX_NO_PROCESS', `source process ${run.pid} is gone`);
    const timings: Record<string, number> = {};
    let frozenMs = 0;
    const rounds = await this.stateRound(ctx, run, false, async (ms) => {
      frozenMs += ms;
    });
    timings.state = performance.now() - t0;
    const bytes = await this.writeRound(ctx, { kind: 'pre', round, files: rounds.map((r) => r.delta.name) }, rounds);
    timings.total = performance.now() - t0;
    const pages = rounds.reduce((n, r) => n + r.delta.pages.length, 0);
    ctx.log.info({ step: ctx.stepName, round, pages, bytes, tracking: run.tracker.kind }, 'pre-dump round written');
    return { bytes, pages, dirtyPages: pages, frozenMs, timings };
  }

  async dump(ctx: ExecutorContext): Promise<DumpResult> {
    const t0 = performance.now();
    const run = await this.sourceRun(ctx);
    const timings: Record<string, number> = {};
    try {
      run.frozen = await freeze(run.pid, cgroupName(ctx.migrationId), this.options.freezer, 5000, run.cgroup);
    } catch (err) {
      if (!(await isAlive(run.pid))) throw new TcpRepairExecutorError('TREX_NO_PROCESS', `source process ${run.pid} is gone`, { cause: err });
      throw err;
    }
    const tFrozen = performance.now();
    timings.freeze = tFrozen - t0;
    try {
      // Everything from here to the end of the dump is synchronous: the service is frozen (this is
      // the downtime), each call takes microseconds, and an asynchronous one would queue on libuv's
      // thread pool behind whatever else the agent is doing.
      const origins = readOrigins(ctx.service.stateDir);
      const found = await tcpSocketsOf(run.pid);
      const tSockets = performance.now();
      timings.discover = tSockets - tFrozen;
      const images: SocketImage[] = [];
      const listeners: (Endpoint & { family: 4 | 6 })[] = [];
      for (const s of found) {
        if (s.state === TCP_STATE.LISTEN) {
          listeners.push({ family: s.family, ...s.local });
          continue;
        }
        if (s.state !== TCP_STATE.ESTABLISHED) {
          ctx.log.warn({ fd: s.fd, state: s.state, local: s.local, remote: s.remote }, 'TCP socket neither established nor listening: not moved');
          continue;
        }
        const sock = RepairSocket.take(run.pid, s.fd);
        run.sockets.push(sock);
        sock.pause();
        const img = sock.save(origins.get(key(s.local, s.remote)) ?? ZERO_ORIGIN);
        sock.silence(img); // from here only the destination sends this connection's new bytes
        images.push(img);
      }
      timings.sockets = performance.now() - tSockets;
      const tState = performance.now();
      const stateNames = ctx.service.stateDir ? stateFileNames(readdirSync(ctx.service.stateDir, { withFileTypes: true })) : [];
      const rounds = await this.stateRound(ctx, run, true, async () => {}, stateNames.filter((n) => run.tracker.hasRound(n)));
      timings.state = performance.now() - tState;
      const tWrite = performance.now();
      const whole = linkWholeFiles(ctx, stateNames.filter((n) => !run.tracker.hasRound(n)));
      mkdirSync(join(ctx.stepDir, 'sockets'), { recursive: true });
      const names: string[] = [];
      let bytes = 0;
      for (const [i, img] of images.entries()) {
        const name = `${String(i).padStart(3, '0')}.skimg`;
        const buf = encodeImage(img);
        writeFileSync(join(ctx.stepDir, 'sockets', name), buf);
        bytes += buf.length;
        names.push(name);
      }
      const lj = JSON.stringify(listeners);
      writeFileSync(join(ctx.stepDir, 'listeners.json'), lj);
      bytes += lj.length;
      bytes += this.writeRoundNow(ctx, { kind: 'dump', round: 0, files: rounds.map((r) => r.delta.name), whole, sockets: names, pid: run.pid }, rounds);
      timings.write = performance.now() - tWrite;
      timings.total = performance.now() - t0;
      const pages = rounds.reduce((n, r) => n + r.delta.pages.length, 0) + whole.reduce((n, w) => n + Math.ceil(w.size / PAGE_SIZE), 0);
      bytes += whole.reduce((n, w) => n + w.size, 0);
      const queued = images.reduce((n, i) => n + i.sendQueue.length + i.recvQueue.length, 0);
      ctx.log.info({ step: ctx.stepName, pid: run.pid, sockets: images.length, listeners: listeners.length, queuedBytes: queued, pages, bytes, freezer: run.frozen.kind }, 'dump written; source frozen, sockets in repair mode');
      return { bytes, pages, dirtyPages: pages, sockets: images.length, frozenMs: performance.now() - tFrozen, timings };
    } catch (err) {
      // Contract: a failed dump leaves the source as it was.
      await this.thawSource(run).catch((e: unknown) => ctx.log.error({ err: e }, 'rollback of failed dump failed'));
      this.sources.delete(ctx.migrationId);
      throw err;
    }
  }

  async settle(ctx: ExecutorContext): Promise<void> {
    await this.prepared.get(ctx.migrationId)?.applier.settle();
  }

  async restore(ctx: ExecutorContext): Promise<RestoreResult> {
    const t0 = performance.now();
    const timings: Record<string, number> = {};
    const stateDir = ctx.service.stateDir;
    if (!stateDir) throw new TcpRepairExecutorError('TREX_NO_STATE_DIR', `service ${ctx.service.name} has no stateDir`);
    if (!ctx.service.command?.length) throw new TcpRepairExecutorError('TREX_NO_COMMAND', `service ${ctx.service.name} has no command`);
    // 1. Read and verify everything not yet applied, before any side effect the service could see.
    //    Synchronous reads: this is the downtime (see dump).
    const steps = readSteps(ctx.imageDir);
    const dump = steps.at(-1)!;
    const images: SocketImage[] = [];
    for (const name of dump.meta.sockets ?? []) images.push(decodeImage(readImageFile(join(dump.dir, 'sockets', name))));
    const listeners = parseListeners(join(dump.dir, 'listeners.json'));
    const whole = (dump.meta.whole ?? []).map((w) => ({ ...w, path: join(dump.dir, 'state', `${w.name}.whole`) }));
    for (const w of whole) {
      let got: { size: number; sha256: string };
      try {
        got = fileDigest(w.path);
      } catch (err) {
        throw new TcpRepairExecutorError('TREX_IMAGE_MISSING', `cannot read ${w.path}: ${(err as Error).message}`, { cause: err });
      }
      if (got.size !== w.size) throw new TcpRepairExecutorError('TREX_IMAGE_INVALID', `${w.path} has ${got.size} bytes, the dump recorded ${w.size} (truncated?)`);
      if (got.sha256 !== w.sha256) throw new TcpRepairExecutorError('TREX_IMAGE_INVALID', `${w.path}: SHA-256 mismatch, the file is corrupted`);
    }
    mkdirSync(stateDir, { recursive: true });
    const prep = this.prepared.get(ctx.migrationId);
    const applier = prep?.applier ?? new StateApplier(ctx.imageDir, stateDir, ctx.log);
    if (prep) await applier.stop();
    else await applier.clearStale();
    let pending = steps.filter((s) => s.meta.kind === 'dump' || !applier.applied.includes(s.meta.round));
    const lastApplied = applier.applied.at(-1);
    if (lastApplied !== undefined && pending.some((s) => s.meta.kind === 'pre' && s.meta.round < lastApplied)) {
      // A round arrived after a later one was applied: start over from every round.
      ctx.log.warn({ applied: applier.applied }, 'pre-copy rounds arrived out of order; applying every round again');
      await applier.reset();
      pending = steps;
    }
    const deltas: PageDelta[][] = [];
    for (const step of pending) {
      const list: PageDelta[] = [];
      for (const f of step.meta.files) {
        const d = decodePageDelta(readImageFile(join(step.dir, 'state', `${f}.pages`)));
        if (d.name !== f) throw new TcpRepairExecutorError('TREX_IMAGE_INVALID', `${step.dir}/state/${f}.pages names file ${d.name}`);
        list.push(d);
      }
      deltas.push(list);
    }
    timings.read = performance.now() - t0;
    const run: DestRun = { sockets: [], listenerFds: [], stateFiles: [] };
    this.dests.set(ctx.migrationId, run);
    try {
      // 2. State files: the rounds not applied in the background (with pre-copy: the dump's
      //    delta only) into the temp files, then renamed into place (atomic per file).
      const tState = performance.now();
      for (const list of deltas) applier.applyNow(list);
      for (const w of whole) applier.placeWhole(w.name, w.path, w.size);
      run.stateFiles = applier.finish([...dump.meta.files, ...whole.map((w) => w.name)]);
      timings.state = performance.now() - tState;
      // 3. Sockets, in repair mode, in the service's namespace.
      const tSock = performance.now();
      for (const img of images) run.sockets.push({ socket: RepairSocket.restore(img, ctx.service.netns ? { netns: ctx.service.netns } : {}), image: img });
      for (const l of listeners) run.listenerFds.push(listenIn(l, ctx.service.netns ? { netns: ctx.service.netns } : {}));
      timings.sockets = performance.now() - tSock;
      // 4. The service: the standby prepare started, else one started now (the slow path).
      let service = prep?.standby;
      if (service?.exited) {
        ctx.log.warn({ pid: service.pid, exited: service.exited }, 'the standby service died');
        service = undefined;
      }
      if (!service) {
        ctx.log.warn({ prepared: prep !== undefined }, 'no standby service: starting it now, inside the downtime');
        const tSpawn = performance.now();
        service = run.service = startStandby(this.standbyOptions(ctx));
        await service.standby(this.options.startTimeoutMs);
        timings.spawn = performance.now() - tSpawn;
      }
      run.service = service;
      this.prepared.delete(ctx.migrationId);
      const tHandover = performance.now();
      const handover = handoverFor(
        {
          migrationId: ctx.migrationId,
          listeners: listeners.map((l, i) => ({ fd: run.listenerFds[i]!, family: l.family, address: l.address, port: l.port })),
          connections: run.sockets.map(({ socket, image }) => ({ fd: socket.fd, family: image.family, local: image.local, remote: image.remote, written: image.streamWritten, read: image.streamRead })),
        },
        process.pid,
      );
      await service.handover(handover, this.options.resumeTimeoutMs);
      timings.handover = performance.now() - tHandover;
    } catch (err) {
      await this.abortDestination(ctx, run);
      throw err;
    }
    timings.total = performance.now() - t0;
    ctx.log.info({ pid: run.service.pid, standby: timings.spawn === undefined, sockets: images.length, listeners: listeners.length, rounds: steps.length, roundsAppliedBefore: steps.length - pending.length, backgroundApplyMs: applier.backgroundMs, netns: ctx.service.netns, timings }, 'restored; sockets in repair mode, service holds them and waits');
    return { pid: run.service.pid, sockets: images.length, timings };
  }

  async resume(ctx: ExecutorContext): Promise<void> {
    const run = this.dests.get(ctx.migrationId);
    if (!run?.service) throw new TcpRepairExecutorError('TREX_SEQUENCE', `resume without a restore for migration ${ctx.migrationId}`);
    const t0 = performance.now();
    const origins: OriginsFile = { version: 1, migrationId: ctx.migrationId, connections: [] };
    for (const { socket, image } of run.sockets) {
      const o: StreamOrigin = socket.resume();
      origins.connections.push({ local: image.local, remote: image.remote, written: o.written.toString(), read: o.read.toString() });
    }
    const tRepairOff = performance.now() - t0;
    // The service goes now; the origins are written while it adopts its sockets (it does not read
    // them: the next migration's dump does).
    const acknowledged = run.service.release(this.options.resumeTimeoutMs);
    acknowledged.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
    if (ctx.service.stateDir) writeFileSync(join(ctx.service.stateDir, ORIGINS_FILE), JSON.stringify(origins, null, 2));
    await acknowledged;
    for (const { socket } of run.sockets) socket.close();
    for (const fd of run.listenerFds) native().close(fd);
    this.dests.delete(ctx.migrationId);
    ctx.log.info({ pid: run.service.pid, sockets: run.sockets.length, repairOffMs: tRepairOff, totalMs: performance.now() - t0 }, 'resumed: service runs with its connections');
  }

  async release(ctx: ExecutorContext): Promise<void> {
    const run = this.sources.get(ctx.migrationId);
    if (!run) {
      // An agent restarted since the dump: the sockets are still in repair mode (the kernel keeps
      // the flag), so killing the tree is still silent.
      const pid = requirePid(ctx);
      for (const p of (await isAlive(pid)) ? await processTree(pid) : []) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await thawByName(cgroupName(ctx.migrationId));
      return;
    }
    for (const s of run.sockets) s.closeSilently();
    if (run.frozen) await run.frozen.kill();
    else await run.cgroup?.leave(); // released without a dump: nothing to kill
    this.sources.delete(ctx.migrationId);
    ctx.log.info({ pid: run.pid }, 'source released (killed while its sockets were in repair mode)');
  }

  async abort(ctx: ExecutorContext, role: 'source' | 'destination'): Promise<void> {
    if (role === 'destination') {
      const run = this.dests.get(ctx.migrationId);
      if (run) await this.abortDestination(ctx, run);
      await this.dropPrepared(ctx); // the standby, by its pid, and the state applied so far
      return;
    }
    const run = this.sources.get(ctx.migrationId);
    if (run) {
      await this.thawSource(run);
      this.sources.delete(ctx.migrationId);
      ctx.log.info({ pid: run.pid }, 'source thawed after abort');
      return;
    }
    // No memory of this migration (agent restarted): undo what a dump may have left.
    const pid = ctx.service.pid;
    if (pid && (await isAlive(pid))) {
      for (const s of await tcpSocketsOf(pid).catch(() => [])) {
        if (s.state !== TCP_STATE.ESTABLISHED) continue;
        try {
          const sock = RepairSocket.take(pid, s.fd);
          sock.pause(); // marks it ours to turn off, then off
          sock.unpause();
          sock.close();
        } catch (err) {
          ctx.log.warn({ err, fd: s.fd }, 'cannot take socket out of repair mode');
        }
      }
    }
    if (!(await thawByName(cgroupName(ctx.migrationId))) && pid && (await isAlive(pid))) {
      for (const p of await processTree(pid)) {
        try {
          process.kill(p, 'SIGCONT');
        } catch {
          // gone
        }
      }
    }
  }

  // ---- internals -------------------------------------------------------------------------

  private async sourceRun(ctx: ExecutorContext): Promise<SourceRun> {
    let run = this.sources.get(ctx.migrationId);
    if (run) return run;
    const pid = requirePid(ctx);
    const tracking = this.options.dirtyTracking === 'auto' ? (softDirtyAvailable().ok ? 'soft-dirty' : 'compare') : this.options.dirtyTracking;
    run = { pid, tracker: tracking === 'soft-dirty' ? new SoftDirtyTracker(pid) : tracking === 'compare' ? new CompareTracker() : new HashTracker(), sockets: [] };
    this.sources.set(ctx.migrationId, run);
    return run;
  }

  /**
   * One round over state files: every one (pre-dump), or those given (the dump's files an earlier
   * round copied). `frozen`: the service is already frozen (dump).
   */
  private async stateRound(ctx: ExecutorContext, run: SourceRun, frozen: boolean, addFrozen: (ms: number) => Promise<void>, only?: string[]): Promise<RoundResult[]> {
    const dir = ctx.service.stateDir;
    if (!dir) return [];
    const files = only ?? stateFileNames(await readdir(dir, { withFileTypes: true }));
    const out: RoundResult[] = [];
    const tracker = run.tracker;
    if (!(tracker instanceof SoftDirtyTracker)) {
      // Frozen (the dump): synchronous reads, see dump(). Running (pre-dump): off the event loop.
      for (const f of files) out.push(frozen ? tracker.roundNow(join(dir, f), f) : await tracker.round(join(dir, f), f));
      return out;
    }
    // soft-dirty: the pagemap read and clear_refs happen with the tree frozen.
    const sizes = new Map<string, number>();
    for (const f of files) sizes.set(f, (await stat(join(dir, f))).size);
    let frozenHere: Frozen | undefined;
    const t = performance.now();
    if (!frozen) frozenHere = await freeze(run.pid, cgroupName(ctx.migrationId) + '-pre', this.options.freezer, 5000, run.cgroup);
    const indexes = new Map<string, number[]>();
    try {
      for (const f of files) indexes.set(f, tracker.dirtyIndexes(join(dir, f), f, sizes.get(f)!));
      tracker.clear();
    } finally {
      await frozenHere?.thaw();
      if (frozenHere) await addFrozen(performance.now() - t);
    }
    for (const f of files) out.push(await tracker.copy(join(dir, f), f, indexes.get(f)!, sizes.get(f)!));
    return out;
  }

  private async writeRound(ctx: ExecutorContext, meta: RoundMeta, rounds: RoundResult[]): Promise<number> {
    await mkdir(join(ctx.stepDir, 'state'), { recursive: true });
    let bytes = 0;
    for (const r of rounds) {
      const buf = encodePageDelta(r.delta);
      await writeFile(join(ctx.stepDir, 'state', `${r.delta.name}.pages`), buf);
      bytes += buf.length;
    }
    const m = JSON.stringify(meta);
    await writeFile(join(ctx.stepDir, 'round.json'), m);
    return bytes + m.length;
  }

  /** writeRound, synchronously: the dump's round, written while the service is frozen. No fsync. */
  private writeRoundNow(ctx: ExecutorContext, meta: RoundMeta, rounds: RoundResult[]): number {
    mkdirSync(join(ctx.stepDir, 'state'), { recursive: true });
    let bytes = 0;
    for (const r of rounds) {
      const buf = encodePageDelta(r.delta);
      writeFileSync(join(ctx.stepDir, 'state', `${r.delta.name}.pages`), buf);
      bytes += buf.length;
    }
    const m = JSON.stringify(meta);
    writeFileSync(join(ctx.stepDir, 'round.json'), m);
    return bytes + m.length;
  }

  /** Sockets out of repair mode, the tree thawed and out of its freezer cgroup: as before prepare. */
  private async thawSource(run: SourceRun): Promise<void> {
    for (const s of run.sockets) {
      try {
        s.unpause();
      } finally {
        s.close();
      }
    }
    run.sockets = [];
    await run.frozen?.thaw();
    run.frozen = undefined;
    await run.cgroup?.leave();
  }

  private async abortDestination(ctx: ExecutorContext, run: DestRun): Promise<void> {
    run.service?.kill();
    for (const { socket } of run.sockets) socket.closeSilently();
    for (const fd of run.listenerFds) {
      try {
        native().close(fd);
      } catch {
        // already closed
      }
    }
    for (const f of run.stateFiles) await rm(f, { force: true });
    this.dests.delete(ctx.migrationId);
    ctx.log.info({ pid: run.service?.pid }, 'destination cleared after abort');
  }
}

function requirePid(ctx: ExecutorContext): number {
  const pid = ctx.service.pid;
  if (!pid || !Number.isInteger(pid) || pid <= 0) throw new TcpRepairExecutorError('TREX_NO_PID', `service ${ctx.service.name} has no pid`);
  return pid;
}

async function requireDir(dir: string): Promise<void> {
  try {
    if ((await stat(dir)).isDirectory()) return;
  } catch {
    // fall through
  }
  throw new TcpRepairExecutorError('TREX_NO_STATE_DIR', `${dir} is not a directory`);
}

function cgroupName(migrationId: string): string {
  return 'coat-' + migrationId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
}

function readOrigins(stateDir: string | undefined): Map<string, StreamOrigin> {
  const out = new Map<string, StreamOrigin>();
  if (!stateDir) return out;
  let text: string;
  try {
    text = readFileSync(join(stateDir, ORIGINS_FILE), 'utf8');
  } catch {
    return out; // a service that was never migrated: every origin is zero
  }
  const o = JSON.parse(text) as OriginsFile;
  for (const c of o.connections ?? []) out.set(key(c.local, c.remote), { written: BigInt(c.written), read: BigInt(c.read) });
  return out;
}

function readImageFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TcpRepairExecutorError('TREX_IMAGE_MISSING', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** dump/listeners.json: the listening endpoints to recreate. */
function parseListeners(path: string): (Endpoint & { family: 4 | 6 })[] {
  let v: unknown;
  try {
    v = JSON.parse(readImageFile(path).toString('utf8'));
  } catch (err) {
    if (err instanceof TcpRepairExecutorError) throw err;
    throw new TcpRepairExecutorError('TREX_IMAGE_INVALID', `${path}: ${(err as Error).message}`, { cause: err });
  }
  const ok = (l: unknown): l is Endpoint & { family: 4 | 6 } => {
    const e = l as { family?: unknown; address?: unknown; port?: unknown };
    return typeof e === 'object' && e !== null && (e.family === 4 || e.family === 6) && typeof e.address === 'string' && Number.isInteger(e.port) && (e.port as number) > 0 && (e.port as number) < 65536;
  };
  if (!Array.isArray(v) || !v.every(ok)) throw new TcpRepairExecutorError('TREX_IMAGE_INVALID', `${path} is not a list of {family, address, port}`);
  return v;
}

/** The steps under imageDir in the order they were taken: pre rounds by number, then the dump. */
function readSteps(imageDir: string): { dir: string; meta: RoundMeta }[] {
  let entries: string[];
  try {
    entries = readdirSync(imageDir);
  } catch (err) {
    throw new TcpRepairExecutorError('TREX_IMAGE_MISSING', `cannot list ${imageDir}: ${(err as Error).message}`, { cause: err });
  }
  const steps: { dir: string; meta: RoundMeta }[] = [];
  for (const e of entries) {
    const dir = join(imageDir, e);
    if (!existsSync(join(dir, 'round.json'))) continue;
    let meta: RoundMeta;
    try {
      meta = JSON.parse(readFileSync(join(dir, 'round.json'), 'utf8')) as RoundMeta;
    } catch (err) {
      throw new TcpRepairExecutorError('TREX_IMAGE_INVALID', `${dir}/round.json: ${(err as Error).message}`, { cause: err });
    }
    if ((meta.kind !== 'pre' && meta.kind !== 'dump') || !Number.isInteger(meta.round) || !Array.isArray(meta.files)) throw new TcpRepairExecutorError('TREX_IMAGE_INVALID', `${dir}/round.json is not a round description`);
    const wholeOk = (w: unknown) => typeof w === 'object' && w !== null && typeof (w as WholeFile).name === 'string' && FILE_NAME_RE.test((w as WholeFile).name) && Number.isSafeInteger((w as WholeFile).size) && (w as WholeFile).size >= 0 && typeof (w as WholeFile).sha256 === 'string' && /^[0-9a-f]{64}$/.test((w as WholeFile).sha256);
    if (meta.whole !== undefined && (meta.kind !== 'dump' || !Array.isArray(meta.whole) || !meta.whole.every(wholeOk))) throw new TcpRepairExecutorError('TREX_IMAGE_INVALID', `${dir}/round.json: "whole" must be a list of {name, size, sha256} in the dump step`);
    steps.push({ dir, meta });
  }
  const dumps = steps.filter((s) => s.meta.kind === 'dump');
  if (dumps.length !== 1) throw new TcpRepairExecutorError('TREX_IMAGE_MISSING', `${imageDir} holds ${dumps.length} dump steps, want exactly 1`);
  const pre = steps.filter((s) => s.meta.kind === 'pre').sort((a, b) => a.meta.round - b.meta.round);
  return [...pre, dumps[0]!];
}

export function createExecutor(options: ExecutorOptions = {}): Executor {
  return new TcpRepairExecutor(parseOptions(options));
}

