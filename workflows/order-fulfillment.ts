// The order fulfillment saga: load the order, run the worker steps of SAGA_STEPS (capture
// the payment, reserve the stock, schedule the shipment), mark the order fulfilled. Each
// step registers its compensation before it runs; when a step fails (for a business reason,
// by timing out, or otherwise), or the customer cancels before shipping, the registered
// compensations run in reverse inside a non-cancellable scope, each retried until it
// succeeds, and the order is marked cancelled. Started by the reconciler with `recordOutcome`, it only records that outcome.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  defineSignal,
  defineUpdate,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  TimeoutFailure,
  type ActivityOptions,
  type LocalActivityOptions,
} from '@temporalio/workflow';
import type { SagaActivities } from '../activities/types';
import { businessReasonOf, SAGA, SAGA_MAX_RETRY_INTERVAL_MS, SAGA_STEPS, type CancellationAccepted, type CancelRefusal, type Reason, type SagaInput, type SagaStatus, type SagaStep } from '../shared/saga';

/** Loading and recording the order: quick work on the order store. */
export const ORDER_STORE_STEP: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: SAGA_MAX_RETRY_INTERVAL_MS.step },
};

/**
 * Loading the order runs as a local activity: in the workflow task that starts the saga, by
 * the worker that runs it, so the first step is scheduled in that same task (one workflow task
 * and one activity task fewer per saga; the history records it in a marker). Only a read may
 * be local: a local activity runs before its workflow task is accepted, and when that task is
 * run again (its worker died, or the server refused it: a task that would complete the
 * workflow while a signal or an update waits is refused) the code may take another way.
 * Recording the outcome, an append the workflow's completion follows, stays a remote activity.
 * An attempt may take 10 s, within the workflow task's own timeout; past 5 s of retries each
 * wait is a timer in the history, so an order store that is down for hours does not keep the
 * task open with a heartbeat every 8 s (three history events each).
 */
export const LOAD_ORDER: LocalActivityOptions = {
  startToCloseTimeout: '10 seconds',
  localRetryThreshold: '5 seconds',
  retry: ORDER_STORE_STEP.retry,
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
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: SAGA_MAX_RETRY_INTERVAL_MS.step },
};

/** A compensation is retried until it succeeds: no attempt limit, no overall deadline. */
export const COMPENSATION: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: SAGA_MAX_RETRY_INTERVAL_MS.compensation },
};

/**
 * Patches (Temporal's workflow versioning): a change that gives an old history other commands
 * runs only where patched() says so, so a saga the older code started replays as it ran. A
 * patch is removed only once no running or replayed saga can lack it.
 */
const KEEP_ACCEPTED_CANCELLATION = 'keep-accepted-cancellation';
/** loadOrder as a local activity: a saga that loaded it as a remote one replays as it ran. */
const LOCAL_LOAD_ORDER = 'local-load-order';

const store = proxyActivities<SagaActivities>(ORDER_STORE_STEP);
const local = proxyLocalActivities<SagaActivities>(LOAD_ORDER);
const worker = proxyActivities<SagaActivities>(WORKER_STEP);
const undo = proxyActivities<SagaActivities>(COMPENSATION);

export const cancelOrderSignal = defineSignal(SAGA.cancelSignal);
export const requestCancellationUpdate = defineUpdate<CancellationAccepted>(SAGA.cancelUpdate);
export const statusQuery = defineQuery<SagaStatus>(SAGA.statusQuery);

interface Compensation {
  name: string;
  run(): Promise<void>;
}

/** A step ended the saga: the reason the order is cancelled with. */
class SagaStopped extends Error {
  constructor(
    readonly reason: Reason,
    readonly failedStep?: SagaStep,
  ) {
    super(reason);
  }
}

export async function orderFulfillment(input: SagaInput): Promise<SagaStatus> {
  const { orderId, recordOutcome } = input;
  const status: SagaStatus = { orderId, step: 'loading_order', completedSteps: [], compensationsRun: [] };
  const compensations: Compensation[] = [];
  const steps = new CancellationScope();
  let shipped = false;
  let customerCancelled = false;
  /** Why the saga stopped, once it has (then it compensates); undefined while it goes on, and when it fulfils. */
  let reason: Reason | undefined;
  let failedStep: SagaStep | undefined;

  /**
   * Once the shipment is scheduled, the outcome recorded, or the saga stopped for another
   * reason (it compensates towards that outcome), the order can no longer be cancelled by the customer.
   */
  function refusal(): { reason: CancelRefusal; message: string } | undefined {
    const outcome = status.outcome ?? recordOutcome?.outcome;
    if (outcome) return { reason: 'order_final', message: `the order is already ${outcome}` };
    if (reason !== undefined && reason !== 'customer_cancelled') return { reason: 'order_final', message: `the order is being cancelled (${reason})` };
    if (shipped) return { reason: 'already_shipped', message: 'the shipment is already scheduled; the order can no longer be cancelled' };
    return undefined;
  }
  function cancel(): void {
    customerCancelled = true;
    steps.cancel();
  }

  setHandler(statusQuery, () => status);
  setHandler(cancelOrderSignal, () => {
    if (!refusal()) cancel();
  });
  setHandler(
    requestCancellationUpdate,
    (): CancellationAccepted => {
      cancel();
      return { accepted: true };
    },
    {
      // Refused in the validator, so a refusal is not written to the history.
      validator: () => {
        const refused = refusal();
        if (refused) throw ApplicationFailure.create({ message: refused.message, type: refused.reason });
      },
    },
  );

  async function step(name: SagaStep, activity: string, compensation: Compensation, run: () => Promise<void>): Promise<void> {
    status.step = name;
    compensations.unshift(compensation); // registered before the step: an interrupted step is undone too
    try {
      await run();
    } catch (err) {
      if (isCancellation(err)) throw err;
      const business = businessReason(err);
      if (business) {
        // A clean business "no" means the step did nothing, so there is nothing to undo.
        compensations.shift();
        throw new SagaStopped(business);
      }
      // No answer, or a failure of our own: the step may have done its work, so its undo stays.
      throw new SagaStopped(timedOut(err) ? 'step_timed_out' : 'step_failed', name);
    }
    status.completedSteps.push(activity);
  }

  if (recordOutcome) {
    // A closed run did the steps (and any compensations) and reached this outcome; only its
    // record in the order store is missing. Running the steps again could reach another one.
    if (recordOutcome.outcome === 'cancelled') {
      reason = recordOutcome.cancellationReason;
      failedStep = recordOutcome.failedStep;
    }
  } else {
    try {
      await steps.run(async () => {
        const order = await (patched(LOCAL_LOAD_ORDER) ? local : store).loadOrder(orderId);
        status.completedSteps.push('loadOrder');
        // In the table's order, which a running saga's history replays: never reorder it.
        for (const s of SAGA_STEPS) {
          await step(s.step, s.activity, { name: s.undo.activity, run: () => undo[s.undo.activity](orderId) }, () => worker[s.activity](order));
        }
        shipped = true;
      });
    } catch (err) {
      if (err instanceof SagaStopped) {
        reason = err.reason;
        failedStep = err.failedStep;
      }
      // The customer's signal, or the whole workflow cancelled (e.g. from the Web UI): undo what was done.
      else if (isCancellation(err) || customerCancelled) reason = 'customer_cancelled';
      else throw err;
    }
    // An accepted cancellation is kept even if the step it interrupted had finished in the same
    // workflow task: the customer was told it was accepted. Patched: a history the code before
    // it recorded (a cancel and the shipment's completion in one task) marked the order
    // fulfilled, and must replay to the same commands.
    if (reason === undefined && customerCancelled && patched(KEEP_ACCEPTED_CANCELLATION)) reason = 'customer_cancelled';
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
      await store.markOrderCancelled(orderId, reason, failedStep);
      status.outcome = 'cancelled';
      status.cancellationReason = reason;
      if (failedStep) status.failedStep = failedStep;
    }
  });
  status.step = 'done';
  return status;
}

/** The reason of a worker's business failure (declined, out of stock, no carrier), else undefined. */
function businessReason(err: unknown): Reason | undefined {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? businessReasonOf(err.cause.type ?? '') : undefined;
}

/**
 * The step got no answer in time. Retries that would outlast scheduleToClose end with the
 * last attempt's own failure and retry state TIMEOUT rather than with a TimeoutFailure.
 */
function timedOut(err: unknown): boolean {
  return err instanceof ActivityFailure && (err.cause instanceof TimeoutFailure || err.retryState === 'TIMEOUT');
}
