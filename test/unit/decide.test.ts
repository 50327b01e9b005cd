import { expect } from 'chai';
import { DependencyUnavailableError, DuplicateInProgressError, PermanentError, PoisonMessageError, TransientError } from '../../shared/errors';
import { decide } from '../../shared/messaging/decide';
import { delayFor, type RetryPolicy } from '../../shared/messaging/topology';

const policy: RetryPolicy = { maxAttempts: 4, delaysMs: [100, 500, 2000] };

describe('the decision after a failed attempt', () => {
  it('retries a transient failure with the delay of its retry number, growing, the last repeating', () => {
    expect([1, 2, 3, 4, 5].map((n) => delayFor(policy, n))).to.deep.equal([100, 500, 2000, 2000, 2000]);
    expect(decide(new TransientError('x'), 1, policy)).to.deep.include({ action: 'retry', delayMs: 100, countsAsAttempt: true });
    expect(decide(new TransientError('x'), 3, policy)).to.deep.include({ action: 'retry', delayMs: 2000 });
  });

  it('treats an unknown error as transient', () => {
    expect(decide(new TypeError('undefined is not a function'), 1, policy)).to.deep.include({ action: 'retry', errorType: 'TypeError' });
  });

  it('dead-letters after the last attempt, saying so', () => {
    expect(decide(new TransientError('timeout'), 4, policy)).to.deep.equal({
      action: 'dead-letter',
      errorType: 'TransientError',
      errorMessage: 'gave up after 4 attempts: timeout',
    });
  });

  it('dead-letters permanent failures and poison at once', () => {
    expect(decide(new PermanentError('no'), 1, policy)).to.deep.include({ action: 'dead-letter', errorType: 'PermanentError' });
    expect(decide(new PoisonMessageError('bad_json', 'x'), 1, policy)).to.deep.include({ action: 'dead-letter', errorType: 'PoisonMessageError', errorMessage: 'bad_json: x' });
  });

  it('waits for a dependency without spending an attempt', () => {
    expect(decide(new DependencyUnavailableError('redis'), 4, policy)).to.deep.equal({ action: 'wait-for-dependency', dependency: 'redis' });
  });

  it('retries an in-progress duplicate later without counting it as an attempt', () => {
    expect(decide(new DuplicateInProgressError('busy'), 4, policy)).to.deep.include({ action: 'retry', countsAsAttempt: false, delayMs: 100 });
  });
});
