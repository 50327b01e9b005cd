// A consumer process killed before it acks, and a graceful stop on SIGTERM.
import { expect } from 'chai';
import { captureData, TestBus } from '../helpers/bus';
import { runTs, type Child } from '../helpers/processes';
import { eventually } from '../helpers/wait';

describe('a consumer process (killed and restarted)', () => {
  let bus: TestBus;
  const children: Child[] = [];
  beforeEach(async () => {
    bus = await TestBus.create();
  });
  afterEach(async () => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    await bus.cleanup();
  });

  function start(args: object): Child {
    const child = runTs('test/fixtures/consumer-process.ts', [JSON.stringify(args)]);
    children.push(child);
    return child;
  }

  it('handles a message once when its first consumer was SIGKILLed before acking', async () => {
    const { redis } = bus.dedup();
    const args = {
      queue: bus.queue('killed', { retry: { maxAttempts: 10, delaysMs: [200] } }),
      dedupPrefix: bus.dedupPrefix,
      leaseMs: 1_000,
      effectsKey: `${bus.dedupPrefix}:effects`,
      gateKey: `${bus.dedupPrefix}:gate`,
    };
    const first = start(args);
    await first.waitFor(/^ready$/);
    const sent = await bus.send('payments.capture', captureData('o-killed'));
    await first.waitFor(new RegExp(`^handling ${sent.eventId}$`));
    first.kill('SIGKILL');
    expect((await first.exited()).signal).to.equal('SIGKILL');

    await redis.set(args.gateKey, 'open');
    const second = start(args);
    await second.waitFor(new RegExp(`^handled ${sent.eventId}$`));
    await eventually(async () => (await bus.messageCount(args.queue.name)) === 0, { what: 'an empty queue' });
    expect(await redis.lrange(args.effectsKey, 0, -1)).to.deep.equal([sent.eventId]);
    // A later duplicate of the same message changes nothing.
    await bus.publisher.publishEnvelope(sent, { exchange: bus.exchange });
    await eventually(async () => (await bus.messageCount(args.queue.name)) === 0, { what: 'the duplicate to be acked' });
    expect(await redis.lrange(args.effectsKey, 0, -1)).to.deep.equal([sent.eventId]);
  });

  it('on SIGTERM finishes the message in flight, then exits 0', async () => {
    const { redis } = bus.dedup();
    const args = {
      queue: bus.queue('sigterm'),
      dedupPrefix: bus.dedupPrefix,
      leaseMs: 30_000,
      effectsKey: `${bus.dedupPrefix}:effects`,
      gateKey: `${bus.dedupPrefix}:gate`,
    };
    const child = start(args);
    await child.waitFor(/^ready$/);
    const sent = await bus.send('payments.capture', captureData('o-sigterm'));
    await child.waitFor(new RegExp(`^handling ${sent.eventId}$`));
    child.kill('SIGTERM');
    await redis.set(args.gateKey, 'open');
    expect(await child.exited()).to.deep.equal({ code: 0, signal: null });
    expect(await redis.lrange(args.effectsKey, 0, -1)).to.deep.equal([sent.eventId]);
    expect(await bus.messageCount(args.queue.name)).to.equal(0);
  });
});
