/**
 * A scriptable fake OpenFlow switch built on coat's codec (MQTT.js's fake broker, Faucet's
 * FakeOFTable idea): it does the handshake like OVS would, answers echo and barrier, and lets a
 * test inject faults: raw bytes, a half-sent message, silence, replies nobody asked for.
 */
import net from 'node:net';
import { OfpStreamParser, encodeMessage, type OfpMessage, type FlowStats, type Port } from '../../src/openflow/index.js';

export interface FakeSwitchOptions {
  dpid: bigint;
  /** Versions in our HELLO bitmap (default [4]); `helloVersion` sets the header version. */
  versions?: number[];
  helloVersion?: number;
  /** Flow stats the fake returns, split into this many multipart replies. */
  flows?: FlowStats[];
  flowReplyParts?: number;
  /** Ports the fake lists in its port_desc reply (default none). */
  ports?: Port[];
}

export class FakeSwitch {
  readonly received: OfpMessage[] = [];
  /** When true the fake answers nothing (and sends nothing): a hung switch. */
  silent = false;
  /** Refuse ONF bundles as a switch without EXT-230 would (OFPET_BAD_REQUEST/OFPBRC_BAD_EXPERIMENTER). */
  refuseBundles = false;
  /** Refuse every bundle_add (OFPET_BAD_REQUEST/OFPBRC_EPERM), as a switch refusing a flow-mod would. */
  refuseBundleAdds = false;
  /** Message types the fake does not answer. */
  readonly ignore = new Set<string>();
  /** Barrier requests held unanswered while `holdBarriers` is set; `releaseBarriers` answers them. */
  holdBarriers = false;
  private heldBarriers: number[] = [];
  private readonly parser = new OfpStreamParser();
  private waiters: { pred: (m: OfpMessage) => boolean; resolve: (m: OfpMessage) => void }[] = [];
  closed: Promise<void>;

  private constructor(
    readonly socket: net.Socket,
    readonly opts: FakeSwitchOptions,
  ) {
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      for (const m of this.parser.push(chunk)) this.onMessage(m);
    });
  }

  /** Connects to a controller listening on a unix socket and sends HELLO. */
  static connect(path: string, opts: FakeSwitchOptions): Promise<FakeSwitch> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path, () => resolve(FakeSwitch.over(s, opts)));
      s.once('error', reject);
    });
  }

  /** Speaks as a switch over an established socket (TCP, TLS, unix; either side opened it). */
  static over(s: net.Socket, opts: FakeSwitchOptions): FakeSwitch {
    const fake = new FakeSwitch(s, opts);
    fake.send({ type: 'hello', xid: 1, version: opts.helloVersion ?? 4, elements: opts.versions === undefined ? [{ type: 'versionbitmap', versions: [4] }] : opts.versions.length ? [{ type: 'versionbitmap', versions: opts.versions }] : [] });
    return fake;
  }

  send(m: OfpMessage): void {
    this.socket.write(encodeMessage(m));
  }

  sendRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Resolves with the first received message (past or future) satisfying `pred`. */
  waitFor(pred: (m: OfpMessage) => boolean): Promise<OfpMessage> {
    const seen = this.received.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  private onMessage(m: OfpMessage): void {
    this.received.push(m);
    this.waiters = this.waiters.filter((w) => (w.pred(m) ? (w.resolve(m), false) : true));
    if (this.silent || this.ignore.has(m.type)) return;
    switch (m.type) {
      case 'features_request':
        this.send({ type: 'features_reply', xid: m.xid, datapathId: this.opts.dpid, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0x4f, reserved: 0 });
        return;
      case 'multipart_request':
        if (m.body.type === 'port_desc') {
          this.send({ type: 'multipart_reply', xid: m.xid, flags: 0, body: { type: 'port_desc', ports: this.opts.ports ?? [] } });
        } else if (m.body.type === 'flow') {
          const flows = this.opts.flows ?? [];
          const parts = Math.max(1, this.opts.flowReplyParts ?? 1);
          const per = Math.ceil(flows.length / parts);
          for (let i = 0; i < parts; i++) {
            this.send({ type: 'multipart_reply', xid: m.xid, flags: i < parts - 1 ? 1 : 0, body: { type: 'flow', stats: flows.slice(i * per, (i + 1) * per) } });
          }
        }
        return;
      case 'bundle_control':
        if (this.refuseBundles) this.send({ type: 'error', xid: m.xid, errorType: 1, code: 3, data: Buffer.alloc(0) });
        else this.send({ ...m, controlType: m.controlType.replace('_request', '_reply') as typeof m.controlType });
        return;
      case 'bundle_add':
        if (this.refuseBundleAdds) this.send({ type: 'error', xid: m.xid, errorType: 1, code: 5, data: Buffer.alloc(0) });
        return;
      case 'barrier_request':
        if (this.holdBarriers) this.heldBarriers.push(m.xid);
        else this.send({ type: 'barrier_reply', xid: m.xid });
        return;
      case 'echo_request':
        this.send({ type: 'echo_reply', xid: m.xid, data: m.data });
        return;
      default:
        return;
    }
  }

  releaseBarriers(): void {
    this.holdBarriers = false;
    for (const xid of this.heldBarriers.splice(0)) this.send({ type: 'barrier_reply', xid });
  }

  close(): void {
    this.socket.destroy();
  }
}
