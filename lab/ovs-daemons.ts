/**
 * One Open vSwitch instance (ovsdb-server + ovs-vswitchd) in a run directory of its own, optionally
 * inside a network namespace: the shape of one lab host, and what the OVS tests start.
 *
 * Why by hand: Debian's packages do not start services on this machine (no systemd), and a lab needs
 * one pair per host anyway. Every path is explicit (socket, pidfile, log, unixctl, OVS_RUNDIR) so two
 * instances never share anything, and `-vconsole:off` keeps their logs in their files. Processes are
 * stopped by the pid they wrote, never by name.
 */
import { mkdir, readFile, rm, access } from 'node:fs/promises';
import { join } from 'node:path';
import { exec } from '../src/exec.js';
import { CoatError } from '../src/errors.js';
import { stopPid } from './process.js';

export const VSWITCH_SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';

export interface OvsInstanceOptions {
  /** Run directory; created, and removed by `destroy()`. Must carry the run's tag. */
  dir: string;
  /** Network namespace to run in (must exist). */
  netns?: string;
  /** Start ovs-vswitchd too (default true); false for OVSDB-only tests and benches. */
  vswitchd?: boolean;
  /** Extra `--remote` for ovsdb-server, e.g. `ptcp:6640:10.0.0.1`. */
  remotes?: string[];
}

export class OvsError extends CoatError {}

export class OvsInstance {
  readonly dir: string;
  readonly netns: string | undefined;
  readonly dbSocket: string;
  private readonly opts: OvsInstanceOptions;
  /** Whether `ovs-netdev` (the netdev datapath's tap) existed in our namespace before we started. */
  private netdevTapPreexisted = true;

  constructor(opts: OvsInstanceOptions) {
    this.opts = opts;
    this.dir = opts.dir;
    this.netns = opts.netns;
    this.dbSocket = join(opts.dir, 'db.sock');
  }

  /** `unix:` remote for OVSDB clients and ovs-vsctl. */
  get dbRemote(): string {
    return `unix:${this.dbSocket}`;
  }

  /** The management socket ovs-ofctl uses to reach a bridge without a controller. */
  bridgeMgmt(bridge: string): string {
    return `unix:${join(this.dir, bridge + '.mgmt')}`;
  }

  private env(): Record<string, string> {
    return { OVS_RUNDIR: this.dir, OVS_DBDIR: this.dir, OVS_LOGDIR: this.dir, OVS_SYSCONFDIR: this.dir };
  }

  private execOpts(timeoutMs = 10_000) {
    return { env: this.env(), timeoutMs, ...(this.netns ? { netns: this.netns } : {}) };
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const db = join(this.dir, 'conf.db');
    await exec('ovsdb-tool', ['create', db, VSWITCH_SCHEMA], { timeoutMs: 10_000 });
    await this.startDb();
    await exec('ovs-vsctl', [`--db=${this.dbRemote}`, '--no-wait', 'init'], { timeoutMs: 10_000 });
    if (this.opts.vswitchd !== false) await this.startVswitchd();
  }

  /** (Re)starts ovsdb-server on the existing database. */
  async startDb(): Promise<void> {
    const remotes = [`--remote=punix:${this.dbSocket}`, ...(this.opts.remotes ?? []).map((r) => `--remote=${r}`)];
    await exec(
      'ovsdb-server',
      [
        join(this.dir, 'conf.db'),
        ...remotes,
        `--pidfile=${join(this.dir, 'ovsdb-server.pid')}`,
        `--log-file=${join(this.dir, 'ovsdb-server.log')}`,
        `--unixctl=${join(this.dir, 'ovsdb-server.ctl')}`,
        '-vconsole:off',
        '--detach',
        '--no-chdir',
      ],
      this.execOpts(),
    );
  }

  /** (Re)starts ovs-vswitchd; returns once it has daemonized (pidfile written). */
  async startVswitchd(): Promise<void> {
    this.netdevTapPreexisted = await this.linkExists('ovs-netdev');
    await exec(
      'ovs-vswitchd',
      [
        this.dbRemote,
        `--pidfile=${join(this.dir, 'ovs-vswitchd.pid')}`,
        `--log-file=${join(this.dir, 'ovs-vswitchd.log')}`,
        `--unixctl=${join(this.dir, 'ovs-vswitchd.ctl')}`,
        '-vconsole:off',
        '--detach',
        '--no-chdir',
      ],
      this.execOpts(),
    );
  }

  /** The pid a daemon wrote, or undefined when it is not running. */
  async pid(daemon: 'ovsdb-server' | 'ovs-vswitchd'): Promise<number | undefined> {
    try {
      const pid = Number((await readFile(join(this.dir, `${daemon}.pid`), 'utf8')).trim());
      process.kill(pid, 0);
      return pid;
    } catch {
      return undefined;
    }
  }

  /** Stops one daemon by its pid: SIGTERM, then SIGKILL after `graceMs`. */
  async stopDaemon(daemon: 'ovsdb-server' | 'ovs-vswitchd', signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
    const pid = await this.pid(daemon);
    if (pid === undefined) return;
    await stopPid(pid, signal, graceMs);
    await rm(join(this.dir, `${daemon}.pid`), { force: true });
  }

  async stop(): Promise<void> {
    await this.stopDaemon('ovs-vswitchd');
    await this.stopDaemon('ovsdb-server');
  }

  /** Stops both daemons and removes the run directory and the tap devices vswitchd left. */
  async destroy(): Promise<void> {
    const taps = await this.internalInterfaces().catch(() => [] as string[]);
    await this.stop();
    // The userspace (netdev) datapath backs every bridge and internal port with a persistent tap
    // device, plus one `ovs-netdev` per namespace, and does not remove them on exit: delete the ones
    // this instance's database named (and `ovs-netdev` when we created it), nothing else.
    if (!this.netdevTapPreexisted) taps.push('ovs-netdev');
    for (const name of taps) {
      if (await this.linkExists(name)) {
        await exec('ip', ['link', 'del', name], { ...this.execOpts(), allowFailure: true });
      }
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Names of the internal interfaces (bridges' own ports included) in this instance's database. */
  private async internalInterfaces(): Promise<string[]> {
    if ((await this.pid('ovsdb-server')) === undefined) return [];
    const out = await this.vsctl(['--bare', '--columns=name', 'find', 'Interface', 'type=internal'], 5000);
    return out.split('\n').map((l) => l.trim()).filter(Boolean);
  }

  private async linkExists(name: string): Promise<boolean> {
    const r = await exec('ip', ['link', 'show', 'dev', name], { ...this.execOpts(), allowFailure: true });
    return r.code === 0;
  }

  /** Runs ovs-vsctl against this instance's database. */
  async vsctl(args: string[], timeoutMs = 10_000): Promise<string> {
    return (await exec('ovs-vsctl', [`--db=${this.dbRemote}`, `--timeout=${Math.ceil(timeoutMs / 1000)}`, ...args], { env: this.env(), timeoutMs })).stdout;
  }

  /** Runs ovs-ofctl (OpenFlow 1.3) against a bridge's management socket. */
  async ofctl(args: string[], timeoutMs = 10_000): Promise<string> {
    return (await exec('ovs-ofctl', ['-O', 'OpenFlow13', ...args], { env: this.env(), timeoutMs })).stdout;
  }

  /** Waits until `check` resolves true, polling; throws after `timeoutMs`. */
  static async waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await check().catch(() => false)) return;
      if (Date.now() > deadline) throw new OvsError('OVS_WAIT_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  static async exists(path: string): Promise<boolean> {
    return access(path).then(() => true, () => false);
  }
}
