// Every message type the system knows: its exchange, kind, compatibility mode and schema
// versions. Publish and consume both validate against this catalog; `npm run schemas:check`
// enforces the evolution rules of each type's mode between its versions and freezes
// published versions (docs/messaging.md#schemas-and-their-evolution).
import type { Static, TSchema } from '@sinclair/typebox';
import type { Compatibility } from './compat';
import type { Envelope } from './envelope';
import * as inventory from './schemas/inventory';
import * as orders from './schemas/orders';
import * as payments from './schemas/payments';
import * as shipping from './schemas/shipping';

export interface MessageDefinition {
  /** The topic exchange it is published to; the routing key is its type. */
  readonly exchange: string;
  readonly kind: 'event' | 'command';
  /** The version producers publish now, and the one this release's handlers get (older ones upcast, newer ones read as it). */
  readonly latest: number;
  /** Every version ever published, by number. A published version never changes. */
  readonly versions: Readonly<Record<number, TSchema>>;
  /**
   * Which readers its versions keep working, checked between every pair of versions: backward
   * (a newer consumer reads older messages), forward (an older consumer reads newer messages,
   * dropping the fields it does not know), or full (both). A consumer reads a version newer
   * than its latest only when its own catalog says forward or full. Part of the type's
   * contract: releases already running act on the mode they were built with.
   */
  readonly compatibility: Compatibility;
}

/**
 * The mode of a type that does not name one. Events are facts, read by any number of
 * consumers (and replayed from the archive for a month): full, so producers and consumers
 * may be upgraded in either order. Commands are instructions to the one worker whose queue
 * is bound to them: backward, that worker reads the commands queued, waiting or
 * dead-lettered before it was upgraded; not forward, since a worker that drops the part of
 * an instruction it does not know does something other than it was asked. A command's
 * worker is upgraded before its producer, the Temporal worker (or the producer holds back).
 */
const DEFAULT_COMPATIBILITY = { event: 'full', command: 'backward' } as const satisfies Record<MessageDefinition['kind'], Compatibility>;

function define<const V extends Record<number, TSchema>, const L extends keyof V & number>(
  exchange: string,
  kind: MessageDefinition['kind'],
  latest: L,
  versions: V,
  compatibility: Compatibility = DEFAULT_COMPATIBILITY[kind],
) {
  return { exchange, kind, latest, versions, compatibility };
}

export const catalog = {
  'order.placed': define('orders', 'event', 2, { 1: orders.OrderPlacedV1, 2: orders.OrderPlacedV2 }),
  'order.cancellation_requested': define('orders', 'event', 1, { 1: orders.OrderCancellationRequestedV1 }),
  'order.fulfilled': define('orders', 'event', 1, { 1: orders.OrderFulfilledV1 }),
  // Backward only: v2 added reasons (step_timed_out, step_failed) that a v1 reader refuses.
  'order.cancelled': define('orders', 'event', 2, { 1: orders.OrderCancelledV1, 2: orders.OrderCancelledV2 }, 'backward'),

  'payments.capture': define('commands', 'command', 1, { 1: payments.PaymentsCaptureV1 }),
  'payments.refund': define('commands', 'command', 1, { 1: payments.PaymentsRefundV1 }),
  'payment.captured': define('payments', 'event', 1, { 1: payments.PaymentCapturedV1 }),
  'payment.declined': define('payments', 'event', 1, { 1: payments.PaymentDeclinedV1 }),
  'payment.refunded': define('payments', 'event', 1, { 1: payments.PaymentRefundedV1 }),

  'inventory.reserve': define('commands', 'command', 1, { 1: inventory.InventoryReserveV1 }),
  'inventory.release': define('commands', 'command', 1, { 1: inventory.InventoryReleaseV1 }),
  'inventory.reserved': define('inventory', 'event', 1, { 1: inventory.InventoryReservedV1 }),
  'inventory.rejected': define('inventory', 'event', 1, { 1: inventory.InventoryRejectedV1 }),
  'inventory.released': define('inventory', 'event', 1, { 1: inventory.InventoryReleasedV1 }),

  'shipping.schedule': define('commands', 'command', 1, { 1: shipping.ShippingScheduleV1 }),
  'shipping.cancel': define('commands', 'command', 1, { 1: shipping.ShippingCancelV1 }),
  'shipping.scheduled': define('shipping', 'event', 1, { 1: shipping.ShippingScheduledV1 }),
  'shipping.failed': define('shipping', 'event', 1, { 1: shipping.ShippingFailedV1 }),
  'shipping.cancelled': define('shipping', 'event', 1, { 1: shipping.ShippingCancelledV1 }),
} as const satisfies Record<string, MessageDefinition>;

export type Catalog = Readonly<Record<string, MessageDefinition>>;
export type MessageType = keyof typeof catalog;
type LatestData<D> = D extends { latest: infer L; versions: infer V } ? (L extends keyof V ? (V[L] extends TSchema ? Static<V[L]> : never) : never) : never;
// Resolved per type here, so that DataOf of a generic T is still known to be one of them
// (indexing versions by a generic T's latest cannot be checked once types have several versions).
type LatestDataByType = { [T in MessageType]: LatestData<(typeof catalog)[T]> };
/** The data of the version of T that producers publish now. */
export type DataOf<T extends MessageType> = LatestDataByType[T];
/**
 * An envelope of type T whose data passed the schema of its version, as a handler gets it: at
 * the latest version (the consumer upcasts an older message and reads a newer one as the
 * latest: shared/messaging/validator.ts), and as a producer builds it.
 */
export type EnvelopeOf<T extends MessageType> = Envelope<DataOf<T>> & { eventType: T };

export const EVENT_EXCHANGES = ['orders', 'payments', 'inventory', 'shipping'] as const;
export const COMMAND_EXCHANGE = 'commands';

export function isMessageType(value: string): value is MessageType {
  return Object.prototype.hasOwnProperty.call(catalog, value);
}
