// Events of the order aggregate, published to the "orders" exchange.
import { Type } from '@sinclair/typebox';
import { Address, Amount, CancellationReasonV1, CancellationReasonV2, Currency, Line, OrderId, strict } from './common';

export const OrderPlacedV1 = Type.Object(
  {
    orderId: OrderId,
    customerId: Type.String({ minLength: 1, maxLength: 64 }),
    items: Type.Array(Line, { minItems: 1, maxItems: 100 }),
    totalAmount: Amount,
    currency: Currency,
  },
  strict,
);

/**
 * v2 adds where the order goes: the order is event-sourced (docs/event-sourcing.md), and its
 * placed event must carry all the saga needs but the payment token, which no event carries.
 */
export const OrderPlacedV2 = Type.Object({ ...OrderPlacedV1.properties, shippingAddress: Type.Optional(Address) }, strict);

/** A customer asked to cancel; the saga decides (order.cancelled follows, or the order is fulfilled anyway). */
export const OrderCancellationRequestedV1 = Type.Object({ orderId: OrderId }, strict);

export const OrderFulfilledV1 = Type.Object({ orderId: OrderId }, strict);

export const OrderCancelledV1 = Type.Object({ orderId: OrderId, reason: CancellationReasonV1 }, strict);

/** failedStep names the saga step (e.g. reserving_stock) when the reason is step_timed_out or step_failed. */
export const OrderCancelledV2 = Type.Object(
  { orderId: OrderId, reason: CancellationReasonV2, failedStep: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })) },
  strict,
);
