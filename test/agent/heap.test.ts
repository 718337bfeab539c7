/**
 * collectGarbage: a real full collection, had without --expose-gc on the command line.
 */
import t from 'tap';
import { setImmediate as tick } from 'node:timers/promises';
import { collectGarbage } from '../../src/agent/heap.js';

t.test('collectGarbage runs a full collection: an unreachable object is gone after it', async (t) => {
  t.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'this test runs without --expose-gc');
  let big: { payload: Uint8Array } | undefined = { payload: new Uint8Array(8 * 1024 * 1024) };
  const ref = new WeakRef(big);
  big = undefined;
  // A WeakRef's target is kept until the job that made it ends (ECMA-262 §9.10 KeepDuringJob).
  await tick();
  const ms = collectGarbage();
  t.type(ms, 'number');
  t.ok(ms! >= 0, `collected in ${ms!.toFixed(2)} ms`);
  t.equal(ref.deref(), undefined, 'the unreachable object was collected');
  t.type(collectGarbage(), 'number', 'and again (the gc function is kept)');
});
