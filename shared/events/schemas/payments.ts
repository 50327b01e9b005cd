// Payment commands (exchange "commands") and the events they produce (exchange "payments").
import { Type } from '@sinclair/typebox';
import { Amount, Currency, OrderId, strict } from './common';

const PaymentId = Type.String({ minLength: 1, maxLength: 64 });

export const PaymentsCaptureV1 = Type.Object(
  { orderId: OrderId, amount: Amount, currency: Currency, paymentToken: Type.String({ minLength: 1, maxLength: 128 }) },
  strict,
);
export const PaymentsRefundV1 = Type.Object({ orderId: OrderId }, strict);

export const PaymentCapturedV1 = Type.Object(
  { orderId: OrderId, paymentId: PaymentId, amount: Amount, currency: Currency },
  strict,
);
export const PaymentDeclinedV1 = Type.Object(
  { orderId: OrderId, reason: Type.String({ minLength: 1, maxLength: 200 }) },
  strict,
);
/** amount is 0 when nothing had been captured: a refund of nothing succeeds and changes nothing. */
export const PaymentRefundedV1 = Type.Object({ orderId: OrderId, amount: Amount, currency: Type.Optional(Currency) }, strict);
