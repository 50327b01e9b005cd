// Temporal's part of an order's trace (docs/operations.md#following-an-orders-trace), with
// @temporalio/interceptors-opentelemetry. The client interceptor makes a span of each workflow
// start, update and signal and puts its context into the workflow's headers (the saga starter,
// the API's cancellation, the reconciler). In the worker, the workflow interceptors (bundled
// into the workflow code) continue that trace in the workflow and pass it on to each activity
// they schedule; the activity interceptor continues it around the activity's run, so the
// command an activity publishes is a child of its span. A workflow's spans are made in its
// sandbox and come out through the sink `exporter` (not during replay), into this process's
// span processor. The workflow interceptors are bundled whether tracing is on or not: they
// take part in the workflow's execution (its promises resolve through them), and a workflow
// must replay the same whatever a process's environment says; with tracing off their spans
// are dropped as they leave the sandbox. The client and activity interceptors run outside
// the sandbox, and are loaded only when tracing is on.
import { createTraceState } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-node';
import type { ClientInterceptors } from '@temporalio/client';
import type * as Interceptors from '@temporalio/interceptors-opentelemetry';
import type { OpenTelemetrySinks, SerializableSpan } from '@temporalio/interceptors-opentelemetry';
import type { InjectedSinks, WorkerInterceptors } from '@temporalio/worker';
import type { WorkflowInfo } from '@temporalio/workflow';
import { activeTracing, type RunningSdk } from '../observability/tracing';

/** The attributes the package's activity spans name their workflow by; the workflow's own spans get them too. */
const WORKFLOW_ID_ATTRIBUTE = 'temporalWorkflowId';
const RUN_ID_ATTRIBUTE = 'run_id';

function interceptors(): typeof Interceptors | undefined {
  if (!activeTracing()) return undefined;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('@temporalio/interceptors-opentelemetry') as typeof Interceptors;
}

/** A Temporal client's interceptors: a span around each call that starts or reaches a workflow, its context in the call's headers. */
export function clientTracing(): ClientInterceptors | undefined {
  const otel = interceptors();
  return otel && { workflow: [new otel.OpenTelemetryWorkflowClientInterceptor()] };
}

/** What every bundle of the workflow code holds besides the workflows, tracing on or off: the workflow interceptors. */
export const WORKFLOW_TRACING_MODULES: readonly string[] = [require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors')];

/**
 * The sinks a worker of that bundle needs: `exporter`, which takes the workflows' spans to this
 * process's exporter when tracing is on and drops them when it is off.
 */
export function workflowSpanSinks(): InjectedSinks<OpenTelemetrySinks> {
  return {
    exporter: {
      export: {
        fn: (info, spans) => {
          const tracing = activeTracing();
          if (tracing) for (const span of spans) tracing.processor.onEnd(readableSpanOf(span, info, tracing));
        },
      },
    },
  };
}

/** The worker's activity interceptors, with tracing on: each activity's run a span, in its workflow's trace. */
export function activityTracing(): WorkerInterceptors | undefined {
  const otel = interceptors();
  return otel && { activity: [(ctx) => ({ inbound: new otel.OpenTelemetryActivityInboundInterceptor(ctx), outbound: new otel.OpenTelemetryActivityOutboundInterceptor(ctx) })] };
}

/**
 * A workflow span as the 2.x SDK reads it. The package's sandbox runs the 1.x SDK, whose spans
 * name their parent `parentSpanId` and their scope `instrumentationLibrary`; the 2.x exporter
 * reads `parentSpanContext` and `instrumentationScope`, and would export a workflow's spans as
 * roots. Only the workflow's id and run are added, not its whole WorkflowInfo.
 */
function readableSpanOf(span: SerializableSpan, info: WorkflowInfo, { resource }: RunningSdk): ReadableSpan {
  const { spanContext: serialized, parentSpanId, instrumentationLibrary, attributes, ...rest } = span;
  const { traceState, ...ids } = serialized;
  const spanContext = { ...ids, traceState: traceState === undefined ? undefined : createTraceState(traceState) };
  return {
    ...rest,
    attributes: { ...attributes, [WORKFLOW_ID_ATTRIBUTE]: info.workflowId, [RUN_ID_ATTRIBUTE]: info.runId },
    spanContext: () => spanContext,
    parentSpanContext: parentSpanId === undefined ? undefined : { traceId: ids.traceId, spanId: parentSpanId, traceFlags: ids.traceFlags },
    instrumentationScope: instrumentationLibrary,
    resource,
  };
}
