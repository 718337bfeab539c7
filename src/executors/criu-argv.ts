/**
 * argv for the CRIU command line (criu(8), CRIU 3.17 `criu --help`), built by pure functions so the
 * exact contract is unit-tested. Flags used and why:
 *
 * Long option names throughout (criu --help: -t|--tree, -D|--images-dir, -o|--log-file, -W|--work-dir),
 * so a command line in a log reads without the manual.
 *
 *   pre-dump  -t PID -D DIR --track-mem [--prev-images-dir ../PREV]   memory only, task keeps running;
 *             soft-dirty tracking so the next round writes only pages dirtied since this one
 *   dump      -t PID -D DIR --tcp-established --leave-stopped [--track-mem --prev-images-dir ../PREV]
 *             --tcp-established: checkpoint established connections (TCP_REPAIR); --leave-stopped: the
 *             source stays frozen, not killed, so an abort can thaw it (executor.ts's contract)
 *   restore   -D DIR --tcp-established --restore-detached --leave-stopped --pidfile FILE [-W WORKDIR]
 *             --restore-detached: criu exits once the tree is restored; --leave-stopped: the tasks stay
 *             stopped until `resume` sends SIGCONT, after the switch
 *   page-server -D DIR --port P [--address A]   (destination); dump/pre-dump get --page-server
 *             --address A --port P so pages stream straight to the peer
 *   always    -o LOG -v4 --display-stats (stats are what calibration fits), -j/--shell-job when the
 *             service has a controlling terminal, --file-locks when it holds locks
 *
 * --prev-images-dir is relative to -D (criu(8)): rounds are sibling directories under the image
 * root (pre-0, pre-1, ..., dump), so "../pre-1" resolves the same on both hosts, and the `parent`
 * symlink CRIU writes follows the images to the destination.
 * A service in a network namespace coat made is dumped and restored from inside that namespace
 * (nsenter --net): CRIU then treats it as its own netns and does not try to dump or recreate it.
 */

export interface CriuCommonOptions {
  /** criu binary (default "criu"). */
  criu?: string;
  /** -j: the service has a controlling terminal (started from a shell). */
  shellJob?: boolean;
  /** --file-locks. */
  fileLocks?: boolean;
  /** -v level (default 4: debug, the log calibration reads timestamps from). */
  verbosity?: number;
  /** Stream pages to a page server on the destination. */
  pageServer?: { address: string; port: number };
  /** Extra flags appended verbatim (e.g. --ext-unix-sk). */
  extraArgs?: string[];
  /** Run inside this named network namespace (nsenter --net=/run/netns/NAME). */
  netns?: string;
}

export interface CriuArgv {
  file: string;
  args: string[];
}

const LOG_FILES = { 'pre-dump': 'pre-dump.log', dump: 'dump.log', restore: 'restore.log', 'page-server': 'page-server.log' } as const;
export type CriuAction = keyof typeof LOG_FILES;

/** Name of the log file CRIU writes in its work dir (= the images dir) for an action. */
export function criuLogFile(action: CriuAction): string {
  return LOG_FILES[action];
}

function common(action: CriuAction, o: CriuCommonOptions): string[] {
  const a = ['--log-file', criuLogFile(action), `-v${o.verbosity ?? 4}`];
  if (action !== 'page-server') a.push('--display-stats');
  if (o.shellJob) a.push('--shell-job');
  if (o.fileLocks && action !== 'page-server') a.push('--file-locks');
  return a;
}

function pageServerClient(o: CriuCommonOptions): string[] {
  return o.pageServer ? ['--page-server', '--address', o.pageServer.address, '--port', String(o.pageServer.port)] : [];
}

function checkPid(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 0) throw new RangeError(`criu: pid must be a positive integer (got ${pid})`);
}

/** Wraps argv in nsenter when the service lives in a named netns. */
function wrap(o: CriuCommonOptions, args: string[]): CriuArgv {
  const criu = o.criu ?? 'criu';
  if (!o.netns) return { file: criu, args };
  return { file: 'nsenter', args: [`--net=/run/netns/${o.netns}`, '--', criu, ...args] };
}

export function preDumpArgv(o: CriuCommonOptions & { pid: number; imagesDir: string; prevImagesDir?: string }): CriuArgv {
  checkPid(o.pid);
  const args = ['pre-dump', '--tree', String(o.pid), '--images-dir', o.imagesDir, '--track-mem'];
  if (o.prevImagesDir) args.push('--prev-images-dir', o.prevImagesDir);
  args.push(...pageServerClient(o), ...common('pre-dump', o), ...(o.extraArgs ?? []));
  return wrap(o, args);
}

export function dumpArgv(o: CriuCommonOptions & { pid: number; imagesDir: string; prevImagesDir?: string }): CriuArgv {
  checkPid(o.pid);
  const args = ['dump', '--tree', String(o.pid), '--images-dir', o.imagesDir, '--tcp-established', '--leave-stopped'];
  if (o.prevImagesDir) args.push('--track-mem', '--prev-images-dir', o.prevImagesDir);
  args.push(...pageServerClient(o), ...common('dump', o), ...(o.extraArgs ?? []));
  return wrap(o, args);
}

export function restoreArgv(o: CriuCommonOptions & { imagesDir: string; pidFile: string; workDir?: string }): CriuArgv {
  const args = ['restore', '--images-dir', o.imagesDir, '--tcp-established', '--restore-detached', '--leave-stopped', '--pidfile', o.pidFile];
  // -W: logs and the pid file go to the restore step's own directory, not into the received images.
  if (o.workDir) args.push('--work-dir', o.workDir);
  args.push(...common('restore', o), ...(o.extraArgs ?? []));
  return wrap(o, args);
}

export function pageServerArgv(o: CriuCommonOptions & { imagesDir: string; port: number; address?: string; pidFile?: string }): CriuArgv {
  if (!Number.isInteger(o.port) || o.port <= 0 || o.port > 65535) throw new RangeError(`criu page-server: port must be 1..65535 (got ${o.port})`);
  const args = ['page-server', '--images-dir', o.imagesDir, '--port', String(o.port)];
  if (o.address) args.push('--address', o.address);
  args.push('--daemon');
  if (o.pidFile) args.push('--pidfile', o.pidFile);
  args.push(...common('page-server', o));
  return wrap(o, args);
}

export function checkArgv(o: { criu?: string; feature?: string } = {}): CriuArgv {
  return { file: o.criu ?? 'criu', args: o.feature ? ['check', '--feature', o.feature] : ['check'] };
}
