// The saga's activities, built by a factory over their dependencies. Worker steps publish
// a command whose id is derived from {workflowId, activityId} (the same on every retry, so
// the worker deduplicates it) and complete asynchronously: the reply bridge completes or
// fails them by {workflowId, activityId} when the worker's result event arrives.
import { ApplicationFailure, CompleteAsyncError } from '@temporalio/common';
import { Context } from '@temporalio/activity';
import { query, withTransaction, type Pool } from '../shared/db';
import type { DataOf, MessageType } from '../shared/events';
import { newEnvelope, stableEventId } from '../shared/messaging/envelope';
import type { Publisher } from '../shared/messaging/publisher';
import type { OrderDetails, Reason } from '../shared/saga';
import type { SagaActivities } from './types';

export type { SagaActivities } from './types';

export interface SagaActivityDeps {
  db: Pool;
  publisher: Publisher;
}

interface OrderRow {
  customer_id: string;
  items: OrderDetails['items'];
  total_amount: string;
  currency: string;
  shipping_address: OrderDetails['shippingAddress'];
  payment_token: string;
}

/** The workflow id of the running activity (saga activities only run inside the saga). */
function workflowIdOfActivity(): string {
  const execution = Context.current().info.workflowExecution;
  if (!execution) throw ApplicationFailure.nonRetryable('saga activities run only inside a workflow', 'NotInWorkflow');
  return execution.workflowId;
}

export function createSagaActivities({ db, publisher }: SagaActivityDeps): SagaActivities {
  /** Publishes a command addressed back to the running activity, then leaves it waiting. */
  async function command<T extends MessageType>(type: T, orderId: string, data: DataOf<T>): Promise<never> {
    const replyTo = { workflowId: workflowIdOfActivity(), activityId: Context.current().info.activityId };
    const envelope = newEnvelope(type, data, {
      aggregateId: orderId,
      eventId: stableEventId(`${replyTo.workflowId}/${replyTo.activityId}/${type}`),
      correlationId: orderId,
      replyTo,
    });
    await publisher.publishEnvelope(envelope);
    throw new CompleteAsyncError();
  }

  /** Records the saga's outcome and publishes it under an id derived from the workflow. */
  async function finish(orderId: string, outcome: 'fulfilled' | 'cancelled', reason?: Reason): Promise<void> {
    const workflowId = workflowIdOfActivity();
    await withTransaction(db, (tx) =>
      tx.query(`UPDATE orders.orders SET status = $2, cancellation_reason = $3, updated_at = now() WHERE order_id = $1`, [orderId, outcome, reason ?? null]),
    );
    const ctx = { aggregateId: orderId, aggregateVersion: 2, correlationId: orderId, eventId: stableEventId(`${workflowId}/order.${outcome}`) };
    const envelope =
      outcome === 'fulfilled'
        ? newEnvelope('order.fulfilled', { orderId }, ctx)
        : newEnvelope('order.cancelled', { orderId, reason: reason ?? 'customer_cancelled' }, ctx);
    await publisher.publishEnvelope(envelope);
  }

  return {
    async loadOrder(orderId) {
      const [row] = await query<OrderRow>(
        db,
        'SELECT customer_id, items, total_amount, currency, shipping_address, payment_token FROM orders.orders WHERE order_id = $1',
        [orderId],
      );
      if (!row) throw ApplicationFailure.nonRetryable(`order ${orderId} is not in the order store`, 'OrderNotFound');
      return {
        orderId,
        customerId: row.customer_id,
        items: row.items,
        totalAmount: Number(row.total_amount),
        currency: row.currency.trim(),
        shippingAddress: row.shipping_address,
        paymentToken: row.payment_token,
      };
    },
    capturePayment: (order) =>
      command('payments.capture', order.orderId, { orderId: order.orderId, amount: order.totalAmount, currency: order.currency, paymentToken: order.paymentToken }),
    reserveStock: (order) =>
      command('inventory.reserve', order.orderId, { orderId: order.orderId, items: order.items.map(({ sku, quantity }) => ({ sku, quantity })) }),
    scheduleShipment: (order) => command('shipping.schedule', order.orderId, { orderId: order.orderId, address: order.shippingAddress }),
    refundPayment: (orderId) => command('payments.refund', orderId, { orderId }),
    releaseStock: (orderId) => command('inventory.release', orderId, { orderId }),
    cancelShipment: (orderId) => command('shipping.cancel', orderId, { orderId }),
    markOrderFulfilled: (orderId) => finish(orderId, 'fulfilled'),
    markOrderCancelled: (orderId, reason) => finish(orderId, 'cancelled', reason),
  };
}
