/**
 * Typed errors of the agent control plane. The controller branches on `code`:
 *
 * | code                 | class              | meaning                                                      |
 * |----------------------|--------------------|--------------------------------------------------------------|
 * | AGENT_TIMEOUT        | AgentTimeoutError  | no reply before the command's deadline (names both)          |
 * | AGENT_GONE           | AgentGoneError     | the agent stopped heartbeating, said goodbye, or nobody      |
 * |                      |                    | serves its command subject (NATS "no responders");           |
 * |                      |                    | `delivered` says whether the command may have reached it     |
 * | AGENT_REFUSED        | AgentRefusedError  | the agent refused the command (bad signature, replay, stale,  |
 * |                      |                    | malformed, unknown command); nothing was done                |
 * | AGENT_REMOTE_FAILURE | AgentRemoteError   | the command ran and failed; `remoteCode` is the agent's own  |
 * |                      |                    | error code (e.g. TRANSFER_REFUSED, EXEC_FAILED)              |
 * | AGENT_UNKNOWN        | AgentUnknownError  | no agent of that name has registered                         |
 * | AGENT_BAD_REPLY      | AgentBadReplyError | a reply that is not a valid reply (version skew, corruption) |
 * | AGENT_ABORTED        | AgentAbortedError  | the caller's AbortSignal fired first; the agent may still be  |
 * |                      |                    | running the command until its own deadline                   |
 */
import { CoatError } from '../errors.js';

export class AgentError extends CoatError {
  constructor(
    code: string,
    readonly host: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

export class AgentTimeoutError extends AgentError {
  constructor(host: string, readonly command: string, readonly deadlineMs: number, readonly migrationId?: string) {
    super('AGENT_TIMEOUT', host, `agent ${host}: no reply to ${command} within its ${deadlineMs} ms deadline${migrationId ? ` (migration ${migrationId})` : ''}`);
  }
}

export class AgentGoneError extends AgentError {
  constructor(
    host: string,
    readonly reason: string,
    readonly command?: string,
    /**
     * Whether the command may have reached the agent: false when it was never sent (not
     * heartbeating) or NATS found nobody serving its subject; true when the agent went away
     * while the command was on its way or running.
     */
    readonly delivered = true,
  ) {
    super('AGENT_GONE', host, `agent ${host} is gone (${reason})${command ? `; ${command} ${delivered ? 'abandoned' : 'not delivered'}` : ''}`);
  }
}

export class AgentRefusedError extends AgentError {
  constructor(host: string, readonly command: string, readonly reason: string) {
    super('AGENT_REFUSED', host, `agent ${host} refused ${command}: ${reason}`);
  }
}

export class AgentRemoteError extends AgentError {
  constructor(
    host: string,
    readonly command: string,
    /** The error code the agent reported (its CoatError code, or ERR_INTERNAL). */
    readonly remoteCode: string,
    readonly remoteMessage: string,
    /** The agent's error as JSON (its own fields: file, offset, argv, ...). */
    readonly remote: Record<string, unknown>,
  ) {
    super('AGENT_REMOTE_FAILURE', host, `agent ${host}: ${command} failed: ${remoteCode}: ${remoteMessage}`);
  }
}

export class AgentUnknownError extends AgentError {
  constructor(host: string) {
    super('AGENT_UNKNOWN', host, `no agent named ${host} has registered`);
  }
}

export class AgentBadReplyError extends AgentError {
  constructor(host: string, readonly command: string, why: string) {
    super('AGENT_BAD_REPLY', host, `agent ${host}: malformed reply to ${command}: ${why}`);
  }
}

export class AgentAbortedError extends AgentError {
  constructor(host: string, readonly command: string, readonly migrationId?: string) {
    super('AGENT_ABORTED', host, `agent ${host}: ${command} abandoned by the caller${migrationId ? ` (migration ${migrationId})` : ''}`);
  }
}

/** Errors the agent itself raises while running a command (reported as remoteCode). */
export class AgentCommandError extends CoatError {}
