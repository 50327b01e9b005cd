// Every message type the system knows: its exchange, kind and schema versions.
// Publish and consume both validate against this catalog; `npm run schemas:check`
// enforces the evolution rules between versions and freezes published versions.
import type { Static, TSchema } from '@sinclair/typebox';
import * as inventory from './schemas/inventory';
import * as orders from './schemas/orders';
import * as payments from './schemas/payments';
import * as shipping from './schemas/shipping';

export interface MessageDefinition {
  /** The topic exchange it is published to; the routing key is its type. */
  readonly exchange: string;
  readonly kind: 'event' | 'command';
  /** The version producers publish now. */
  readonly latest: number;
  /** Every version ever published, by number. A published version never changes. */
  readonly versions: Readonly<Record<number, TSchema>>;
}

function define<const V extends Record<number, TSchema>, const L extends keyof V & number>(
  exchange: string,
  kind: 'event' | 'command',
  latest: L,
  versions: V,
) {
  return { exchange, kind, latest, versions };
}

export const catalog = {
  'order.placed': define('orders', 'event', 1, { 1: orders.OrderPlacedV1 }),
  'order.fulfilled': define('orders', 'event', 1, { 1: orders.OrderFulfilledV1 }),
  'order.cancelled': define('orders', 'event', 1, { 1: orders.OrderCancelledV1 }),

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
type Def<T extends MessageType> = (typeof catalog)[T];
/** The data of the version of T that producers publish now. */
export type DataOf<T extends MessageType> = Static<Def<T>['versions'][Def<T>['latest']]>;

export const EVENT_EXCHANGES = ['orders', 'payments', 'inventory', 'shipping'] as const;
export const COMMAND_EXCHANGE = 'commands';

export function isMessageType(value: string): value is MessageType {
  return Object.prototype.hasOwnProperty.call(catalog, value);
}
