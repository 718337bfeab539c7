/**
 * Structured logging. One pino root logger per process; every subsystem takes a child carrying the
 * ids a person needs to follow a migration across lines: `dpid` (hex string), `host`, `endpoint`,
 * `migrationId`. One event per line, JSON, to stderr so stdout stays free for `--json` output.
 *
 * Level comes from `COAT_LOG_LEVEL` (default `info`; tests set `silent` unless debugging).
 */
import { pino, type Logger } from 'pino';

export type { Logger };

let root: Logger | undefined;

export function rootLogger(): Logger {
  root ??= pino(
    { level: process.env.COAT_LOG_LEVEL ?? 'info', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: 2, sync: false }),
  );
  return root;
}

/** A child logger for one subsystem, with its context ids. */
export function logger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger().child({ component, ...bindings });
}

/** Datapath ids are logged as 16 hex digits, as ovs-ofctl prints them. */
export function dpidString(dpid: bigint): string {
  return dpid.toString(16).padStart(16, '0');
}
