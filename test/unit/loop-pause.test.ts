// LoopPause: the wait between two polls of the outbox relay and the projection follower.
import { expect } from 'chai';
import { LoopPause } from '../../shared/db/listen';

describe('LoopPause', () => {
  const settled = async (p: Promise<void>): Promise<boolean> => {
    let done = false;
    void p.then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    return done;
  };

  it('ends at once when the reason to cut it short came before it began (a stop or a notification during the batch before)', async () => {
    const pause = new LoopPause();
    expect(await settled(pause.for(60_000, () => true))).to.equal(true);
  });

  it('keeps waiting through a wake while there is no reason to cut it short, and ends on the wake after one', async () => {
    const pause = new LoopPause();
    let stopped = false;
    const waiting = pause.for(60_000, () => stopped);
    pause.wake();
    expect(await settled(waiting)).to.equal(false);
    stopped = true;
    pause.wake();
    expect(await settled(waiting)).to.equal(true);
  });

  it('ends by itself after its time', async () => {
    const pause = new LoopPause();
    const started = Date.now();
    await pause.for(50, () => false);
    expect(Date.now() - started).to.be.at.least(45);
  });
});
