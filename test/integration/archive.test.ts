// The event archive (a stream bound to every event exchange) and `npm run replay`: what the
// archive keeps and in what order, where a replay starts and stops, that a replay into a
// consumer that handled the events already changes nothing, and that bad flags, a missing
// queue and a broker gone mid-run end the tool with a clear message. Each test has a bus
// namespace of its own (`t<time><random>`, as a test fleet's), with its own archive.
import type { Channel, ConsumeMessage, GetMessage } from 'amqplib';
import { expect } from 'chai';
import { getConfig } from '../../shared/config';
import { BrokerRefusedError } from '../../shared/errors';
import { EVENT_EXCHANGES, type DataOf, type Envelope, type MessageType } from '../../shared/events';
import { AmqpConnection } from '../../shared/messaging/connection';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { Publisher } from '../../shared/messaging/publisher';
import { archiveStream, coreTopology, declareTopology, dlqName, inNamespace, MAX_SEGMENT_BYTES, queueNames, type QueueSpec } from '../../shared/messaging/topology';
import { replay, type ReplayOptions } from '../../scripts/replay';
import { notificationsWorker } from '../../workers/notifications';
import { takeAll, TestBus, validator } from '../helpers/bus';
import { orderId, TestFleet } from '../helpers/fleet';
import { runTs } from '../helpers/processes';
import { BlackHole, brokerApi, portOf } from '../helpers/services';
import { eventually, holds } from '../helpers/wait';
import { generatedNamespace } from '../../scripts/bus';

/** A bus namespace with its core exchanges, its archive and a target queue, removed by close(). */
class ArchiveBus {
  readonly archive: string;
  /** The target queue, as the tool takes it (without the namespace). */
  readonly target = 'replay.target';
  private readonly queues: QueueSpec[] = [];

  private constructor(
    readonly namespace: string,
    readonly connection: AmqpConnection,
    readonly publisher: Publisher,
    readonly admin: Channel,
  ) {
    this.archive = archiveStream(namespace).name;
  }

  static async create(): Promise<ArchiveBus> {
    const namespace = generatedNamespace('test-fleet');
    const connection = new AmqpConnection({ url: getConfig().amqpUrl, name: 'test-archive' });
    await connection.start();
    const admin = await connection.channelModel!.createChannel();
    admin.on('error', () => undefined);
    const publisher = new Publisher(connection, validator, { namespace });
    await publisher.start();
    const bus = new ArchiveBus(namespace, connection, publisher, admin);
    await declareTopology(admin, coreTopology(namespace));
    await bus.queue(bus.target);
    return bus;
  }

  /** Declares a quorum queue of the namespace (name without it), bound to nothing. */
  async queue(name: string): Promise<QueueSpec> {
    const spec: QueueSpec = { name: inNamespace(this.namespace, name), bind: [] };
    this.queues.push(spec);
    await declareTopology(this.admin, { exchanges: [], queues: [spec] });
    return spec;
  }

  /** Publishes an event (or command) of the catalog to its exchange in the namespace. */
  async send<T extends MessageType>(type: T, data: DataOf<T>, occurredAt?: Date): Promise<Envelope> {
    const orderId = (data as { orderId?: string }).orderId ?? 'none';
    const envelope = { ...newEnvelope(type, data, { aggregateId: orderId }), ...(occurredAt ? { occurredAt: occurredAt.toISOString() } : {}) };
    await this.publisher.publishEnvelope(envelope);
    return envelope;
  }

  /** `count` payment.captured events, in order. */
  async payments(count: number, label = 'p'): Promise<Envelope[]> {
    const sent: Envelope[] = [];
    for (let i = 0; i < count; i++) sent.push(await this.send('payment.captured', { orderId: `${label}${i}`, paymentId: `pay-${label}${i}`, amount: 10, currency: 'EUR' }));
    return sent;
  }

  replay(options: Omit<ReplayOptions, 'namespace' | 'into'> & { into?: string }): ReturnType<typeof replay> {
    return replay({ into: this.target, ...options, namespace: this.namespace }, { connection: this.connection });
  }

  /** Takes every message now in the target queue. */
  drainTarget(): Promise<GetMessage[]> {
    return takeAll(this.admin, inNamespace(this.namespace, this.target));
  }

  /** Everything the archive holds, in order, read from its first offset until it stays quiet for idleMs. */
  async readArchive(idleMs = 1_000): Promise<ConsumeMessage[]> {
    const channel = await this.connection.channelModel!.createChannel();
    await channel.prefetch(100);
    const got: ConsumeMessage[] = [];
    let last = Date.now();
    await channel.consume(this.archive, (m) => {
      if (!m) return;
      got.push(m);
      last = Date.now();
      channel.ack(m);
    }, { noAck: false, arguments: { 'x-stream-offset': 'first' } });
    await eventually(() => Date.now() - last >= idleMs, { timeoutMs: 30_000, what: 'the archive read to its end' });
    await channel.close();
    return got;
  }

  async close(): Promise<void> {
    for (const q of [...this.queues.flatMap((spec) => queueNames({ exchanges: [], queues: [spec] })), this.archive]) await this.admin.deleteQueue(q).catch(() => undefined);
    for (const e of coreTopology(this.namespace).exchanges) await this.admin.deleteExchange(e.name).catch(() => undefined);
    await this.connection.close();
  }
}

const ids = (messages: ReadonlyArray<{ properties: { messageId?: unknown } }>): string[] => messages.map((m) => String(m.properties.messageId));

describe('the event archive and npm run replay', function () {
  this.timeout(90_000);
  let bus: ArchiveBus;
  beforeEach(async () => {
    bus = await ArchiveBus.create();
  });
  afterEach(async () => {
    await bus.close();
  });

  describe('the archive', () => {
    it('is a stream with the configured retention', async () => {
      const { type, arguments: args } = (await brokerApi('GET', `/queues/%2F/${encodeURIComponent(bus.archive)}`)) as { type: string; arguments: Record<string, unknown> };
      const { archiveMaxAge, archiveMaxBytes } = getConfig();
      expect(type).to.equal('stream');
      expect(args).to.deep.include({
        'x-queue-type': 'stream',
        'x-max-age': archiveMaxAge,
        'x-max-length-bytes': archiveMaxBytes,
        'x-stream-max-segment-size-bytes': Math.min(MAX_SEGMENT_BYTES, archiveMaxBytes),
      });
    });

    it('keeps every event of every event exchange, in order, and no command', async () => {
      const sent = [
        await bus.send('order.fulfilled', { orderId: 'a1' }),
        await bus.send('payments.capture', { orderId: 'a1', amount: 10, currency: 'EUR', paymentToken: 'tok_ok' }),
        await bus.send('payment.captured', { orderId: 'a1', paymentId: 'pay-a1', amount: 10, currency: 'EUR' }),
        await bus.send('inventory.released', { orderId: 'a1', items: [] }),
        await bus.send('shipping.cancelled', { orderId: 'a1' }),
      ];
      expect(EVENT_EXCHANGES).to.have.length(4);
      const archived = await bus.readArchive();
      expect(archived.map((m) => String(m.properties.type))).to.deep.equal(['order.fulfilled', 'payment.captured', 'inventory.released', 'shipping.cancelled']);
      expect(ids(archived)).to.deep.equal(sent.filter((e) => e.eventType !== 'payments.capture').map((e) => e.eventId));
      expect(archived.map((m): unknown => m.properties.headers?.['x-stream-offset'])).to.deep.equal([0, 1, 2, 3]);
    });

    it('refuses to be declared again with another retention, naming the stream and saying why', async () => {
      const channel = await bus.connection.channelModel!.createChannel();
      channel.on('error', () => undefined);
      const other = { maxAge: getConfig().archiveMaxAge === '7D' ? '8D' : '7D', maxBytes: getConfig().archiveMaxBytes };
      const declared = declareTopology(channel, coreTopology(bus.namespace), { retention: other });
      await expect(declared).to.be.rejectedWith(BrokerRefusedError, new RegExp(`stream '${bus.archive.replace(/\./g, '\\.')}'.*inequivalent arg 'x-max-age'.*its retention differs`));
    });

    it('is declared by the processes of the fleet with the core exchanges (here, the notifications worker)', async () => {
      const fleet = await TestFleet.create();
      try {
        await fleet.start(notificationsWorker);
        const archive = inNamespace(fleet.namespace, 'events.archive');
        const { type } = (await brokerApi('GET', `/queues/%2F/${encodeURIComponent(archive)}`)) as { type: string };
        expect(type).to.equal('stream');
        const bindings = (await brokerApi('GET', `/queues/%2F/${encodeURIComponent(archive)}/bindings`)) as Array<{ source: string; routing_key: string }>;
        const fromExchanges = bindings.filter((b) => b.source !== '').map((b) => `${b.source} ${b.routing_key}`);
        expect(fromExchanges.sort()).to.deep.equal(EVENT_EXCHANGES.map((e) => `${inNamespace(fleet.namespace, e)} #`).sort());
      } finally {
        await fleet.cleanup();
      }
    });
  });

  describe('replay', () => {
    it('--from first publishes exactly the events of --types, in order, with their properties', async () => {
      const events = [
        await bus.send('order.fulfilled', { orderId: 'r1' }),
        await bus.send('payment.captured', { orderId: 'r1', paymentId: 'pay-r1', amount: 10, currency: 'EUR' }),
        await bus.send('shipping.cancelled', { orderId: 'r1' }),
        await bus.send('payment.refunded', { orderId: 'r1', amount: 10, currency: 'EUR' }),
        await bus.send('order.cancelled', { orderId: 'r2', reason: 'customer_cancelled' }),
      ];
      const summary = await bus.replay({ from: { kind: 'first' }, types: ['order.*', 'payment.refunded'], rate: 0 });
      expect(summary).to.include({ read: 5, matched: 3, published: 3, stoppedBy: 'end', firstOffset: 0, lastOffset: 4 });
      const got = await bus.drainTarget();
      expect(ids(got)).to.deep.equal([events[0]!, events[3]!, events[4]!].map((e) => e.eventId));
      const first = got[0]!;
      expect(first.properties).to.deep.include({ type: 'order.fulfilled', contentType: 'application/json', deliveryMode: 2, timestamp: Math.floor(Date.parse(events[0]!.occurredAt) / 1000) });
      expect(first.properties.headers).to.deep.include({ 'x-aggregate-id': 'r1' });
      expect(first.properties.headers).to.not.have.property('x-stream-offset');
      expect(JSON.parse(first.content.toString()) as unknown).to.deep.equal(events[0]);
    });

    it('fails, rather than ends, when the broker refuses a message it replays (a full queue nacks)', async () => {
      await bus.payments(5);
      const full = inNamespace(bus.namespace, 'replay.full');
      await bus.admin.assertQueue(full, { durable: true, arguments: { 'x-max-length': 2, 'x-overflow': 'reject-publish' } });
      try {
        await expect(bus.replay({ from: { kind: 'first' }, into: 'replay.full' })).to.be.rejectedWith(/the broker did not confirm a message into/);
      } finally {
        await bus.admin.deleteQueue(full);
      }
    });

    it('--from <offset> starts at that offset', async () => {
      const sent = await bus.payments(10);
      const summary = await bus.replay({ from: { kind: 'offset', offset: 7 } });
      expect(summary).to.include({ read: 3, published: 3, firstOffset: 7, lastOffset: 9 });
      expect(ids(await bus.drainTarget())).to.deep.equal(sent.slice(7).map((e) => e.eventId));
    });

    it('--from <ISO time> starts at the first event the archive took from then on, and the connection lives on', async () => {
      const before = await bus.payments(5, 'early');
      // The broker's timestamps are whole seconds: a clear second between the two batches.
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      const from = new Date();
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const after = await bus.payments(3, 'late');
      const summary = await bus.replay({ from: { kind: 'time', at: from } });
      expect(summary).to.include({ read: 3, published: 3, firstOffset: before.length });
      expect(ids(await bus.drainTarget())).to.deep.equal(after.map((e) => e.eventId));
      expect(bus.connection.ready).to.equal(true); // a timestamp sent as a Date would have closed it
      expect((await bus.replay({ from: { kind: 'first' } })).published).to.equal(8);
    });

    it('--to stops at the first event that occurred after it', async () => {
      const t0 = Math.floor(Date.now() / 1000) * 1000 - 60_000;
      const sent: Envelope[] = [];
      for (let i = 0; i < 8; i++) sent.push(await bus.send('order.fulfilled', { orderId: `to${i}` }, new Date(t0 + i * 1_000)));
      // t0 + 4.5 s: the event of t0 + 4 s shares its second (the timestamp property) and still goes.
      const summary = await bus.replay({ from: { kind: 'first' }, to: new Date(t0 + 4_500) });
      expect(summary).to.include({ read: 5, published: 5, stoppedBy: 'to', lastOffset: 4 });
      expect(ids(await bus.drainTarget())).to.deep.equal(sent.slice(0, 5).map((e) => e.eventId));
    });

    it('without --to, stops at the end the archive had when it started, while events keep arriving', async () => {
      const sent = await bus.payments(2_000, 'bulk');
      let confirmed = 0;
      let stop = false;
      const traffic = (async () => {
        for (let i = 0; !stop; i++) {
          await bus.send('payment.captured', { orderId: `live${i}`, paymentId: `pay-live${i}`, amount: 1, currency: 'EUR' });
          confirmed++;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      try {
        await eventually(() => confirmed >= 3, { what: 'live events' });
        const atStart = confirmed;
        const summary = await bus.replay({ from: { kind: 'first' }, rate: 0 });
        const atEnd = confirmed;
        expect(summary.stoppedBy).to.equal('end');
        expect(summary.read).to.be.at.least(sent.length + atStart, 'all the archive held at the start');
        expect(summary.read).to.be.below(sent.length + atEnd, 'none of what arrived during the replay');
        expect(summary.published).to.equal(summary.read);
        expect(summary.lastOffset).to.equal(summary.read - 1);
      } finally {
        stop = true;
        await traffic;
      }
    });

    it('is bounded by --rate', async () => {
      await bus.payments(60);
      const summary = await bus.replay({ from: { kind: 'first' }, rate: 50 });
      expect(summary.published).to.equal(60);
      expect(summary.seconds).to.be.at.least(1.1); // 60 at 50 a second
    });

    it('into a consumer that handled the events already changes nothing (Redis dedup on messageId)', async () => {
      const testBus = await TestBus.create();
      try {
        const spec = testBus.queue('replay-dedup', { name: inNamespace(bus.namespace, 'replay.dedup'), bind: [[inNamespace(bus.namespace, 'payments'), 'payment.*']] });
        const handled: string[] = [];
        await testBus.consumer(spec, { 'payment.captured': async (e) => void handled.push(e.eventId) });
        const sent = await bus.payments(5, 'dup');
        await eventually(() => handled.length === 5, { what: 'the events handled once' });
        const summary = await bus.replay({ from: { kind: 'first' }, into: 'replay.dedup' });
        expect(summary.published).to.equal(5);
        await eventually(async () => (await testBus.messageCount(spec.name)) === 0, { what: 'the replayed copies acked' });
        await holds(() => handled.length === 5, 1_000, 'each event handled once');
        expect(handled).to.have.members(sent.map((e) => e.eventId));
        expect(await testBus.messageCount(dlqName(spec.name))).to.equal(0);
      } finally {
        await testBus.cleanup();
      }
    });

    it("into the notifications worker's queue notifies nobody twice", async () => {
      const fleet = await TestFleet.create();
      try {
        await fleet.start(notificationsWorker);
        const id = orderId('archive');
        await fleet.send('payment.captured', { orderId: id, paymentId: `pay-${id}`, amount: 10, currency: 'EUR' });
        await fleet.send('order.fulfilled', { orderId: id });
        const notified = async (): Promise<number> => (await fleet.db.query('SELECT 1 FROM notifications.notifications WHERE order_id = $1', [id])).rowCount ?? 0;
        await eventually(async () => (await notified()) === 2, { what: 'two notifications' });
        const summary = await replay({ namespace: fleet.namespace, from: { kind: 'first' }, into: 'notifications.events' }, { connection: fleet.connection });
        expect(summary.published).to.be.at.least(2);
        await eventually(async () => (await fleet.messageCount('notifications.events')) === 0, { what: 'the replayed events handled' });
        expect(await notified()).to.equal(2);
        expect(await fleet.messageCount('notifications.events.dlq')).to.equal(0);
      } finally {
        await fleet.cleanup();
      }
    });
  });

  describe('npm run replay', () => {
    const cli = async (args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> => {
      const child = runTs('scripts/replay.ts', args, { BUS_NAMESPACE: bus.namespace, ...env });
      const { code } = await child.exited(60_000);
      return { code, out: child.output.join('\n') };
    };

    it('replays, printing a summary of what it read, matched and published', async () => {
      await bus.payments(4);
      await bus.send('order.fulfilled', { orderId: 'c1' });
      const { code, out } = await cli(['--from', 'first', '--types', 'payment.*', '--into', bus.target]);
      expect(code).to.equal(0, out);
      expect(out).to.match(/^replay: read 5, matched 4, published 4 in [\d.]+ s \(\d+ msg\/s\); offsets 0 to 4; read to the end the archive had at the start$/m);
      expect(await bus.drainTarget()).to.have.length(4);
    });

    const usage: Array<[string, string[], RegExp]> = [
      ['an unknown flag', ['--from', 'first', '--into', 'replay.target', '--bogus'], /Unknown option '--bogus'/],
      ['a missing --into', ['--from', 'first'], /--into is required/],
      ['a missing --from', ['--into', 'replay.target'], /--from is required/],
      ['a malformed time', ['--from', '2026-02-31T00:00:00Z', '--into', 'replay.target'], /--from takes an ISO 8601 time/],
      ['a time without its zone', ['--from', '2026-11-29T04:00:00', '--into', 'replay.target'], /--from takes an ISO 8601 time with its zone/],
      ['a negative offset', ['--from', '-5', '--into', 'replay.target'], /--from: an offset is a whole number ≥ 0 \(got -5\)/],
      ['a --to before --from', ['--from', '2026-11-29T04:00:00Z', '--to', '2026-11-28T00:00:00Z', '--into', 'replay.target'], /--to \(2026-11-28T00:00:00Z\) is before --from/],
      ['a type pattern that matches no event', ['--from', 'first', '--types', 'orders.*', '--into', 'replay.target'], /--types: "orders\.\*" matches no event type/],
      ['a bad --rate', ['--from', 'first', '--rate', 'fast', '--into', 'replay.target'], /--rate must be a whole number from 0/],
      ['a missing --into queue', ['--from', 'first', '--into', 'no.such.queue'], /--into: queue "t[0-9a-z]+\.no\.such\.queue" does not exist/],
      ['the archive as --into', ['--from', 'first', '--into', 'events.archive'], /is the archive itself/],
    ];
    for (const [what, args, message] of usage) {
      it(`exits 2 with a clear message, publishing nothing, for ${what}`, async () => {
        await bus.payments(2);
        const { code, out } = await cli(args);
        expect(code).to.equal(2, out);
        expect(out).to.match(message);
        expect(await bus.drainTarget()).to.deep.equal([]);
      });
    }

    it('exits 1 with a clear message when the broker goes away mid-run (run it again: duplicates are deduplicated)', async () => {
      await bus.payments(400);
      const hole = await BlackHole.start();
      hole.passTo(portOf(getConfig().amqpUrl, 5672));
      const child = runTs('scripts/replay.ts', ['--from', 'first', '--rate', '100', '--into', bus.target], { BUS_NAMESPACE: bus.namespace, AMQP_URL: hole.url(getConfig().amqpUrl) });
      try {
        await child.waitFor(/^replay: read \d+, matched \d+, published [1-9]\d*/, 30_000);
      } finally {
        await hole.close(); // every connection through it reset, and no new one accepted
      }
      const { code } = await child.exited(30_000);
      const out = child.output.join('\n');
      expect(code).to.equal(1, out);
      expect(out, out).to.match(/lost the connection to RabbitMQ, after reading \d+ event\(s\) and publishing \d+; run the replay again/);
      const partial = (await bus.drainTarget()).length;
      expect(partial).to.be.within(1, 399);
    });
  });
});
