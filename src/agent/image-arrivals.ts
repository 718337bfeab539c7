/**
 * Waits, at a destination agent, for an announced image step to land in its receiver: coat's
 * restore starts the moment the final image is verified and in place ("restore on arrival",
 * docs/migration.md), not one controller round trip after the source's agent reported the stream.
 *
 * An image has landed once its step directory exists under the migration's image directory: the
 * receiver renames it there only after every chunk, file size and the image sha256 were checked
 * (transfer/receiver.ts), so a half-received image is never seen. A stream of that step the
 * receiver fails (corrupt, truncated, silent) fails the wait with the receiver's own TransferError;
 * the caller's signal and `cancel` (an abort or forget of the migration) end it too.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageReceiver, ImageReceiverEvents } from '../transfer/receiver.js';
import { AgentCommandError } from './errors.js';

interface Waiter {
  migrationId: string;
  stepName: string;
  fail(e: Error): void;
}

export class ImageArrivals {
  private readonly waiters = new Set<Waiter>();

  constructor(
    private readonly receiver: ImageReceiver,
    private readonly imageDir: (migrationId: string) => string,
  ) {}

  /** Resolves when `stepName` of `migrationId` is in place (at once if it already is). */
  wait(migrationId: string, stepName: string, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onReceived = (...[r]: ImageReceiverEvents['received']) => {
        if (r.migrationId === migrationId && r.stepName === stepName && r.kind === 'image') done();
      };
      const onFailed = (...[err, ctx]: ImageReceiverEvents['failed']) => {
        // A refused stream (wrong token, not announced) is a stranger's, not the announced
        // sender's: the image may still come. Any other failure of this step's stream is final
        // (the sender does not retry a stream the receiver failed).
        if (ctx.migrationId === migrationId && ctx.stepName === stepName && err.code !== 'TRANSFER_REFUSED') done(err);
      };
      const onAbort = () => done(new AgentCommandError('AGENT_DEADLINE', `image ${stepName} of migration ${migrationId} did not arrive before the command's deadline`));
      const waiter: Waiter = { migrationId, stepName, fail: (e) => done(e) };
      const done = (err?: Error) => {
        this.receiver.off('received', onReceived);
        this.receiver.off('failed', onFailed);
        signal.removeEventListener('abort', onAbort);
        this.waiters.delete(waiter);
        if (err) reject(err);
        else resolve();
      };
      // Listen first, then look: an image landing between the two is seen either way.
      this.receiver.on('received', onReceived);
      this.receiver.on('failed', onFailed);
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
      if (signal.aborted) onAbort();
      else if (existsSync(join(this.imageDir(migrationId), stepName))) done();
    });
  }

  /** Ends every wait of `migrationId` with `reason` (the migration is aborted or forgotten). */
  cancel(migrationId: string, reason: Error): number {
    let n = 0;
    for (const w of [...this.waiters]) {
      if (w.migrationId !== migrationId) continue;
      w.fail(reason);
      n++;
    }
    return n;
  }
}
