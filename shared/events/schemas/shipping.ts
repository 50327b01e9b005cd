// Shipping commands (exchange "commands") and the events they produce (exchange "shipping").
import { Type } from '@sinclair/typebox';
import { Address, OrderId, strict } from './common';

export const ShippingScheduleV1 = Type.Object({ orderId: OrderId, address: Address }, strict);
export const ShippingCancelV1 = Type.Object({ orderId: OrderId }, strict);

export const ShippingScheduledV1 = Type.Object(
  { orderId: OrderId, shipmentId: Type.String({ minLength: 1, maxLength: 64 }), carrier: Type.String({ minLength: 1, maxLength: 64 }) },
  strict,
);
export const ShippingFailedV1 = Type.Object(
  { orderId: OrderId, reason: Type.Literal('shipping_unavailable') },
  strict,
);
export const ShippingCancelledV1 = Type.Object({ orderId: OrderId }, strict);
