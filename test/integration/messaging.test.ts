// The messaging core against the real RabbitMQ and Redis: publish with confirms, the
// consumer loop's ack / retry / dead-letter decisions, and dedup.
import { expect } from 'chai';
import type { ConfirmChannel, GetMessage } from 'amqplib';
import { LeaseLostError, PermanentError, PublishNackedError, TransientError, UnserializableError } from '../../shared/errors';
import { metricValue } from '../helpers/metrics';
import type { Envelope } from '../../shared/events';
import { HEADERS } from '../../shared/messaging/headers';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { dlqName, inNamespace, queueNames, waitQueueName } from '../../shared/messaging/topology';
import { captureData, TestBus } from '../helpers/bus';
import { uniqueName } from '../helpers/names';
import { eventually, holds } from '../helpers/wait';
import { setTimeout as sleep } from 'node:timers/promises';
import { generatedNamespace } from '../../scripts/bus';

function header(m: GetMessage, name: string): unknown {
  const v: unknown = m.properties.headers?.[name];
  return Buffer.isBuffer(v) ? v.toString() : v;
}

/**
 * The bus namespace of this file's publishers (a test fleet's shape): a handler's results go to
 * its catalog exchanges, never to those a fleet of the default namespace on this broker reads.
 */
const NAMESPACE = generatedNamespace('test-fleet', 'msg');
const PAYMENTS = inNamespace(NAMESPACE, 'payments');

describe('messaging core (RabbitMQ + Redis)', () => {
  let bus: TestBus;
  beforeEach(async () => {
    bus = await TestBus.create({ namespace: NAMESPACE });
    await bus.admin.assertExchange(PAYMENTS, 'topic', { durable: false, autoDelete: false });
  });
  afterEach(async () => {
    await bus.admin.deleteExchange(PAYMENTS);
    await bus.cleanup();
  });

  describe('publisher', () => {
    it('resolves publish only once the broker has confirmed: the message is already in the queue', async () => {
      const queue = uniqueName('test.confirm');
      await bus.admin.assertQueue(queue, { arguments: { 'x-queue-type': 'quorum' } });
      try {
        const envelope = newEnvelope('payments.capture', captureData('o-confirm'), { aggregateId: 'o-confirm' });
        await bus.publisher.publishEnvelope(envelope, { exchange: '', routingKey: queue });
        expect(bus.publisher.unconfirmed).to.equal(0);
        expect(await bus.messageCount(queue)).to.equal(1); // no waiting: the confirm means it is enqueued
        const got = await bus.admin.get(queue, { noAck: true });
        expect(got && JSON.parse(got.content.toString())).to.deep.equal(envelope);
      } finally {
        await bus.admin.deleteQueue(queue);
      }
    });

    it('makes a body given as a function only once its slot is free', async () => {
      const small = await TestBus.create({ window: 1 });
      try {
        const queue = uniqueName('test.lazy');
        await small.admin.assertQueue(queue, { arguments: { 'x-queue-type': 'quorum' } });
        // The first message's confirm is held back from the publisher: its slot, the only one, stays taken.
        const channel = (small.publisher as unknown as { channel: ConfirmChannel }).channel;
        const publish = channel.publish.bind(channel);
        let confirmFirst: (() => void) | undefined;
        channel.publish = (exchange, routingKey, content, options, callback) => {
          channel.publish = publish;
          return publish(exchange, routingKey, content, options, (err, ok) => (confirmFirst = () => callback?.(err, ok)));
        };
        const first = small.publisher.publish({ exchange: '', routingKey: queue, content: Buffer.from('{"n":1}'), options: {} });
        let made = false;
        const second = small.publisher.publish({ exchange: '', routingKey: queue, content: () => ((made = true), Buffer.from('{"n":2}')), options: {} });
        await eventually(() => confirmFirst !== undefined, { what: "the broker's confirm of the first" });
        expect(made, 'the second body was made while the only slot was taken').to.equal(false);
        confirmFirst!();
        await Promise.all([first, second]);
        expect(made).to.equal(true);
        expect(await small.messageCount(queue)).to.equal(2);
        await small.admin.deleteQueue(queue);
      } finally {
        await small.cleanup();
      }
    });

    it('counts a body that cannot be made as unserializable, sends nothing and gives the slot back', async () => {
      // One slot: the next publish goes out only if the failed one gave it back.
      const small = await TestBus.create({ window: 1 });
      const queue = uniqueName('test.unserializable');
      await small.admin.assertQueue(queue, { arguments: { 'x-queue-type': 'quorum' } });
      try {
        const counted = async (): Promise<number> => (await metricValue('messages_published_total', { exchange: '(default)', outcome: 'unserializable' })) ?? 0;
        const before = await counted();
        const failing = small.publisher.publish({ exchange: '', routingKey: queue, content: () => JSON.parse('{') as Buffer, options: {} });
        await expect(failing).to.be.rejectedWith(UnserializableError, /cannot serialise the message for \/test\.unserializable/);
        expect(await counted()).to.equal(before + 1);
        expect(small.publisher.unconfirmed).to.equal(0);
        await small.publisher.publish({ exchange: '', routingKey: queue, content: Buffer.from('{}'), options: {} });
        await eventually(async () => (await small.messageCount(queue)) === 1, { what: 'the next message, alone in the queue' });
        await small.admin.deleteQueue(queue);
      } finally {
        await small.cleanup();
      }
    });

    it('rejects publish when the broker nacks the message', async () => {
      const queue = uniqueName('test.full');
      // A full queue with reject-publish makes the broker nack (classic queues apply the limit exactly).
      await bus.admin.assertQueue(queue, { arguments: { 'x-queue-type': 'classic', 'x-max-length': 1, 'x-overflow': 'reject-publish' } });
      try {
        await bus.publisher.publish({ exchange: '', routingKey: queue, content: Buffer.from('{}'), options: {} });
        const second = bus.publisher.publish({ exchange: '', routingKey: queue, content: Buffer.from('{}'), options: {} });
        await expect(second).to.be.rejectedWith(PublishNackedError);
        expect(await bus.messageCount(queue)).to.equal(1);
      } finally {
        await bus.admin.deleteQueue(queue);
      }
    });

    it('never has more unconfirmed messages than its window', async () => {
      const small = await TestBus.create({ window: 4 });
      try {
        const queue = uniqueName('test.window');
        await small.admin.assertQueue(queue, { arguments: { 'x-queue-type': 'quorum' } });
        let peak = 0;
        const sampler = setInterval(() => (peak = Math.max(peak, small.publisher.unconfirmed)), 0);
        await Promise.all(
          Array.from({ length: 200 }, () => small.publisher.publish({ exchange: '', routingKey: queue, content: Buffer.alloc(1024), options: {} })),
        );
        clearInterval(sampler);
        expect(peak).to.be.within(1, 4);
        expect(await small.messageCount(queue)).to.equal(200);
        await small.admin.deleteQueue(queue);
      } finally {
        await small.cleanup();
      }
    });

    it('keeps the slot of a publish that timed out until the broker answers it: the window bounds what is really unconfirmed', async () => {
      // A deadline shorter than a confirm: most callers give up while their message is on the wire.
      const small = await TestBus.create({ window: 4, timeoutMs: 2 });
      try {
        const queue = uniqueName('test.window-timeout');
        await small.admin.assertQueue(queue, { arguments: { 'x-queue-type': 'quorum' } });
        // The confirm callbacks amqplib still holds: what the broker has not answered yet.
        const onWire = (): number => (small.publisher as unknown as { channel?: { unconfirmed: unknown[] } }).channel?.unconfirmed.filter(Boolean).length ?? 0;
        let peak = 0;
        const sampler = setInterval(() => (peak = Math.max(peak, onWire())), 0);
        const results = await Promise.allSettled(
          Array.from({ length: 300 }, () => small.publisher.publish({ exchange: '', routingKey: queue, content: Buffer.alloc(1024), options: {} })),
        );
        await eventually(() => onWire() === 0, { what: 'every confirm' });
        clearInterval(sampler);
        expect(results.filter((r) => r.status === 'rejected').length, 'no publish timed out: the test proved nothing').to.be.greaterThan(0);
        expect(peak).to.be.within(1, 4);
        await small.admin.deleteQueue(queue);
      } finally {
        await small.cleanup();
      }
    });

    it('refuses to publish a message that fails its schema, unless raw', async () => {
      const bad = { ...newEnvelope('payments.capture', captureData('o1'), { aggregateId: 'o1' }), data: { orderId: 'o1' } };
      await expect(bus.publisher.publishEnvelope(bad, { exchange: bus.exchange })).to.be.rejectedWith(PermanentError);
      await bus.publisher.publishEnvelope(bad, { exchange: bus.exchange, raw: true });
    });
  });

  describe('dedup store', () => {
    it('completes, extends and releases a claim only with the token that owns it', async () => {
      const { store, redis } = bus.dedup({ leaseMs: 5_000 });
      await eventually(() => redis.status === 'ready', { what: 'Redis' });
      const id = uniqueName('m');
      const key = `${bus.dedupPrefix}:c:${id}`;
      const claim = await store.claim('c', id);
      if (claim.status !== 'claimed') throw new Error(`expected a claim, got ${claim.status}`);
      expect(await store.claim('c', id)).to.deep.equal({ status: 'in_progress' });
      expect(await store.extend('c', id, 'not-the-token')).to.equal(false);
      await expect(store.complete('c', id, 'not-the-token', '[]')).to.be.rejectedWith(LeaseLostError);
      await expect(store.release('c', id, 'not-the-token')).to.be.rejectedWith(LeaseLostError);
      expect(await redis.get(key)).to.equal(`p:${claim.token}`);
      expect(await store.extend('c', id, claim.token)).to.equal(true);
      await store.complete('c', id, claim.token, '[]');
      expect(await store.claim('c', id)).to.deep.equal({ status: 'done', outcome: '[]' });
      // Done is final: neither the old owner nor anyone else can overwrite or free it.
      await expect(store.release('c', id, claim.token)).to.be.rejectedWith(LeaseLostError);
      expect(await redis.get(key)).to.equal('d:[]');
    });

    it('resolves a complete that finds the message done already, changing nothing: a retry after a timed-out first attempt, or a delivery that outlived its lease', async () => {
      const { store, redis } = bus.dedup({ leaseMs: 5_000 });
      await eventually(() => redis.status === 'ready', { what: 'Redis' });
      const id = uniqueName('m');
      const key = `${bus.dedupPrefix}:c:${id}`;
      const claim = await store.claim('c', id);
      if (claim.status !== 'claimed') throw new Error(`expected a claim, got ${claim.status}`);
      await store.complete('c', id, claim.token, '[]');
      const ttl = await redis.pttl(key);
      // The owner's retry (its first attempt's answer was lost): the message is done.
      await store.complete('c', id, claim.token, '["again"]');
      // Another token: a delivery whose lease was taken over by the one that marked it.
      await store.complete('c', id, 'not-the-token', '["other"]');
      expect(await redis.get(key)).to.equal('d:[]');
      expect(await redis.pttl(key)).to.be.at.most(ttl);
      // Not done and not owned is still lost: a missing claim here, one another token holds above.
      const gone = uniqueName('m');
      await expect(store.complete('c', gone, claim.token, '[]')).to.be.rejectedWith(LeaseLostError);
      expect(await redis.exists(`${bus.dedupPrefix}:c:${gone}`)).to.equal(0);
    });

    it('does not complete a claim whose lease expired', async () => {
      const { store, redis } = bus.dedup({ leaseMs: 100 });
      await eventually(() => redis.status === 'ready', { what: 'Redis' });
      const id = uniqueName('m');
      const claim = await store.claim('c', id);
      if (claim.status !== 'claimed') throw new Error(`expected a claim, got ${claim.status}`);
      await eventually(async () => (await redis.exists(`${bus.dedupPrefix}:c:${id}`)) === 0, { what: 'the lease to expire' });
      expect(await store.extend('c', id, claim.token)).to.equal(false);
      await expect(store.complete('c', id, claim.token, '[]')).to.be.rejectedWith(LeaseLostError);
      expect((await store.claim('c', id)).status).to.equal('claimed');
    });

    it('decides each key of a batch as it would alone: the claims and completions of one turn go as one script call each', async () => {
      const { store, redis } = bus.dedup({ leaseMs: 5_000 });
      await eventually(() => redis.status === 'ready', { what: 'Redis' });
      const [fresh, twice, held, done] = ['fresh', 'twice', 'held', 'done'].map((n) => uniqueName(n)) as [string, string, string, string];
      const heldClaim = await store.claim('c', held);
      const doneClaim = await store.claim('c', done);
      if (heldClaim.status !== 'claimed' || doneClaim.status !== 'claimed') throw new Error('expected claims');
      await store.complete('c', done, doneClaim.token, '["out"]');
      // monitor() opens a client of its own, closed below: left open, it would reconnect for the
      // rest of the run, unheard (ioredis prints its errors when the chaos test restarts Redis).
      const monitor = await redis.monitor();
      const scripts: string[] = [];
      try {
        monitor.on('monitor', (_time: string, args: string[]) => {
          if (args[0]?.toLowerCase() === 'evalsha' && args.some((a) => a.includes(bus.dedupPrefix))) scripts.push(args.join(' '));
        });
        const claims = await Promise.all([fresh, twice, twice, held, done].map((id) => store.claim('c', id)));
        expect(claims.map((c) => c.status)).to.deep.equal(['claimed', 'claimed', 'in_progress', 'in_progress', 'done']);
        expect(claims[4]).to.deep.equal({ status: 'done', outcome: '["out"]' });
        const [freshClaim, twiceClaim] = claims as unknown as [{ token: string }, { token: string }];
        expect(freshClaim.token).to.not.equal(twiceClaim.token);
        const completions = await Promise.allSettled([
          store.complete('c', fresh, freshClaim.token, '["a"]'),
          store.complete('c', twice, freshClaim.token, '["stolen"]'), // another claim's token
          store.complete('c', done, 'any-token', '["again"]'),
        ]);
        expect(completions.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
        expect((completions[1] as PromiseRejectedResult).reason).to.be.instanceOf(LeaseLostError);
        expect(await redis.get(`${bus.dedupPrefix}:c:${fresh}`)).to.equal('d:["a"]');
        expect(await redis.get(`${bus.dedupPrefix}:c:${twice}`)).to.equal(`p:${twiceClaim.token}`);
        expect(await redis.get(`${bus.dedupPrefix}:c:${done}`)).to.equal('d:["out"]');
        await eventually(() => scripts.length === 2, { what: 'the two script calls in MONITOR' });
      } finally {
        monitor.disconnect();
      }
      expect(scripts[0]).to.include(fresh).and.include(held).and.include(done);
      expect(scripts[1]).to.include(fresh).and.include(twice).and.include(done);
    });

    it('splits a turn of more than 256 claims into calls of 256, each claim answered with its own token, and stores any outcome as it was given', async () => {
      const { store, redis } = bus.dedup({ leaseMs: 5_000 });
      await eventually(() => redis.status === 'ready', { what: 'Redis' });
      const ids = Array.from({ length: 300 }, (_, i) => uniqueName(`many${i}`));
      const claims = await Promise.all(ids.map((id) => store.claim('c', id)));
      const tokens = claims.map((c) => (c.status === 'claimed' ? c.token : c.status));
      expect(new Set(tokens).size).to.equal(300);
      expect(new Set(tokens.map((t) => t.split(':')[0])).size).to.equal(2); // two calls, each with its token
      for (const [i, id] of ids.entries()) expect(await redis.get(`${bus.dedupPrefix}:c:${id}`)).to.equal(`p:${tokens[i]}`);
      const outcomes = ['', 'd:x', 'i', 'c', 'line\nbreak', 'ünïcödé ✓', '["x"]'];
      await Promise.all(ids.map((id, i) => store.complete('c', id, tokens[i] as string, outcomes[i % outcomes.length] as string)));
      const again = await Promise.all(ids.map((id) => store.claim('c', id)));
      expect(again.map((c) => (c.status === 'done' ? c.outcome : c.status))).to.deep.equal(ids.map((_, i) => outcomes[i % outcomes.length]));
    });
  });

  describe('consumer loop', () => {
    it('consumes a published event once, with its envelope intact', async () => {
      const seen: Envelope[] = [];
      const spec = bus.queue('once');
      await bus.consumer(spec, { 'payments.capture': async (e) => void seen.push(e) });
      const sent = await bus.send('payments.capture', captureData('o-1'), {
        aggregateId: 'o-1',
        aggregateVersion: 3,
        correlationId: 'corr-1',
        causationId: 'cause-1',
        replyTo: { workflowId: 'order-o-1', activityId: '2' },
      });
      await eventually(() => seen.length === 1, { what: 'the event to be consumed' });
      expect(seen[0]).to.deep.equal(sent);
      await eventually(async () => (await bus.messageCount(spec.name)) === 0, { what: 'the queue to be empty (acked)' });
      expect(seen).to.have.length(1);
    });

    it('handles the same messageId delivered twice only once, and re-emits the stored outcome', async () => {
      const effects: string[] = [];
      const results: Envelope[] = [];
      const commands = bus.queue('dup-commands', { bind: [[bus.exchange, 'payments.capture']] });
      const events = bus.queue('dup-events', { bind: [[bus.exchange, 'payment.captured']] });
      // No dedup here: the re-emitted result carries the same eventId, which a deduplicating consumer would skip.
      await bus.consumer(events, { 'payment.captured': async (e) => void results.push(e) }, { dedup: null });
      await bus.consumer(commands, {
        'payments.capture': async (cmd) => {
          effects.push(cmd.eventId);
          const data = cmd.data as { orderId: string; amount: number; currency: string };
          const event = newEnvelope('payment.captured', { orderId: data.orderId, paymentId: 'pay-1', amount: data.amount, currency: data.currency }, {
            aggregateId: data.orderId,
            causationId: cmd.eventId,
            correlationId: cmd.correlationId,
          });
          return { publish: [event] };
        },
      });
      // Results go to the catalog's exchange ("payments" of the namespace); route them to this test's exchange instead.
      await bus.admin.bindExchange(bus.exchange, PAYMENTS, 'payment.captured');
      try {
        const cmd = await bus.send('payments.capture', captureData('o-dup'), { aggregateId: 'o-dup' });
        await eventually(() => results.length === 1, { what: 'the first result' });
        await bus.publisher.publishEnvelope(cmd, { exchange: bus.exchange });
        await eventually(() => results.length === 2, { what: 'the re-emitted result' });
        expect(effects).to.deep.equal([cmd.eventId]);
        expect(results[1]).to.deep.equal(results[0]);
        expect(results[0]?.causationId).to.equal(cmd.eventId);
      } finally {
        await bus.admin.unbindExchange(bus.exchange, PAYMENTS, 'payment.captured');
      }
    });

    it('does not lose a message whose DLQ was deleted: the copy comes back unroutable, the queue is declared again, and the message reaches its DLQ', async () => {
      const spec = bus.queue('nodlq');
      await bus.consumer(spec, { 'payments.capture': async () => Promise.reject(new PermanentError('never')) });
      await bus.admin.deleteQueue(dlqName(spec.name));
      await bus.send('payments.capture', captureData('o-nodlq'));
      // Asked on a channel of its own: asking about a missing queue closes the channel.
      const countIfDeclared = async (queue: string): Promise<number> => {
        const channel = await bus.connection.channelModel!.createChannel();
        channel.on('error', () => undefined);
        try {
          return (await channel.checkQueue(queue)).messageCount;
        } catch {
          return 0;
        } finally {
          await channel.close().catch(() => undefined);
        }
      };
      await eventually(async () => (await countIfDeclared(dlqName(spec.name))) === 1, { what: 'the message in the re-declared DLQ' });
    });

    it('does not lose a message whose wait queue was deleted: it is retried once the queue is declared again', async () => {
      const spec = bus.queue('nowait', { retry: { maxAttempts: 5, delaysMs: [100] } });
      let calls = 0;
      const handled: string[] = [];
      await bus.consumer(spec, {
        'payments.capture': async (e) => {
          if (++calls === 1) throw new TransientError('not yet');
          handled.push(e.eventId);
        },
      });
      await bus.admin.deleteQueue(waitQueueName(spec.name, 100));
      const sent = await bus.send('payments.capture', captureData('o-nowait'));
      await eventually(() => handled.length === 1, { what: 'the retried message' });
      expect(handled).to.deep.equal([sent.eventId]);
    });

    it('redelivers a message whose handler crashed midway, and dedup does not hide it', async () => {
      const effects: string[] = [];
      let calls = 0;
      const spec = bus.queue('crash', { retry: { maxAttempts: 3, delaysMs: [100] } });
      await bus.consumer(spec, {
        'payments.capture': async (e) => {
          calls++;
          if (calls === 1) throw new Error('crashed halfway through');
          effects.push(e.eventId);
        },
      });
      const sent = await bus.send('payments.capture', captureData('o-crash'));
      await eventually(() => effects.length === 1, { what: 'the retried message to be handled' });
      expect(effects).to.deep.equal([sent.eventId]);
      expect(calls).to.equal(2);
    });

    it('retries a transient failure with growing delays, then succeeds', async () => {
      const attempts: number[] = [];
      const spec = bus.queue('transient', { retry: { maxAttempts: 5, delaysMs: [200, 600, 1200] } });
      await bus.consumer(spec, {
        'payments.capture': async (_e, ctx) => {
          attempts.push(Date.now());
          if (ctx.attempt < 4) throw new TransientError(`not yet (attempt ${ctx.attempt})`);
        },
      });
      await bus.send('payments.capture', captureData('o-transient'));
      await eventually(() => attempts.length === 4, { what: 'four attempts', timeoutMs: 10_000 });
      const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] as number));
      expect(gaps[0]).to.be.at.least(190);
      expect(gaps[1]).to.be.at.least(590);
      expect(gaps[2]).to.be.at.least(1190);
      expect(gaps[0]).to.be.below(gaps[1] as number);
      expect(gaps[1]).to.be.below(gaps[2] as number);
      expect(await bus.messageCount(dlqName(spec.name))).to.equal(0);
    });

    it('dead-letters a message that keeps failing after the configured attempts, with its reason', async () => {
      let calls = 0;
      const spec = bus.queue('exhaust', { retry: { maxAttempts: 3, delaysMs: [50, 100] } });
      await bus.consumer(spec, {
        'payments.capture': async () => {
          calls++;
          throw new TransientError('provider timeout');
        },
      });
      const sent = await bus.send('payments.capture', captureData('o-exhaust'));
      const dlq = dlqName(spec.name);
      await eventually(async () => (await bus.messageCount(dlq)) === 1, { what: 'the message in the DLQ' });
      const [dead] = await bus.drain(dlq);
      expect(calls).to.equal(3);
      expect(dead?.properties.messageId).to.equal(sent.eventId);
      expect(header(dead as GetMessage, HEADERS.errorType)).to.equal('TransientError');
      expect(header(dead as GetMessage, HEADERS.errorMessage)).to.match(/gave up after 3 attempts: provider timeout/);
      expect(header(dead as GetMessage, HEADERS.attempts)).to.equal(3);
      expect(header(dead as GetMessage, HEADERS.originalExchange)).to.equal(bus.exchange);
      expect(header(dead as GetMessage, HEADERS.originalRoutingKey)).to.equal('payments.capture');
      expect(JSON.parse((dead as GetMessage).content.toString())).to.deep.equal(sent);
    });

    it('dead-letters a permanent failure at once', async () => {
      let calls = 0;
      const spec = bus.queue('permanent');
      await bus.consumer(spec, {
        'payments.capture': async () => {
          calls++;
          throw new PermanentError('card number is not a number');
        },
      });
      await bus.send('payments.capture', captureData('o-perm'));
      await eventually(async () => (await bus.messageCount(dlqName(spec.name))) === 1, { what: 'the DLQ' });
      const [dead] = await bus.drain(dlqName(spec.name));
      expect(calls).to.equal(1);
      expect(header(dead as GetMessage, HEADERS.errorType)).to.equal('PermanentError');
      expect(header(dead as GetMessage, HEADERS.attempts)).to.equal(1);
    });

    it('sends bad JSON, an unknown type and a schema failure straight to the DLQ, and keeps consuming', async () => {
      const handled: string[] = [];
      const spec = bus.queue('poison');
      await bus.consumer(spec, { 'payments.capture': async (e) => void handled.push(e.eventId) });
      await bus.sendRaw('payments.capture', Buffer.from('{"eventId": oops'));
      const unknown = { ...newEnvelope('payments.capture', captureData('o2'), { aggregateId: 'o2' }), eventType: 'payments.teleport' };
      await bus.sendRaw('payments.teleport', Buffer.from(JSON.stringify(unknown)));
      const invalid = { ...newEnvelope('payments.capture', captureData('o3'), { aggregateId: 'o3' }), data: { orderId: 'o3', amount: 'ten' } };
      await bus.sendRaw('payments.capture', Buffer.from(JSON.stringify(invalid)));
      const valid = await bus.send('payments.capture', captureData('o4'));

      const dlq = dlqName(spec.name);
      await eventually(async () => (await bus.messageCount(dlq)) === 3, { what: 'three poison messages in the DLQ' });
      await eventually(() => handled.length === 1, { what: 'the valid message' });
      expect(handled).to.deep.equal([valid.eventId]);
      const reasons = (await bus.drain(dlq)).map((m) => String(header(m, HEADERS.errorMessage)));
      expect(reasons.some((r) => r.startsWith('bad_json'))).to.equal(true, reasons.join(' | '));
      expect(reasons.some((r) => r.startsWith('unknown_type'))).to.equal(true, reasons.join(' | '));
      expect(reasons.some((r) => r.startsWith('schema_validation: payments.capture v1'))).to.equal(true, reasons.join(' | '));
    });

    it('dead-letters, unparsed or unhandled, an oversized body, a media type that is not JSON, and properties that disagree with the envelope', async () => {
      const handled: string[] = [];
      const spec = bus.queue('transport');
      await bus.consumer(spec, { 'payments.capture': async (e) => void handled.push(e.eventId) });
      const envelope = (id: string) => newEnvelope('payments.capture', captureData(id), { aggregateId: id });
      const big = envelope('t1');
      await bus.sendRaw('payments.capture', Buffer.from(JSON.stringify({ ...big, pad: 'x'.repeat(300_000) })), big.eventId);
      const xml = envelope('t2');
      await bus.sendRaw('payments.capture', Buffer.from(JSON.stringify(xml)), xml.eventId, { contentType: 'application/xml' });
      await bus.sendRaw('payments.capture', Buffer.from(JSON.stringify(envelope('t3'))), 'another-id', { type: 'payments.capture' });
      const forged = envelope('t4');
      await bus.sendRaw('payments.capture', Buffer.from(JSON.stringify(forged)), forged.eventId, { type: 'payments.refund' });
      const ok = envelope('t5');
      await bus.sendRaw('payments.capture', Buffer.from(JSON.stringify(ok)), ok.eventId, { contentType: 'application/json; charset=utf-8', type: 'payments.capture' });

      const dlq = dlqName(spec.name);
      await eventually(async () => (await bus.messageCount(dlq)) === 4, { what: 'four messages in the DLQ' });
      await eventually(() => handled.length === 1, { what: 'the valid message' });
      expect(handled).to.deep.equal([ok.eventId]);
      const reasons = (await bus.drain(dlq)).map((m) => String(header(m, HEADERS.errorMessage)).split(':')[0]).sort();
      expect(reasons).to.deep.equal(['id_mismatch', 'too_large', 'type_mismatch', 'wrong_content_type']);
    });

    it('dead-letters a known type that this consumer has no handler for', async () => {
      const spec = bus.queue('nohandler');
      await bus.consumer(spec, { 'payments.refund': async () => undefined });
      await bus.send('payments.capture', captureData('o5'));
      await eventually(async () => (await bus.messageCount(dlqName(spec.name))) === 1, { what: 'the DLQ' });
      const [dead] = await bus.drain(dlqName(spec.name));
      expect(String(header(dead as GetMessage, HEADERS.errorMessage))).to.match(/^unknown_type: .*no handler for "payments.capture"/);
    });

    it('does not act as the owner when its dedup lease was taken over while the handler ran: no done marker over the new owner, no emitted result, retried until the owner is done', async () => {
      const { store, redis } = bus.dedup({ leaseMs: 600 });
      const spec = bus.queue('lease');
      const key = (id: string): string => `${bus.dedupPrefix}:${spec.name}:${id}`;
      let runs = 0;
      let handlerDone = false;
      const consumer = await bus.consumer(
        spec,
        {
          'payments.capture': async (e) => {
            runs++;
            // Another delivery claims the message after this one's lease "expired".
            await redis.set(key(e.eventId), 'p:other-owner', 'PX', 60_000);
            await sleep(400); // a slow handler: a renewal runs meanwhile and finds the other owner
            handlerDone = true;
            return { publish: [newEnvelope('payment.captured', { orderId: e.aggregateId, paymentId: 'p-1', amount: 19.99, currency: 'EUR' }, { aggregateId: e.aggregateId, causationId: e.eventId })] };
          },
        },
        { dedup: store },
      );
      const captured: Envelope[] = [];
      const results = bus.queue('lease-results', { bind: [[bus.exchange, 'payment.captured']] });
      await bus.consumer(results, { 'payment.captured': async (e) => void captured.push(e) }, { dedup: null });
      const sent = await bus.send('payments.capture', captureData('o-lease'), { aggregateId: 'o-lease' });
      await eventually(() => handlerDone, { what: 'the slow handler to finish' });
      await holds(async () => (await redis.get(key(sent.eventId))) === 'p:other-owner', 1_000, 'the other owner keeps its claim');
      expect(captured, 'the lease loser emitted its result').to.have.length(0);
      // The owner finishes; the retried delivery then sees its outcome and is acked. (Waiting
      // for the queues to be empty instead passed, now and then, while the message moved from
      // its wait queue back to the queue, in neither.)
      await redis.set(key(sent.eventId), 'd:[]', 'PX', 60_000);
      const duplicates = async (): Promise<number> => (await metricValue('messages_consumed_total', { queue: spec.name, outcome: 'duplicate' })) ?? 0;
      await eventually(async () => (await duplicates()) === 1, { timeoutMs: 20_000, what: "the retried delivery to find the owner's outcome" });
      const queues = queueNames({ exchanges: [], queues: [spec] });
      await eventually(() => consumer.busy === 0, { what: 'the delivery to be settled' });
      await holds(async () => consumer.busy === 0 && (await Promise.all(queues.map((q) => bus.messageCount(q)))).every((n) => n === 0) && (await duplicates()) === 1, 1_500, 'the message stays acked');
      expect(runs).to.equal(1);
      expect(captured).to.have.length(0);
    });

    it('holds its dedup lease while the handler\'s results are published: a publish slower than the lease still marks the message done, once', async () => {
      const { store, redis } = bus.dedup({ leaseMs: 600 });
      const spec = bus.queue('lease-publish');
      const key = (id: string): string => `${bus.dedupPrefix}:${spec.name}:${id}`;
      // The results wait at the publisher until the test lets them go.
      let publishing = false;
      let letGo!: () => void;
      const gate = new Promise<void>((resolve) => (letGo = resolve));
      const publishEnvelope = bus.publisher.publishEnvelope.bind(bus.publisher);
      bus.publisher.publishEnvelope = async (...args: Parameters<typeof publishEnvelope>) => {
        if (args[0].eventType === 'payment.captured') {
          publishing = true;
          await gate;
        }
        return publishEnvelope(...args);
      };
      let runs = 0;
      await bus.consumer(
        spec,
        {
          'payments.capture': async (e) => {
            runs++;
            return { publish: [newEnvelope('payment.captured', { orderId: e.aggregateId, paymentId: 'p-1', amount: 19.99, currency: 'EUR' }, { aggregateId: e.aggregateId, causationId: e.eventId })] };
          },
        },
        { dedup: store },
      );
      const captured: Envelope[] = [];
      const results = bus.queue('lease-publish-results', { bind: [[bus.exchange, 'payment.captured']] });
      await bus.consumer(results, { 'payment.captured': async (e) => void captured.push(e) }, { dedup: null });
      // Results go to the catalog's exchange ("payments" of the namespace); route them to this test's exchange.
      await bus.admin.bindExchange(bus.exchange, PAYMENTS, 'payment.captured');
      const sent = await bus.send('payments.capture', captureData('o-lease-publish'), { aggregateId: 'o-lease-publish' });
      try {
        await eventually(() => publishing, { what: 'the result to be on its way' });
        const claim = await redis.get(key(sent.eventId));
        expect(claim).to.match(/^p:/);
        await holds(async () => (await redis.get(key(sent.eventId))) === claim, 2_000, 'the claim, renewed over three leases');
      } finally {
        letGo();
      }
      try {
        await eventually(async () => (await redis.get(key(sent.eventId)))?.startsWith('d:'), { what: 'the done marker' });
        await eventually(() => captured.length === 1, { what: 'the result' });
        await holds(() => runs === 1 && captured.length === 1, 1_000, 'handled and emitted once');
      } finally {
        await bus.admin.unbindExchange(bus.exchange, PAYMENTS, 'payment.captured');
      }
    });

    it('lets in-flight handlers finish on stop, and stops taking new messages', async () => {
      const finished: string[] = [];
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const spec = bus.queue('drain');
      const consumer = await bus.consumer(spec, {
        'payments.capture': async (e) => {
          await gate;
          finished.push(e.eventId);
        },
      });
      const sent = await bus.send('payments.capture', captureData('o-drain'));
      await eventually(() => consumer.busy === 1, { what: 'the handler to start' });
      const stopping = consumer.stop();
      await bus.send('payments.capture', captureData('o-after-stop'));
      release();
      await stopping;
      expect(finished).to.deep.equal([sent.eventId]);
      await eventually(async () => (await bus.messageCount(spec.name)) === 1, { what: 'the later message to wait in the queue' });
    });
  });
});
