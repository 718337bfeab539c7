import t from 'tap';
import { CoatError, hasCode } from '../src/errors.js';

t.test('CoatError carries a stable code and serialises bigint fields', async (t) => {
  class DemoError extends CoatError {
    constructor(readonly dpid: bigint) {
      super('DEMO', 'demo failed');
    }
  }
  const err = new DemoError(0x1234n);
  t.equal(err.code, 'DEMO');
  t.equal(err.name, 'DemoError');
  t.ok(hasCode(err, 'DEMO'));
  t.notOk(hasCode(err, 'OTHER'));
  t.notOk(hasCode(new Error('x'), 'DEMO'));
  t.same(err.toJSON(), { name: 'DemoError', code: 'DEMO', message: 'demo failed', dpid: '4660' });
});
