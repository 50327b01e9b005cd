// The trace context where OpenTelemetry's instrumentations do not carry it
// (docs/operations.md#following-an-orders-trace): kept with a stored event and restored when
// the relay publishes it, a retry or dead letter recorded on the consuming span, the ids put
// on log lines. Only @opentelemetry/api (which every process loads anyway): with tracing off
// no SDK is registered, and each of these is a no-op.
import { context, propagation, ROOT_CONTEXT, SpanStatusCode, trace, type Attributes } from '@opentelemetry/api';

/** A span's W3C trace context as text fields: `traceparent`, and `tracestate` when there is one. */
export type TraceCarrier = Record<string, string>;

/** The active span's trace context (what the event store keeps with an event); undefined with none. */
export function activeTraceContext(): TraceCarrier | undefined {
  const carrier: TraceCarrier = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent === undefined ? undefined : carrier;
}

/**
 * Runs `fn` as a child of a stored trace context, so that its spans join that trace however
 * much later it runs. Without one it runs in the root context: not in whatever trace happens
 * to be active (a relay's batch holds events of many orders).
 */
export function withTraceContext<T>(carrier: TraceCarrier | null | undefined, fn: () => T): T {
  return context.with(carrier ? propagation.extract(ROOT_CONTEXT, carrier) : ROOT_CONTEXT, fn);
}

/** An event on the active span, with its reason in the attributes; `failure` also marks the span failed with it. */
export function recordOnActiveSpan(name: string, attributes: Attributes, failure?: string): void {
  const span = trace.getActiveSpan();
  if (!span?.isRecording()) return;
  span.addEvent(name, attributes);
  if (failure !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: failure });
}

/**
 * `trace_id` and `span_id` of the active span, for a log line; nothing when no span is active.
 * A fresh object each time: pino merges the line's own fields into it.
 */
export function activeSpanIds(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan()?.spanContext();
  return span && trace.isSpanContextValid(span) ? { trace_id: span.traceId, span_id: span.spanId } : {};
}
