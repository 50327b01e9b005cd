// The saga's activities as the workflow sees them. Workflows import this file's types only.
import type { OrderDetails, Reason } from '../shared/saga';

export interface SagaActivities {
  /** Reads the whole order from the order store. */
  loadOrder(orderId: string): Promise<OrderDetails>;
  /** Publishes payments.capture; completes when payment.captured arrives, fails on payment.declined. */
  capturePayment(order: OrderDetails): Promise<void>;
  /** Publishes inventory.reserve; completes on inventory.reserved, fails on inventory.rejected. */
  reserveStock(order: OrderDetails): Promise<void>;
  /** Publishes shipping.schedule; completes on shipping.scheduled, fails on shipping.failed. */
  scheduleShipment(order: OrderDetails): Promise<void>;
  /** Compensation of capturePayment: publishes payments.refund; completes on payment.refunded. */
  refundPayment(orderId: string): Promise<void>;
  /** Compensation of reserveStock: publishes inventory.release; completes on inventory.released. */
  releaseStock(orderId: string): Promise<void>;
  /** Compensation of scheduleShipment: publishes shipping.cancel; completes on shipping.cancelled. */
  cancelShipment(orderId: string): Promise<void>;
  /** Records the order as fulfilled and publishes order.fulfilled. */
  markOrderFulfilled(orderId: string): Promise<void>;
  /** Records the order as cancelled and publishes order.cancelled with the reason. */
  markOrderCancelled(orderId: string, reason: Reason): Promise<void>;
}
