// How driver errors are read: PostgreSQL away (wait for it), a conflict (retry), anything else
// as it is. Pure: errors built as the driver and node-pg-migrate give them.
import { expect } from 'chai';
import { classifyDbError } from '../../shared/db';
import { DependencyUnavailableError, TransientError } from '../../shared/errors';

const withCode = (message: string, code: string): Error => Object.assign(new Error(message), { code });

describe('classifyDbError', () => {
  it('reads PostgreSQL away from the code, the driver\'s words, or the server\'s words that node-pg-migrate keeps as text only', () => {
    for (const err of [
      withCode('terminating connection due to administrator command', '57P01'),
      withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'),
      new Error('Connection terminated unexpectedly'),
      new Error('Unable to ensure migrations table: error: terminating connection due to administrator command\n    at Parser.parseErrorMessage'),
      new Error('Unable to ensure migrations table: error: the database system is shutting down'),
    ]) {
      const classified = classifyDbError(err);
      expect(classified, err.message).to.be.instanceOf(DependencyUnavailableError);
      expect((classified as DependencyUnavailableError).dependency).to.equal('postgres');
    }
  });

  it('leaves another dependency\'s unavailability, and errors that only mention a refused connection, as they are', () => {
    const redis = new DependencyUnavailableError('redis', new Error('connect ECONNREFUSED 127.0.0.1:6379'));
    expect(classifyDbError(redis)).to.equal(redis);
    const provider = new Error('payment provider: connect ECONNREFUSED 10.0.0.7:443');
    expect(classifyDbError(provider)).to.equal(provider);
    const notNull = withCode('null value in column "sku" violates not-null constraint', '23502');
    expect(classifyDbError(notNull)).to.equal(notNull);
  });

  it('reads a serialization failure or a deadlock as transient', () => {
    expect(classifyDbError(withCode('could not serialize access', '40001'))).to.be.instanceOf(TransientError);
    expect(classifyDbError(withCode('deadlock detected', '40P01'))).to.be.instanceOf(TransientError);
  });
});
