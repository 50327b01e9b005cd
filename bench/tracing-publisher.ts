// One side of the tracing benchmark (bench/tracing.ts), in a process of its own: confirmed
// publishes per second through our Publisher, as in the publish figure, into a queue of the
// namespace given (a namespace of its own: it deletes it at the end). `traced` loads shared/observability/tracing first, as every process of the
// fleet does, so that its configuration (the OTEL_* variables the benchmark sets) decides what
// is loaded; `bare` never loads it. Prints {"rate": <msg/s>} on its last line.
// Usage: ts-node bench/tracing-publisher.ts bare|traced <messages> <namespace>
import { argv } from 'node:process';
import type { QueueSpec } from '../shared/messaging/topology';

async function main(): Promise<void> {
  const [mode, messagesText, namespace] = argv.slice(2);
  if ((mode !== 'bare' && mode !== 'traced') || !/^\d+$/.test(messagesText ?? '') || !namespace) throw new Error('usage: tracing-publisher.ts bare|traced <messages> <namespace>');
  const messages = Number(messagesText);
  // Before anything that loads amqplib, as in a process's entry point.
  const tracing = mode === 'traced' ? await import('../shared/observability/tracing') : undefined;
  const stopTracing = tracing?.startTracing('bench-publish');
  const { getConfig } = await import('../shared/config');
  const { AmqpConnection } = await import('../shared/messaging/connection');
  const { Publisher } = await import('../shared/messaging/publisher');
  const { coreExchanges, declareTopology, inNamespace, queueNames } = await import('../shared/messaging/topology');
  const { MessageValidator } = await import('../shared/messaging/validator');
  const { kilobyteEvent } = await import('./lib');
  const { WINDOW } = await import('./messaging');

  const connection = new AmqpConnection({ url: getConfig().amqpUrl, name: `bench-tracing-${mode}` });
  await connection.start();
  const admin = await connection.channelModel!.createChannel();
  const queue: QueueSpec = { name: inNamespace(namespace, 'bench.tracing'), bind: [[inNamespace(namespace, 'orders'), '#']] };
  await declareTopology(admin, { exchanges: coreExchanges(namespace), queues: [queue] });
  const publisher = new Publisher(connection, new MessageValidator(), { namespace, window: WINDOW });
  await publisher.start();
  try {
    // Warm-up, untimed: the JIT, the channel, the queue's first segment (and the SDK's first batch).
    await Promise.all(Array.from({ length: 2_000 }, () => publisher.publishEnvelope(kilobyteEvent())));
    await admin.purgeQueue(queue.name);
    const events = Array.from({ length: messages }, () => kilobyteEvent());
    const t = performance.now();
    await Promise.all(events.map((e) => publisher.publishEnvelope(e)));
    const rate = messages / ((performance.now() - t) / 1000);
    console.log(JSON.stringify({ rate }));
  } finally {
    for (const q of queueNames({ exchanges: [], queues: [queue] })) await admin.deleteQueue(q);
    for (const e of coreExchanges(namespace)) await admin.deleteExchange(e.name);
    await connection.close();
    await stopTracing?.();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
