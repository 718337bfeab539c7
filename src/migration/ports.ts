/**
 * The ports of the orchestrator: everything it needs from the controller (flows, packet-in,
 * packet-out), the agents (namespaces, executor steps, image streaming), the planner and the clock,
 * as interfaces. The orchestrator owns the order of the steps and nothing else; wiring it to the
 * real controller and agents is implementing these interfaces (tests use fakes that record calls).
 *
 * Every method may throw; a thrown error fails the step that called it (rollback before the resume
 * request, roll forward after it unless the destination provably did not resume). Methods that
 * undo (`unstageDestination`, `removeHold`, `switchTo('source')`, `abort`, `clearNamespace`) must
 * be idempotent: crash recovery may call them again for an effect that was already undone, or
 * never made.
 */
import type { DumpResult, ExecutorName, RestoreResult, ServiceSpec } from './executor.js';

export type Side = 'source' | 'destination';

/** The migration as every port sees it. */
export interface MigrationRef {
  migrationId: string;
  service: ServiceSpec;
  /** Host names from the topology ("edge-a"). */
  source: string;
  destination: string;
  /** The host of the service's client, whose agent flushes the neighbour entry in new-MAC mode. */
  clientHost?: string;
  executor: ExecutorName;
  /** COAT's behaviour (`--new-mac`): the service gets this MAC at the destination. */
  newMac?: string;
}

export interface HeldPacketIn {
  /** The whole frame of the packet-in (OFP_NO_BUFFER: the switch kept nothing). */
  frame: Buffer;
  dpid?: bigint;
  inPort?: number;
}

/** From the controller: flows on every bridge of the overlay, each change confirmed by a barrier. */
export interface FlowPort {
  /**
   * Stage the destination (OVN's way for VM migration): its port, tunnel path and flows at a lower
   * priority than the live ones, on every bridge, not yet in the forwarding path. Barrier.
   */
  stageDestination(m: MigrationRef, signal: AbortSignal): Promise<void>;
  /** Remove what stageDestination added. Idempotent. */
  unstageDestination(m: MigrationRef, signal: AbortSignal): Promise<void>;
  /**
   * Hold and switch, in one bundle per bridge (ONF EXT-230 on 1.3): at the overlay ingress, flows
   * that send every packet for the service to the controller as a packet-in with the full frame
   * (no buffer id), and under them the service's flows flipped from the source to the staged
   * destination. Resolves after each bridge confirmed its commit: from then on no packet for the
   * service is forwarded, each one reaches `onHeldPacket`, and once the hold is removed they go to
   * the destination. Nothing reaches the destination before that, so the flip costs no downtime.
   */
  holdAndSwitch(m: MigrationRef, signal: AbortSignal): Promise<SwitchResult>;
  /** Delete the hold flows; resolves after the barrier reply. Idempotent. */
  removeHold(m: MigrationRef, signal: AbortSignal): Promise<void>;
  /**
   * Point the service's flows at `side` on every bridge: one OpenFlow bundle per bridge
   * (ONF EXT-230 on 1.3) flipping staged and live priorities, committed, then a barrier.
   * coat-baseline's switch; `switchTo('source')` is every rollback's and must be idempotent.
   */
  switchTo(m: MigrationRef, side: Side, signal: AbortSignal): Promise<SwitchResult>;
  /**
   * Packet-out `frames` in this order toward the service on `side` (its port on that host's
   * bridge, through the tunnel if needed), then a barrier. Resolves to how many the switches
   * accepted (an OFPT_ERROR for a packet-out before the barrier reply makes it not accepted).
   */
  packetOut(m: MigrationRef, frames: readonly Buffer[], toward: Side, signal: AbortSignal): Promise<number>;
  /** Packet-ins caught by this migration's hold flows. Returns the unsubscribe function. */
  onHeldPacket(m: MigrationRef, handler: (p: HeldPacketIn) => void): () => void;
  /**
   * New-MAC mode: a gratuitous ARP for the service's IP with its MAC on `side` (the new MAC toward
   * the destination; its own again toward the source, the rollback), sent by the controller.
   */
  announce(m: MigrationRef, side: Side, signal: AbortSignal): Promise<void>;
}

export interface SwitchResult {
  /** From the first bundle commit sent to the last barrier reply, ms (the bench's "switch time"). */
  switchMs: number;
  bridges: number;
}

/** From the agents (over NATS), addressed by host name. */
export interface AgentPort {
  /** Destination: the service namespace with the same IP and MAC (or m.newMac), port on the bridge. */
  prepareNamespace(host: string, m: MigrationRef, signal: AbortSignal): Promise<void>;
  /** Remove the service namespace and its bridge port on `host`. Idempotent. */
  clearNamespace(host: string, m: MigrationRef, signal: AbortSignal): Promise<void>;
  /** The executor steps of executor.ts, run by the agent of `host` for this migration. */
  prepare(host: string, m: MigrationRef, role: Side, signal: AbortSignal): Promise<void>;
  preDump(host: string, m: MigrationRef, round: number, signal: AbortSignal): Promise<DumpResult>;
  dump(host: string, m: MigrationRef, signal: AbortSignal): Promise<DumpResult>;
  /** After a pre-copy round reached `host` (the destination): its executor puts it in place now. */
  settle(host: string, m: MigrationRef, signal: AbortSignal): Promise<void>;
  restore(host: string, m: MigrationRef, signal: AbortSignal): Promise<RestoreResult>;
  /**
   * Restore on arrival: `restore` at `host`, started by its agent the moment the announced image
   * `ticket` has landed there and was verified. Sent together with `dumpAndSend`, so no controller
   * round trip sits between the stream and the restore inside the downtime. Rejects with the
   * receiver's error when that stream fails there; `abort(host, m, 'destination')` ends a wait
   * that is still on, or lets a running restore finish before undoing it.
   */
  restoreOnArrival(host: string, m: MigrationRef, ticket: ImageTicket, signal: AbortSignal): Promise<RestoreResult>;
  /**
   * The destination's resume; its agent first waits for a restore of this migration still running
   * there (restore on arrival). Rejects with MIGRATION_NOT_RESUMED when the destination provably
   * did not resume (refused, no successful restore, or the request never reached the agent): only
   * then may a rollback thaw the source. Any other rejection means it may have resumed.
   */
  resume(host: string, m: MigrationRef, signal: AbortSignal): Promise<void>;
  release(host: string, m: MigrationRef, signal: AbortSignal): Promise<void>;
  /** Idempotent: at the source thaw untouched, at the destination remove what restore made. */
  abort(host: string, m: MigrationRef, role: Side, signal: AbortSignal): Promise<void>;
  /**
   * Announce at `to`'s agent the image `stepName` it is about to receive, before it exists: the
   * final dump is announced before the hold, so the source's agent can send it the moment it is
   * taken (`dumpAndSend`) with no round trip through the controller inside the downtime.
   */
  expectImage(to: string, m: MigrationRef, stepName: string, signal: AbortSignal): Promise<ImageTicket>;
  /**
   * The final dump at `host` (executor `dump`: the service stays frozen), then, in the same
   * command, that agent streams it to the announced receiver at most at `rateBitsPerSecond`.
   * A failed stream fails the call; the source is still frozen and intact for the rollback.
   */
  dumpAndSend(host: string, m: MigrationRef, ticket: ImageTicket, signal: AbortSignal, rateBitsPerSecond?: number): Promise<DumpAndSendResult>;
  /**
   * Stream the image directory `stepName` from `from`'s agent straight to `to`'s agent, at most at
   * `rateBitsPerSecond` when given: the plan's bandwidth L (MOSE treats L as a resource the plan
   * chooses; min-resources picks the smallest L that meets the downtime target).
   */
  streamImage(from: string, to: string, m: MigrationRef, stepName: string, signal: AbortSignal, rateBitsPerSecond?: number): Promise<StreamResult>;
  /** New-MAC mode: flush the stale neighbour entry for the service's IP on the client host. */
  flushNeighbour(host: string, m: MigrationRef, signal: AbortSignal): Promise<void>;
}

export interface StreamResult {
  bytes: number;
  sha256?: string;
}

/** An announced image: where its receiver listens and the token it accepts (one stream). */
export interface ImageTicket {
  to: string;
  stepName: string;
  token: string;
  peer: { host: string; port: number };
}

export interface DumpAndSendResult extends DumpResult {
  /** The stream after the dump: bytes, and its time from connect/HELLO to the receiver's DONE. */
  sent: StreamResult & { ms: number; setupMs?: number };
  /** Time the agent spent on the command (dump + stream + its records), ms: the rest of the step is messaging. */
  agentMs?: number;
}

export type Objective = 'min-downtime' | 'min-resources';

/** What the planner (planner.ts, PAM + MOSE) decided. */
export interface MigrationPlan {
  strategy: 'cold' | 'precopy';
  /** Pre-copy rounds before the final dump (0 for cold). */
  iterations: number;
  bandwidthMbit?: number;
  predicted: { downtimeMs: number; totalMs: number };
  reason?: string;
}

export interface PlannerPort {
  plan(m: MigrationRef, objective: Objective, signal: AbortSignal): Promise<MigrationPlan>;
}

/** Monotonic-enough milliseconds (epoch based, so journals from before a restart compare). */
export interface Clock {
  now(): number;
  /** Calls fn after ms; returns the cancel function. */
  setTimer(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};
