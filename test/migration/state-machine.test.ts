import t from 'tap';
import fc from 'fast-check';
import {
  MIGRATION_STATES,
  ROLLBACK_STEPS,
  ROLL_FORWARD_STEPS,
  STEP_NAMES,
  afterResumeRequest,
  canRollBack,
  isLegalTransition,
  isTerminal,
  nextStates,
  transition,
  undoPlan,
  type MigrationState,
} from '../../src/migration/state-machine.js';
import { MigrationError } from '../../src/migration/errors.js';

t.test('the happy path of the timeline is legal, state by state', async (t) => {
  const cold: MigrationState[] = ['created', 'plan', 'prepare', 'hold', 'dump', 'restore', 'resume', 'replay', 'release', 'verify', 'done'];
  const precopy: MigrationState[] = ['created', 'plan', 'prepare', 'precopy', 'precopy', 'precopy', 'hold', 'dump'];
  for (const path of [cold, precopy]) {
    let s = path[0]!;
    for (const next of path.slice(1)) s = transition(s, next);
    t.equal(s, path[path.length - 1]);
  }
});

t.test('skipping a step, going back, or leaving a terminal state is a typed error', async (t) => {
  const bad: [MigrationState, MigrationState][] = [
    ['created', 'hold'],
    ['plan', 'dump'],
    ['hold', 'switch'], // coat: the hold bundle is the switch
    ['dump', 'stream'], // coat: the dump step streams the image itself
    ['restore', 'switch'], // coat switched before the freeze
    ['prepare', 'dump'], // coat never freezes without the hold
    ['switch', 'replay'],
    ['dump', 'hold'],
    ['done', 'plan'],
    ['rolled-back', 'rolling-back'],
    ['failed', 'rolling-back'],
    ['replay', 'rolling-back'],
    ['rolling-back', 'done'],
  ];
  for (const [from, to] of bad) {
    t.notOk(isLegalTransition(from, to), `${from} -> ${to}`);
    const err = t.throws(() => transition(from, to, 'm-1')) as unknown as MigrationError;
    t.equal(err.code, 'MIGRATION_ILLEGAL_TRANSITION');
    t.match(err.message, new RegExp(`${from} -> ${to}`));
    t.equal(err.details.migrationId, 'm-1');
  }
});

t.test('rollback is possible exactly before resume; roll-forward steps can only fail', async (t) => {
  t.same([...ROLLBACK_STEPS, ...ROLL_FORWARD_STEPS], [...STEP_NAMES], 'the two sets partition the steps, in order');
  for (const s of ROLLBACK_STEPS) {
    t.ok(canRollBack(s), s);
    t.ok(nextStates(s).includes('rolling-back'));
    // restore may fail after coat's resume request left: the request's fate picks the way out.
    t.equal(nextStates(s).includes('failed'), s === 'restore', `${s} ${s === 'restore' ? 'may also' : 'only'} fail through a rollback`);
  }
  for (const s of ROLL_FORWARD_STEPS) {
    t.notOk(canRollBack(s), s);
    t.ok(nextStates(s).includes('failed'));
    t.equal(nextStates(s).includes('rolling-back'), s === 'resume', `${s}: rollback only when the destination provably did not resume`);
  }
  for (const s of ['done', 'rolled-back', 'failed'] as const) {
    t.ok(isTerminal(s));
    t.same(nextStates(s), []);
  }
  t.same(nextStates('rolling-back'), ['rolled-back', 'failed']);
});

t.test('after the resume request only a destination that provably did not resume rolls back', async (t) => {
  for (const s of STEP_NAMES) t.equal(afterResumeRequest(s, 'not-sent'), canRollBack(s) ? 'roll-back' : 'roll-forward', `${s}, no request`);
  for (const s of ['restore', 'resume'] as const) {
    t.equal(afterResumeRequest(s, 'not-resumed'), 'roll-back', `${s}, not resumed`);
    t.equal(afterResumeRequest(s, 'unknown'), 'roll-forward', `${s}, unknown`);
    t.equal(afterResumeRequest(s, 'resumed'), 'roll-forward', `${s}, resumed`);
  }
  for (const s of ['replay', 'release', 'verify'] as const) t.equal(afterResumeRequest(s, 'not-resumed'), 'roll-forward', `${s}: it resumed before`);
});

t.test('property: every random walk along legal edges ends terminal or continues; illegal edges always throw', async () => {
  fc.assert(
    fc.property(fc.array(fc.nat(), { maxLength: 40 }), (choices) => {
      let s: MigrationState = 'created';
      for (const c of choices) {
        const next = nextStates(s);
        if (next.length === 0) break;
        s = transition(s, next[c % next.length]!);
      }
      return MIGRATION_STATES.includes(s);
    }),
  );
  fc.assert(
    fc.property(fc.constantFrom(...MIGRATION_STATES), fc.constantFrom(...MIGRATION_STATES), (a, b) => {
      if (isLegalTransition(a, b)) return transition(a, b) === b;
      try {
        transition(a, b);
        return false;
      } catch (e) {
        return e instanceof MigrationError && e.code === 'MIGRATION_ILLEGAL_TRANSITION';
      }
    }),
  );
});

t.test('undoPlan: what rollback does depends on what started, in a fixed safe order', async (t) => {
  t.same(undoPlan([]), []);
  t.same(undoPlan(['plan']), []);
  t.same(undoPlan(['plan', 'prepare']), ['abort-destination', 'thaw-source', 'unstage-destination', 'clear-destination']);
  t.same(undoPlan(['plan', 'prepare', 'precopy', 'hold']), ['switch-back', 'abort-destination', 'thaw-source', 'replay-to-source', 'remove-hold', 'unstage-destination', 'clear-destination'], "the hold's bundle flipped the flows too");
  t.same(undoPlan(['plan', 'prepare', 'dump', 'stream', 'restore']), ['abort-destination', 'thaw-source', 'unstage-destination', 'clear-destination'], 'coat-baseline before its switch: no flows to flip back');
  t.same(undoPlan(['plan', 'prepare', 'hold', 'dump', 'restore']), [
    'switch-back',
    'abort-destination',
    'thaw-source',
    'replay-to-source',
    'remove-hold',
    'unstage-destination',
    'clear-destination',
  ]);
  // Order matters: flows point back at the source before its packets are replayed, the source is
  // thawed before the replay reaches it, and the hold goes only after the replay.
  const all = undoPlan(STEP_NAMES);
  const at = (a: string): number => all.indexOf(a as never);
  t.ok(at('switch-back') < at('replay-to-source'));
  t.ok(at('abort-destination') < at('thaw-source'), 'never two live copies');
  t.ok(at('thaw-source') < at('replay-to-source'));
  t.ok(at('replay-to-source') < at('remove-hold'));
});

t.test('after a crash, hold implies the unsynced window steps up to restore', async (t) => {
  const { assumeStartedAfterCrash, UNSYNCED_WINDOW_STEPS } = await import('../../src/migration/state-machine.js');
  t.same(assumeStartedAfterCrash(['plan', 'prepare']), ['plan', 'prepare']);
  t.same(assumeStartedAfterCrash(['plan', 'prepare', 'hold']), ['plan', 'prepare', 'hold', 'dump', 'stream', 'restore', 'switch']);
  t.notOk(UNSYNCED_WINDOW_STEPS.includes('resume'), 'the point of no return is always synced');
  t.notOk(UNSYNCED_WINDOW_STEPS.includes('hold'), 'so is the start of the window');
});

t.test('coat-baseline: no hold and no replay, and only in that mode', async (t) => {
  const path: MigrationState[] = ['created', 'plan', 'prepare', 'dump', 'stream', 'restore', 'switch', 'resume', 'release', 'verify', 'done'];
  let s = path[0]!;
  for (const next of path.slice(1)) s = transition(s, next, 'b', 'coat-baseline');
  t.equal(s, 'done');
  t.throws(() => transition('prepare', 'dump', 'c'), { code: 'MIGRATION_ILLEGAL_TRANSITION' }, 'coat never freezes without the hold');
  t.throws(() => transition('resume', 'release', 'c'), { code: 'MIGRATION_ILLEGAL_TRANSITION' }, 'coat never releases before the replay');
  t.throws(() => transition('prepare', 'hold', 'b', 'coat-baseline'), { message: /in coat-baseline/ });
  t.ok(isLegalTransition('dump', 'rolling-back', 'coat-baseline'));
});
