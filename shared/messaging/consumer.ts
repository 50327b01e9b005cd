// The consumer loop: prefetch, manual acks, validation, dedup, and the one place where a
// message's fate (ack, retry later, dead-letter, wait) is carried out. Handlers return or
// throw; they never ack. A message is acked only after what it produced is confirmed by
// the broker and its done marker is stored; nothing is acked on a channel that closed.
// What becomes of each delivery, how long handlers take and how deep the queues are is
// counted here (messages_consumed_total, message_handler_duration_seconds, queue depths); a
// retry or dead letter is also an event, with its reason, on the delivery's span (tracing on).
import type { Channel, ChannelModel, ConsumeMessage, Options } from 'amqplib';
import { setTimeout as sleep } from 'node:timers/promises';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { DedupStore } from '../dedup';
import { DependencyUnavailableError, DuplicateInProgressError, errorMessage, LeaseLostError, PermanentError, PoisonMessageError, UnroutableError } from '../errors';
import type { Envelope } from '../events';
import { silentLogger, type Logger } from '../observability/logger';
import { recordOnActiveSpan } from '../observability/trace-context';
import { processRegistry } from '../observability/metrics';
import { withDeadline } from '../runtime/deadline';
import type { AmqpConnection } from './connection';
import { decide, type Decision } from './decide';
import { handlerFor, type HandlerMap } from './handler';
import { HEADERS, numberHeader, ownHeaders, stringHeader } from './headers';
import type { Publisher } from './publisher';
import { declareTopology, DEFAULT_RETRY, dlqName, type QueueSpec, type RetryPolicy, waitQueueName } from './topology';
import type { MessageValidator } from './validator';

export interface ConsumerOptions {
  /** The queue, its bindings and its retry policy; declared by the consumer. */
  queue: QueueSpec;
  /** Name in dedup keys (`dedup:<consumer>:<messageId>`) and logs. Default: the queue name */
  consumerName?: string;
  /** Handlers by message type; a type without a handler is dead-lettered. */
  handlers: HandlerMap;
  /** Unacked messages in flight at once. Default 32 */
  prefetch?: number;
  /** null turns dedup off (the handler must then be idempotent on its own). */
  dedup: DedupStore | null;
  /** How long stop() waits for in-flight handlers, in ms. Default 30000 */
  drainTimeoutMs?: number;
  logger?: Logger;
}

interface Subscription {
  channel: Channel;
  model: ChannelModel;
  open: boolean;
  consumerTag?: string;
  /**
   * Delivery tags received and neither acked nor nacked yet, in the order received
   * (ascending). A delivery given up unsettled (the consumer stopping, the channel closed)
   * stays here on purpose: no multiple ack may reach it.
   */
  unsettled: Set<number>;
  /** Deliveries acked in this turn of the event loop, sent at its end (flushAcks). */
  acks: ConsumeMessage[];
}

const DEPENDENCY_BACKOFF_MS = [100, 250, 500, 1_000, 2_000];

/** What became of a delivery, as messages_consumed_total counts it. */
type ConsumedOutcome = 'handled' | 'duplicate' | 'retried' | 'dead_lettered' | 'waiting_for_dependency';

const consumed = new Counter<'queue' | 'outcome'>({
  name: 'messages_consumed_total',
  help:
    'Deliveries by queue and what became of them: handled; duplicate (done before: its stored outcome re-emitted); retried (moved to a wait queue, a duplicate still in progress elsewhere included); dead_lettered; waiting_for_dependency (held until a dependency answers, then counted again with its outcome)',
  labelNames: ['queue', 'outcome'],
  registers: [processRegistry],
});

const handlerSeconds = new Histogram<'queue' | 'type'>({
  name: 'message_handler_duration_seconds',
  help: "Each run of a handler by queue and message type, failed ones included: from when its dedup claim was granted until its results were confirmed and its outcome stored (the handled log line's ms)",
  labelNames: ['queue', 'type'],
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [processRegistry],
});

/** How long a scrape waits for the broker's answer about one queue, in ms; NaN after it. */
const DEPTH_DEADLINE_MS = 1_000;

interface Depths {
  queue: number;
  dlq: number;
}

/** The consumers of this process that are started: whose queues the depth gauges read. */
const startedConsumers = new Set<Consumer>();
let readingDepths: Promise<Map<string, Depths>> | undefined;

/** Every started consumer's queue and DLQ depth, read once per scrape for both gauges. */
function readDepths(): Promise<Map<string, Depths>> {
  readingDepths ??= Promise.all([...startedConsumers].map(async (c) => [c.queueName, await c.depths()] as const))
    .then((entries) => new Map(entries))
    .finally(() => (readingDepths = undefined));
  return readingDepths;
}

/** Sets a depth gauge from this scrape's reading. */
async function setDepths(gauge: Gauge<'queue'>, pick: (d: Depths) => number): Promise<void> {
  const depths = await readDepths();
  gauge.reset(); // a stopped consumer's queue is no longer this process's to report
  for (const [queue, d] of depths) gauge.set({ queue }, pick(d));
}

new Gauge<'queue'>({
  name: 'queue_depth_messages',
  help: `Messages ready in each queue this process consumes, asked of the broker at each scrape (NaN when it does not answer within ${DEPTH_DEADLINE_MS} ms)`,
  labelNames: ['queue'],
  registers: [processRegistry],
  collect() {
    return setDepths(this, (d) => d.queue);
  },
});

new Gauge<'queue'>({
  name: 'dlq_depth_messages',
  help: `Messages in the DLQ of each queue this process consumes (labelled with the consumer queue), asked of the broker at each scrape (NaN when it does not answer within ${DEPTH_DEADLINE_MS} ms)`,
  labelNames: ['queue'],
  registers: [processRegistry],
  collect() {
    return setDepths(this, (d) => d.dlq);
  },
});

export class Consumer {
  private sub?: Subscription;
  private stopping = false;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly retry: RetryPolicy;
  private readonly name: string;
  private readonly logger: Logger;
  private removeSetup?: () => void;
  /** Deliveries held now, by the dependency they wait for. */
  private readonly holding = new Map<string, number>();

  constructor(
    private readonly connection: AmqpConnection,
    private readonly publisher: Publisher,
    private readonly validator: MessageValidator,
    private readonly options: ConsumerOptions,
  ) {
    this.retry = options.queue.retry ?? DEFAULT_RETRY;
    this.name = options.consumerName ?? options.queue.name;
    this.logger = (options.logger ?? silentLogger).child({ queue: options.queue.name });
  }

  get queueName(): string {
    return this.options.queue.name;
  }

  /** Declares the queue and starts consuming; consuming resumes by itself after reconnects. */
  async start(): Promise<void> {
    await this.publisher.start();
    this.removeSetup = await this.connection.addSetup((model) => this.subscribe(model));
    startedConsumers.add(this);
  }

  /** True while its channel is open and subscribed. */
  get consuming(): boolean {
    return !this.stopping && this.sub?.open === true && this.sub.consumerTag !== undefined;
  }

  /** The dependencies deliveries are held for now (DependencyUnavailableError), each once. */
  get waitingFor(): string[] {
    return [...this.holding.keys()];
  }

  /**
   * How many messages are ready in its queue and its DLQ, each asked on a channel of its own
   * (a failed check closes its channel); NaN for one the broker did not answer in time.
   */
  async depths(): Promise<Depths> {
    const model = this.connection.channelModel;
    const count = async (queue: string): Promise<number> => {
      if (!model) return Number.NaN;
      const channel = await model.createChannel();
      channel.on('error', () => undefined);
      try {
        return (await channel.checkQueue(queue)).messageCount;
      } finally {
        channel.close().catch(() => undefined);
      }
    };
    const within = (queue: string): Promise<number> => withDeadline(count(queue), DEPTH_DEADLINE_MS).catch(() => Number.NaN);
    const [queue, dlq] = await Promise.all([within(this.queueName), within(dlqName(this.queueName))]);
    return { queue, dlq };
  }

  private count(outcome: ConsumedOutcome): void {
    consumed.inc({ queue: this.queueName, outcome });
  }

  private async subscribe(model: ChannelModel): Promise<void> {
    if (this.stopping) return;
    if (this.sub?.open && this.sub.model === model) return;
    const channel = await model.createChannel();
    const sub: Subscription = { channel, model, open: true, unsettled: new Set(), acks: [] };
    channel.on('error', (err: Error) => this.logger.warn({ err: errorMessage(err) }, 'consumer channel error'));
    channel.on('close', () => {
      sub.open = false;
      this.resubscribeIfAlive(model);
    });
    await declareTopology(channel, { exchanges: [], queues: [this.options.queue] });
    await channel.prefetch(this.options.prefetch ?? 32);
    this.sub = sub;
    const reply = await channel.consume(this.options.queue.name, (msg) => {
      if (msg === null) {
        // The broker cancelled us (queue deleted or moved); start over on a fresh channel.
        this.logger.warn('consumer cancelled by the broker; resubscribing');
        this.flushAcks(sub);
        channel.close().catch(() => undefined);
        return;
      }
      sub.unsettled.add(msg.fields.deliveryTag);
      this.track(this.handle(msg, sub));
    });
    sub.consumerTag = reply.consumerTag;
    this.logger.info({ prefetch: this.options.prefetch ?? 32 }, 'consuming');
  }

  /** A channel can close on its own (a channel error, a broker cancel) while the connection lives. */
  private resubscribeIfAlive(model: ChannelModel): void {
    if (this.stopping || this.connection.channelModel !== model) return;
    setTimeout(() => {
      if (this.stopping || this.connection.channelModel !== model) return;
      this.subscribe(model).catch((err: unknown) => {
        this.logger.warn({ err: errorMessage(err) }, 'resubscribe failed; retrying');
        this.resubscribeIfAlive(model);
      });
    }, 500).unref();
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private async handle(msg: ConsumeMessage, sub: Subscription): Promise<void> {
    let held: string | undefined;
    try {
      const attempt = numberHeader(msg.properties.headers, HEADERS.attempts) + 1;
      let decision: Decision;
      for (let waits = 0; ; waits++) {
        decision = await this.process(msg, attempt);
        if (decision.action !== 'wait-for-dependency') break;
        if (this.stopping || !sub.open) return; // not acked: the broker gives it to someone else
        const delay = DEPENDENCY_BACKOFF_MS[Math.min(waits, DEPENDENCY_BACKOFF_MS.length - 1)] as number;
        if (waits === 0) {
          this.logger.warn({ dependency: decision.dependency }, 'dependency unavailable; holding messages until it is back');
          this.count('waiting_for_dependency');
          held = decision.dependency;
          this.holding.set(held, (this.holding.get(held) ?? 0) + 1);
        }
        await sleep(delay);
      }
      await this.settle(msg, sub, decision, attempt);
    } catch (err) {
      // Unexpected: give the message back to the broker rather than hold it unacked forever.
      this.logger.error({ err: errorMessage(err) }, 'could not settle message; requeueing it');
      this.nack(msg, sub, true);
    } finally {
      if (held !== undefined) {
        const left = (this.holding.get(held) ?? 1) - 1;
        if (left > 0) this.holding.set(held, left);
        else this.holding.delete(held);
      }
    }
  }

  /** Runs validation, dedup and the handler; returns the decision, never throws. */
  private async process(msg: ConsumeMessage, attempt: number): Promise<Decision> {
    let envelope: Envelope;
    try {
      checkTransport(msg);
      envelope = this.validator.parse(msg.content);
      checkProperties(msg, envelope);
    } catch (err) {
      return decide(err, attempt, this.retry);
    }
    const handler = handlerFor(this.options.handlers, envelope);
    if (!handler) {
      return decide(new PoisonMessageError('unknown_type', `${this.name} has no handler for "${envelope.eventType}"`), attempt, this.retry);
    }
    const log = this.logger.child({ eventId: envelope.eventId, eventType: envelope.eventType, aggregateId: envelope.aggregateId, correlationId: envelope.correlationId, attempt });
    const dedup = this.options.dedup;
    let token: string | undefined;
    let started: number | undefined;
    const timed = (since: number): number => {
      const ms = Date.now() - since;
      handlerSeconds.observe({ queue: this.queueName, type: envelope.eventType }, ms / 1000);
      return ms;
    };
    try {
      const claimedAt = Date.now(); // the lease runs from when the claim was sent, not answered
      if (dedup) {
        const claim = await dedup.claim(this.name, envelope.eventId);
        if (claim.status === 'in_progress') throw new DuplicateInProgressError(`${envelope.eventId} is being handled elsewhere`);
        if (claim.status === 'done') {
          await this.emit(parseOutcome(claim.outcome));
          log.info({ outcome: 'duplicate' }, 'duplicate: re-emitted the stored outcome');
          this.count('duplicate');
          return { action: 'ack' };
        }
        token = claim.token;
      }
      started = Date.now();
      // The lease is held until the results are confirmed: a handler that lost it publishes
      // nothing, and one whose lease ran out while publishing marks nothing.
      const outgoing = await this.withLease(envelope.eventId, token, claimedAt, async (stillOwned) => {
        const result = await handler(envelope, { attempt, redelivered: msg.fields.redelivered, logger: log });
        stillOwned();
        const publish = result?.publish ?? [];
        await this.emit(publish);
        return publish;
      });
      if (dedup && token) await this.untilAvailable(() => dedup.complete(this.name, envelope.eventId, token as string, JSON.stringify(outgoing)));
      log.info({ outcome: 'handled', ms: timed(started), emitted: outgoing.map((e) => e.eventType) }, 'handled');
      this.count('handled');
      return { action: 'ack' };
    } catch (err) {
      if (started !== undefined) timed(started);
      if (dedup && token) {
        await dedup.release(this.name, envelope.eventId, token).catch(() => {
          // Redis away: the lease expires on its own. Not owned: it is the new owner's.
        });
      }
      const decision = decide(err, attempt, this.retry);
      const fields = { outcome: decision.action, err: errorMessage(err), errorType: err instanceof Error ? err.name : typeof err };
      if (err instanceof LeaseLostError) log.warn(fields, 'dedup lease lost while handling; not acting as its owner, retrying later');
      else if (err instanceof DuplicateInProgressError) log.info(fields, 'duplicate of a message in progress; retrying later');
      else log.warn(fields, 'handler failed');
      return decision;
    }
  }

  /**
   * Keeps the dedup claim alive while a slow handler runs and its results are published.
   * When the claim is lost (a renewal found another owner, or none succeeded for a whole
   * lease, e.g. Redis was away), the handler's result is not this delivery's to act on:
   * `stillOwned()` throws LeaseLostError, as does the end of the work, and the message is
   * retried once the owner has finished. A renewal counts from when it was sent, not
   * answered: Redis extended the lease at some moment in between, so it lasts at least
   * leaseMs from the sending.
   */
  private async withLease<T>(messageId: string, token: string | undefined, claimedAt: number, work: (stillOwned: () => void) => Promise<T>): Promise<T> {
    const dedup = this.options.dedup;
    if (!dedup || !token) return work(() => undefined);
    const leaseMs = dedup.leaseMs;
    let renewedAt = claimedAt;
    let lost = false;
    const stillOwned = (): void => {
      if (lost || Date.now() - renewedAt >= leaseMs) throw new LeaseLostError(`${this.name}:${messageId}`);
    };
    const timer = setInterval(() => {
      const sentAt = Date.now();
      dedup.extend(this.name, messageId, token).then(
        (owned) => {
          if (owned) renewedAt = Math.max(renewedAt, sentAt);
          else lost = true;
        },
        () => {
          if (Date.now() - renewedAt >= leaseMs) lost = true;
        },
      );
    }, Math.max(100, Math.floor(leaseMs / 3)));
    try {
      const result = await work(stillOwned);
      stillOwned();
      return result;
    } finally {
      clearInterval(timer);
    }
  }

  /** Once the handler's effects are done, its done marker must be stored: wait out a Redis outage. */
  private async untilAvailable(work: () => Promise<void>): Promise<void> {
    for (let waits = 0; ; waits++) {
      try {
        await work();
        return;
      } catch (err) {
        if (!(err instanceof DependencyUnavailableError) || this.stopping) throw err;
        await sleep(DEPENDENCY_BACKOFF_MS[Math.min(waits, DEPENDENCY_BACKOFF_MS.length - 1)] as number);
      }
    }
  }

  private async emit(messages: Envelope[]): Promise<void> {
    await Promise.all(messages.map((m) => this.publisher.publishEnvelope(m)));
  }

  private async settle(msg: ConsumeMessage, sub: Subscription, decision: Decision, attempt: number): Promise<void> {
    if (decision.action === 'wait-for-dependency') return;
    if (decision.action === 'ack') {
      this.ack(msg, sub);
      return;
    }
    const headers = ownHeaders(msg.properties.headers);
    headers[HEADERS.originalExchange] = stringHeader(msg.properties.headers, HEADERS.originalExchange) ?? msg.fields.exchange;
    headers[HEADERS.originalRoutingKey] = stringHeader(msg.properties.headers, HEADERS.originalRoutingKey) ?? msg.fields.routingKey;
    headers[HEADERS.errorType] = decision.errorType;
    headers[HEADERS.errorMessage] = decision.errorMessage.slice(0, 1000);
    const target =
      decision.action === 'retry' ? waitQueueName(this.options.queue.name, decision.delayMs) : dlqName(this.options.queue.name);
    // Decided here; a copy that cannot be moved is left to the broker, to the same end (below).
    this.count(decision.action === 'retry' ? 'retried' : 'dead_lettered');
    // On this delivery's span (tracing on): what became of it and why; a dead letter fails the span.
    const why = { 'error.type': decision.errorType, 'error.message': decision.errorMessage.slice(0, 1000), attempt, queue: target };
    if (decision.action === 'retry') recordOnActiveSpan('retry', { ...why, delay_ms: decision.delayMs });
    else recordOnActiveSpan('dead_letter', why, `dead-lettered: ${decision.errorType}`);
    if (decision.action === 'retry') {
      headers[HEADERS.attempts] = decision.countsAsAttempt ? attempt : attempt - 1;
    } else {
      headers[HEADERS.attempts] = attempt;
      headers[HEADERS.consumer] = this.name;
      headers[HEADERS.deadLetteredAt] = new Date().toISOString();
    }
    try {
      // Mandatory: a copy that no queue took (its wait queue or DLQ was deleted) comes back
      // as UnroutableError instead of being confirmed and dropped.
      await this.publisher.publish({ exchange: '', routingKey: target, content: msg.content, options: { ...copyProperties(msg, headers), mandatory: true } });
    } catch (err) {
      // Never ack what was not safely moved. A failed dead-letter falls back to the broker's
      // own dead lettering (at-least-once, to the same DLQ); a failed retry is requeued.
      this.logger.warn({ err: errorMessage(err), target }, 'could not move message; leaving it to the broker');
      if (err instanceof UnroutableError) await this.redeclare(sub);
      this.nack(msg, sub, decision.action === 'retry');
      return;
    }
    this.ack(msg, sub);
    if (decision.action === 'dead-letter') {
      this.logger.warn({ messageId: msg.properties.messageId, dlq: target, errorType: decision.errorType, attempts: attempt }, 'dead-lettered');
    }
  }

  /** Declares the queue with its wait queues and DLQ again, after one of them was found missing. */
  private async redeclare(sub: Subscription): Promise<void> {
    try {
      const channel = await sub.model.createChannel();
      channel.on('error', () => undefined);
      await declareTopology(channel, { exchanges: [], queues: [this.options.queue] });
      await channel.close();
      this.logger.warn('declared the queue, its wait queues and its DLQ again: one was missing');
    } catch (err) {
      this.logger.warn({ err: errorMessage(err) }, 'could not declare the queue again');
    }
  }

  /**
   * Acks at the end of this turn of the event loop, with the other acks of the turn
   * (flushAcks). An ack or nack on a closed channel is meaningless: the broker has already
   * requeued the message.
   */
  private ack(msg: ConsumeMessage, sub: Subscription): void {
    if (!sub.open) return;
    sub.unsettled.delete(msg.fields.deliveryTag);
    if (sub.acks.length === 0) process.nextTick(() => this.flushAcks(sub));
    sub.acks.push(msg);
  }

  /**
   * Sends the acks of a turn: those below every delivery still unsettled as one ack with
   * `multiple` (it settles exactly them: each lower tag is acked now, or was acked or nacked
   * before), the rest one by one. Fewer frames for the broker to take, and a quorum queue
   * settles the whole run in one log entry.
   */
  private flushAcks(sub: Subscription): void {
    const acks = sub.acks.sort((a, b) => a.fields.deliveryTag - b.fields.deliveryTag);
    sub.acks = [];
    const lowestUnsettled = sub.unsettled.values().next().value;
    let below = 0;
    while (below < acks.length && (lowestUnsettled === undefined || (acks[below] as ConsumeMessage).fields.deliveryTag < lowestUnsettled)) below++;
    const covered = below > 1 ? below : 0; // by one ack with `multiple`: two or more (one goes plain)
    this.onOpenChannel(sub, () => {
      if (covered > 0) sub.channel.ack(acks[covered - 1] as ConsumeMessage, true);
      for (const msg of acks.slice(covered)) sub.channel.ack(msg);
    });
  }

  /** Nacks at once: the acks of the turn after it, sent with `multiple`, do not reach it. */
  private nack(msg: ConsumeMessage, sub: Subscription, requeue: boolean): void {
    sub.unsettled.delete(msg.fields.deliveryTag);
    this.onOpenChannel(sub, () => sub.channel.nack(msg, false, requeue));
  }

  private onOpenChannel(sub: Subscription, settle: () => void): void {
    if (!sub.open) return;
    try {
      settle();
    } catch {
      // The channel closed meanwhile.
    }
  }

  /** Stops consuming, lets in-flight handlers finish (up to drainTimeoutMs), then closes the channel. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    startedConsumers.delete(this);
    this.removeSetup?.();
    const sub = this.sub;
    if (sub?.open && sub.consumerTag) await sub.channel.cancel(sub.consumerTag).catch(() => undefined);
    const drained = Promise.allSettled([...this.inFlight]);
    const timeout = sleep(this.options.drainTimeoutMs ?? 30_000, 'timeout' as const);
    if ((await Promise.race([drained.then(() => 'drained' as const), timeout])) === 'timeout') {
      this.logger.warn({ inFlight: this.inFlight.size }, 'stop: in-flight handlers did not finish in time; they will be redelivered');
    }
    if (!sub?.open) return;
    this.flushAcks(sub); // the acks of this turn go before the close
    await sub.channel.close().catch(() => undefined);
  }

  /** Handlers currently running. */
  get busy(): number {
    return this.inFlight.size;
  }
}

function copyProperties(msg: ConsumeMessage, headers: Record<string, unknown>): Options.Publish {
  const p = msg.properties;
  const options: Options.Publish = { headers, persistent: true };
  if (p.messageId) options.messageId = String(p.messageId);
  if (p.type) options.type = String(p.type);
  if (p.correlationId) options.correlationId = String(p.correlationId);
  if (p.contentType) options.contentType = String(p.contentType);
  if (p.timestamp) options.timestamp = Number(p.timestamp);
  return options;
}

/** Bodies larger than this are refused unread: no message of the catalog comes near it. */
export const MAX_BODY_BYTES = 256 * 1024;

/** What can be refused before the body is parsed: its size and a media type that is not JSON. */
function checkTransport(msg: ConsumeMessage): void {
  if (msg.content.length > MAX_BODY_BYTES) throw new PoisonMessageError('too_large', `${msg.content.length} bytes, over the limit of ${MAX_BODY_BYTES}`);
  const contentType = msg.properties.contentType as string | undefined;
  if (contentType !== undefined && !/^application\/json\s*(;|$)/i.test(contentType)) {
    throw new PoisonMessageError('wrong_content_type', `content type "${contentType}" is not application/json`);
  }
}

/** The AMQP properties, when set, must agree with the envelope they carry. */
function checkProperties(msg: ConsumeMessage, envelope: Envelope): void {
  const { messageId, type } = msg.properties as { messageId?: string; type?: string };
  if (messageId !== undefined && messageId !== envelope.eventId) throw new PoisonMessageError('id_mismatch', `messageId "${messageId}" is not the eventId "${envelope.eventId}"`);
  if (type !== undefined && type !== envelope.eventType) throw new PoisonMessageError('type_mismatch', `type "${type}" is not the eventType "${envelope.eventType}"`);
}

function parseOutcome(outcome: string): Envelope[] {
  if (outcome === '') return [];
  try {
    return JSON.parse(outcome) as Envelope[];
  } catch {
    throw new PermanentError('stored dedup outcome is not valid JSON');
  }
}
