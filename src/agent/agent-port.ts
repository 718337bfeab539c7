/**
 * The orchestrator's `AgentPort` (src/migration/ports.ts) over NATS: each port method is one signed
 * command (or two, for a stream) to the agent of the named host, through `AgentRegistry`.
 *
 * What the port's signature leaves open is decided here:
 * - Per-migration stream token: a fresh random token per migration, announced to the destination
 *   (`stream.expect`, idempotent) before each stream, given to the source with the send command; it
 *   travels only over the signed command channel.
 * - Rate L: `setStreamRate(migrationId, bitsPerSecond)` (the planner's bandwidth), else unlimited.
 * - Deadlines per command kind (`deadlines`), while the orchestrator's own step timeout arrives as
 *   the AbortSignal and abandons the wait earlier.
 * - The OVS bridge the service port goes on, per host (`bridgeOf`), and executor options (`executorOptions`).
 */
import { randomBytes } from 'node:crypto';
import type { DumpResult, ExecutorOptions, RestoreResult } from '../migration/executor.js';
import type { AgentPort, MigrationRef, Side, StreamResult } from '../migration/ports.js';
import type { AgentRegistry } from './client.js';
import { AgentBadReplyError } from './errors.js';
import type { Compression } from '../transfer/frames.js';
import type { ExecutorStep } from './protocol.js';

export interface AgentPortOptions {
  /** Deadlines in ms per kind of command. */
  deadlines?: Partial<Record<'namespace' | 'prepare' | 'image' | 'restore' | 'control' | 'stream', number>>;
  /** The integration bridge (and OVSDB remote) the service's host-side veth joins on `host`. */
  bridgeOf?(host: string): { bridge: string; ovsDb?: string } | undefined;
  /** Host-side veth name of the service on `host` (default: agent's `defaultHostIf`). */
  hostIfOf?(host: string, m: MigrationRef): string | undefined;
  /** Options for the executor (CLI/topology), per migration. */
  executorOptions?(m: MigrationRef): ExecutorOptions;
  /** Namespace of the client on its host, for `flushNeighbour` (default: the agent's own). */
  clientNetnsOf?(host: string, m: MigrationRef): string | undefined;
  compression?: Compression;
  /** Prefix length of the service address when the ServiceSpec has none (default 24). */
  prefixLen?: number;
}

const DEFAULT_DEADLINES = { namespace: 15_000, prepare: 30_000, image: 120_000, restore: 120_000, control: 30_000, stream: 600_000 };

export class NatsAgentPort implements AgentPort {
  private readonly tokens = new Map<string, string>();
  private readonly rates = new Map<string, number>();
  private readonly deadlines: typeof DEFAULT_DEADLINES;

  constructor(
    private readonly registry: AgentRegistry,
    private readonly opts: AgentPortOptions = {},
  ) {
    this.deadlines = { ...DEFAULT_DEADLINES, ...(opts.deadlines ?? {}) };
  }

  /** The planner's bandwidth L for this migration's streams, bits/s (undefined: unlimited). */
  setStreamRate(migrationId: string, bitsPerSecond: number | undefined): void {
    if (bitsPerSecond === undefined) this.rates.delete(migrationId);
    else this.rates.set(migrationId, bitsPerSecond);
  }

  /** The migration's stream token (made on first use). */
  tokenOf(migrationId: string): string {
    let t = this.tokens.get(migrationId);
    if (!t) this.tokens.set(migrationId, (t = randomBytes(24).toString('base64url')));
    return t;
  }

  /** Drops the token and rate, and tells both agents to forget the migration (after done/rollback). */
  async forget(m: MigrationRef, removeImages = true): Promise<void> {
    this.tokens.delete(m.migrationId);
    this.rates.delete(m.migrationId);
    for (const host of [m.source, m.destination]) {
      await this.registry.agent(host).request('forget', { migrationId: m.migrationId, removeImage: removeImages }, { deadlineMs: this.deadlines.control });
    }
  }

  async prepareNamespace(host: string, m: MigrationRef, signal: AbortSignal): Promise<void> {
    const ip = m.service.ip.includes('/') ? m.service.ip : `${m.service.ip}/${this.opts.prefixLen ?? 24}`;
    const br = this.opts.bridgeOf?.(host);
    const hostIf = this.opts.hostIfOf?.(host, m);
    await this.registry.agent(host).request(
      'netns.prepare',
      { migrationId: m.migrationId, netns: m.service.netns, ip, mac: m.newMac ?? m.service.mac, ...(hostIf ? { hostIf } : {}), ...(br ? { bridge: br.bridge, ...(br.ovsDb ? { ovsDb: br.ovsDb } : {}) } : {}) },
      { deadlineMs: this.deadlines.namespace, signal },
    );
  }

  async clearNamespace(host: string, m: MigrationRef, signal: AbortSignal): Promise<void> {
    const br = this.opts.bridgeOf?.(host);
    const hostIf = this.opts.hostIfOf?.(host, m);
    await this.registry.agent(host).request(
      'netns.clear',
      { migrationId: m.migrationId, netns: m.service.netns, ...(hostIf ? { hostIf } : {}), ...(br ? { bridge: br.bridge, ...(br.ovsDb ? { ovsDb: br.ovsDb } : {}) } : {}) },
      { deadlineMs: this.deadlines.namespace, signal },
    );
  }

  private async step(host: string, m: MigrationRef, role: Side, step: ExecutorStep, deadlineMs: number, signal: AbortSignal, round?: number) {
    return this.registry.agent(host).request(
      'executor.step',
      { migrationId: m.migrationId, executor: m.executor, executorOptions: this.opts.executorOptions?.(m) ?? {}, service: m.service, role, step, ...(round !== undefined ? { round } : {}) },
      { deadlineMs, signal },
    );
  }

  async prepare(host: string, m: MigrationRef, role: Side, signal: AbortSignal): Promise<void> {
    await this.step(host, m, role, 'prepare', this.deadlines.prepare, signal);
  }

  async preDump(host: string, m: MigrationRef, round: number, signal: AbortSignal): Promise<DumpResult> {
    const r = await this.step(host, m, 'source', 'preDump', this.deadlines.image, signal, round);
    if (!r.dump) throw new AgentBadReplyError(host, 'executor.step', 'preDump returned no DumpResult');
    return r.dump;
  }

  async dump(host: string, m: MigrationRef, signal: AbortSignal): Promise<DumpResult> {
    const r = await this.step(host, m, 'source', 'dump', this.deadlines.image, signal);
    if (!r.dump) throw new AgentBadReplyError(host, 'executor.step', 'dump returned no DumpResult');
    return r.dump;
  }

  async restore(host: string, m: MigrationRef, signal: AbortSignal): Promise<RestoreResult> {
    const r = await this.step(host, m, 'destination', 'restore', this.deadlines.restore, signal);
    if (!r.restore) throw new AgentBadReplyError(host, 'executor.step', 'restore returned no RestoreResult');
    return r.restore;
  }

  async resume(host: string, m: MigrationRef, signal: AbortSignal): Promise<void> {
    await this.step(host, m, 'destination', 'resume', this.deadlines.control, signal);
  }

  async release(host: string, m: MigrationRef, signal: AbortSignal): Promise<void> {
    await this.step(host, m, 'source', 'release', this.deadlines.control, signal);
  }

  async abort(host: string, m: MigrationRef, role: Side, signal: AbortSignal): Promise<void> {
    await this.step(host, m, role, 'abort', this.deadlines.control, signal);
  }

  async streamImage(from: string, to: string, m: MigrationRef, stepName: string, signal: AbortSignal): Promise<StreamResult> {
    const token = this.tokenOf(m.migrationId);
    const { stream } = await this.registry.agent(to).request('stream.expect', { migrationId: m.migrationId, token }, { deadlineMs: this.deadlines.control, signal });
    const rate = this.rates.get(m.migrationId);
    const r = await this.registry.agent(from).request(
      'stream.send',
      { migrationId: m.migrationId, token, peer: stream, stepName, ...(rate ? { rateBitsPerSecond: rate } : {}), ...(this.opts.compression ? { compression: this.opts.compression } : {}) },
      { deadlineMs: this.deadlines.stream, signal },
    );
    return { bytes: r.bytes, sha256: r.imageSha256 };
  }

  async flushNeighbour(host: string, m: MigrationRef, signal: AbortSignal): Promise<void> {
    const netns = this.opts.clientNetnsOf?.(host, m);
    const ip = m.service.ip.split('/')[0]!;
    await this.registry.agent(host).request('neigh.flush', { migrationId: m.migrationId, ip, ...(netns ? { netns } : {}) }, { deadlineMs: this.deadlines.control, signal });
  }
}
