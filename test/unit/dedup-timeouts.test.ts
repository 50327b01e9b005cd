// When the dedup store drops its Redis connection after commands timed out: dropping it fails
// every other command in flight on the shared client, so one slow reply must not do it.
import { expect } from 'chai';
import type Redis from 'ioredis';
import { RedisDedupStore } from '../../shared/dedup';
import { DependencyUnavailableError } from '../../shared/errors';

/** ioredis's error for a command that got no answer within commandTimeout. */
const TIMED_OUT = 'Command timed out';

/** The part of an ioredis client the store uses: each command answers, or times out a moment after it was sent. */
class FakeRedis {
  status = 'ready';
  disconnects = 0;
  answers = true;
  /** Claim commands sent. */
  sent = 0;

  defineCommand(): void {}

  disconnect(): void {
    this.disconnects++;
  }

  /** Every key is in progress elsewhere. Arguments: the number of keys, the keys, the token, the lease. */
  dedupClaim(keys: number): Promise<string[]> {
    this.sent++;
    if (this.answers) return Promise.resolve(Array.from({ length: keys }, () => 'i'));
    return new Promise((_, reject) => setTimeout(() => reject(new Error(TIMED_OUT)), 20));
  }
}

function storeOn(redis: FakeRedis): RedisDedupStore {
  return new RedisDedupStore(redis as unknown as Redis);
}

describe('dedup store: commands that time out', () => {
  it('keeps the connection when one slow reply times out the claims sent with it', async () => {
    const redis = new FakeRedis();
    const store = storeOn(redis);
    redis.answers = false;
    // Claims of one turn go as one command: three turns make three commands, all sent before the first timed out.
    const claims: Array<Promise<unknown>> = [];
    for (const id of ['a', 'b', 'c']) {
      claims.push(store.claim('c', id));
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(redis.sent).to.equal(3);
    const results = await Promise.allSettled(claims);
    expect(results.map((r) => r.status === 'rejected' && r.reason instanceof DependencyUnavailableError)).to.deep.equal([true, true, true]);
    expect(redis.disconnects).to.equal(0);
  });

  it('fails every claim of a batch when its one command times out, and keeps the connection', async () => {
    const redis = new FakeRedis();
    const store = storeOn(redis);
    redis.answers = false;
    const results = await Promise.allSettled([store.claim('c', 'a'), store.claim('c', 'b'), store.claim('c', 'c')]);
    expect(redis.sent).to.equal(1);
    expect(results.map((r) => r.status === 'rejected' && r.reason instanceof DependencyUnavailableError)).to.deep.equal([true, true, true]);
    expect(redis.disconnects).to.equal(0);
  });

  it('drops the connection when a command sent after one timed out times out too', async () => {
    const redis = new FakeRedis();
    const store = storeOn(redis);
    redis.answers = false;
    await expect(store.claim('c', 'a')).to.be.rejectedWith(DependencyUnavailableError, TIMED_OUT);
    expect(redis.disconnects).to.equal(0);
    await expect(store.claim('c', 'b')).to.be.rejectedWith(DependencyUnavailableError, TIMED_OUT);
    expect(redis.disconnects).to.equal(1);
  });

  it('counts from the last answer: a timeout after an answer is a first one again', async () => {
    const redis = new FakeRedis();
    const store = storeOn(redis);
    redis.answers = false;
    await expect(store.claim('c', 'a')).to.be.rejectedWith(DependencyUnavailableError);
    redis.answers = true;
    expect(await store.claim('c', 'b')).to.deep.equal({ status: 'in_progress' });
    redis.answers = false;
    await expect(store.claim('c', 'c')).to.be.rejectedWith(DependencyUnavailableError);
    expect(redis.disconnects).to.equal(0);
  });
});
