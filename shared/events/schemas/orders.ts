// Events of the order aggregate, published to the "orders" exchange.
import { Type } from '@sinclair/typebox';
import { Amount, CancellationReason, Currency, Line, OrderId, strict } from './common';

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

export const OrderFulfilledV1 = Type.Object({ orderId: OrderId }, strict);

export const OrderCancelledV1 = Type.Object({ orderId: OrderId, reason: CancellationReason }, strict);
