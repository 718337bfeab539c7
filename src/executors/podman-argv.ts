/**
 * argv for Podman 4.3 (podman-container-checkpoint(1), podman-container-restore(1), podman-run(1);
 * checked in the tests against this machine's `podman ... --help`), built by pure functions.
 *
 * This machine's facts (background: machine facts in the helper brief): Podman 4.3 needs the global
 * `--runtime runc` (crun's checkpoint support is not built in Debian's), and containers must be created
 * with `--ulimit nofile=1024:1024 --ulimit nproc=4096:4096` (root without CAP_SYS_RESOURCE cannot raise
 * the hard limits Podman's defaults ask for).
 *
 *   pre-checkpoint  podman --runtime runc container checkpoint --pre-checkpoint --export F
 *                   --compress C --print-stats CTR        memory only, the container keeps running
 *   checkpoint      podman --runtime runc container checkpoint --tcp-established --export F
 *                   --compress C --print-stats --keep [--with-previous] CTR
 *                   --keep: the checkpoint stays in the container's storage so an abort can restore
 *                   the source locally; --with-previous: incremental to the last pre-checkpoint
 *   restore         podman --runtime runc container restore --import F [--import-previous P]
 *                   --tcp-established --print-stats [--name N]
 *   restore local   podman --runtime runc container restore --tcp-established --keep CTR (abort)
 *   run             podman --runtime runc run -d --name N --network ns:/run/netns/NS
 *                   --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 [--env K=V]... IMAGE|--rootfs DIR CMD...
 * Flags come before the container / image / rootfs argument: Podman stops parsing flags at the first
 * positional, so anything after it belongs to the container's command.
 */

export const COMPRESSIONS = ['none', 'zstd', 'gzip'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export interface PodmanCommon {
  /** podman binary (default "podman"). */
  podman?: string;
  /** OCI runtime (default "runc": see the module comment). */
  runtime?: string;
}

export interface PodmanArgv {
  file: string;
  args: string[];
}

/** This machine's ulimits for containers (see the module comment). */
export const DEFAULT_ULIMITS = ['nofile=1024:1024', 'nproc=4096:4096'] as const;

function base(o: PodmanCommon): PodmanArgv {
  return { file: o.podman ?? 'podman', args: ['--runtime', o.runtime ?? 'runc'] };
}

function checkName(what: string, v: string): void {
  if (!v || v.startsWith('-') || /\s/.test(v)) throw new RangeError(`podman: ${what} '${v}' is empty, starts with '-' or holds whitespace`);
}

export function preCheckpointArgv(o: PodmanCommon & { container: string; exportFile: string; compress?: Compression }): PodmanArgv {
  checkName('container', o.container);
  const a = base(o);
  a.args.push('container', 'checkpoint', '--pre-checkpoint', '--export', o.exportFile, '--compress', o.compress ?? 'none', '--print-stats', o.container);
  return a;
}

export function checkpointArgv(o: PodmanCommon & { container: string; exportFile: string; withPrevious?: boolean; compress?: Compression }): PodmanArgv {
  checkName('container', o.container);
  const a = base(o);
  a.args.push('container', 'checkpoint', '--tcp-established', '--export', o.exportFile, '--compress', o.compress ?? 'none', '--print-stats', '--keep');
  if (o.withPrevious) a.args.push('--with-previous');
  a.args.push(o.container);
  return a;
}

export function restoreArgv(o: PodmanCommon & { importFile: string; importPrevious?: string; name?: string }): PodmanArgv {
  const a = base(o);
  a.args.push('container', 'restore', '--import', o.importFile);
  if (o.importPrevious) a.args.push('--import-previous', o.importPrevious);
  a.args.push('--tcp-established', '--print-stats');
  if (o.name) {
    checkName('name', o.name);
    a.args.push('--name', o.name);
  }
  return a;
}

export function restoreLocalArgv(o: PodmanCommon & { container: string }): PodmanArgv {
  checkName('container', o.container);
  const a = base(o);
  a.args.push('container', 'restore', '--tcp-established', '--keep', o.container);
  return a;
}

export function removeArgv(o: PodmanCommon & { container: string }): PodmanArgv {
  checkName('container', o.container);
  const a = base(o);
  a.args.push('container', 'rm', '--force', o.container);
  return a;
}

export function inspectRunningArgv(o: PodmanCommon & { container: string }): PodmanArgv {
  checkName('container', o.container);
  const a = base(o);
  a.args.push('container', 'inspect', '--format', '{{.State.Running}}', o.container);
  return a;
}

/** Starts a service container the way this machine needs (for the lab and the workload). */
export function runArgv(
  o: PodmanCommon & { name: string; netns?: string; image?: string; rootfs?: string; command?: string[]; env?: Record<string, string>; ulimits?: readonly string[] },
): PodmanArgv {
  checkName('name', o.name);
  if ((o.image === undefined) === (o.rootfs === undefined)) throw new RangeError('podman run: exactly one of image and rootfs');
  const a = base(o);
  a.args.push('run', '-d', '--name', o.name);
  if (o.netns) a.args.push('--network', `ns:/run/netns/${o.netns}`);
  for (const u of o.ulimits ?? DEFAULT_ULIMITS) a.args.push('--ulimit', u);
  for (const [k, v] of Object.entries(o.env ?? {})) a.args.push('--env', `${k}=${v}`);
  if (o.rootfs !== undefined) a.args.push('--rootfs', o.rootfs);
  else a.args.push(o.image!);
  a.args.push(...(o.command ?? []));
  return a;
}
