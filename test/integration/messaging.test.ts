// The messaging core against the real RabbitMQ and Redis: publish with confirms, the
// consumer loop's ack / retry / dead-letter decisions, and dedup.
import { expect } from 'chai';
import type { GetMessage } from 'amqplib';
import { PermanentError, PublishNackedError, TransientError } from '../../shared/errors';
import type { Envelope } from '../../shared/events';
import { HEADERS } from '../../shared/messaging/headers';
import { newEnvelope } from '../../shared/messaging/envelope';
import { dlqName } from '../../shared/messaging/topology';
import { captureData, TestBus } from '../helpers/bus';
import { uniqueName } from '../helpers/names';
import { eventually } from '../helpers/wait';

function header(m: GetMessage, name: string): unknown {
  const v: unknown = m.properties.headers?.[name];
  return Buffer.isBuffer(v) ? v.toString() : v;
}

describe('messaging core (RabbitMQ + Redis)', () => {
  let bus: TestBus;
  beforeEach(async () => {
    bus = await TestBus.create();
  });
  afterEach(async () => {
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

    it('refuses to publish a message that fails its schema, unless raw', async () => {
      const bad = { ...newEnvelope('payments.capture', captureData('o1'), { aggregateId: 'o1' }), data: { orderId: 'o1' } };
      await expect(bus.publisher.publishEnvelope(bad, { exchange: bus.exchange })).to.be.rejectedWith(PermanentError);
      await bus.publisher.publishEnvelope(bad, { exchange: bus.exchange, raw: true });
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
      // Results go to the catalog's exchange ("payments"); route them to this test's exchange instead.
      await bus.admin.assertExchange('payments', 'topic', { durable: true });
      await bus.admin.bindExchange(bus.exchange, 'payments', 'payment.captured');
      try {
        const cmd = await bus.send('payments.capture', captureData('o-dup'), { aggregateId: 'o-dup' });
        await eventually(() => results.length === 1, { what: 'the first result' });
        await bus.publisher.publishEnvelope(cmd, { exchange: bus.exchange });
        await eventually(() => results.length === 2, { what: 'the re-emitted result' });
        expect(effects).to.deep.equal([cmd.eventId]);
        expect(results[1]).to.deep.equal(results[0]);
        expect(results[0]?.causationId).to.equal(cmd.eventId);
      } finally {
        await bus.admin.unbindExchange(bus.exchange, 'payments', 'payment.captured');
      }
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
