/** Where iproute2 keeps named namespaces: bind mounts of /proc/PID/ns/net (ip-netns(8)). */
export const NETNS_RUN_DIR = '/run/netns';

export function netnsPath(name: string): string {
  return `${NETNS_RUN_DIR}/${name}`;
}
