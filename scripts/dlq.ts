// npm run dlq -- list|show|replay <queue> [--id <messageId>] [--limit N]
// Inspects and replays dead-lettered messages. <queue> is a consumer queue
// (payments.commands) or its DLQ (payments.commands.dlq). list and show leave the DLQ as
// it was; replay moves messages back to the consumer queue (confirmed before the DLQ copy
// is acked) with their attempts reset.
import type { Channel, GetMessage } from 'amqplib';
import { parseArgs } from 'node:util';
import { errorMessage } from '../shared/errors';
import { HEADERS, ownHeaders } from '../shared/messaging/headers';
import { dlqName, inNamespace } from '../shared/messaging/topology';
import { connectTool, describeDeadLetter, queueExists, type ToolBus } from './amqp-tool';
import { runCli, UsageError } from './cli';

const USAGE = 'usage: npm run dlq -- list|show|replay <queue> [--id <messageId>] [--limit N]';
const COMMANDS = ['list', 'show', 'replay'] as const;
type Command = (typeof COMMANDS)[number];

function parse(argv: string[]): { command: Command; queue: string; id?: string; limit: number } {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { id: { type: 'string' }, limit: { type: 'string', default: '100' } },
    strict: true,
    allowPositionals: true,
  });
  const [command, queue, ...rest] = positionals;
  if (!command || !(COMMANDS as readonly string[]).includes(command)) throw new UsageError(`unknown command "${command ?? ''}"\n${USAGE}`);
  if (!queue) throw new UsageError(`${command} needs a queue\n${USAGE}`);
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"\n${USAGE}`);
  if (!/^\d+$/.test(values.limit) || Number(values.limit) < 1) throw new UsageError(`--limit must be a positive whole number (got "${values.limit}")`);
  return { command: command as Command, queue, id: values.id, limit: Number(values.limit) };
}

async function mustExist(bus: ToolBus, name: string): Promise<void> {
  if (!(await queueExists(bus.connection, name))) throw new UsageError(`queue "${name}" does not exist`);
}

async function openQueue(bus: ToolBus, name: string): Promise<Channel> {
  await mustExist(bus, name);
  const model = bus.connection.channelModel;
  if (!model) throw new Error('not connected to RabbitMQ');
  const channel = await model.createChannel();
  channel.on('error', () => undefined);
  return channel;
}

/** Takes up to `limit` messages unacked; closing the channel later puts back whatever was not acked. */
async function take(channel: Channel, queue: string, limit: number): Promise<GetMessage[]> {
  const taken: GetMessage[] = [];
  while (taken.length < limit) {
    const m = await channel.get(queue, { noAck: false });
    if (!m) break;
    taken.push(m);
  }
  return taken;
}

runCli('dlq', async () => {
  const args = parse(process.argv.slice(2));
  const bus = await connectTool('dlq-cli');
  const given = args.queue.endsWith('.dlq') ? args.queue.slice(0, -'.dlq'.length) : args.queue;
  const consumerQueue = inNamespace(bus.namespace, given);
  const dlq = dlqName(consumerQueue);
  try {
    // Replaying into a missing queue would be confirmed and silently dropped by the broker.
    if (args.command === 'replay') await mustExist(bus, consumerQueue);
    const channel = await openQueue(bus, dlq);
    const taken = await take(channel, dlq, args.limit);
    const selected = args.id ? taken.filter((m) => m.properties.messageId === args.id) : taken;
    if (args.id && selected.length === 0) throw new UsageError(`no message with id ${args.id} among the first ${taken.length} in ${dlq}`);

    if (args.command === 'list') {
      console.log(`${dlq}: ${taken.length} message(s)${taken.length === args.limit ? ` (first ${args.limit})` : ''}`);
      for (const m of selected) {
        const d = describeDeadLetter(m);
        console.log(`${d.messageId}  ${d.type}  attempts=${d.attempts}  from ${d.origin}  ${d.deadLetteredAt}\n    ${d.reason}`);
      }
    } else if (args.command === 'show') {
      for (const m of selected) {
        let body: unknown;
        try {
          body = JSON.parse(m.content.toString('utf8'));
        } catch {
          body = m.content.toString('utf8');
        }
        console.log(JSON.stringify({ ...describeDeadLetter(m), headers: m.properties.headers, body }, null, 2));
      }
    } else {
      let replayed = 0;
      for (const m of selected) {
        const headers = ownHeaders(m.properties.headers);
        for (const name of [HEADERS.errorType, HEADERS.errorMessage, HEADERS.consumer, HEADERS.deadLetteredAt]) delete headers[name];
        headers[HEADERS.attempts] = 0;
        headers[HEADERS.replayedAt] = new Date().toISOString();
        const p = m.properties;
        await bus.publisher.publish({
          exchange: '',
          routingKey: consumerQueue,
          content: m.content,
          options: {
            headers,
            ...(p.messageId ? { messageId: String(p.messageId) } : {}),
            ...(p.type ? { type: String(p.type) } : {}),
            ...(p.correlationId ? { correlationId: String(p.correlationId) } : {}),
            ...(p.contentType ? { contentType: String(p.contentType) } : {}),
          },
        });
        channel.ack(m); // only after the broker confirmed the copy
        replayed++;
        console.log(`replayed ${String(p.messageId ?? '(no id)')} -> ${consumerQueue}`);
      }
      console.log(`${replayed} message(s) replayed to ${consumerQueue}`);
    }
    await channel.close().catch((err: unknown) => console.error(`dlq: ${errorMessage(err)}`));
    return 0;
  } finally {
    await bus.connection.close();
  }
});
