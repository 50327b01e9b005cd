// npm run publish -- --exchange X --routing-key K --file F [--raw] [--count N]
// Validates an event (or command) against its schema and publishes it with confirms,
// printing each eventId. The file holds an envelope (missing envelope fields are filled
// in) or just the data. --raw sends the file's bytes as they are, for poison testing.
// Exit codes: 0 published, 2 bad input, 1 the broker could not be reached or refused.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { newId } from '../shared/ids';
import { errorMessage } from '../shared/errors';
import { aggregateVersionOf, isMessageType, type Envelope } from '../shared/events';
import type { MessageValidator } from '../shared/messaging/validator';
import { inNamespace } from '../shared/messaging/topology';
import { connectTool } from './amqp-tool';
import { runCli, UsageError, wholeNumber } from './cli';

const CHUNK = 1000;
const USAGE = 'usage: npm run publish -- --exchange X --routing-key K --file F [--raw] [--count N]';

interface Args {
  exchange: string;
  routingKey: string;
  file: string;
  raw: boolean;
  count: number;
}

function parse(argv: string[]): Args {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      exchange: { type: 'string' },
      'routing-key': { type: 'string' },
      file: { type: 'string' },
      raw: { type: 'boolean', default: false },
      count: { type: 'string', default: '1' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"\n${USAGE}`);
  for (const flag of ['exchange', 'routing-key', 'file'] as const) {
    if (values[flag] === undefined) throw new UsageError(`--${flag} is required\n${USAGE}`);
  }
  return {
    exchange: values.exchange as string,
    routingKey: values['routing-key'] as string,
    file: values.file as string,
    raw: values.raw,
    count: wholeNumber('count', values.count, 1, 1_000_000, USAGE),
  };
}

function readInput(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UsageError(`cannot read --file ${file}: ${errorMessage(err)}`);
  }
}

/** The eventId a raw body names, if it is a JSON object with one. */
function eventIdOf(content: Buffer): string | undefined {
  try {
    const body = JSON.parse(content.toString('utf8')) as unknown;
    const id = body !== null && typeof body === 'object' ? (body as { eventId?: unknown }).eventId : undefined;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

/** Builds the envelope to send from the file's JSON; each copy gets a new id unless the file fixes one. */
export function envelopeFrom(input: unknown, routingKey: string, validator: MessageValidator): () => Envelope {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new UsageError('the file must hold a JSON object: an envelope, or the data of one');
  }
  const given = input as Partial<Envelope> & Record<string, unknown>;
  const isEnvelope = 'data' in given && typeof given.data === 'object';
  const data = (isEnvelope ? given.data : given) as Record<string, unknown>;
  const eventType = isEnvelope && typeof given.eventType === 'string' ? given.eventType : routingKey;
  return () => {
    const eventId = isEnvelope && given.eventId ? given.eventId : newId();
    return {
      eventId,
      eventType,
      schemaVersion: (isEnvelope ? given.schemaVersion : undefined) ?? validator.latestVersion(eventType) ?? 1,
      occurredAt: (isEnvelope ? given.occurredAt : undefined) ?? new Date().toISOString(),
      aggregateId: (isEnvelope ? given.aggregateId : undefined) ?? (typeof data.orderId === 'string' ? data.orderId : eventId),
      aggregateVersion: (isEnvelope ? given.aggregateVersion : undefined) ?? (isMessageType(eventType) ? aggregateVersionOf(eventType) : 0),
      correlationId: (isEnvelope ? given.correlationId : undefined) ?? eventId,
      causationId: (isEnvelope ? given.causationId : undefined) ?? eventId,
      ...(isEnvelope && given.replyTo ? { replyTo: given.replyTo } : {}),
      data,
    };
  };
}

runCli('publish', async () => {
  const args = parse(process.argv.slice(2));
  const content = readInput(args.file);
  const bus = await connectTool('publish-cli');
  const exchange = inNamespace(bus.namespace, args.exchange);
  try {
    if (args.raw) {
      // Consumers refuse a messageId that is not the envelope's eventId, so a body that
      // names an eventId is sent under it (copies are then duplicates); anything else gets fresh ids.
      const bodyId = eventIdOf(content);
      for (let sent = 0; sent < args.count; sent += CHUNK) {
        const ids = Array.from({ length: Math.min(CHUNK, args.count - sent) }, () => bodyId ?? newId());
        await Promise.all(ids.map((messageId) => bus.publisher.publish({ exchange, routingKey: args.routingKey, content, options: { messageId, mandatory: true } })));
        for (const id of ids) console.log(id);
      }
      return 0;
    }
    let json: unknown;
    try {
      json = JSON.parse(content.toString('utf8'));
    } catch (err) {
      throw new UsageError(`${args.file} is not JSON: ${errorMessage(err)} (use --raw to send it anyway)`);
    }
    const next = envelopeFrom(json, args.routingKey, bus.validator);
    const sample = next();
    try {
      bus.validator.check(sample);
    } catch (err) {
      throw new UsageError(`${args.file} fails validation: ${errorMessage(err)} (use --raw to send it anyway)`);
    }
    if (sample.eventType !== args.routingKey) {
      throw new UsageError(`--routing-key must be the message type "${sample.eventType}" (got "${args.routingKey}")`);
    }
    const home = bus.validator.exchangeOf(sample.eventType);
    if (home !== args.exchange) {
      throw new UsageError(`"${sample.eventType}" is published to exchange "${home}", not "${args.exchange}" (use --raw to send it anyway)`);
    }
    // In chunks, so that many copies keep the publisher's window of unconfirmed messages full.
    for (let sent = 0; sent < args.count; sent += CHUNK) {
      const batch = Array.from({ length: Math.min(CHUNK, args.count - sent) }, (_, i) => (sent + i === 0 ? sample : next()));
      await Promise.all(batch.map((e) => bus.publisher.publishEnvelope(e, { exchange, routingKey: args.routingKey, mandatory: true })));
      for (const e of batch) console.log(e.eventId);
    }
    return 0;
  } finally {
    await bus.connection.close();
  }
});
