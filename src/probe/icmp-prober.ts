/**
 * ICMP echo prober over a raw IPv4 socket (the `raw-socket` package): sends echo requests at a fixed
 * interval and records every answer, to show what a handover did to plain IP reachability beside
 * the TCP workload. It runs in the network namespace of its process; to probe from a lab endpoint
 * run it under `ip netns exec NS` (Node has no setns(2)).
 *
 * Each request carries a per-run random identifier and a 16-byte nonce in its data, so answers to
 * another ping in the same namespace (a raw ICMP socket sees every ICMP packet) are not counted.
 */
import { randomBytes } from 'node:crypto';
import raw, { type Socket as RawSocket } from 'raw-socket';
import { CoatError } from '../errors.js';
import { decodeIcmp, encodeIcmpEcho, IcmpType, isIcmpEcho } from '../packet/icmp.js';
import { decodeIpv4, IpProtocol } from '../packet/ipv4.js';
import { isIpv4 } from '../packet/address.js';
import { EchoLedger, type EchoSummary } from './echo-stats.js';

export class ProbeError extends CoatError {}

export interface ProbeOptions {
  target: string;
  /** Requests to send (1..65535). */
  count: number;
  intervalMs: number;
  /** An answer later than this is late: counted lost (default 1000 ms). */
  timeoutMs?: number;
  /** Extra data bytes after the nonce (default 40: a 64-byte ICMP message like ping's). */
  padBytes?: number;
  signal?: AbortSignal;
}

const NONCE_BYTES = 16;

/**
 * Open raw sockets and their native wrappers, held here until closed. raw-socket's native
 * SocketWrap is a weak handle that its own poll watcher calls back into: when V8 collected it with
 * the socket still open, the next readable event crashed the process (SIGSEGV in
 * SocketWrap::HandleIOEvent, raw-socket issue #47; here 3 crashes in 56 `coat probe`
 * runs, none in 82 with this reference).
 */
const openSockets = new Set<unknown>();
const now = () => performance.now();

export async function probe(opts: ProbeOptions): Promise<EchoSummary> {
  if (!isIpv4(opts.target)) throw new ProbeError('PROBE_BAD_TARGET', `probe target ${JSON.stringify(opts.target)} is not an IPv4 address`);
  if (!Number.isInteger(opts.count) || opts.count < 1 || opts.count > 0xffff) throw new ProbeError('PROBE_BAD_COUNT', `probe count ${opts.count} is not in 1..65535`);
  if (!(opts.intervalMs >= 0)) throw new ProbeError('PROBE_BAD_INTERVAL', `probe interval ${opts.intervalMs} ms is not >= 0`);
  const timeoutMs = opts.timeoutMs ?? 1000;
  let socket: RawSocket;
  try {
    socket = raw.createSocket({ protocol: raw.Protocol.ICMP, bufferSize: 65535 });
  } catch (err) {
    // EPERM without CAP_NET_RAW
    throw new ProbeError('PROBE_SOCKET', `cannot open a raw ICMP socket: ${(err as Error).message}`, { cause: err });
  }
  const held = [socket, (socket as unknown as { wrap?: unknown }).wrap];
  for (const h of held) openSockets.add(h);
  const identifier = randomBytes(2).readUInt16BE(0);
  const nonce = randomBytes(NONCE_BYTES);
  const data = Buffer.concat([nonce, Buffer.alloc(opts.padBytes ?? 40, 0x5a)]);
  const ledger = new EchoLedger(opts.target, timeoutMs);
  let failure: Error | undefined;
  socket.on('error', (err) => (failure ??= new ProbeError('PROBE_SOCKET', `raw socket error: ${err.message}`, { cause: err })));
  socket.on('message', (buf, source) => {
    const at = now();
    if (source !== opts.target) return;
    try {
      const ip = decodeIpv4(buf);
      if (ip.header.protocol !== IpProtocol.ICMP) return;
      const m = decodeIcmp(buf.subarray(0, Math.min(buf.length, ip.header.totalLength)), ip.length).header;
      if (!isIcmpEcho(m) || m.type !== IcmpType.ECHO_REPLY || m.identifier !== identifier) return;
      if (m.data.length < NONCE_BYTES || !m.data.subarray(0, NONCE_BYTES).equals(nonce)) return;
      ledger.answered(m.sequence, at);
    } catch {
      // not a well-formed echo reply (a bad checksum included): not an answer
    }
  });
  try {
    for (let seq = 0; seq < opts.count; seq++) {
      if (opts.signal?.aborted || failure) break;
      const message = encodeIcmpEcho({ type: IcmpType.ECHO_REQUEST, identifier, sequence: seq, data });
      await new Promise<void>((resolve, reject) =>
        socket.send(message, 0, message.length, opts.target, () => ledger.sent(seq, now()), (err) => (err ? reject(new ProbeError('PROBE_SEND', `send of echo ${seq} to ${opts.target} failed: ${err.message}`, { cause: err })) : resolve())),
      );
      if (seq + 1 < opts.count) await sleep(opts.intervalMs, opts.signal);
    }
    // wait for the answers still in flight, up to the timeout
    const deadline = now() + timeoutMs;
    while (ledger.outstanding(now()).length > 0 && now() < deadline && !opts.signal?.aborted && !failure) await sleep(5);
  } finally {
    socket.close();
    for (const h of held) openSockets.delete(h);
  }
  if (failure) throw failure;
  return ledger.summary();
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    // Removed when the timer fires: one listener per sleep would pile up on a long run's signal.
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
