// The saga's contract, shared by the workflow, its activities, the starter and the tests.
// Workflow-safe: constants and types only.
import type { CancellationReason } from './events/schemas/common';
import type { Static } from '@sinclair/typebox';

export const SAGA = {
  workflowType: 'orderFulfillment',
  taskQueue: 'order-fulfillment',
  cancelSignal: 'cancelOrder',
  statusQuery: 'status',
  /** Custom search attribute holding the order id, so the Web UI can find an order. */
  orderIdSearchAttribute: 'OrderId',
} as const;

export const workflowIdOf = (orderId: string): string => `order-${orderId}`;

export type Reason = Static<typeof CancellationReason>;

export interface OrderDetails {
  orderId: string;
  customerId: string;
  items: Array<{ sku: string; quantity: number; unitPrice: number }>;
  totalAmount: number;
  currency: string;
  shippingAddress: { city: string; country: string };
  paymentToken: string;
}

export type SagaStep = 'loading_order' | 'capturing_payment' | 'reserving_stock' | 'scheduling_shipment' | 'completing' | 'compensating' | 'done';

export interface SagaStatus {
  orderId: string;
  step: SagaStep;
  completedSteps: string[];
  compensationsRun: string[];
  outcome?: 'fulfilled' | 'cancelled';
  cancellationReason?: Reason;
}

/** Failure types the reply bridge uses when a worker reports a business failure. */
export const BUSINESS_FAILURES = {
  'payment.declined': 'payment_declined',
  'inventory.rejected': 'out_of_stock',
  'shipping.failed': 'shipping_unavailable',
} as const satisfies Record<string, Reason>;
