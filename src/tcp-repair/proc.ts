/**
 * Finding a process' TCP sockets: `/proc/PID/fd/N` links name its socket descriptors
 * ("socket:[INODE]", proc(5)); each is then asked for its kind, TCP state and addresses through a
 * duplicate taken with pidfd_getfd(2) (the addon's describeSocket), in microseconds. Reading
 * `/proc/PID/net/tcp{,6}` instead (the tables of the process' network namespace) walks the kernel's
 * whole established hash table: 3-8 ms here for a dozen sockets, inside the dump's frozen window.
 * The tables remain the fallback where descriptors cannot be taken (pidfd_getfd refused). The
 * parsers are pure; `tcpSocketsOf` reads.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { endianness } from 'node:os';
import { addressText, type Endpoint } from './image.js';
import { TcpRepairError } from './errors.js';
import { native } from './native.js';

/** include/net/tcp_states.h */
export const TCP_STATE = { ESTABLISHED: 1, SYN_SENT: 2, SYN_RECV: 3, FIN_WAIT1: 4, FIN_WAIT2: 5, TIME_WAIT: 6, CLOSE: 7, CLOSE_WAIT: 8, LAST_ACK: 9, LISTEN: 10, CLOSING: 11 } as const;

export interface ProcTcpEntry {
  family: 4 | 6;
  local: Endpoint;
  remote: Endpoint;
  state: number;
  inode: number;
}

/**
 * Parses /proc/net/tcp or tcp6 (net/ipv4/tcp_ipv4.c get_tcp4_sock: each 32-bit word of the address
 * is printed with %08X in host byte order, the port in %04X).
 */
export function parseProcNetTcp(text: string, family: 4 | 6, littleEndian = endianness() === 'LE'): ProcTcpEntry[] {
  const out: ProcTcpEntry[] = [];
  const lines = text.split('\n').slice(1);
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [local, remote, st] = [f[1]!, f[2]!, f[3]!];
    out.push({ family, local: endpoint(local, family, littleEndian), remote: endpoint(remote, family, littleEndian), state: parseInt(st, 16), inode: Number(f[9]) });
  }
  return out;
}

function endpoint(field: string, family: 4 | 6, le: boolean): Endpoint {
  const [hex, port] = field.split(':') as [string, string];
  const words = family === 4 ? 1 : 4;
  if (hex.length !== words * 8) throw new TcpRepairError('TCPR_KERNEL', `unexpected address field ${JSON.stringify(field)} in /proc/net/tcp${family === 6 ? '6' : ''}`);
  const bytes = Buffer.alloc(16);
  for (let i = 0; i < words; i++) {
    const v = parseInt(hex.slice(i * 8, i * 8 + 8), 16);
    if (le) bytes.writeUInt32LE(v, i * 4);
    else bytes.writeUInt32BE(v, i * 4);
  }
  return { address: addressText(bytes, family, 0), port: parseInt(port, 16) };
}

/** Parses a /proc/PID/fd link target; the socket inode or undefined. */
export function socketInode(link: string): number | undefined {
  const m = /^socket:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : undefined;
}

export interface ProcessTcpSocket extends ProcTcpEntry {
  /** The descriptor number in the process. */
  fd: number;
}

/**
 * The TCP sockets process `pid` holds, with state and addresses; throws TCPR_NO_PROCESS if gone.
 * Synchronous /proc reads on purpose: the dump calls this with the service frozen, and each read
 * takes microseconds where the asynchronous ones queue on libuv's thread pool.
 */
export async function tcpSocketsOf(pid: number): Promise<ProcessTcpSocket[]> {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch (err) {
    throw new TcpRepairError((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'TCPR_NO_PROCESS' : 'TCPR_PERMISSION', `cannot list /proc/${pid}/fd: ${(err as Error).message}`, { cause: err });
  }
  const byInode = new Map<number, number>();
  for (const name of fds) {
    try {
      const inode = socketInode(readlinkSync(`/proc/${pid}/fd/${name}`));
      if (inode !== undefined) byInode.set(inode, Number(name));
    } catch {
      // closed between readdir and readlink: not ours to capture
    }
  }
  const direct = describeEach(pid, byInode);
  if (direct) return direct.sort((a, b) => a.fd - b.fd);
  const tables: ProcTcpEntry[] = [];
  for (const [file, family] of [['tcp', 4], ['tcp6', 6]] as const) {
    try {
      tables.push(...parseProcNetTcp(readFileSync(`/proc/${pid}/net/${file}`, 'utf8'), family));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && family === 6) continue; // IPv6 disabled
      throw new TcpRepairError('TCPR_NO_PROCESS', `cannot read /proc/${pid}/net/${file}: ${(err as Error).message}`, { cause: err });
    }
  }
  const out: ProcessTcpSocket[] = [];
  for (const e of tables) {
    const fd = byInode.get(e.inode);
    if (fd !== undefined && e.inode !== 0) out.push({ ...e, fd });
  }
  return out.sort((a, b) => a.fd - b.fd);
}

/** linux/socket.h, linux/in.h */
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const IPPROTO_TCP = 6;

/**
 * Each socket descriptor of `pid` described through a duplicate of it (closed again); undefined
 * when descriptors cannot be taken (no addon, no pidfd_getfd rights): the caller reads /proc then.
 * A descriptor closed meanwhile is skipped, as the /proc path skips it.
 */
function describeEach(pid: number, byInode: Map<number, number>): ProcessTcpSocket[] | undefined {
  let n: ReturnType<typeof native>;
  let pidfd: number;
  try {
    n = native();
    pidfd = n.pidfdOpen(pid);
  } catch (err) {
    if ((err as { errno?: number }).errno === 3) throw new TcpRepairError('TCPR_NO_PROCESS', `process ${pid} is gone`, { cause: err });
    return undefined;
  }
  const out: ProcessTcpSocket[] = [];
  try {
    for (const [inode, fd] of byInode) {
      let local: number;
      try {
        local = n.pidfdGetfd(pidfd, fd);
      } catch (err) {
        const errno = (err as { errno?: number }).errno;
        if (errno === 9) continue; // EBADF: closed since the listing
        if (errno === 3) throw new TcpRepairError('TCPR_NO_PROCESS', `process ${pid} is gone`, { cause: err });
        return undefined; // EPERM and the like: /proc can still tell
      }
      try {
        const d = n.describeSocket(local);
        if ((d.domain !== AF_INET && d.domain !== AF_INET6) || d.type !== SOCK_STREAM || d.protocol !== IPPROTO_TCP) continue;
        out.push({ family: d.domain === AF_INET6 ? 6 : 4, local: { address: d.localAddress!, port: d.localPort! }, remote: { address: d.remoteAddress!, port: d.remotePort! }, state: d.state, inode, fd });
      } finally {
        n.close(local);
      }
    }
  } finally {
    n.close(pidfd);
  }
  return out;
}
