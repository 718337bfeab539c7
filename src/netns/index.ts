/**
 * Network namespaces and their links: rtnetlink operations (`openNetns(name)` gives a client in
 * any namespace), namespace lifecycle, and the two tool fallbacks (ethtool, tc).
 */
export { NetnsError, checkIfName } from './errors.js';
export { openNetns, type NetnsClient } from './client.js';
export type { RtnlApi, LinkInfo, LinkChange, VethSpec, RouteSpec, AddressInfo } from './rtnl.js';
export { createNetns, deleteNetns, listNetns, netnsExists, netnsPids } from './namespaces.js';
export { disableTxOffload, shapeEgress, shapeIngress, type ShapeSpec } from './tools.js';
export { netnsPath, NETNS_RUN_DIR } from './paths.js';
