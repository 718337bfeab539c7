/** ICMP echo probing over a raw socket (icmp-prober.ts) and its pure bookkeeping (echo-stats.ts). */
export { probe, ProbeError, type ProbeOptions } from './icmp-prober.js';
export { EchoLedger, type EchoSummary } from './echo-stats.js';
