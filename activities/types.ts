// The saga's activities as the workflow sees them. Workflows import this file's types only.
// The worker steps and their compensations are named by SAGA_STEPS (shared/saga.ts).
import type { OrderDetails, Reason, SagaStep, WorkerStep } from '../shared/saga';

/** Each worker step: publishes its command; completes on its `ok` event, fails on its `fail` event. */
export type WorkerStepActivities = { [S in WorkerStep as S['activity']]: (order: OrderDetails) => Promise<void> };

/** Each compensation: publishes its undo command; completes on its `ok` event. */
export type CompensationActivities = { [S in WorkerStep as S['undo']['activity']]: (orderId: string) => Promise<void> };

export interface OrderStoreActivities {
  /** Reads the whole order from the order store. */
  loadOrder(orderId: string): Promise<OrderDetails>;
  /** Appends order.fulfilled to the order's stream (the relay publishes it). */
  markOrderFulfilled(orderId: string): Promise<void>;
  /** Appends order.cancelled, with the reason (and the step that timed out or failed), to the order's stream. */
  markOrderCancelled(orderId: string, reason: Reason, failedStep?: SagaStep): Promise<void>;
}

export type SagaActivities = OrderStoreActivities & WorkerStepActivities & CompensationActivities;
