/**
 * coat's public API. Every export is listed here explicitly (nats.js's lesson: one front door).
 */
export { CoatError, hasCode } from './errors.js';
export { logger, rootLogger, dpidString, type Logger } from './log.js';
export { exec, CommandError, type ExecOptions, type ExecResult } from './exec.js';

// Each part's own front door, as a namespace: `import { openflow, ovsdb } from 'coat'`.
export * as openflow from './openflow/index.js';
export * as ovsdb from './ovsdb/index.js';
export * as controller from './controller/index.js';
export * as vxlan from './vxlan/index.js';
export * as netns from './netns/index.js';
export * as packet from './packet/index.js';
export * as agent from './agent/index.js';
export * as transfer from './transfer/index.js';
export * as tcpRepair from './tcp-repair/index.js';
export * as migration from './migration/index.js';
export * as capture from './capture/index.js';
export * as report from './report/index.js';
export * as probe from './probe/index.js';
