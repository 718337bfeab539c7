/**
 * Typed errors of the TCP_REPAIR boundary and of the socket image codec. Each code is stable and
 * documented here (undici's shape); `docs/executors.md` lists them too.
 *
 * Kernel failures arrive from the addon as an Error with `errno` and `syscall`; `fromErrno` maps
 * them to the code a caller can act on.
 */
import { CoatError } from '../errors.js';

export const TCP_REPAIR_CODES = {
  TCPR_ADDON_MISSING: 'the native addon is not built or does not load',
  TCPR_NO_PROCESS: 'the process is gone (ESRCH from pidfd_open / pidfd_getfd)',
  TCPR_NO_FD: 'the process has no such descriptor (EBADF)',
  TCPR_NOT_SOCKET: 'the descriptor is not a socket (ENOTSOCK)',
  TCPR_NOT_TCP: 'the socket is not an IPv4/IPv6 TCP stream socket',
  TCPR_NOT_ESTABLISHED: 'the TCP socket is not in ESTABLISHED state (soccr restores only that)',
  TCPR_PERMISSION: 'not permitted (TCP_REPAIR and pidfd_getfd need CAP_NET_ADMIN / ptrace rights)',
  TCPR_NO_NETNS: 'the network namespace does not exist',
  TCPR_ADDR_IN_USE: 'the restored address and port are already bound in the namespace',
  TCPR_UNSENT_SHORT: 'the kernel did not take the whole never-sent tail of the send queue at resume (written without waiting)',
  TCPR_STATE: 'the handle is used out of sequence (e.g. save after release)',
  TCPR_KERNEL: 'another kernel error; `errno` and `syscall` say which',
} as const;

export type TcpRepairCode = keyof typeof TCP_REPAIR_CODES;

export class TcpRepairError extends CoatError {
  declare readonly code: TcpRepairCode;
  readonly errno: number | undefined;
  readonly syscall: string | undefined;

  constructor(code: TcpRepairCode, message: string, options?: { cause?: unknown; errno?: number; syscall?: string }) {
    super(code, message, options);
    this.errno = options?.errno;
    this.syscall = options?.syscall;
  }
}

/** errno values from asm-generic/errno-base.h and errno.h (Linux). */
const ERRNO = { EPERM: 1, ENOENT: 2, ESRCH: 3, EBADF: 9, EACCES: 13, ENOTSOCK: 88, ENOPROTOOPT: 92, EOPNOTSUPP: 95, EADDRINUSE: 98 } as const;

/** Maps an addon error (or anything else thrown by it) to a TcpRepairError naming `what`. */
export function fromErrno(err: unknown, what: string): TcpRepairError {
  if (err instanceof TcpRepairError) return err;
  const e = err as { errno?: unknown; syscall?: unknown; message?: unknown };
  const errno = typeof e?.errno === 'number' ? e.errno : undefined;
  const syscall = typeof e?.syscall === 'string' ? e.syscall : undefined;
  const detail = typeof e?.message === 'string' ? e.message : String(err);
  let code: TcpRepairCode = 'TCPR_KERNEL';
  switch (errno) {
    case ERRNO.ESRCH:
      code = 'TCPR_NO_PROCESS';
      break;
    case ERRNO.EBADF:
      code = 'TCPR_NO_FD';
      break;
    case ERRNO.ENOTSOCK:
      code = 'TCPR_NOT_SOCKET';
      break;
    case ERRNO.EPERM:
    case ERRNO.EACCES:
      code = 'TCPR_PERMISSION';
      break;
    case ERRNO.ENOENT:
      if (syscall === 'open(netns)') code = 'TCPR_NO_NETNS';
      break;
    case ERRNO.EADDRINUSE:
      code = 'TCPR_ADDR_IN_USE';
      break;
    case ERRNO.ENOPROTOOPT:
    case ERRNO.EOPNOTSUPP:
      // TCP_REPAIR on a socket that is not TCP answers ENOPROTOOPT / EOPNOTSUPP.
      code = 'TCPR_NOT_TCP';
      break;
  }
  return new TcpRepairError(code, `${what}: ${detail}`, { cause: err, ...(errno !== undefined ? { errno } : {}), ...(syscall ? { syscall } : {}) });
}
