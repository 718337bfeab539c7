/**
 * The overlay: topology file, the flows each bridge must hold, and the ARP responder. Pure.
 */
export * from './topology.js';
export * from './policy.js';
export * from './arp-responder.js';
export * from './layout.js';
export * from './ovsdb-host.js';
export * from './overlay-controller.js';
