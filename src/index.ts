/**
 * coat's public API. Every export is listed here explicitly (nats.js's lesson: one front door).
 */
export { CoatError, hasCode } from './errors.js';
export { logger, rootLogger, dpidString, type Logger } from './log.js';
export { exec, CommandError, type ExecOptions, type ExecResult } from './exec.js';
