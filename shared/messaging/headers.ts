// AMQP header names the consumer loop writes and the DLQ tool reads, and those of the trace context.
export const HEADERS = {
  /** Attempts already made (and failed) before this delivery. */
  attempts: 'x-attempts',
  originalExchange: 'x-original-exchange',
  originalRoutingKey: 'x-original-routing-key',
  errorType: 'x-error-type',
  errorMessage: 'x-error-message',
  consumer: 'x-consumer',
  deadLetteredAt: 'x-dead-lettered-at',
  /** Set by the broker on quorum-queue redeliveries. */
  deliveryCount: 'x-delivery-count',
  /** Set by the broker when it dead-letters (rejected, delivery_limit, expired). */
  firstDeathReason: 'x-first-death-reason',
  replayedAt: 'x-replayed-at',
  /** Set by the publisher on a mandatory message, so that a return names the publish it answers. */
  publishId: 'x-publish-id',
  /** The envelope's aggregateId, set on every published envelope (partitioning key). */
  aggregateId: 'x-aggregate-id',
  /**
   * W3C trace context of the publish span, with `tracestate` when it has one: set on every
   * publish by the amqplib instrumentation when tracing is on (a retried copy gets its own).
   */
  traceparent: 'traceparent',
  tracestate: 'tracestate',
} as const;

/** Headers the broker owns; they are not copied onto a republished message. */
export const BROKER_HEADERS = ['x-death', 'x-first-death-exchange', 'x-first-death-queue', 'x-first-death-reason', 'x-last-death-exchange', 'x-last-death-queue', 'x-last-death-reason', 'x-delivery-count'];

export function numberHeader(headers: Record<string, unknown> | undefined, name: string): number {
  const v = headers?.[name];
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) && n >= 0 ? n : 0;
}

export function stringHeader(headers: Record<string, unknown> | undefined, name: string): string | undefined {
  const v = headers?.[name];
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return undefined;
}

/** The message's headers without the broker's bookkeeping. */
export function ownHeaders(headers: Record<string, unknown> | undefined): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...(headers ?? {}) };
  for (const name of BROKER_HEADERS) delete copy[name];
  return copy;
}
