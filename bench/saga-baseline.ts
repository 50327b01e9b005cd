// The saga figure's baseline: the same saga on the same Temporal dev server (the fleet's),
// with activities that call the workers' handlers in this process instead of publishing
// commands: no broker, no dedup, no reply bridge, no relay, no read model, but the same
// workflow code, the same activity names and the same database work (the order store's
// reads and appends, each worker's transaction). The fleet's capacity over this one's is
// what the messaging between them costs. Its Temporal worker runs in the bench process on a
// task queue of its own; its orders are placed in a database of their own, so the fleet's
// relay never publishes them and its saga starter never starts a saga of its own for them.
import 'reflect-metadata'; // before the handlers: tsyringe, whose decorators they carry, wants it loaded
import { Context } from '@temporalio/activity';
import { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { bundleWorkflowCode, DefaultLogger, makeTelemetryFilterString, NativeConnection, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { ulid } from 'ulid';
import { commandActivities, commandMetadata, createOrderStoreActivities, type RunCommand } from '../activities';
import type { SagaActivities } from '../activities/types';
import type { Config } from '../shared/config';
import { createPool, type Pool } from '../shared/db';
import { migrate } from '../shared/db/migrate';
import { handlerFor, type HandlerMap } from '../shared/messaging/handler';
import { newEnvelope } from '../shared/messaging/new-envelope';
import { silentLogger } from '../shared/observability/logger';
import { placeOrder } from '../shared/orders/store';
import { businessReasonOf, SAGA } from '../shared/saga';
import { connectTemporal, temporalConnectionOptions } from '../shared/temporal/client';
import { sagaStartOptions } from '../shared/temporal/saga-start';
import { clientTracing, WORKFLOW_TRACING_MODULES, workflowSpanSinks } from '../shared/temporal/tracing';
import { databaseBeside } from '../scripts/fleet';
import { InventoryHandler } from '../workers/inventory/handler';
import { PaymentsHandler } from '../workers/payments/handler';
import { SimulatedPaymentProvider } from '../workers/payments/provider';
import { StaticCarrierDirectory } from '../workers/shipping/carriers';
import { ShippingHandler } from '../workers/shipping/handler';
import { BENCH_ORDER, type SagaTarget } from './capacity';
import { vacuum } from './lib';

/** The baseline while it runs: where its orders go, and how it stops. */
export interface Baseline extends SagaTarget {
  /** The sagas started, and of them those the server started eagerly (their first task handed to this worker in the start's answer). */
  starts(): { started: number; eager: number };
  stop(): Promise<void>;
}

export interface BaselineOptions {
  /**
   * Eager workflow start: the client shares the worker's connection and asks the server to hand
   * the saga's first workflow task to this worker in its answer to the start, saving a trip
   * through the task queue. Only a client and a worker in one process can; the fleet's saga
   * starter and its Temporal worker are two. Default false
   */
  eagerStart?: boolean;
}

/**
 * The workflow code bundled as the fleet's Temporal worker bundles it (with the workflow
 * interceptors). Bundling takes seconds of CPU: started before the fleet, it overlaps its start.
 */
export function bundleSaga(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    workflowInterceptorModules: [...WORKFLOW_TRACING_MODULES],
    logger: { info() {}, warn: (m) => console.warn(`bench: baseline bundle: ${m}`), error: (m) => console.error(`bench: baseline bundle: ${m}`), debug() {}, trace() {}, log() {} },
  });
}

/**
 * Temporal's worker and core log warnings and errors only (their INFO lines would drown the
 * bench's), and leave signals alone: Ctrl-C stops the bench as before, not just this worker.
 */
function quietTemporalRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [], telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) } } });
  } catch {
    // A runtime is installed already (another baseline in this process): it is kept.
  }
}

/**
 * The saga's activities: the fleet's order-store ones (activities/index.ts), and worker steps
 * and compensations that build the command the fleet's activity publishes, run the worker's
 * handler on it as the worker's consumer would (without its dedup), and answer the result
 * event as the reply bridge does: a business failure fails the activity as non-retryable with
 * its type, anything else completes it.
 */
function baselineActivities(db: Pool, handlers: HandlerMap): SagaActivities {
  const command: RunCommand = async (type, orderId, data) => {
    const envelope = newEnvelope(type, data, commandMetadata(type, orderId));
    const handler = handlerFor(handlers, envelope);
    if (!handler) throw ApplicationFailure.nonRetryable(`no worker handles ${type}`, 'NoHandler');
    const result = (await handler(envelope, { attempt: Context.current().info.attempt, redelivered: false, logger: silentLogger }))?.publish?.[0];
    if (!result) throw new Error(`${type}: the handler answered no result event`);
    if (businessReasonOf(result.eventType) !== undefined) throw ApplicationFailure.nonRetryable(`${result.eventType}: ${JSON.stringify(result.data)}`, result.eventType);
  };
  return { ...createOrderStoreActivities(db), ...commandActivities(command) };
}

/**
 * Starts the baseline on the dev server at temporalAddress: its database (`<bench database>_baseline`,
 * migrated), the workers' handlers with a pool each as each worker has, its Temporal worker,
 * and a client that places orders as order-api does and starts their sagas on its task queue.
 */
export async function startBaseline(config: Config, temporalAddress: string, workflowBundle: WorkflowBundleWithSourceMap, options: BaselineOptions = {}): Promise<Baseline> {
  const databaseUrl = databaseBeside(config.databaseUrl, 'baseline');
  await migrate(databaseUrl, silentLogger);
  await vacuum(databaseUrl);
  const pools: Pool[] = [];
  const pool = (name: string): Pool => {
    const p = createPool(databaseUrl, `bench-baseline-${name}`);
    pools.push(p);
    return p;
  };
  const api = pool('api'); // order-api's writes
  const store = pool('temporal-worker'); // the order-store activities'
  const provider = new SimulatedPaymentProvider({ paymentProviderLatencyMs: config.paymentProviderLatencyMs, databaseUrl });
  const handlers: HandlerMap = {
    ...new PaymentsHandler(pool('payments'), provider).handlers,
    ...new InventoryHandler(pool('inventory')).handlers,
    ...new ShippingHandler(pool('shipping'), new StaticCarrierDirectory()).handlers,
  };
  // Everything to close, also when the start fails half-way: an open pool would keep the bench from exiting.
  const closers: Array<() => Promise<unknown>> = [() => provider.close(), ...pools.map((p) => () => p.end())];
  const closeAll = async (): Promise<void> => {
    await Promise.allSettled(closers.map((close) => close()));
  };

  try {
    quietTemporalRuntime();
    const target = { temporalAddress, temporalNamespace: config.temporalNamespace };
    const connection = await NativeConnection.connect(temporalConnectionOptions(target));
    closers.push(() => connection.close());
    const client = options.eagerStart ? new Client({ connection, namespace: config.temporalNamespace, interceptors: clientTracing() }) : await connectTemporal(target);
    // Its waiting results are cancelled with it (the native connection is closed above).
    if (!options.eagerStart) closers.push(() => client.connection.close());
    const taskQueue = `bench-baseline-${ulid().toLowerCase()}`;
    const worker = await Worker.create({ connection, namespace: config.temporalNamespace, taskQueue, workflowBundle, activities: baselineActivities(store, handlers), sinks: workflowSpanSinks() });
    // A worker that stops on its own no longer runs activities: its sagas wait, and the steps fail. Said at once.
    const running = worker.run().catch((err: unknown) => console.error(`bench: the baseline's Temporal worker stopped: ${String(err)}`));

    const customerId = `bench-baseline-${ulid()}`;
    const finished = new Map<string, number>(); // order id → when its saga's result came (epoch ms)
    const starts = { started: 0, eager: 0 };
    return {
      starts: () => ({ ...starts }),
      async offer(key) {
        const orderId = await placeOrder(api, { customerId, ...BENCH_ORDER }, key);
        // A workflow id of its own (the fleet's saga ids are order-<id>), on the baseline's task queue.
        const handle = await client.workflow.start(SAGA.workflowType, {
          ...sagaStartOptions({ orderId }),
          workflowId: `bench-baseline-${orderId}`,
          taskQueue,
          requestEagerStart: options.eagerStart,
        });
        starts.started++;
        if (handle.eagerlyStarted) starts.eager++;
        // A saga that fails never becomes final: the step counts it as an error.
        void handle.result().then(
          () => finished.set(orderId, Date.now()),
          () => undefined,
        );
        return orderId;
      },
      async finals(ids) {
        const done = new Map<string, number>();
        for (const id of ids) {
          const at = finished.get(id);
          if (at !== undefined) done.set(id, at);
        }
        return done;
      },
      async stop() {
        try {
          worker.shutdown();
        } catch {
          // a worker that stopped on its own has shut down already
        }
        await running;
        await closeAll();
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
