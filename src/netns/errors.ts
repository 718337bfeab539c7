/**
 * Errors of the namespace and link layer.
 *
 * Codes:
 * - `NETNS_NOT_FOUND`: a named namespace does not exist (no /run/netns/NAME).
 * - `NETNS_LINK_NOT_FOUND`: no link with that name in the namespace asked.
 * - `NETNS_NETLINK`: the kernel refused an rtnetlink request; `errno` holds its code (EEXIST, ...).
 * - `NETNS_WORKER`: the per-namespace netlink worker process died or answered nonsense.
 * - `NETNS_BAD_NAME`: an interface name longer than 15 bytes or with characters the kernel rejects.
 */
import { CoatError } from '../errors.js';

export class NetnsError extends CoatError {
  constructor(
    code: 'NETNS_NOT_FOUND' | 'NETNS_LINK_NOT_FOUND' | 'NETNS_NETLINK' | 'NETNS_WORKER' | 'NETNS_BAD_NAME',
    message: string,
    readonly netns?: string,
    readonly errno?: string,
  ) {
    super(code, message);
  }
}

/** IFNAMSIZ is 16 including the NUL (include/uapi/linux/if.h). */
export function checkIfName(name: string): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name) || Buffer.byteLength(name) > 15) {
    throw new NetnsError('NETNS_BAD_NAME', `interface name ${JSON.stringify(name)} is not 1-15 characters of [A-Za-z0-9_.-]`);
  }
}
