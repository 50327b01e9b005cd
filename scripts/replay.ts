// npm run replay -- --from first|<ISO time>|<offset> [--to <ISO time>] [--types order.*,payment.*] [--rate N] --into <queue>
// Reads the event archive (the stream events.archive: docs/messaging.md#the-event-archive)
// from a point and publishes each matching event into a queue, with confirms, through the
// default exchange, with the properties it was archived with. Consumers dedupe on messageId,
// so a replay into one that already handled the events changes nothing. Like `npm run dlq`,
// it takes queue names without BUS_NAMESPACE and adds it. The core is replay(), which the
// tests and the benchmark call in-process.
//
// Where it stops without --to: at the end the archive had when the replay started. Measured
// on RabbitMQ 3.10.8, a stream's message count (what queue.declare answers, passive or not)
// is the broker's statistics, refreshed every 5 s or so: after 1,000 confirmed publishes it
// still said 0 for over a second, so it cannot mark an end. The stream itself says it: before
// the reader starts, one consumer attaches at `next`, and the first event it receives is the
// first the archive did not hold at the start (exact, once anything is appended); another at
// `last` receives the archive's last chunk, whose highest offset is the last event it held
// (the chunk came in one burst of 1 ms, gaps under 0.2 ms). The reader stops at the first,
// else once it has read the second and that consumer has been quiet for 100 ms. Only a reader
// that reads nothing (an empty archive, a start past its end) waits for 2 s of silence. So a
// replay of a quiet archive of 20,000 events took 1.1 s, and one of an archive receiving an
// event every 2 ms stopped at the 20,018 events it held at its start.
import type { Channel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { getConfig } from '../shared/config';
import { errorMessage } from '../shared/errors';
import { catalog } from '../shared/events';
import type { AmqpConnection } from '../shared/messaging/connection';
import { ARCHIVE, inNamespace, topicMatches } from '../shared/messaging/topology';
import { connectBroker, queueExists } from './amqp-tool';
import { runCli, UsageError, wholeNumber } from './cli';

const USAGE = 'usage: npm run replay -- --from first|<ISO time>|<offset> [--to <ISO time>] [--types order.*,payment.*] [--rate N] --into <queue>';

/** Where the reader starts: the archive's first event, an offset, or the first event the broker appended at or after a time. */
export type ReplayStart = { kind: 'first' } | { kind: 'offset'; offset: number } | { kind: 'time'; at: Date };

export interface ReplayOptions {
  from: ReplayStart;
  /** Stop at the first event that occurred (its occurredAt) after this time. */
  to?: Date;
  /** Patterns on the event type, `*` one dot-separated word and `#` any number of them; none: every event. */
  types?: readonly string[];
  /** The queue to publish into, without the bus namespace. It must exist. */
  into: string;
  /** BUS_NAMESPACE: of the archive and of `into`. */
  namespace: string;
  /** Most messages published per second; 0: as fast as the broker confirms. Default DEFAULT_RATE */
  rate?: number;
  /** Most publishes not yet confirmed. Default 512 */
  window?: number;
  /** Most archive deliveries not yet handled. Default 1000 */
  prefetch?: number;
  /** How long a reader that the stream cannot place (it read nothing yet) waits in silence before it has read all, in ms. Default 2000 */
  idleMs?: number;
  /** Called at most once a second. */
  onProgress?: (progress: ReplayProgress) => void;
}

export interface ReplayProgress {
  /** Events read from the archive (not counting the one after --to that stopped it). */
  read: number;
  /** Of those, events whose type matched --types. */
  matched: number;
  /** Of those, events the broker confirmed into the queue. */
  published: number;
  seconds: number;
  /** Published per second since the start. */
  perSecond: number;
}

export interface ReplaySummary extends ReplayProgress {
  /** `end`: it read all the archive held at the start; `to`: it met an event that occurred after --to. */
  stoppedBy: 'end' | 'to';
  /** The offsets of the first and last event read; undefined when none was. */
  firstOffset?: number;
  lastOffset?: number;
}

export const DEFAULT_RATE = 20_000;
const DEFAULT_WINDOW = 512;
const DEFAULT_PREFETCH = 1_000;
const DEFAULT_IDLE_MS = 2_000;
/** Deliveries handled between two acks (one ack, `multiple`, gives the stream its credit back). */
const ACK_EVERY = 64;
/**
 * How long the consumer of the archive's last chunk must have been quiet before its highest
 * offset is taken as the archive's last, in ms: a chunk comes in one burst, gaps of 1 ms.
 */
const SETTLE_MS = 100;
/** How far ahead of its rate the replay may get before it sleeps, in ms (a timer cannot sleep 50 µs). */
const RATE_SLACK_MS = 5;

/** The event types of the catalog: what the archive holds. */
const EVENT_TYPES = Object.entries(catalog)
  .filter(([, d]) => d.kind === 'event')
  .map(([type]) => type);

/**
 * A test of an event type against the patterns (every type when there are none), remembered
 * per type. A malformed pattern, or one no event type of the catalog matches (a typo such as
 * `orders.*`), is a UsageError.
 */
export function typeFilter(patterns: readonly string[]): (type: string) => boolean {
  for (const p of patterns) {
    if (!p.split('.').every((w) => w === '*' || w === '#' || /^[A-Za-z0-9_-]+$/.test(w))) {
      throw new UsageError(`--types: "${p}" is not a pattern: words separated by dots, each a name, * (one word) or # (any number)\n${USAGE}`);
    }
    if (!EVENT_TYPES.some((t) => topicMatches(p, t))) throw new UsageError(`--types: "${p}" matches no event type (the archive holds ${EVENT_TYPES.join(', ')})`);
  }
  const known = new Map<string, boolean>();
  return (type) => {
    let hit = known.get(type);
    if (hit === undefined) known.set(type, (hit = patterns.length === 0 || patterns.some((p) => topicMatches(p, type))));
    return hit;
  };
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * An ISO 8601 time: a date (midnight UTC), or a date and time with its zone (Z or ±hh:mm), e.g.
 * 2026-11-29T04:00:00Z. Anything else, a 31st of February included, is a UsageError.
 */
export function parseTime(flag: string, text: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):?(\d{2})))?$/.exec(text);
  const bad = (): UsageError => new UsageError(`--${flag} takes an ISO 8601 time with its zone, e.g. 2026-11-29T04:00:00Z, or a date (got "${text}")\n${USAGE}`);
  if (!m) throw bad();
  const [, year, month, day, hour = '0', minute = '0', second = '0', zoneHour = '0', zoneMinute = '0'] = m;
  const leap = Number(year) % 4 === 0 && (Number(year) % 100 !== 0 || Number(year) % 400 === 0);
  const days = Number(month) === 2 && !leap ? 28 : DAYS_IN_MONTH[Number(month) - 1];
  if (days === undefined || Number(day) < 1 || Number(day) > days || Number(hour) > 23 || Number(minute) > 59 || Number(second) > 59 || Number(zoneHour) > 23 || Number(zoneMinute) > 59) throw bad();
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw bad();
  return new Date(ms);
}

/** --from: `first`, an offset (a whole number ≥ 0), or an ISO 8601 time. */
export function parseStart(text: string): ReplayStart {
  if (text === 'first') return { kind: 'first' };
  if (/^\d+$/.test(text)) {
    if (!Number.isSafeInteger(Number(text))) throw new UsageError(`--from: offset ${text} is too large\n${USAGE}`);
    return { kind: 'offset', offset: Number(text) };
  }
  if (/^-\d+$/.test(text)) throw new UsageError(`--from: an offset is a whole number ≥ 0 (got ${text})\n${USAGE}`);
  if (/^\d{4}-/.test(text)) return { kind: 'time', at: parseTime('from', text) };
  throw new UsageError(`--from takes first, an ISO 8601 time (e.g. 2026-11-29T04:00:00Z) or an offset (a whole number ≥ 0) (got "${text}")\n${USAGE}`);
}

/** `--from -5` as `--from=-5`: a negative number is a value to refuse with its reason, not a flag parseArgs finds ambiguous. */
function negativeValuesJoined(argv: readonly string[]): string[] {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = argv[i + 1];
    if (/^--(from|rate)$/.test(arg) && value !== undefined && /^-\d/.test(value)) {
      args.push(`${arg}=${value}`);
      i++;
    } else {
      args.push(arg);
    }
  }
  return args;
}

/** The command line as replay()'s options, without the namespace. Bad flags are a UsageError (exit 2). */
export function parseReplayArgs(argv: string[]): Omit<ReplayOptions, 'namespace' | 'onProgress'> {
  let values;
  try {
    ({ values } = parseArgs({
      args: negativeValuesJoined(argv),
      options: { from: { type: 'string' }, to: { type: 'string' }, types: { type: 'string' }, rate: { type: 'string' }, into: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError(`${errorMessage(err)}\n${USAGE}`);
  }
  if (values.from === undefined) throw new UsageError(`--from is required\n${USAGE}`);
  if (values.into === undefined || values.into.trim() === '') throw new UsageError(`--into is required: the queue to publish into\n${USAGE}`);
  const from = parseStart(values.from);
  const to = values.to === undefined ? undefined : parseTime('to', values.to);
  if (to && from.kind === 'time' && to < from.at) throw new UsageError(`--to (${values.to}) is before --from (${values.from})\n${USAGE}`);
  const types = values.types?.split(',').map((t) => t.trim());
  if (types?.some((t) => t === '')) throw new UsageError(`--types takes patterns separated by commas, e.g. order.*,payment.* (got "${values.types}")\n${USAGE}`);
  if (types) typeFilter(types); // refuses a bad pattern before anything connects
  const rate = values.rate === undefined ? DEFAULT_RATE : wholeNumber('rate', values.rate, 0, 1_000_000, USAGE);
  return { from, into: values.into, rate, ...(to ? { to } : {}), ...(types ? { types } : {}) };
}

/** The offset the broker gives each delivery from a stream. */
function streamOffsetOf(m: ConsumeMessage): number | undefined {
  const offset: unknown = m.properties.headers?.['x-stream-offset'];
  return typeof offset === 'number' ? offset : undefined;
}

/** The envelope's field, when the body is an envelope. */
function envelopeField(m: ConsumeMessage, field: 'eventType' | 'occurredAt'): string | undefined {
  try {
    const value: unknown = (JSON.parse(m.content.toString('utf8')) as Record<string, unknown>)[field];
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the event occurred after `to`. The publisher sets the timestamp property to the
 * envelope's occurredAt in whole seconds; within the second of `to` the envelope decides. An
 * event that says nothing of its time does not stop the replay.
 */
function occurredAfter(m: ConsumeMessage, toMs: number): boolean {
  const seconds: unknown = m.properties.timestamp;
  if (typeof seconds === 'number') {
    if (seconds * 1000 > toMs) return true;
    if (seconds * 1000 + 999 <= toMs) return false;
  }
  const at = Date.parse(envelopeField(m, 'occurredAt') ?? '');
  return !Number.isNaN(at) && at > toMs;
}

/** The x-stream-offset a consumer attaches with. A Date would be encoded as an empty table, which crashes the broker's channel: a timestamp is seconds, typed. */
function streamOffset(from: ReplayStart): unknown {
  if (from.kind === 'first') return 'first';
  if (from.kind === 'offset') return from.offset;
  return { '!': 'timestamp', value: Math.floor(from.at.getTime() / 1000) };
}

/**
 * The properties a replayed message goes with: those it was archived with (messageId, type,
 * headers, persistence, content type, correlation id, timestamp), less the broker's offset.
 * Mandatory: a queue deleted meanwhile fails the replay instead of dropping the message.
 */
function republished(m: ConsumeMessage): Options.Publish {
  const p: Record<string, unknown> = { ...m.properties };
  const headers: Record<string, unknown> = { ...(m.properties.headers ?? {}) };
  delete headers['x-stream-offset']; // the broker's, on this delivery only
  const options: Options.Publish = { mandatory: true, headers };
  if (typeof p.deliveryMode === 'number') options.deliveryMode = p.deliveryMode;
  if (typeof p.timestamp === 'number') options.timestamp = p.timestamp;
  for (const key of ['messageId', 'type', 'contentType', 'contentEncoding', 'correlationId', 'appId'] as const) {
    const value = p[key];
    if (typeof value === 'string') options[key] = value;
  }
  return options;
}

/**
 * Reads the archive from options.from and publishes each matching event into the queue, until
 * the end the archive had at the start or the first event after options.to. Throws a
 * UsageError for a missing queue, and an Error when the broker goes away mid-run (what was
 * published stays published: run it again, the consumers deduplicate).
 */
export async function replay(options: ReplayOptions, deps: { connection: AmqpConnection }): Promise<ReplaySummary> {
  const archive = inNamespace(options.namespace, ARCHIVE);
  const into = inNamespace(options.namespace, options.into);
  const rate = options.rate ?? DEFAULT_RATE;
  const window = options.window ?? DEFAULT_WINDOW;
  const idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
  const toMs = options.to?.getTime();
  const matches = typeFilter(options.types ?? []);
  if (into === archive) throw new UsageError(`--into: "${options.into}" is the archive itself`);
  // Publishing into a missing queue through the default exchange would be confirmed and dropped.
  if (!(await queueExists(deps.connection, into))) throw new UsageError(`--into: queue "${into}" does not exist (the name is taken without BUS_NAMESPACE, as npm run dlq takes it)`);
  if (!(await queueExists(deps.connection, archive))) {
    throw new Error(`the archive "${archive}" does not exist: no process of the fleet has run on this broker${options.namespace ? ` in bus namespace "${options.namespace}"` : ''}`);
  }
  const model = deps.connection.channelModel;
  if (!model) throw new Error('not connected to RabbitMQ');

  const counts = { read: 0, matched: 0, published: 0 };
  let failure: Error | undefined;
  /** Messages the broker nacked: the replay fails once the reason is worded (fail). */
  let nacked = 0;
  let wake: (() => void) | undefined;
  const signal = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  /** Waits for a delivery, a confirm, the end offset or a failure; or for ms. */
  const waitFor = (ms?: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  /** Throws the failure, if any (a function: what closures set is not narrowed away). */
  const check = (): void => {
    if (failure) throw failure;
  };
  const fail = (why: string): void => {
    failure ??= new Error(`${why}, after reading ${counts.read} event(s) and publishing ${counts.published}; run the replay again: the consumers deduplicate by messageId`);
    signal();
  };
  /** Reading the archive, and publishing: a channel that closes meanwhile fails the replay. */
  let reading = true;
  let publishing = true;
  const onDisconnect = (): void => fail('lost the connection to RabbitMQ');
  deps.connection.on('disconnect', onDisconnect);
  const watch = (channel: Channel | ConfirmChannel, what: string, live: () => boolean): void => {
    let reason = '';
    channel.on('error', (err: Error) => void (reason = `: ${errorMessage(err)}`));
    // A channel the broker closes says why first ('error'); one closed without a word went with its connection.
    channel.on('close', () => live() && fail(reason ? `the ${what} channel closed${reason}` : 'lost the connection to RabbitMQ'));
  };

  const channels: Array<Channel | ConfirmChannel> = [];
  try {
    const out = await model.createConfirmChannel();
    channels.push(out);
    watch(out, 'publishing', () => publishing);
    out.on('return', () => fail(`queue "${into}" took no message (was it deleted?)`));

    // What the archive held at the start (see the header), learned by two consumers attached
    // before the reader: at `next`, the first offset it did not hold, once an event arrives; at
    // `last`, its last chunk, whose highest offset is its last event once the burst is over.
    let endOffset: number | undefined;
    let lastChunkEnd: number | undefined;
    let lastChunkAt = performance.now();
    const next = await model.createChannel();
    const last = await model.createChannel();
    channels.push(next, last);
    for (const probe of [next, last]) watch(probe, "archive's end", () => reading && endOffset === undefined);
    await next.prefetch(1);
    await next.consume(archive, (m) => {
      const offset = m ? streamOffsetOf(m) : undefined;
      if (offset === undefined || endOffset !== undefined) return;
      endOffset = offset;
      signal();
    }, { noAck: false, arguments: { 'x-stream-offset': 'next' } });
    await last.prefetch(DEFAULT_PREFETCH);
    await last.consume(archive, (m) => {
      const offset = m ? streamOffsetOf(m) : undefined;
      if (!m || offset === undefined) return;
      lastChunkEnd = Math.max(lastChunkEnd ?? offset, offset);
      lastChunkAt = performance.now();
      try {
        last.ack(m);
      } catch {
        // closed: the end is known
      }
    }, { noAck: false, arguments: { 'x-stream-offset': 'last' } });

    const inbox: ConsumeMessage[] = [];
    let head = 0;
    const reader = await model.createChannel();
    channels.push(reader);
    watch(reader, 'archive', () => reading);
    await reader.prefetch(options.prefetch ?? DEFAULT_PREFETCH);
    await reader.consume(archive, (m) => {
      if (m) inbox.push(m);
      else fail('the broker cancelled the archive consumer (was the archive deleted?)');
      signal();
    }, { noAck: false, arguments: { 'x-stream-offset': streamOffset(options.from) } });

    const started = performance.now();
    const progress = (): ReplayProgress => {
      const seconds = (performance.now() - started) / 1000;
      return { ...counts, seconds, perSecond: seconds > 0 ? counts.published / seconds : 0 };
    };
    let nextReport = started + 1_000;
    let lastDelivery = performance.now();
    let unacked: ConsumeMessage | undefined;
    let unackedCount = 0;
    const ackHandled = (): void => {
      try {
        if (unacked) reader.ack(unacked, true);
      } catch {
        // the channel closed: its close fails the replay
      }
      unacked = undefined;
      unackedCount = 0;
    };
    let inFlight = 0;
    let firstOffset: number | undefined;
    let lastOffset: number | undefined;
    let stoppedBy: ReplaySummary['stoppedBy'] = 'end';

    let probing = true;
    for (;;) {
      check();
      if (probing && endOffset !== undefined) {
        // The end is known exactly: neither consumer needs to follow the live events any longer.
        probing = false;
        for (const probe of [next, last]) void probe.close().catch(() => undefined);
      }
      if (options.onProgress && performance.now() >= nextReport) {
        nextReport = performance.now() + 1_000;
        options.onProgress(progress());
      }
      const m = head < inbox.length ? inbox[head++] : undefined;
      if (head > 4_096 && head * 2 > inbox.length) {
        inbox.splice(0, head);
        head = 0;
      }
      if (!m) {
        ackHandled();
        const now = performance.now();
        if (endOffset !== undefined) {
          if (lastOffset !== undefined && lastOffset >= endOffset - 1) break; // exactly the end
        } else if (lastOffset !== undefined && lastChunkEnd !== undefined && lastOffset >= lastChunkEnd && now - lastChunkAt >= SETTLE_MS) {
          break; // the last event the archive held, read; nothing arrived since
        }
        // A reader that read something has more coming until it reaches the end it knows; one
        // that read nothing (an empty archive, a start past its end) stops after idleMs of silence.
        const idle = now - lastDelivery;
        if (lastOffset === undefined && idle >= idleMs) break;
        await waitFor(Math.min(Math.max(idleMs - idle, 0), SETTLE_MS) + 1);
        continue;
      }
      lastDelivery = performance.now();
      const offset = streamOffsetOf(m);
      if (offset === undefined) throw new Error(`a message from "${archive}" without the x-stream-offset header: is it a stream?`);
      if (endOffset !== undefined && offset >= endOffset) break;
      if (toMs !== undefined && occurredAfter(m, toMs)) {
        stoppedBy = 'to';
        break;
      }
      counts.read++;
      firstOffset ??= offset;
      lastOffset = offset;
      const p = m.properties;
      // Without --types every message goes, whatever it is (a consumer dead-letters what it cannot read).
      const type = typeof p.type === 'string' ? p.type : envelopeField(m, 'eventType');
      if (!options.types?.length || (type !== undefined && matches(type))) {
        counts.matched++;
        if (rate > 0) {
          const ahead = started + (counts.matched * 1_000) / rate - performance.now();
          if (ahead > RATE_SLACK_MS) await sleep(ahead);
        }
        while (inFlight >= window && !failure) await waitFor();
        check();
        inFlight++;
        const confirmed = (err: unknown): void => {
          inFlight--;
          // A channel that closes fails its unconfirmed messages before it says why it closed
          // (its 'close', the connection's 'disconnect'): that reason, if any, is the one to give.
          // Counted at once, worded a moment later: a nack must never look like the end, even
          // when a later confirm of the same turn wakes the last wait.
          if (err) {
            nacked++;
            setImmediate(() => fail(`the broker did not confirm a message into "${into}" (${errorMessage(err)})`));
            return;
          }
          counts.published++;
          signal();
        };
        try {
          out.publish('', into, m.content, republished(m), confirmed);
        } catch (err) {
          inFlight--;
          fail(`could not publish into "${into}" (${errorMessage(err)})`);
        }
      }
      unacked = m;
      if (++unackedCount >= ACK_EVERY) ackHandled();
    }

    // Stop reading; what the reader holds unacked goes nowhere (a stream keeps everything).
    reading = false;
    for (const channel of [reader, next, last]) await channel.close().catch(() => undefined);
    while ((inFlight > 0 || nacked > 0) && !failure) await waitFor();
    check();
    publishing = false;
    await out.close();
    return { ...progress(), stoppedBy, ...(firstOffset === undefined ? {} : { firstOffset, lastOffset }) };
  } finally {
    reading = false;
    publishing = false;
    deps.connection.off('disconnect', onDisconnect);
    for (const channel of channels) await channel.close().catch(() => undefined);
  }
}

/** The summary line: read, matched, published, seconds, messages per second, and why it stopped. */
export function formatSummary(s: ReplaySummary): string {
  const where = s.lastOffset === undefined ? 'nothing to read' : `offsets ${s.firstOffset} to ${s.lastOffset}`;
  const why = s.stoppedBy === 'to' ? 'stopped at the first event after --to' : 'read to the end the archive had at the start';
  return `replay: read ${s.read}, matched ${s.matched}, published ${s.published} in ${s.seconds.toFixed(2)} s (${Math.round(s.perSecond)} msg/s); ${where}; ${why}`;
}

if (require.main === module) {
  runCli('replay', async () => {
    const args = parseReplayArgs(process.argv.slice(2));
    const connection = await connectBroker('replay-cli');
    try {
      const summary = await replay(
        {
          ...args,
          namespace: getConfig().busNamespace,
          onProgress: (p) => console.error(`replay: read ${p.read}, matched ${p.matched}, published ${p.published} (${Math.round(p.perSecond)} msg/s)`),
        },
        { connection },
      );
      console.log(formatSummary(summary));
      return 0;
    } finally {
      await connection.close();
    }
  });
}
