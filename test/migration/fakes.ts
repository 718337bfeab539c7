/**
 * Fakes of the orchestrator's ports that model the one thing that matters for hold and replay:
 * where a client's packet goes. A FakeOverlay forwards each client frame to the side the flows
 * point at, or to the controller while the hold flows are in, and packet-outs deliver to the side
 * they name. The fake services record what they received, so tests assert "every frame arrived,
 * once, in order, at the service that runs" instead of comparing call lists only.
 *
 * Any port method can be made to fail (or hang) through `failOn`.
 */
import { MigrationError } from '../../src/migration/errors.js';
import type { DumpResult, RestoreResult } from '../../src/migration/executor.js';
import type { AgentPort, Clock, DumpAndSendResult, FlowPort, HeldPacketIn, ImageTicket, MigrationPlan, MigrationRef, PlannerPort, Side, StreamResult, SwitchResult } from '../../src/migration/ports.js';

export type Behaviour = 'throw' | 'hang';

export class FakeOverlay {
  /** Every port call, in order: "flows.holdAndSwitch", "agents.dumpAndSend@edge-a->edge-b", ... */
  calls: string[] = [];
  /** The rate limit each streamImage call was given. */
  streamRates: (number | undefined)[] = [];
  failOn = new Map<string, Behaviour>();
  pointsAt: Side = 'source';
  staged = false;
  holding = false;
  held: ((p: HeldPacketIn) => void) | undefined;
  /** Frames each side's service received, as numbers (frame byte 0..3 = sequence). */
  received: Record<Side, number[]> = { source: [], destination: [] };
  /** Whether each side's service is running (frozen sources and unrestored destinations drop). */
  running: Record<Side, boolean> = { source: true, destination: false };
  frozen = false;
  restored = false;
  namespaces = new Set<string>(['edge-a']);
  released = false;
  nextSeq = 0;
  sent: number[] = [];
  /** Frames that reached a side whose service was not running: that is loss. */
  lost: number[] = [];
  /** Frames the client sends when a given call first starts: "agents.dumpAndSend@edge-a->edge-b" -> 3. */
  trafficOn = new Map<string, number>();
  /** The signal each call got (the last one per name). */
  signals = new Map<string, AbortSignal>();

  /** The destination's restore on arrival, while asked for (resume waits for it, as the agent does). */
  restoring: Promise<unknown> | undefined;
  /** The restore's own work after the image landed: a test replaces it to finish or fail it when it says. */
  restoreWork: Promise<void> = Promise.resolve();

  /** The final image's arrival at the destination (restore on arrival waits for it). */
  private arrival: { landed: boolean; waiters: { resolve(): void; reject(e: Error): void }[] } = { landed: false, waiters: [] };

  constructor(readonly ref: MigrationRef) {}

  /** Resolves once dumpAndSend has landed the image; an abort at the destination rejects it. */
  imageLanded(): Promise<void> {
    if (this.arrival.landed) return Promise.resolve();
    return new Promise((resolve, reject) => this.arrival.waiters.push({ resolve, reject }));
  }

  land(): void {
    this.arrival.landed = true;
    for (const w of this.arrival.waiters.splice(0)) w.resolve();
  }

  cancelArrival(): void {
    for (const w of this.arrival.waiters.splice(0)) w.reject(Object.assign(new Error('restore cancelled by abort'), { code: 'AGENT_CANCELLED' }));
  }

  async call<T>(name: string, signal: AbortSignal | undefined, body: () => T): Promise<T> {
    this.calls.push(name);
    if (signal) this.signals.set(name, signal);
    const n = this.trafficOn.get(name) ?? 0;
    this.trafficOn.delete(name); // once: a replay that caused traffic on every batch would never end
    for (let i = 0; i < n; i++) this.clientSends();
    await Promise.resolve();
    const b = this.failOn.get(name);
    if (b === 'throw') throw Object.assign(new Error(`injected failure in ${name}`), { code: 'INJECTED' });
    if (b === 'hang') return new Promise<T>(() => {});
    return body();
  }

  /** The client sends one frame to the service. */
  clientSends(): number {
    const seq = this.nextSeq++;
    this.sent.push(seq);
    const frame = Buffer.alloc(64);
    frame.writeUInt32BE(seq, 0);
    if (this.holding && this.held) this.held({ frame, dpid: 1n, inPort: 1 });
    else this.deliver(this.pointsAt, frame);
    return seq;
  }

  deliver(side: Side, frame: Buffer): void {
    const seq = frame.readUInt32BE(0);
    if (this.running[side]) this.received[side].push(seq);
    else this.lost.push(seq);
  }
}

export function fakeFlows(o: FakeOverlay, opts: { stragglerOnRemove?: number; refuse?: number } = {}): FlowPort {
  return {
    stageDestination: (_m, s) => o.call('flows.stageDestination', s, () => void (o.staged = true)),
    unstageDestination: (_m, s) => o.call('flows.unstageDestination', s, () => void (o.staged = false)),
    holdAndSwitch: (_m, s) =>
      o.call('flows.holdAndSwitch', s, (): SwitchResult => {
        o.holding = true;
        o.pointsAt = 'destination';
        return { switchMs: 0.4, bridges: 3 };
      }),
    removeHold: (_m, s) =>
      o.call('flows.removeHold', s, () => {
        // Packet-ins the switch sent before it applied the delete arrive before the barrier reply.
        for (let i = 0; i < (opts.stragglerOnRemove ?? 0); i++) o.clientSends();
        o.holding = false;
      }),
    switchTo: (_m, side, s) =>
      o.call(`flows.switchTo:${side}`, s, (): SwitchResult => {
        o.pointsAt = side;
        return { switchMs: 0.4, bridges: 3 };
      }),
    packetOut: (_m, frames, toward, s) =>
      o.call(`flows.packetOut:${toward}`, s, () => {
        const refuse = opts.refuse ?? 0;
        const ok = frames.slice(0, frames.length - Math.min(refuse, frames.length));
        for (const f of ok) o.deliver(toward, f);
        return ok.length;
      }),
    onHeldPacket: (_m, handler) => {
      o.calls.push('flows.onHeldPacket');
      o.held = handler;
      return () => {
        if (o.held === handler) o.held = undefined;
      };
    },
    announce: (_m, side, s) => o.call(side === 'destination' ? 'flows.announce' : 'flows.announce:source', s, () => undefined),
  };
}

export function fakeAgents(o: FakeOverlay, dirtyPages: number[] = []): AgentPort {
  const dump = (pages: number, dirty?: number): DumpResult => ({ bytes: pages * 4096, pages, ...(dirty !== undefined ? { dirtyPages: dirty } : {}), frozenMs: 1, timings: { write: 0.5 } });
  return {
    prepareNamespace: (h, _m, s) => o.call(`agents.prepareNamespace@${h}`, s, () => void o.namespaces.add(h)),
    clearNamespace: (h, _m, s) => o.call(`agents.clearNamespace@${h}`, s, () => void o.namespaces.delete(h)),
    prepare: (h, _m, role, s) => o.call(`agents.prepare:${role}@${h}`, s, () => undefined),
    preDump: (h, _m, round, s) => o.call(`agents.preDump:${round}@${h}`, s, () => dump(100, dirtyPages[round - 1])),
    settle: (h, _m, s) => o.call(`agents.settle@${h}`, s, () => undefined),
    dump: (h, _m, s) =>
      o.call(`agents.dump@${h}`, s, () => {
        o.frozen = true;
        o.running.source = false;
        return dump(10);
      }),
    expectImage: (to, _m, step, s) => o.call(`agents.expectImage:${step}@${to}`, s, (): ImageTicket => ({ to, stepName: step, token: 't', peer: { host: '192.0.2.1', port: 1 } })),
    dumpAndSend: (h, _m, ticket, s, rate) =>
      o.call(`agents.dumpAndSend@${h}->${ticket.to}`, s, (): DumpAndSendResult => {
        o.frozen = true;
        o.running.source = false;
        o.streamRates.push(rate);
        o.land();
        return { ...dump(10), sent: { bytes: 1000, ms: 1 } };
      }),
    restore: (h, _m, s) =>
      o.call(`agents.restore@${h}`, s, (): RestoreResult => {
        o.restored = true;
        return { sockets: 1, timings: { sockets: 0.25 } };
      }),
    restoreOnArrival: (h, _m, ticket, s) => {
      const restoring = o
        .call(`agents.restoreOnArrival:${ticket.stepName}@${h}`, s, () => o.imageLanded().then(() => o.restoreWork))
        .then((): RestoreResult => {
          o.restored = true;
          return { sockets: 1, timings: { sockets: 0.25 } };
        });
      o.restoring = restoring;
      return restoring;
    },
    // As the agent: waits for a restore still on, and resumes only what was restored.
    resume: (h, m, s) =>
      o.call(`agents.resume@${h}`, s, () => undefined).then(async () => {
        await o.restoring?.catch(() => {});
        if (!o.restored) throw new MigrationError('MIGRATION_NOT_RESUMED', `${h} did not resume: no restore of ${m.migrationId} succeeded there`, { migrationId: m.migrationId });
        o.running.destination = true;
      }),
    release: (h, _m, s) => o.call(`agents.release@${h}`, s, () => void (o.released = true)),
    abort: (h, _m, role, s) =>
      o.call(`agents.abort:${role}@${h}`, s, () => {
        if (role === 'source') {
          o.frozen = false;
          o.running.source = true;
        } else {
          // As the agent: a destination whose resume started refuses to be aborted.
          if (o.running.destination) throw Object.assign(new Error(`migration resumed at ${h}; abort refused`), { code: 'AGENT_RESUMED' });
          o.cancelArrival();
          o.restored = false;
          o.running.destination = false;
        }
      }),
    streamImage: (from, to, _m, step, s, rate) => o.call(`agents.streamImage:${step}@${from}->${to}`, s, (): StreamResult => (o.streamRates.push(rate), { bytes: 1000 })),
    flushNeighbour: (h, _m, s) => o.call(`agents.flushNeighbour@${h}`, s, () => undefined),
  };
}

export function fakePlanner(o: FakeOverlay, plan: MigrationPlan): PlannerPort {
  return { plan: (_m, _obj, s) => o.call('planner.plan', s, () => plan) };
}

/** A clock the test moves by hand; timers fire only on `advance`. */
export class ManualClock implements Clock {
  private t = 1_700_000_000_000;
  private timers: { at: number; fn: () => void; live: boolean }[] = [];
  now(): number {
    return this.t;
  }
  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.t + ms, fn, live: true };
    this.timers.push(timer);
    return () => void (timer.live = false);
  }
  advance(ms: number): void {
    this.t += ms;
    for (const timer of this.timers) {
      if (timer.live && timer.at <= this.t) {
        timer.live = false;
        timer.fn();
      }
    }
  }
  get pendingTimers(): number {
    return this.timers.filter((x) => x.live).length;
  }
}

export function testRef(id: string, extra: Partial<MigrationRef> = {}): MigrationRef {
  return {
    migrationId: id,
    service: { name: 'svc', netns: 'svc', ip: '10.0.0.10', mac: '02:00:00:00:00:10' },
    source: 'edge-a',
    destination: 'edge-b',
    clientHost: 'client',
    executor: 'tcp-repair',
    ...extra,
  };
}
