// OpenTelemetry tracing (docs/operations.md#following-an-orders-trace). Every process's entry
// point imports this module first, before anything else: the instrumentations patch http and
// amqplib as they are required, and a module loaded before them is never traced. When the
// configuration turns tracing on (an OTLP endpoint, and OTEL_SDK_DISABLED not true) importing
// it loads the SDK (./tracing-sdk) and registers the instrumentations; runProcess then starts
// the tracer provider under the process's name and flushes it last as the process stops. With
// tracing off nothing is loaded or patched: the API's no-op tracer answers every call.
import { setTimeout as sleep } from 'node:timers/promises';
import { getConfig, type TracingConfig } from '../config';
import type * as Sdk from './tracing-sdk';

export type { RunningSdk } from './tracing-sdk';

/** How long a stopping process waits for its last spans to be exported, in ms. */
const FLUSH_DEADLINE_MS = 5_000;

const tracing = tracingConfig();
// Synchronous, so that the instrumentations are in place before the importer goes on.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const sdk = tracing ? (require('./tracing-sdk') as typeof Sdk) : undefined;
sdk?.instrument();
let running: Sdk.RunningSdk | undefined;

function tracingConfig(): TracingConfig | undefined {
  try {
    return getConfig().tracing;
  } catch {
    return undefined; // a bad configuration is runProcess's to report
  }
}

/**
 * Starts tracing under the process's name (its service name, unless OTEL_SERVICE_NAME gives
 * one). Returns its stop, which exports what is buffered within FLUSH_DEADLINE_MS; undefined
 * when tracing is off.
 */
export function startTracing(processName: string): (() => Promise<void>) | undefined {
  if (!sdk || !tracing || running) return undefined;
  const started = sdk.start(tracing, processName);
  running = started;
  return () => Promise.race([started.shutdown(), sleep(FLUSH_DEADLINE_MS, undefined, { ref: false })]);
}

/** The running SDK, for spans made elsewhere (the Temporal worker's workflows); undefined with tracing off. */
export function activeTracing(): Sdk.RunningSdk | undefined {
  return running;
}

/** Names the request's HTTP span after the route that took it (http.route; the span `POST /orders`). */
export function nameHttpRoute(route: string | undefined): void {
  if (running && route !== undefined) sdk?.nameHttpRoute(route);
}
