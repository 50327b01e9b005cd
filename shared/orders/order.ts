// The order as a pure fold of its events, and the decisions taken on it
// (docs/event-sourcing.md). No I/O: test/unit/order-fold.test.ts runs it without services.
// Its events are the catalog's order events, read at their latest schema version (the
// store upcasts older ones).
import type { EnvelopeOf } from '../events';
import type { RecordedEvent, Fold } from '../event-store';
import type { OrderDetails, Reason } from '../saga';

/** The order's events, told apart by their eventType. */
export type OrderEventType = 'order.placed' | 'order.cancellation_requested' | 'order.fulfilled' | 'order.cancelled';
export type OrderEvent = { [T in OrderEventType]: EnvelopeOf<T> }[OrderEventType];

export const ORDER_EVENT_TYPES: readonly OrderEventType[] = ['order.placed', 'order.cancellation_requested', 'order.fulfilled', 'order.cancelled'];

export const ORDER_STATUSES = ['accepted', 'fulfilled', 'cancelled'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/**
 * The status each order event gives the order: the one rule the fold, the read models and
 * the projection follow. Null: the event changes no status (a cancellation request).
 */
const STATUS_SET_BY = {
  'order.placed': 'accepted',
  'order.cancellation_requested': null,
  'order.fulfilled': 'fulfilled',
  'order.cancelled': 'cancelled',
} as const satisfies Record<OrderEventType, OrderStatus | null>;

export const statusSetBy = <T extends OrderEventType>(eventType: T): (typeof STATUS_SET_BY)[T] => STATUS_SET_BY[eventType];

export interface OrderState {
  orderId: string;
  status: OrderStatus;
  customerId: string;
  items: OrderDetails['items'];
  totalAmount: number;
  currency: string;
  /** Absent for an order placed with order.placed v1. */
  shippingAddress?: OrderDetails['shippingAddress'];
  placedAt: string;
  cancellationRequested: boolean;
  cancellationReason?: Reason;
  failedStep?: string;
  /** Every event applied, in version order. */
  history: Array<{ eventType: OrderEventType; occurredAt: string; aggregateVersion: number }>;
}

/** undefined before order.placed. */
export type Order = OrderState | undefined;

/** Applies one event. Pure; an event before order.placed, or an unknown one, changes nothing. */
export function evolve(order: Order, event: RecordedEvent): Order {
  const e = event.envelope as OrderEvent;
  const entry = { eventType: e.eventType, occurredAt: e.occurredAt, aggregateVersion: event.version };
  if (e.eventType === 'order.placed') {
    const d = e.data;
    return {
      orderId: d.orderId,
      status: statusSetBy(e.eventType),
      customerId: d.customerId,
      items: d.items,
      totalAmount: d.totalAmount,
      currency: d.currency,
      ...(d.shippingAddress ? { shippingAddress: d.shippingAddress } : {}),
      placedAt: e.occurredAt,
      cancellationRequested: false,
      history: [entry],
    };
  }
  if (!order) return order;
  const history = [...order.history, entry];
  switch (e.eventType) {
    case 'order.cancellation_requested':
      return { ...order, cancellationRequested: true, history };
    case 'order.fulfilled':
      return { ...order, status: statusSetBy(e.eventType), history };
    case 'order.cancelled':
      return { ...order, status: statusSetBy(e.eventType), cancellationReason: e.data.reason, ...(e.data.failedStep ? { failedStep: e.data.failedStep } : {}), history };
    default:
      return order;
  }
}

/** The order's fold, for the event store (its snapshots carry snapshotSchema). */
export const orderFold: Fold<Order> = { initial: undefined, evolve, snapshotSchema: 1 };

/** Folds events from nothing. */
export const foldOrder = (events: readonly RecordedEvent[]): Order => events.reduce(evolve, undefined as Order);

/** What a cancellation request does to the order: record it, nothing (asked before), or refuse (final). */
export function decideCancellationRequest(order: OrderState): 'record' | 'already_requested' | 'final' {
  if (order.status !== 'accepted') return 'final';
  return order.cancellationRequested ? 'already_requested' : 'record';
}

export type Outcome = { outcome: 'fulfilled' } | { outcome: 'cancelled'; reason: Reason; failedStep?: string };

/**
 * What recording the saga's outcome does: append it, nothing (recorded before: a retried
 * activity), or nothing because the order already ended otherwise (a reconciler that
 * finished a saga whose outcome was recorded: the first outcome stands).
 */
export function decideOutcome(order: OrderState, outcome: Outcome): 'record' | 'already_recorded' | 'ended_otherwise' {
  if (order.status === 'accepted') return 'record';
  return order.status === outcome.outcome ? 'already_recorded' : 'ended_otherwise';
}
