// The messaging core when its dependencies fail: the broker closes every connection,
// Redis goes away, and a dead-lettered message is replayed.
import { expect } from 'chai';
import { getConfig } from '../../shared/config';
import { TransientError } from '../../shared/errors';
import type { Channel, ChannelModel, Message } from 'amqplib';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { AmqpConnection } from '../../shared/messaging/connection';
import { Consumer } from '../../shared/messaging/consumer';
import { newEnvelope } from '../../shared/messaging/new-envelope';
import { dlqName } from '../../shared/messaging/topology';
import { captureData, TestBus, validator } from '../helpers/bus';
import { runTs } from '../helpers/processes';
import { closeAllBrokerConnections, PrivateRedis } from '../helpers/services';
import { eventually, holds } from '../helpers/wait';

/** What the broker vanishing mid-write does to a client: its socket fails with ECONNRESET. */
function resetSocket(model: ChannelModel): void {
  const socket = (model.connection as unknown as { stream: Socket }).stream;
  socket.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
}

describe('messaging under failure', () => {
  let bus: TestBus;
  beforeEach(async () => {
    bus = await TestBus.create();
  });
  afterEach(async () => {
    await bus.cleanup();
  });

  it('recovers publisher and consumer when the broker closes every connection, losing no confirmed message', async function () {
    this.timeout(120_000);
    const handled = new Map<string, number>();
    const spec = bus.queue('recovery');
    await bus.consumer(spec, {
      'payments.capture': async (e) => void handled.set(e.eventId, (handled.get(e.eventId) ?? 0) + 1),
    });
    const confirmed = new Set<string>();
    let disconnects = 0;
    bus.connection.on('disconnect', () => disconnects++);
    let closed = false;
    let afterClose = 0;
    // Lanes publish until the connections were closed and 300 more were confirmed; each
    // message is retried until confirmed (at least once), as a real producer does.
    const lane = async (id: number): Promise<void> => {
      for (let n = 0; !closed || afterClose < 300; n++) {
        const e = newEnvelope('payments.capture', captureData(`o-${id}-${n}`), { aggregateId: `o-${id}-${n}` });
        for (;;) {
          try {
            await bus.publisher.publishEnvelope(e, { exchange: bus.exchange });
            confirmed.add(e.eventId);
            if (closed) afterClose++;
            break;
          } catch {
            // not confirmed (channel closed, timeout): publish it again
          }
        }
      }
    };
    const lanes = Array.from({ length: 8 }, (_, id) => lane(id));
    await eventually(() => confirmed.size >= 200, { what: 'the flow to start' });
    await closeAllBrokerConnections();
    closed = true;
    await Promise.all(lanes);
    const total = confirmed.size;
    await eventually(() => [...confirmed].every((id) => handled.has(id)), { timeoutMs: 60_000, what: `all ${total} confirmed messages handled (have ${handled.size})` });
    expect([...handled.values()].every((n) => n === 1)).to.equal(true, 'a message was handled twice');
    expect(disconnects).to.equal(1, 'the broker did not interrupt the flow; the test proved nothing');
  });

  it('acks the deliveries that finished together in one frame below the first still being handled, which no ack covers: it comes back after a connection loss', async () => {
    const { connection, publisher } = await bus.connect('test-acks');
    const spec = bus.queue('acks');
    const handled: string[] = [];
    let started = 0;
    let allIn: () => void = () => undefined;
    const together = new Promise<void>((resolve) => (allIn = resolve));
    const acks: Array<{ tag: number; multiple: boolean }> = [];
    const channels = Object.getPrototypeOf(bus.admin) as Channel; // every channel's class
    const ack = channels.ack; // eslint-disable-line @typescript-eslint/unbound-method -- restored below, called with its channel
    channels.ack = function (this: Channel, msg: Message, allUpTo?: boolean) {
      acks.push({ tag: msg.fields.deliveryTag, multiple: allUpTo === true });
      return ack.call(this, msg, allUpTo);
    };
    const consumer = new Consumer(connection, publisher, validator, {
      queue: spec,
      dedup: null,
      prefetch: 10,
      drainTimeoutMs: 200, // the first delivery of the fourth never ends
      handlers: {
        'payments.capture': async (e, ctx) => {
          // The fourth waits until its connection is gone; its redelivery finishes. The others
          // wait until all five are in, then finish together, in one turn.
          if (!ctx.redelivered && ++started === 5) allIn();
          if (e.data.orderId === 'o-4' && !ctx.redelivered) await new Promise(() => undefined);
          await together;
          handled.push(e.data.orderId);
        },
      },
    });
    try {
      await consumer.start();
      for (const n of [1, 2, 3, 4, 5]) await bus.send('payments.capture', captureData(`o-${n}`));
      await eventually(() => handled.length === 4, { what: 'the four quick messages' });
      // One frame settles the first three; the fifth, above the fourth still being handled, goes alone.
      await eventually(() => acks.length >= 2, { what: 'the acks sent' });
      expect(acks).to.deep.equal([
        { tag: 3, multiple: true },
        { tag: 5, multiple: false },
      ]);
      await sleep(300); // the acks reach the broker
      resetSocket(connection.channelModel as ChannelModel);
      await eventually(() => handled.length === 5, { what: 'the fourth message, redelivered' });
      await holds(() => handled.length === 5, 500, 'no other message redelivered');
      expect([...handled].sort()).to.deep.equal(['o-1', 'o-2', 'o-3', 'o-4', 'o-5']);
    } finally {
      channels.ack = ack;
      await consumer.stop();
    }
  });

  it('survives a socket reset while its setup hooks run after a reconnect, and connects again (found by the chaos run: the process died)', async () => {
    // amqplib watches a connection only once its setup hooks are done. A reset in between was
    // an unhandled 'error' event (mocha reports it as an uncaught failure); with that handled,
    // recovery went on to adopt the dead connection and never reconnected (the wait times out).
    const connection = new AmqpConnection({ url: getConfig().amqpUrl, name: 'reset-during-setup' });
    await connection.start();
    try {
      const models: ChannelModel[] = [];
      await connection.addSetup(async (model) => {
        models.push(model);
        if (models.length !== 2) return;
        // The first reconnect's setup is waiting on the broker (declaring, say) when the socket resets.
        resetSocket(model);
        await sleep(100);
      });
      resetSocket(models[0]!); // a reset while connected: recovery reconnects
      await eventually(() => models.length === 3 && connection.channelModel === models[2], { what: 'the connection to recover after the reset during setup' });
      const channel = await connection.channelModel!.createChannel();
      await channel.close();
    } finally {
      await connection.close();
    }
  });

  it('finishes a setup hook that lost its connection while it ran on the next connection, instead of failing the start of the process', async () => {
    // A process declares its topology, opens its publisher and subscribes through addSetup as
    // it starts: a broker restart or close_all_connections in that moment made it exit 1.
    const connection = new AmqpConnection({ url: getConfig().amqpUrl, name: 'lost-during-add-setup' });
    await connection.start();
    try {
      const models: ChannelModel[] = [];
      await connection.addSetup(async (model) => {
        models.push(model);
        if (models.length === 1) {
          resetSocket(model);
          await sleep(100);
        }
        const channel = await model.createChannel();
        await channel.close();
      });
      expect(models).to.have.length(2);
      expect(connection.channelModel).to.equal(models[1]);
    } finally {
      await connection.close();
    }
  });

  it('fails such a hook at once for a command-line tool (initialMaxRetries), and when the connection is closed meanwhile', async () => {
    const failsWhen = async (options: { tool: boolean; closeMeanwhile: boolean }): Promise<void> => {
      const connection = new AmqpConnection({ url: getConfig().amqpUrl, name: 'lost-during-add-setup-fails', ...(options.tool ? { initialMaxRetries: 3 } : {}) });
      await connection.start();
      try {
        let runs = 0;
        const adding = connection.addSetup(async (model) => {
          if (++runs > 1) return; // a later connect's run
          resetSocket(model);
          if (options.closeMeanwhile) void connection.close();
          await sleep(100);
          await model.createChannel();
        });
        await expect(adding).to.be.rejectedWith(options.tool ? /the connection closed while a setup hook ran/ : /closed before it connected again/);
      } finally {
        await connection.close();
      }
    };
    await failsWhen({ tool: true, closeMeanwhile: false });
    await failsWhen({ tool: false, closeMeanwhile: true });
  });

  it('holds messages while Redis is down and handles each once after it is back', async function () {
    this.timeout(60_000);
    const redisServer = await PrivateRedis.start();
    try {
      const { store } = bus.dedup({ redisUrl: redisServer.url });
      const handled = new Map<string, number>();
      const spec = bus.queue('redis-down');
      await bus.consumer(spec, { 'payments.capture': async (e) => void handled.set(e.eventId, (handled.get(e.eventId) ?? 0) + 1) }, { dedup: store, prefetch: 5 });
      await redisServer.stop();
      const sent: string[] = [];
      for (let i = 0; i < 20; i++) sent.push((await bus.send('payments.capture', captureData(`o-r${i}`))).eventId);
      // Five are held by the consumer (its prefetch), the rest wait in the queue; none is handled.
      await eventually(async () => (await bus.messageCount(spec.name)) === 15, { what: '15 messages waiting in the queue' });
      await holds(async () => handled.size === 0 && (await bus.messageCount(spec.name)) === 15, 1_500, 'nothing handled while Redis is down');
      expect(await bus.messageCount(dlqName(spec.name))).to.equal(0);

      await redisServer.start();
      await eventually(() => handled.size === 20, { timeoutMs: 30_000, what: 'all 20 handled after Redis is back' });
      expect([...handled.keys()].sort()).to.deep.equal([...sent].sort());
      expect([...handled.values()].every((n) => n === 1)).to.equal(true);
      await eventually(async () => (await bus.messageCount(spec.name)) === 0, { what: 'an empty queue' });
    } finally {
      await redisServer.stop();
    }
  });

  it('`dlq replay` moves a dead-lettered message back, and it is handled', async function () {
    this.timeout(60_000);
    let broken = true;
    const handled: string[] = [];
    const spec = bus.queue('replay', { retry: { maxAttempts: 2, delaysMs: [50] } });
    await bus.consumer(spec, {
      'payments.capture': async (e) => {
        if (broken) throw new TransientError('payment provider is down');
        handled.push(e.eventId);
      },
    });
    const sent = await bus.send('payments.capture', captureData('o-replay'));
    await eventually(async () => (await bus.messageCount(dlqName(spec.name))) === 1, { what: 'the message in the DLQ' });

    const list = runTs('scripts/dlq.ts', ['list', spec.name]);
    expect((await list.exited()).code).to.equal(0);
    expect(list.output.join('\n')).to.include(sent.eventId).and.include('TransientError: gave up after 2 attempts: payment provider is down');
    expect(await bus.messageCount(dlqName(spec.name))).to.equal(1, 'list must leave the DLQ as it was');

    broken = false;
    const replay = runTs('scripts/dlq.ts', ['replay', spec.name]);
    expect((await replay.exited()).code).to.equal(0, replay.output.join('\n'));
    expect(replay.output.join('\n')).to.include('1 message(s) replayed');
    await eventually(() => handled.length === 1, { what: 'the replayed message to be handled' });
    expect(handled).to.deep.equal([sent.eventId]);
    expect(await bus.messageCount(dlqName(spec.name))).to.equal(0);
  });
});
