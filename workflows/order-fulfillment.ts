// The order fulfillment saga: load the order, capture the payment, reserve the stock,
// schedule the shipment, mark the order fulfilled. Each step registers its compensation
// before it runs; when a step fails for a business reason, times out, or the customer
// cancels before shipping, the registered compensations run in reverse inside a
// non-cancellable scope, each retried until it succeeds, and the order is marked cancelled.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  defineSignal,
  isCancellation,
  proxyActivities,
  setHandler,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { SagaActivities } from '../activities/types';
import { BUSINESS_FAILURES, SAGA, type Reason, type SagaStatus, type SagaStep } from '../shared/saga';

/** Loading and recording the order: quick work on the order store. */
export const ORDER_STORE_STEP: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
};

/**
 * A worker step publishes its command and waits for the worker's result event. An attempt
 * that gets no answer within a minute is tried again: the Temporal worker may have died
 * after the step started and before its command was confirmed (found by the chaos run).
 * The retry publishes the same command id, so a worker that already has it dedups it and
 * answers again. A step unanswered after a day ends the saga, which then compensates.
 */
export const WORKER_STEP: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  scheduleToCloseTimeout: '1 day',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
};

/** A compensation is retried until it succeeds: no attempt limit, no overall deadline. */
export const COMPENSATION: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes' },
};

const store = proxyActivities<SagaActivities>(ORDER_STORE_STEP);
const worker = proxyActivities<SagaActivities>(WORKER_STEP);
const undo = proxyActivities<SagaActivities>(COMPENSATION);

export const cancelOrderSignal = defineSignal(SAGA.cancelSignal);
export const statusQuery = defineQuery<SagaStatus>(SAGA.statusQuery);

interface Compensation {
  name: string;
  run(): Promise<void>;
}

/** A step ended the saga: the reason the order is cancelled with. */
class SagaStopped extends Error {
  constructor(readonly reason: Reason) {
    super(reason);
  }
}

export async function orderFulfillment(input: { orderId: string }): Promise<SagaStatus> {
  const { orderId } = input;
  const status: SagaStatus = { orderId, step: 'loading_order', completedSteps: [], compensationsRun: [] };
  const compensations: Compensation[] = [];
  const steps = new CancellationScope();
  let shipped = false;
  let customerCancelled = false;

  setHandler(statusQuery, () => status);
  setHandler(cancelOrderSignal, () => {
    // Once the shipment is scheduled the order can no longer be cancelled.
    if (shipped || status.outcome) return;
    customerCancelled = true;
    steps.cancel();
  });

  async function step(name: SagaStep, activity: string, reason: Reason, compensation: Compensation, run: () => Promise<void>): Promise<void> {
    status.step = name;
    compensations.unshift(compensation); // registered before the step: an interrupted step is undone too
    try {
      await run();
    } catch (err) {
      if (isCancellation(err)) throw err;
      // A clean business "no" means the step did nothing, so there is nothing to undo.
      if (businessFailure(err)) compensations.shift();
      throw new SagaStopped(reason);
    }
    status.completedSteps.push(activity);
  }

  let reason: Reason | undefined;
  try {
    await steps.run(async () => {
      const order = await store.loadOrder(orderId);
      status.completedSteps.push('loadOrder');
      await step('capturing_payment', 'capturePayment', 'payment_declined', { name: 'refundPayment', run: () => undo.refundPayment(orderId) }, () =>
        worker.capturePayment(order),
      );
      await step('reserving_stock', 'reserveStock', 'out_of_stock', { name: 'releaseStock', run: () => undo.releaseStock(orderId) }, () =>
        worker.reserveStock(order),
      );
      await step('scheduling_shipment', 'scheduleShipment', 'shipping_unavailable', { name: 'cancelShipment', run: () => undo.cancelShipment(orderId) }, () =>
        worker.scheduleShipment(order),
      );
      shipped = true;
    });
  } catch (err) {
    if (err instanceof SagaStopped) reason = err.reason;
    // The customer's signal, or the whole workflow cancelled (e.g. from the Web UI): undo what was done.
    else if (isCancellation(err) || customerCancelled) reason = 'customer_cancelled';
    else throw err;
  }

  // Recording the outcome, like the compensations, must finish even if the saga is cancelled.
  await CancellationScope.nonCancellable(async () => {
    if (reason === undefined) {
      status.step = 'completing';
      await store.markOrderFulfilled(orderId);
      status.outcome = 'fulfilled';
    } else {
      status.step = 'compensating';
      for (const compensation of compensations) {
        await compensation.run();
        status.compensationsRun.push(compensation.name);
      }
      await store.markOrderCancelled(orderId, reason);
      status.outcome = 'cancelled';
      status.cancellationReason = reason;
    }
  });
  status.step = 'done';
  return status;
}

/** The worker reported a business failure (declined, out of stock, no carrier). */
function businessFailure(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && (err.cause.type ?? '') in BUSINESS_FAILURES;
}
