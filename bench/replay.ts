// replay: events replayed from the archive into a queue by `npm run replay`'s core (read from
// the stream, published into a quorum queue with confirms), against a raw read of the same
// archive that only acks. The archive is filled first through the event exchanges of a bus
// namespace of its own, as the fleet's events reach it.
import type { Config } from '../shared/config';
import { AmqpConnection } from '../shared/messaging/connection';
import { Publisher } from '../shared/messaging/publisher';
import { archiveStream, coreTopology, declareTopology, inNamespace, queueNames, type QueueSpec, type Topology } from '../shared/messaging/topology';
import { MessageValidator } from '../shared/messaging/validator';
import { replay } from '../scripts/replay';
import { kilobyteEvent } from './lib';
import type { Comparison } from './messaging';
import { generatedNamespace } from '../scripts/bus';

/** Unconfirmed publishes while the archive is filled. */
const FILL_WINDOW = 256;
/** The raw read's prefetch: replay()'s own. */
const PREFETCH = 1_000;

/** ours: events replayed per second (read from the archive, published into the queue, confirmed); baseline: read and acked, publishing nothing. */
export interface ReplayFigures extends Comparison {
  /** Events per second into the archive while it was filled (confirmed publishes to the exchanges). */
  fillPerSec: number;
}

export async function benchReplay(config: Config, messages: number): Promise<ReplayFigures> {
  const namespace = generatedNamespace('bench');
  const connection = new AmqpConnection({ url: config.amqpUrl, name: 'bench-replay' });
  await connection.start();
  const admin = await connection.channelModel!.createChannel();
  admin.on('error', () => undefined);
  const target: QueueSpec = { name: inNamespace(namespace, 'bench.replay'), bind: [] };
  const topology: Topology = { ...coreTopology(namespace), queues: [target] };
  try {
    await declareTopology(admin, topology);
    const publisher = new Publisher(connection, new MessageValidator(), { namespace, window: FILL_WINDOW });
    await publisher.start();
    const events = Array.from({ length: messages }, () => kilobyteEvent());
    const filling = performance.now();
    await Promise.all(events.map((e) => publisher.publishEnvelope(e)));
    const fillPerSec = messages / ((performance.now() - filling) / 1000);

    const baseline = await rawRead(connection, archiveStream(namespace).name, messages);
    const summary = await replay({ namespace, from: { kind: 'first' }, into: 'bench.replay', rate: 0 }, { connection });
    if (summary.published !== messages) throw new Error(`replay published ${summary.published} of the ${messages} events the archive holds`);
    const ours = summary.published / summary.seconds;
    return {
      ours: Math.round(ours),
      baseline: Math.round(baseline),
      ratio: Math.round((ours / baseline) * 1000) / 1000,
      unit: 'replayed msg/s',
      messages,
      bytesPerMessage: JSON.stringify(events[0]).length,
      fillPerSec: Math.round(fillPerSec),
    };
  } finally {
    for (const q of queueNames(topology)) await admin.deleteQueue(q).catch(() => undefined);
    for (const e of topology.exchanges) await admin.deleteExchange(e.name).catch(() => undefined);
    await connection.close();
  }
}

/** The least a reader of the stream does: consume from the first offset and ack, until `messages`. */
async function rawRead(connection: AmqpConnection, stream: string, messages: number): Promise<number> {
  const channel = await connection.channelModel!.createChannel();
  await channel.prefetch(PREFETCH);
  let read = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const t = performance.now();
  await channel.consume(stream, (m) => {
    if (!m) return;
    channel.ack(m);
    if (++read === messages) done();
  }, { noAck: false, arguments: { 'x-stream-offset': 'first' } });
  await finished;
  const rate = messages / ((performance.now() - t) / 1000);
  await channel.close();
  return rate;
}
