/**
 * The controller's ARP responder: given a packet-in's frame, the ARP reply to packet-out back to
 * the port it came in on, or why none is sent. Pure (no sockets); keeps counters that the
 * controller reports, which is also how a test proves a reply came from coat.
 *
 * The table maps overlay IPs to MACs. It starts from the topology and can be changed at run time
 * (a migration that gives the service a new MAC updates it before the switch-over).
 */
import type { Ipv4Address, MacAddress } from '../packet/address.js';
import { ArpOp } from '../packet/arp.js';
import { decodeFrame, encodeArpReplyFrame } from '../packet/frame.js';
import { PacketError } from '../packet/errors.js';
import type { Topology } from './topology.js';

export type ArpDecision =
  | { kind: 'reply'; frame: Buffer; targetIp: Ipv4Address; answerMac: MacAddress; askerIp: Ipv4Address }
  | { kind: 'ignore'; reason: 'not-arp' | 'not-request' | 'unknown-ip' | 'malformed' | 'self'; detail?: string };

export interface ArpCounters {
  requests: number;
  replies: number;
  unknownIp: number;
  malformed: number;
  other: number;
}

export class ArpResponder {
  private readonly table = new Map<Ipv4Address, MacAddress>();
  readonly counters: ArpCounters = { requests: 0, replies: 0, unknownIp: 0, malformed: 0, other: 0 };

  constructor(entries: Iterable<[Ipv4Address, MacAddress]> = []) {
    for (const [ip, mac] of entries) this.table.set(ip, mac);
  }

  static fromTopology(t: Topology): ArpResponder {
    return new ArpResponder(t.endpoints.map((e) => [e.ip, e.mac]));
  }

  set(ip: Ipv4Address, mac: MacAddress): void {
    this.table.set(ip, mac);
  }

  lookup(ip: Ipv4Address): MacAddress | undefined {
    return this.table.get(ip);
  }

  entries(): [Ipv4Address, MacAddress][] {
    return [...this.table];
  }

  /** Decides what to do with one packet-in frame (RFC 826 "Packet Reception", answering side). */
  answer(frame: Buffer): ArpDecision {
    let f;
    try {
      f = decodeFrame(frame);
    } catch (e) {
      this.counters.malformed++;
      return { kind: 'ignore', reason: 'malformed', detail: e instanceof PacketError ? e.message : String(e) };
    }
    if (!f.arp) {
      this.counters.other++;
      return { kind: 'ignore', reason: 'not-arp' };
    }
    if (f.arp.op !== ArpOp.REQUEST) {
      this.counters.other++;
      return { kind: 'ignore', reason: 'not-request' };
    }
    this.counters.requests++;
    const mac = this.table.get(f.arp.targetIp);
    if (mac === undefined) {
      this.counters.unknownIp++;
      return { kind: 'ignore', reason: 'unknown-ip', detail: f.arp.targetIp };
    }
    // A host probing its own address (duplicate address detection, RFC 5227 §2.1.1) must not get
    // an answer, or it would think the address is taken.
    if (f.arp.senderMac === mac) {
      this.counters.other++;
      return { kind: 'ignore', reason: 'self' };
    }
    this.counters.replies++;
    return { kind: 'reply', frame: encodeArpReplyFrame(f.arp, mac), targetIp: f.arp.targetIp, answerMac: mac, askerIp: f.arp.senderIp };
  }
}
