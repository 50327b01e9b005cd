// Where each message sits in the history of its aggregate: the envelope's aggregateVersion.
// The read model applies an order's events in this order (one that arrives early waits for
// the gap to fill; one at or below the current version is stale), so every order event needs
// a place of its own here before it is published. The map is typed over the whole catalog:
// a new message type does not compile until it has one. Workflow-safe.
import type { MessageType } from './catalog';

export const AGGREGATE_VERSIONS = {
  // The order: placed, then one outcome. The order is event-sourced: the event store gives
  // each of its events the version it takes in the order's stream (a cancellation request
  // moves the outcome to 3); these are the versions of a stream without one.
  'order.placed': 1,
  'order.cancellation_requested': 2,
  'order.fulfilled': 2,
  'order.cancelled': 2,

  // Each worker's results for an order: the step's answer, then its compensation's.
  'payment.captured': 1,
  'payment.declined': 1,
  'payment.refunded': 2,
  'inventory.reserved': 1,
  'inventory.rejected': 1,
  'inventory.released': 2,
  'shipping.scheduled': 1,
  'shipping.failed': 1,
  'shipping.cancelled': 2,

  // Commands ask for a change; they are no part of a history.
  'payments.capture': 0,
  'payments.refund': 0,
  'inventory.reserve': 0,
  'inventory.release': 0,
  'shipping.schedule': 0,
  'shipping.cancel': 0,
} as const satisfies Record<MessageType, number>;

/** The aggregateVersion every envelope of this type carries. */
export function aggregateVersionOf(type: MessageType): number {
  return AGGREGATE_VERSIONS[type];
}
