// The OpenTelemetry SDK of a process whose tracing is on, loaded by ./tracing only then (a
// process with tracing off never loads it). Instrumentations: incoming HTTP (order-api's
// requests, each a trace's root unless it carries a `traceparent`) and amqplib (a span per
// publish, the W3C `traceparent` injected into the message's headers; a span per consumed
// message, a child of that header's span, ended by its ack or nack). Spans go to an OTLP/HTTP
// endpoint in batches; the Temporal side is wired in shared/temporal/tracing.ts.
import type { IncomingMessage } from 'node:http';
import { context } from '@opentelemetry/api';
import { getRPCMetadata, RPCType } from '@opentelemetry/core';
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { AmqplibInstrumentation } from '@opentelemetry/instrumentation-amqplib';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  NodeTracerProvider,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-node';
import type { TracesSampler, TracingConfig } from '../config';

/** Requests that are no order's: the probes and scrapes of the API and of every process's metrics server. */
const UNTRACED_PATHS = new Set(['/metrics', '/healthz', '/readyz']);

/** A running SDK: where finished spans go (the Temporal worker hands its workflows' spans to it too), and its stop. */
export interface RunningSdk {
  readonly resource: Resource;
  readonly processor: SpanProcessor;
  /** Exports what is buffered and stops exporting. */
  shutdown(): Promise<void>;
}

/** Patches http and amqplib as they are required: before anything loads them. */
export function instrument(): void {
  registerInstrumentations({
    instrumentations: [
      new HttpInstrumentation({
        // The fleet calls no HTTP service of its own, and the exporter's posts are no order's.
        disableOutgoingRequestInstrumentation: true,
        ignoreIncomingRequestHook: (request: IncomingMessage) => UNTRACED_PATHS.has((request.url ?? '').split('?')[0] ?? ''),
      }),
      new AmqplibInstrumentation(),
    ],
  });
}

/**
 * Registers the tracer provider: the instrumentations' tracers, until now no-ops, start
 * recording. Its default context manager is AsyncLocalStorage's, which carries the active span
 * across awaits and callbacks (an order's chain through HTTP, amqplib and Temporal comes out as
 * unrelated traces without it), and its propagators W3C trace context and baggage.
 */
export function start(config: TracingConfig, processName: string): RunningSdk {
  const resource = resourceFromAttributes({ 'service.name': config.serviceName ?? processName, 'process.pid': process.pid });
  const exporter = config.protocol === 'http/json' ? new OtlpJsonExporter({ url: config.tracesUrl }) : new OtlpProtobufExporter({ url: config.tracesUrl });
  const processor = new BatchSpanProcessor(exporter);
  const provider = new NodeTracerProvider({ resource, sampler: samplerOf(config.sampler), spanProcessors: [processor] });
  provider.register();
  return { resource, processor, shutdown: () => provider.shutdown() };
}

function samplerOf({ name, ratio }: TracesSampler): Sampler {
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

/** The route that took the request, on its HTTP span (http.route, and the span's name `POST /orders`). */
export function nameHttpRoute(route: string): void {
  const rpc = getRPCMetadata(context.active());
  if (rpc?.type === RPCType.HTTP) rpc.route = route;
}
