// The saga's activities, built by a factory over their dependencies. The worker steps and
// their compensations come from SAGA_STEPS: each publishes its command with an id derived
// from {workflowId, activityId} (the same on every retry, so the worker deduplicates it) and
// completes asynchronously: the reply bridge completes or fails it by {workflowId,
// activityId} when the worker's result event arrives. The saga's end is counted where its
// outcome is recorded, once per saga (sagas_finished_total, saga_duration_seconds).
import { ApplicationFailure, CompleteAsyncError } from '@temporalio/common';
import { Context } from '@temporalio/activity';
import { Counter, Histogram } from 'prom-client';
import type { Pool } from '../shared/db';
import type { DataOf, MessageType } from '../shared/events';
import { newEnvelope, stableEventId } from '../shared/messaging/new-envelope';
import type { Publisher } from '../shared/messaging/publisher';
import { processRegistry } from '../shared/observability/metrics';
import { recordOnActiveSpan } from '../shared/observability/trace-context';
import type { Outcome } from '../shared/orders/order';
import { loadOrder, loadOrderState, recordOutcome } from '../shared/orders/store';
import { SAGA_STEPS, type OrderDetails, type StepCommand } from '../shared/saga';
import type { CompensationActivities, OrderStoreActivities, SagaActivities, WorkerStepActivities } from './types';

export type { SagaActivities } from './types';

const sagasFinished = new Counter<'outcome' | 'reason'>({
  name: 'sagas_finished_total',
  help: "Sagas that recorded their order's outcome, once per saga: fulfilled, or cancelled with its reason (payment_declined, out_of_stock, shipping_unavailable, customer_cancelled)",
  labelNames: ['outcome', 'reason'],
  registers: [processRegistry],
});

const sagaSeconds = new Histogram<'outcome'>({
  name: 'saga_duration_seconds',
  // An activity is not told when its workflow started; the order's placement is known, a relay
  // and a saga starter before the start (milliseconds; a saga the reconciler started counts from it too).
  help: "Time from the order's placement (order.placed) until its saga recorded the outcome, by outcome",
  labelNames: ['outcome'],
  buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600],
  registers: [processRegistry],
});

export interface SagaActivityDeps {
  db: Pool;
  publisher: Publisher;
}

/** What each worker step's command carries, built from the order the saga loaded. */
export const COMMAND_DATA: { [C in StepCommand]: (order: OrderDetails) => DataOf<C> } = {
  'payments.capture': (o) => ({ orderId: o.orderId, amount: o.totalAmount, currency: o.currency, paymentToken: o.paymentToken }),
  'inventory.reserve': (o) => ({ orderId: o.orderId, items: o.items.map(({ sku, quantity }) => ({ sku, quantity })) }),
  'shipping.schedule': (o) => ({ orderId: o.orderId, address: o.shippingAddress }),
};

/** The workflow id of the running activity (saga activities only run inside the saga). */
function workflowIdOfActivity(): string {
  const execution = Context.current().info.workflowExecution;
  if (!execution) throw ApplicationFailure.nonRetryable('saga activities run only inside a workflow', 'NotInWorkflow');
  return execution.workflowId;
}

/**
 * Runs a worker step's or a compensation's command. The baseline's resolves with the step's
 * success and throws its failure; the fleet's publishes the command and throws
 * CompleteAsyncError (the reply bridge completes the activity later).
 */
export type RunCommand = <T extends MessageType>(type: T, orderId: string, data: DataOf<T>) => Promise<void>;

export function createSagaActivities({ db, publisher }: SagaActivityDeps): SagaActivities {
  /** Publishes a command addressed back to the running activity, then leaves it waiting. */
  async function command<T extends MessageType>(type: T, orderId: string, data: DataOf<T>): Promise<never> {
    const envelope = newEnvelope(type, data, commandMetadata(type, orderId));
    await publisher.publishEnvelope(envelope);
    throw new CompleteAsyncError();
  }
  return { ...createOrderStoreActivities(db), ...commandActivities(command) };
}

/** A command's envelope metadata: addressed back to the running activity, with an id that is the same on every retry. */
export function commandMetadata(type: MessageType, orderId: string): { aggregateId: string; eventId: string; correlationId: string; replyTo: { workflowId: string; activityId: string } } {
  const replyTo = { workflowId: workflowIdOfActivity(), activityId: Context.current().info.activityId };
  return { aggregateId: orderId, eventId: stableEventId(`${replyTo.workflowId}/${replyTo.activityId}/${type}`), correlationId: orderId, replyTo };
}

/** The worker steps and their compensations, each running its command from SAGA_STEPS. */
export function commandActivities(command: RunCommand): WorkerStepActivities & CompensationActivities {
  const steps: WorkerStepActivities = byName(
    SAGA_STEPS.map((s) => [s.activity, (order: OrderDetails) => command(s.command, order.orderId, COMMAND_DATA[s.command](order))] as const),
  );
  const compensations: CompensationActivities = byName(SAGA_STEPS.map((s) => [s.undo.activity, (orderId: string) => command(s.undo.command, orderId, { orderId })] as const));
  return { ...steps, ...compensations };
}

/** Loading the order and recording the saga's outcome, on the order store. */
export function createOrderStoreActivities(db: Pool): OrderStoreActivities {
  /**
   * Appends the saga's outcome to the order's stream under an id derived from the workflow
   * (the same on every retry); the relay publishes it from the event store.
   */
  async function finish(orderId: string, outcome: Outcome): Promise<void> {
    const eventId = stableEventId(`${workflowIdOfActivity()}/order.${outcome.outcome}`);
    const recorded = await recordOutcome(db, orderId, outcome, eventId);
    if (recorded === 'unknown') {
      throw ApplicationFailure.nonRetryable(`order ${orderId} is not in the order store`, 'OrderNotFound');
    }
    // On the activity's span (tracing on): the saga's outcome, and why for a cancellation.
    recordOnActiveSpan(`order.${outcome.outcome}`, outcome.outcome === 'cancelled' ? { reason: outcome.reason, ...(outcome.failedStep ? { failed_step: outcome.failedStep } : {}) } : {});
    if (recorded === 'ended_otherwise') {
      // Another run or path recorded a different outcome first; the order store keeps that one.
      Context.current().log.warn('the order store holds another outcome for this order; this one is not recorded', { orderId, outcome: outcome.outcome });
    }
    // A retry (or another run) finds it recorded already: each saga is counted once.
    if (recorded !== 'recorded') return;
    sagasFinished.inc({ outcome: outcome.outcome, reason: outcome.outcome === 'cancelled' ? outcome.reason : '' });
    // The outcome is recorded: a failed read of when the order was placed costs the duration, not a retry.
    const placedAt = (await loadOrderState(db, orderId).catch(() => undefined))?.state?.placedAt;
    if (placedAt !== undefined) sagaSeconds.observe({ outcome: outcome.outcome }, Math.max(0, Date.now() - Date.parse(placedAt)) / 1000);
  }

  return {
    async loadOrder(orderId) {
      const order = await loadOrder(db, orderId);
      if (!order) throw ApplicationFailure.nonRetryable(`order ${orderId} is not in the order store`, 'OrderNotFound');
      return order;
    },
    markOrderFulfilled: (orderId) => finish(orderId, { outcome: 'fulfilled' }),
    markOrderCancelled: (orderId, reason, failedStep) => finish(orderId, { outcome: 'cancelled', reason, ...(failedStep ? { failedStep } : {}) }),
  };
}

/** An object of the entries, typed by their names: every name of K is there, since each entry of the table gives one. */
function byName<K extends string, V>(entries: ReadonlyArray<readonly [K, V]>): Record<K, V> {
  return Object.fromEntries(entries) as Record<K, V>;
}
