/**
 * The TCP_REPAIR handle: one TCP socket under coat's control, opaque to callers (soccr's
 * `struct libsoccr_sk`). The descriptor never leaves this module except to be handed to a service.
 *
 * Sequences (soccr.h; the precondition of both: the switches hold the connection's packets, so no
 * segment reaches either socket while it is being read or rebuilt):
 *
 *   pause -> save (source):
 *     const s = RepairSocket.take(pid, fd);   // pidfd_open + pidfd_getfd: our reference to its socket
 *     s.pause();                              // TCP_REPAIR on: no FIN/RST, queues hold still
 *     const img = s.save(origin);             // sequence numbers, options, window, both queues
 *     s.silence();                            // send window 0: its timers send no new data
 *     ... later: s.closeSilently()            // release: no FIN, no RST (tcp_disconnect in repair)
 *     ...    or: s.unpause(); s.close()       // abort: window back, the source carries on untouched
 *
 *   restore -> resume (destination):
 *     const s = RepairSocket.restore(img, { netns });  // built in repair mode, nothing sent
 *     s.resume();                             // TCP_REPAIR off (window probe), never-sent tail written, no wait
 *     s.close()                               // after the service holds its own descriptor
 */
import { native, type NativeRestoreState } from './native.js';
import { TcpRepairError, fromErrno } from './errors.js';
import { neverSent, TCP_ESTABLISHED, type Endpoint, type SocketImage } from './image.js';

/** socket(2) constants (Linux). */
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const IPPROTO_TCP = 6;

/**
 * Where a connection's application byte streams stood when its socket was created or restored:
 * stream offset = origin + kernel counter. Fresh connections start at 0. See `streamOffsets`.
 */
export interface StreamOrigin {
  written: bigint;
  read: bigint;
}

export const ZERO_ORIGIN: StreamOrigin = { written: 0n, read: 0n };

/** A network namespace name (`ip netns`) or a path to its nsfs file. */
export function netnsPath(netns: string): string {
  return netns.includes('/') ? netns : `/run/netns/${netns}`;
}

export interface RestoreOptions {
  /** Namespace to create the socket in; absent: the caller's. */
  netns?: string;
  /** IP_FREEBIND: bind even if the address is not up yet in the namespace (CRIU does). Default true. */
  freebind?: boolean;
  /**
   * SO_SNDBUF / SO_RCVBUF to set as they are, instead of `restoreBuffers(img)`: for tests of the
   * write path's own safety net (a buffer too small for the queue's skb overhead).
   */
  buffers?: { sndbuf: number; rcvbuf: number };
}

export class RepairSocket {
  #fd: number | null;
  #repair: boolean;
  #unsent: Uint8Array | null = null;
  #restoredFrom: SocketImage | null = null;
  /** The window `silence()` replaced, given back by `unpause()`. */
  #silencedWindow: NonNullable<SocketImage['window']> | null = null;

  private constructor(fd: number, repair: boolean) {
    this.#fd = fd;
    this.#repair = repair;
  }

  /** Duplicates descriptor `fd` of process `pid` into this process; checks it is a TCP socket. */
  static take(pid: number, fd: number): RepairSocket {
    const n = native();
    let pidfd: number;
    try {
      pidfd = n.pidfdOpen(pid);
    } catch (err) {
      throw fromErrno(err, `pidfd_open(${pid})`);
    }
    let local: number;
    try {
      local = n.pidfdGetfd(pidfd, fd);
    } catch (err) {
      throw fromErrno(err, `pidfd_getfd(pid ${pid}, fd ${fd})`);
    } finally {
      n.close(pidfd);
    }
    try {
      const kind = n.socketKind(local);
      if ((kind.domain !== AF_INET && kind.domain !== AF_INET6) || kind.type !== SOCK_STREAM || kind.protocol !== IPPROTO_TCP) {
        throw new TcpRepairError('TCPR_NOT_TCP', `pid ${pid} fd ${fd} is a socket of domain ${kind.domain}, type ${kind.type}, protocol ${kind.protocol}, not TCP over IPv4/IPv6`);
      }
    } catch (err) {
      n.close(local);
      throw fromErrno(err, `pid ${pid} fd ${fd}`);
    }
    return new RepairSocket(local, false);
  }

  /** Rebuilds a saved connection in repair mode (soccr's libsoccr_restore); nothing is sent yet. */
  static restore(img: SocketImage, opts: RestoreOptions = {}): RepairSocket {
    const n = native();
    let fd: number;
    try {
      fd = n.tcpSocket(opts.netns ? netnsPath(opts.netns) : null, img.family);
    } catch (err) {
      throw fromErrno(err, `socket in netns ${opts.netns ?? '(own)'}`);
    }
    const state: NativeRestoreState = {
      family: img.family,
      localAddress: img.local.address,
      localPort: img.local.port,
      remoteAddress: img.remote.address,
      remotePort: img.remote.port,
      sendSeq: img.sendSeq,
      recvSeq: img.recvSeq,
      unsentLength: img.unsentLength,
      mss: img.mss,
      options: img.options,
      sndWscale: img.sndWscale,
      rcvWscale: img.rcvWscale,
      timestamp: img.timestamp,
      hasWindow: img.window ? 1 : 0,
      sndWl1: img.window?.sndWl1 ?? 0,
      sndWnd: img.window?.sndWnd ?? 0,
      maxWindow: img.window?.maxWindow ?? 0,
      rcvWnd: img.window?.rcvWnd ?? 0,
      rcvWup: img.window?.rcvWup ?? 0,
      ...(opts.buffers ?? restoreBuffers(img)),
      sendQueue: Buffer.from(img.sendQueue.buffer, img.sendQueue.byteOffset, img.sendQueue.byteLength),
      recvQueue: Buffer.from(img.recvQueue.buffer, img.recvQueue.byteOffset, img.recvQueue.byteLength),
      freebind: opts.freebind === false ? 0 : 1,
    };
    try {
      n.restore(fd, state);
    } catch (err) {
      n.close(fd); // repair mode may be on: closing is silent either way
      throw fromErrno(err, `restore ${fmt(img.local)} -> ${fmt(img.remote)}`);
    }
    const s = new RepairSocket(fd, true);
    s.#unsent = neverSent(img);
    s.#restoredFrom = img;
    return s;
  }

  /** The descriptor, for handing to a service (spawn stdio) only. */
  get fd(): number {
    return this.#live();
  }

  get inRepair(): boolean {
    return this.#repair;
  }

  /**
   * TCP_REPAIR on: the application's calls no longer reach the wire and close sends no FIN or RST.
   * The kernel's timers still transmit (see `silence`).
   */
  pause(): void {
    const fd = this.#live();
    try {
      native().repairOn(fd);
    } catch (err) {
      throw fromErrno(err, 'TCP_REPAIR on');
    }
    this.#repair = true;
  }

  /**
   * After `save()`, at the source: a send window of zero (TCP_REPAIR_WINDOW), so nothing not yet
   * sent leaves any more. Repair mode alone does not stop it: seen in the lab, a tail loss probe
   * sent never-sent bytes 7 ms after the save, and the destination then sent the same bytes again
   * (a retransmission the client could not D-SACK, as it only partly overlapped). What is left is
   * a retransmission of bytes the peer already has (the retransmit timer, or a loss probe with
   * nothing new to send), which the peer acknowledges as a duplicate. `unpause()` gives the window
   * back. Without a saved window (a kernel without TCP_REPAIR_WINDOW), nothing is done.
   */
  silence(img: SocketImage): void {
    const fd = this.#live();
    if (!this.#repair) throw new TcpRepairError('TCPR_STATE', 'silence() is for a paused socket');
    if (!img.window || this.#silencedWindow) return;
    try {
      native().setWindow(fd, { ...img.window, sndWnd: 0 });
    } catch (err) {
      throw fromErrno(err, 'TCP_REPAIR_WINDOW (send window 0)');
    }
    this.#silencedWindow = img.window;
  }

  /** TCP_REPAIR off on a paused (not restored) socket: the abort path at the source. */
  unpause(): void {
    const fd = this.#live();
    if (!this.#repair) return;
    if (this.#silencedWindow) {
      try {
        native().setWindow(fd, this.#silencedWindow);
      } catch (err) {
        throw fromErrno(err, 'TCP_REPAIR_WINDOW (window given back)');
      }
      this.#silencedWindow = null;
    }
    try {
      native().repairOff(fd, true);
    } catch (err) {
      throw fromErrno(err, 'TCP_REPAIR off');
    }
    this.#repair = false;
  }

  /**
   * Reads the connection's state (soccr's libsoccr_save). `origin` is where the application's
   * streams stood when this socket came to be (ZERO_ORIGIN for a connection the service accepted
   * itself), so the image carries exact stream offsets: see `streamOffsets`.
   */
  save(origin: StreamOrigin = ZERO_ORIGIN): SocketImage {
    const fd = this.#live();
    if (!this.#repair) throw new TcpRepairError('TCPR_STATE', 'save() before pause(): the queues could change while read');
    let s;
    try {
      s = native().save(fd);
    } catch (err) {
      throw fromErrno(err, 'save');
    }
    if (s.state !== TCP_ESTABLISHED) {
      throw new TcpRepairError('TCPR_NOT_ESTABLISHED', `socket ${s.localAddress}:${s.localPort} -> ${s.remoteAddress}:${s.remotePort} is in TCP state ${s.state}, not ESTABLISHED`);
    }
    const offsets = streamOffsets(origin, { bytesAcked: s.bytesAcked, bytesReceived: s.bytesReceived, outq: s.sendQueue.length, inq: s.recvQueue.length });
    return {
      family: s.family,
      state: s.state,
      local: { address: s.localAddress, port: s.localPort },
      remote: { address: s.remoteAddress, port: s.remotePort },
      sendSeq: s.sendSeq,
      recvSeq: s.recvSeq,
      mss: s.mss,
      options: s.options & 0x07,
      sndWscale: s.sndWscale,
      rcvWscale: s.rcvWscale,
      timestamp: s.timestamp,
      window: s.hasWindow ? { sndWl1: s.sndWl1, sndWnd: s.sndWnd, maxWindow: s.maxWindow, rcvWnd: s.rcvWnd, rcvWup: s.rcvWup } : null,
      sndbuf: s.sndbuf,
      rcvbuf: s.rcvbuf,
      streamWritten: offsets.written,
      streamRead: offsets.read,
      sendQueue: s.sendQueue,
      unsentLength: s.unsentLength,
      recvQueue: s.recvQueue,
    };
  }

  /**
   * Takes a restored socket out of repair mode (the kernel sends a window probe, which re-teaches
   * the path the address's new location) and writes the never-sent tail of the send queue through
   * the normal path. Never waits for the peer: its ACKs may be held until after resume (the hold of
   * a migration); the buffer `restore` sized takes the whole tail at once. A tail the kernel does not
   * take whole is TCPR_UNSENT_SHORT (the connection's stream would have a hole: not to be used).
   * Returns the stream origin a later `save()` of this connection must use.
   */
  resume(): StreamOrigin {
    const fd = this.#live();
    const img = this.#restoredFrom;
    if (!img || !this.#repair) throw new TcpRepairError('TCPR_STATE', 'resume() is for a restored socket still in repair mode');
    const n = native();
    try {
      n.repairOff(fd, true);
    } catch (err) {
      throw fromErrno(err, 'TCP_REPAIR off');
    }
    this.#repair = false;
    const unsent = this.#unsent ?? new Uint8Array(0);
    if (unsent.length > 0) {
      let written: number;
      try {
        written = n.sendUnsent(fd, Buffer.from(unsent.buffer, unsent.byteOffset, unsent.byteLength));
      } catch (err) {
        throw fromErrno(err, 'send never-sent tail');
      }
      if (written !== unsent.length) throw new TcpRepairError('TCPR_UNSENT_SHORT', `the kernel took ${written} of ${unsent.length} never-sent bytes of ${fmt(img.local)} -> ${fmt(img.remote)} without waiting (send buffer full even after growing it)`);
    }
    this.#unsent = null;
    // Nothing of the application has touched the socket yet, so its stream offsets are still the
    // image's: solve streamOffsets(origin, counters now) = image offsets for origin.
    const c = n.counters(fd);
    return {
      written: img.streamWritten - c.bytesAcked - BigInt(c.outq),
      read: img.streamRead - c.bytesReceived + BigInt(c.inq),
    };
  }

  /** Closes in repair mode: tcp_disconnect without FIN or RST (net/ipv4/tcp.c, tp->repair). */
  closeSilently(): void {
    if (this.#fd === null) return;
    const n = native();
    try {
      if (!this.#repair) n.repairOn(this.#fd);
    } catch {
      // a socket that cannot enter repair mode is closed anyway: leaking the fd is worse
    }
    n.close(this.#fd);
    this.#fd = null;
  }

  /** Closes our reference; the connection lives on in whoever else holds it. */
  close(): void {
    if (this.#fd === null) return;
    native().close(this.#fd);
    this.#fd = null;
  }

  #live(): number {
    if (this.#fd === null) throw new TcpRepairError('TCPR_STATE', 'the socket handle is closed');
    return this.#fd;
  }
}

/**
 * The application's stream offsets from the kernel's counters, exact at any instant the process
 * is frozen: bytes written = bytes acknowledged + bytes still queued (RFC 4898
 * tcpEStatsAppHCThruOctetsAcked + SIOCOUTQ); bytes read = bytes received in order - bytes still
 * unread (tcpEStatsAppHCThruOctetsReceived - SIOCINQ). A service whose protocol state is a function
 * of these offsets (the demo workload) thus resumes with no byte lost or repeated, even when frozen
 * between a write() and its own bookkeeping.
 */
/**
 * Headroom per queue on top of twice its bytes: one more GSO skb's worth (64 KiB), which is how far
 * tcp_sendmsg may overshoot sk_sndbuf at the source (it checks the limit only for a new skb).
 */
const BUFFER_SLACK = 64 * 1024;
/** Largest buffer setsockopt can express (it doubles an int). */
const BUFFER_MAX = 0x7ffffffe;

/**
 * The SO_SNDBUF / SO_RCVBUF a restored socket needs, as the kernel holds them (sk_sndbuf,
 * sk_rcvbuf). The kernel charges each queue by skb truesize, not by data: up to about twice the
 * bytes for MSS-sized skbs (no GSO; sk_buff, shared info and headers per skb), which is why
 * setsockopt doubles what it is given (socket(7)). The image's own values are kept when larger
 * (the service chose or the kernel tuned them); otherwise:
 * - send: the sent-unacked part (written in repair mode) plus the never-sent tail (written after
 *   repair off) must fit with nothing acknowledged, so resume never waits for a held ACK;
 * - receive: tcp_send_rcvq refuses a repair receive queue beyond sk_rcvbuf.
 * CRIU restores so_sndbuf/so_rcvbuf from its image with SO_*BUFFORCE the same way (sk-inet.c).
 */
export function restoreBuffers(img: Pick<SocketImage, 'sndbuf' | 'rcvbuf' | 'sendQueue' | 'recvQueue'>): { sndbuf: number; rcvbuf: number } {
  const need = (queued: number) => (queued === 0 ? 0 : Math.min(BUFFER_MAX, 2 * queued + BUFFER_SLACK));
  return { sndbuf: Math.max(img.sndbuf, need(img.sendQueue.length)), rcvbuf: Math.max(img.rcvbuf, need(img.recvQueue.length)) };
}

export function streamOffsets(origin: StreamOrigin, c: { bytesAcked: bigint; bytesReceived: bigint; outq: number; inq: number }): StreamOrigin {
  return { written: origin.written + c.bytesAcked + BigInt(c.outq), read: origin.read + c.bytesReceived - BigInt(c.inq) };
}

function fmt(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/** Creates a listening socket (SO_REUSEADDR, IP_FREEBIND) in a namespace, for handing to a service. */
export function listenIn(endpoint: Endpoint & { family: 4 | 6 }, opts: { netns?: string; backlog?: number } = {}): number {
  const n = native();
  let fd: number;
  try {
    fd = n.tcpSocket(opts.netns ? netnsPath(opts.netns) : null, endpoint.family);
  } catch (err) {
    throw fromErrno(err, `socket in netns ${opts.netns ?? '(own)'}`);
  }
  try {
    n.listen(fd, { family: endpoint.family, address: endpoint.address, port: endpoint.port, freebind: 1, backlog: opts.backlog ?? 511 });
  } catch (err) {
    n.close(fd);
    throw fromErrno(err, `listen on ${fmt(endpoint)}`);
  }
  return fd;
}
