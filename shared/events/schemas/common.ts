// Building blocks shared by the message schemas.
import { Type } from '@sinclair/typebox';

export const OrderId = Type.String({ minLength: 1, maxLength: 64 });
export const Sku = Type.String({ pattern: '^[A-Z0-9-]{1,32}$' });
export const Quantity = Type.Integer({ minimum: 1, maximum: 10000 });
/** Money in major units with at most two decimals (19.99). */
export const Amount = Type.Number({ minimum: 0, maximum: 1e9, multipleOf: 0.01 });
export const Currency = Type.String({ pattern: '^[A-Z]{3}$' });
export const Country = Type.String({ pattern: '^[A-Z]{2}$' });

export const Line = Type.Object(
  { sku: Sku, quantity: Quantity, unitPrice: Amount },
  { additionalProperties: false },
);
export const StockLine = Type.Object({ sku: Sku, quantity: Quantity }, { additionalProperties: false });
export const Address = Type.Object(
  { city: Type.String({ minLength: 1, maxLength: 100 }), country: Country },
  { additionalProperties: false },
);

/** Why an order was cancelled, as order.cancelled v1 has it. Published: never edit, extend. */
export const CancellationReasonV1 = Type.Union([
  Type.Literal('payment_declined'),
  Type.Literal('out_of_stock'),
  Type.Literal('shipping_unavailable'),
  Type.Literal('customer_cancelled'),
]);

/**
 * v2 adds the reasons of a step that ended without a business answer, so a step that was
 * never answered is not reported as, say, out of stock.
 */
export const CancellationReasonV2 = Type.Union([...CancellationReasonV1.anyOf, Type.Literal('step_timed_out'), Type.Literal('step_failed')]);

/** A strict object: unknown fields are a schema failure. */
export const strict = { additionalProperties: false } as const;
