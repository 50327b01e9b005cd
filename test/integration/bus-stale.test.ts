// `npm run bus -- stale [--delete] [--force] [--prefix <p>]` on the real broker: a namespace a
// killed run left (old, nobody consuming, empty) is listed and deleted; one that is consumed
// from is neither, nor one whose queues hold messages (a live run whose consumers are away
// for a moment) unless --force. --prefix keeps the test to its own fixtures.
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { getConfig } from '../../shared/config';
import { AmqpConnection } from '../../shared/messaging/connection';
import { generatedNamespace } from '../../scripts/bus';
import { runTs } from '../helpers/processes';
import { eventually } from '../helpers/wait';

describe('npm run bus -- stale', function () {
  this.timeout(120_000);
  let connection: AmqpConnection;
  // Test fleets' names, made two hours ago, sharing a prefix no other run's has.
  const twoHoursAgo = Date.now() - 2 * 3_600_000;
  const hex = randomBytes(1).toString('hex');
  const leftover = generatedNamespace('test-fleet', `${hex}0a`, twoHoursAgo);
  const inUse = generatedNamespace('test-fleet', `${hex}0b`, twoHoursAgo);
  const prefix = leftover.slice(0, -2);
  const holding = `${prefix}0c`;
  const fixtures = [leftover, inUse, holding];
  const queuesOf = (ns: string): string[] => [`${ns}.payments.commands`, `${ns}.payments.commands.dlq`];
  const stale = (...args: string[]): ReturnType<typeof runTs> => runTs('scripts/bus.ts', ['stale', '--prefix', prefix, ...args]);

  /** Whether a queue (or exchange) exists; a passive check of a missing one closes its channel. */
  async function exists(kind: 'queue' | 'exchange', name: string): Promise<boolean> {
    const channel = await connection.channelModel!.createChannel();
    channel.on('error', () => undefined);
    try {
      await (kind === 'queue' ? channel.checkQueue(name) : channel.checkExchange(name));
      await channel.close();
      return true;
    } catch {
      return false;
    }
  }

  before(async () => {
    connection = new AmqpConnection({ url: getConfig().amqpUrl, name: 'test-bus-stale' });
    await connection.start();
    const channel = await connection.channelModel!.createChannel();
    for (const ns of fixtures) {
      await channel.assertExchange(`${ns}.orders`, 'topic', { durable: false });
      for (const q of queuesOf(ns)) await channel.assertQueue(q, { durable: false });
    }
    // A consumer on the connection keeps inUse in use for the whole test.
    await channel.consume(`${inUse}.payments.commands`, () => undefined, { noAck: true });
    // A message nobody has consumed yet keeps holding's namespace, without any consumer.
    channel.sendToQueue(`${holding}.payments.commands.dlq`, Buffer.from('{}'));
    await eventually(async () => (await channel.checkQueue(`${holding}.payments.commands.dlq`)).messageCount === 1, { what: 'the message in its queue' });
  });

  after(async () => {
    const channel = await connection.channelModel!.createChannel();
    channel.on('error', () => undefined);
    for (const ns of fixtures) {
      for (const q of queuesOf(ns)) await channel.deleteQueue(q).catch(() => undefined);
      await channel.deleteExchange(`${ns}.orders`).catch(() => undefined);
    }
    await connection.close();
  });

  it('lists an old namespace nobody consumes from, leaving it as it is, and not one that is consumed from or holds a message', async () => {
    const list = stale();
    expect((await list.exited(60_000)).code).to.equal(0, list.output.join('\n'));
    const out = list.output.join('\n');
    expect(out).to.match(new RegExp(`^${leftover}\\s+test-fleet\\s+\\d+h \\d+m\\s+2\\s+1\\s+0$`, 'm'));
    expect(out).to.not.include(inUse);
    expect(out).to.not.include(holding);
    expect(out).to.include(`2 other generated namespace(s) starting with ${prefix} kept`);
    expect(out).to.include('Run with --delete to delete them.');
    for (const q of queuesOf(leftover)) expect(await exists('queue', q), q).to.equal(true);
  });

  it('deletes the queues and exchanges of stale namespaces with --delete, and nothing of one in use or holding a message', async () => {
    const run = stale('--delete');
    expect((await run.exited(60_000)).code).to.equal(0, run.output.join('\n'));
    expect(run.output.join('\n')).to.match(/^deleted 1 namespace\(s\): 2 queue\(s\), 1 exchange\(s\), 0 message\(s\)/m);
    for (const q of queuesOf(leftover)) expect(await exists('queue', q), q).to.equal(false);
    expect(await exists('exchange', `${leftover}.orders`)).to.equal(false);
    for (const ns of [inUse, holding]) {
      for (const q of queuesOf(ns)) expect(await exists('queue', q), q).to.equal(true);
      expect(await exists('exchange', `${ns}.orders`), ns).to.equal(true);
    }
  });

  it('deletes an old namespace with no consumer but with a message only with --force, and never one in use', async () => {
    const run = stale('--delete', '--force');
    expect((await run.exited(60_000)).code).to.equal(0, run.output.join('\n'));
    expect(run.output.join('\n')).to.match(/^deleted 1 namespace\(s\): 2 queue\(s\), 1 exchange\(s\), 1 message\(s\)/m);
    for (const q of queuesOf(holding)) expect(await exists('queue', q), q).to.equal(false);
    expect(await exists('exchange', `${holding}.orders`)).to.equal(false);
    for (const q of queuesOf(inUse)) expect(await exists('queue', q), q).to.equal(true);
  });

  it('refuses a command it does not know, with its usage', async () => {
    const run = runTs('scripts/bus.ts', ['tidy']);
    expect((await run.exited(60_000)).code).to.equal(2);
    expect(run.output.join('\n')).to.include('usage: npm run bus -- stale');
  });
});
