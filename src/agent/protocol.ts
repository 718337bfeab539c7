/**
 * The controller <-> agent protocol over NATS: subjects, the typed commands with their arguments
 * and results, and the request/reply envelopes. Pure types and small helpers, no I/O.
 *
 * Subjects (NATS subject tokens may not contain `.`, `*`, `>` or spaces, so host names and
 * migration ids are restricted to `[A-Za-z0-9_-]`):
 *
 *   coat.agent.register          agent -> all   on start, and again when the controller asks
 *   coat.agent.discover          ctl -> agents  "everyone, register again" (controller restart)
 *   coat.agent.HOST.health       agent -> all   heartbeat every 500 ms
 *   coat.agent.HOST.bye          agent -> all   clean shutdown
 *   coat.agent.HOST.cmd.COMMAND  ctl -> agent   request/reply, signed, with a deadline (COMMAND
 *                                               may hold a dot, e.g. executor.step: agents subscribe cmd.>)
 *   coat.migration.ID.events     agent -> all   progress of one migration
 */
import type { DumpResult, ExecutorName, ExecutorOptions, RestoreResult, ServiceSpec } from '../migration/executor.js';
import type { Compression } from '../transfer/frames.js';
import type { SendResult } from '../transfer/sender.js';

export const PROTOCOL_VERSION = 1;
export const HEARTBEAT_INTERVAL_MS = 500;
/** An agent missing this long is gone: three heartbeats, so detection stays under 2 s. */
export const DEAD_AFTER_MS = 1500;

export const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export const subjects = {
  register: 'coat.agent.register',
  discover: 'coat.agent.discover',
  health: (host: string) => `coat.agent.${host}.health`,
  healthAll: 'coat.agent.*.health',
  bye: (host: string) => `coat.agent.${host}.bye`,
  byeAll: 'coat.agent.*.bye',
  command: (host: string, cmd: CommandName) => `coat.agent.${host}.cmd.${cmd}`,
  commandsOf: (host: string) => `coat.agent.${host}.cmd.>`,
  events: (migrationId: string) => `coat.migration.${migrationId}.events`,
  eventsAll: 'coat.migration.*.events',
} as const;

export type ExecutorStep = 'prepare' | 'preDump' | 'settle' | 'dump' | 'restore' | 'resume' | 'release' | 'abort';
export const EXECUTOR_STEPS: readonly ExecutorStep[] = ['prepare', 'preDump', 'settle', 'dump', 'restore', 'resume', 'release', 'abort'];
export type Role = 'source' | 'destination';

/** Where an agent receives image streams (its underlay address). */
export interface StreamEndpoint {
  host: string;
  port: number;
}

/** What one agent holds for one migration, from its on-disk journal. */
export interface MigrationHold {
  migrationId: string;
  /** Known once an executor step ran here (a destination that only received images has none). */
  role?: Role;
  executor?: ExecutorName;
  executorOptions?: ExecutorOptions;
  service?: ServiceSpec;
  imageDir: string;
  /** Step directories present under imageDir (produced here or received). */
  imageSteps: string[];
  /** The service namespace this agent created for the migration, if any. */
  netns?: { name: string; hostIf: string; bridge?: string; ovsDb?: string };
  /** The last step that finished, and whether it succeeded. */
  lastStep?: { step: ExecutorStep; stepName: string; ok: boolean; error?: string };
  /** A step that started and never finished: the agent died during it. */
  inFlight?: { step: ExecutorStep; stepName: string; startedAt: string };
  steps: StepTiming[];
  updatedAt: string;
}

export interface StepTiming {
  step: ExecutorStep | 'stream.send' | 'stream.receive' | 'netns.prepare' | 'netns.clear';
  stepName: string;
  /** Wall clock, ISO 8601. */
  startedAt: string;
  durationMs: number;
  ok: boolean;
  /** The executor's own sub-step timings, ms. */
  timings?: Record<string, number>;
}

export interface AgentAnnouncement {
  version: number;
  host: string;
  pid: number;
  startedAt: string;
  stream: StreamEndpoint | null;
  /** Migrations this agent holds something for (the controller rolls these back or forgets them). */
  holds: MigrationHold[];
}

export interface Heartbeat {
  host: string;
  pid: number;
  seq: number;
  startedAt: string;
  stream: StreamEndpoint | null;
  /** Ids of migrations held (full detail in `register` and `status`). */
  holding: string[];
  /** Commands running now. */
  busy: number;
}

export interface NetnsPrepareArgs {
  migrationId: string;
  /** Namespace name (tagged in the lab). */
  netns: string;
  /** Service address with prefix, e.g. "10.0.0.10/24" (a bare address gets /24). */
  ip: string;
  mac: string;
  /** Host-side veth name (default: derived from the namespace name). */
  hostIf?: string;
  /** Interface name inside the namespace (default eth0). */
  nsIf?: string;
  mtu?: number;
  /** Attach the host end to this OVS bridge (`ovs-vsctl --db=ovsDb add-port`). */
  bridge?: string;
  ovsDb?: string;
}

export interface NetnsClearArgs {
  migrationId: string;
  netns: string;
  hostIf?: string;
  bridge?: string;
  ovsDb?: string;
}

export interface NetnsPrepareResult {
  netns: string;
  hostIf: string;
  nsIf: string;
  ip: string;
  mac: string;
}

export interface ExecutorStepArgs {
  migrationId: string;
  executor: ExecutorName;
  executorOptions?: ExecutorOptions;
  service: ServiceSpec;
  role: Role;
  step: ExecutorStep;
  /** Pre-copy round (preDump), from 1. */
  round?: number;
  /**
   * `dump` only: stream the image to this announced receiver as soon as it is taken, in the same
   * command (the final image inside the downtime: no second controller round trip before it
   * leaves). The step fails when the stream fails; the source stays frozen for the rollback.
   */
  sendTo?: { peer: StreamEndpoint; token: string; rateBitsPerSecond?: number };
  /**
   * `restore` only: wait until this announced image step (`dump`) has landed here, then restore
   * (restore on arrival). Sent together with the source's `dump`, so the restore starts the moment
   * the image is verified, with no controller round trip in between. A stream the receiver fails
   * fails the step with the receiver's error; an `abort` of the migration cancels the wait.
   */
  afterImage?: string;
}

export interface ExecutorStepResult {
  step: ExecutorStep;
  stepName: string;
  /** Directory the step wrote into (image steps), relative to the image dir. */
  stepDir?: string;
  dump?: DumpResult;
  restore?: RestoreResult;
  /** `dump` with `sendTo`: the stream, after the dump (durationMs covers both). */
  sent?: SendResult;
  durationMs: number;
}

export interface ProfileArgs {
  migrationId: string;
  /** Memory and dirty pages of this process. */
  pid?: number;
  /** Application state directory (its size counts into M). */
  stateDir?: string;
  /** Dirty-page window (default 1000 ms; 0 skips the dirty-rate measurement). */
  windowMs?: number;
  /**
   * Whose pages R counts: the process' memory (default; CRIU, Podman, hooks move it) or the files
   * of `stateDir` (tcp-repair moves only those).
   */
  dirtySource?: 'memory' | 'state-dir';
  /** Measure bandwidth L to this peer agent (it must expect `migrationId` with `token`). */
  peer?: StreamEndpoint & { token: string };
  probeBytes?: number;
}

export interface ProfileResult {
  /** M: bytes of state to move (state dir + the process' resident private memory). */
  stateBytes: number;
  memoryBytes?: number;
  stateDirBytes?: number;
  /** R: pages dirtied per second over the window. */
  dirtyPagesPerSecond?: number;
  pageSize: number;
  /** How R was measured: page content hashes compared across the window (see profile.ts). */
  dirtyMethod?: 'page-hash' | 'state-compare';
  /** L: measured by a timed transfer to the peer, bits/s. */
  bandwidthBitsPerSecond?: number;
  windowMs: number;
}

export interface StreamExpectArgs {
  migrationId: string;
  token: string;
  ttlMs?: number;
}

export interface StreamSendArgs {
  migrationId: string;
  token: string;
  peer: StreamEndpoint;
  /** Step directory (under this agent's image dir for the migration) to send, e.g. "dump". */
  stepName: string;
  compression?: Compression;
  rateBitsPerSecond?: number;
}

/** New-MAC mode: forget the service IP's stale neighbour entry on the client's host. */
export interface NeighFlushArgs {
  migrationId: string;
  ip: string;
  /** Namespace holding the client (default: the agent's own). */
  netns?: string;
}

export interface ForgetArgs {
  migrationId: string;
  /** Also delete the image directory. */
  removeImage?: boolean;
}

/** Every command: its arguments and its result. */
export interface Commands {
  ping: { args: Record<string, never>; result: { host: string; pid: number; uptimeMs: number } };
  status: { args: Record<string, never>; result: AgentAnnouncement };
  'netns.prepare': { args: NetnsPrepareArgs; result: NetnsPrepareResult };
  'netns.clear': { args: NetnsClearArgs; result: { removed: boolean } };
  'executor.step': { args: ExecutorStepArgs; result: ExecutorStepResult };
  profile: { args: ProfileArgs; result: ProfileResult };
  'stream.expect': { args: StreamExpectArgs; result: { stream: StreamEndpoint } };
  'stream.send': { args: StreamSendArgs; result: SendResult };
  timings: { args: { migrationId: string }; result: { steps: StepTiming[] } };
  forget: { args: ForgetArgs; result: { forgotten: boolean } };
  'neigh.flush': { args: NeighFlushArgs; result: { flushed: boolean } };
}
export type CommandName = keyof Commands;
export const COMMAND_NAMES: readonly CommandName[] = ['ping', 'status', 'netns.prepare', 'netns.clear', 'executor.step', 'profile', 'stream.expect', 'stream.send', 'timings', 'forget', 'neigh.flush'];

/**
 * A command on the wire. `args` is a JSON string, not an object, so the HMAC covers exactly the
 * bytes the agent parses (no canonical-JSON question).
 */
export interface CommandRequest {
  v: number;
  /** Wall clock at sending, ms since the epoch (replay window). */
  sentAt: number;
  /** Random, unique per command (replay detection). */
  nonce: string;
  /** The caller's deadline for this command, ms from sentAt; the agent aborts work past it. */
  deadlineMs: number;
  args: string;
  /** HMAC-SHA256, hex, see auth.ts. */
  mac: string;
}

export interface ErrorReport {
  code: string;
  message: string;
  name: string;
  details?: Record<string, unknown>;
}

export type CommandReply<R = unknown> =
  | { ok: true; result: R; elapsedMs: number }
  | { ok: false; refused: boolean; error: ErrorReport };

export interface MigrationEvent {
  migrationId: string;
  host: string;
  at: string;
  event: 'step.start' | 'step.end' | 'stream.sent' | 'stream.received' | 'stream.failed' | 'netns.prepared' | 'netns.cleared';
  [k: string]: unknown;
}

/** A nats subject token safe name (host or migration id). */
export function isSafeName(s: unknown): s is string {
  return typeof s === 'string' && NAME_PATTERN.test(s);
}

/**
 * The NATS permissions an agent needs (nats-server `authorization.users[].permissions`): publish
 * its announcements, heartbeats and migration events, answer the requests it receives
 * (`allow_responses`), and subscribe to its own command subjects and to discovery. Give each host
 * its own user with `host` set, so an agent cannot read or send another agent's commands; `*` is
 * one shared agent identity (a lab shortcut). Only the controller may publish to `cmd` subjects.
 */
export function agentNatsPermissions(host = '*'): { publish: string[]; subscribe: string[]; allowResponses: true } {
  return {
    publish: [subjects.register, `coat.agent.${host}.health`, `coat.agent.${host}.bye`, subjects.eventsAll],
    subscribe: [`coat.agent.${host}.cmd.>`, subjects.discover],
    allowResponses: true,
  };
}
