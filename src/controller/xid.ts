/**
 * Transaction ids (OpenFlow 1.3.5 §7.1: "xid: transaction id associated with this packet. Replies
 * use the same id as was in the request to facilitate pairing"). 32 bits, wrapping; 0 is skipped
 * so that a zero xid from a peer never looks like one of ours, and an id still waiting for its
 * reply is never handed out twice.
 */
export class XidAllocator {
  private next: number;

  constructor(start = 1) {
    this.next = start >>> 0 || 1;
  }

  /** The next free xid; `inUse` says which ids are still waiting for a reply. */
  allocate(inUse?: (xid: number) => boolean): number {
    for (;;) {
      const xid = this.next;
      this.next = (this.next + 1) >>> 0 || 1;
      if (!inUse?.(xid)) return xid;
    }
  }
}
