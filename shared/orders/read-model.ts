// The order as GET /orders/:orderId shows it: its schema (the API's response schema, and so
// its OpenAPI document) and how it is read from the read model the order-projection worker
// keeps (read_model.orders).
import { Type, type Static } from '@sinclair/typebox';
import type { Pool } from '../db';
import { CancellationReasonV2, Line } from '../events/schemas/common';
import { ORDER_STATUSES, type OrderState } from './order';

/**
 * A string of a few values: `enum` in the document, a plain string to serialize (fastify's
 * serializer tries each branch of a union, and fails the answer when none matches).
 */
export function StringEnum<const T extends readonly string[]>(values: T, options: { description?: string } = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export const OrderStatus = StringEnum(ORDER_STATUSES);

export const OrderHistoryEntry = Type.Object(
  {
    eventType: Type.String({ examples: ['order.placed'] }),
    occurredAt: Type.String({ format: 'date-time' }),
    /** Rows written before the projection recorded it lack it. */
    aggregateVersion: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);

export const OrderView = Type.Object(
  {
    orderId: Type.String(),
    status: OrderStatus,
    /** As the latest order.cancelled has it (each version's reasons are in the next one's). */
    cancellationReason: Type.Optional(StringEnum(CancellationReasonV2.anyOf.map((r) => r.const))),
    customerId: Type.String(),
    items: Type.Array(Line),
    totalAmount: Type.Number(),
    currency: Type.String({ pattern: '^[A-Z]{3}$' }),
    history: Type.Array(OrderHistoryEntry, { description: "The events applied, in aggregateVersion order (before the read model has the order, or with asOf: every event of its stream up to then)." }),
  },
  { additionalProperties: false, description: 'The read model of the order; before the read model has it, or with asOf, the order folded from its events.' },
);
export type OrderView = Static<typeof OrderView>;

interface ReadModelRow {
  customer_id: string;
  items: OrderView['items'];
  /** numeric(12, 2): the driver gives it as text, to lose no digit. */
  total_amount: string;
  /** char(3), trimmed by shared/db for every query. */
  currency: string;
  status: OrderView['status'];
  cancellation_reason: OrderView['cancellationReason'] | null;
  history: OrderView['history'];
}

/** The read model of one order, or undefined before the projection has applied its order.placed. */
export async function readOrder(db: Pool, orderId: string): Promise<OrderView | undefined> {
  const r = await db.query<ReadModelRow>(
    'SELECT status, cancellation_reason, customer_id, items, total_amount, currency, history FROM read_model.orders WHERE order_id = $1',
    [orderId],
  );
  const row = r.rows[0];
  if (!row) return undefined;
  return {
    orderId,
    status: row.status,
    ...(row.cancellation_reason ? { cancellationReason: row.cancellation_reason } : {}),
    customerId: row.customer_id,
    items: row.items,
    totalAmount: Number(row.total_amount),
    currency: row.currency,
    history: row.history,
  };
}

/** The order as folded from its events (the read model's shape, its history every event). */
export function orderViewOf(order: OrderState): OrderView {
  const { orderId, status, cancellationReason, customerId, items, totalAmount, currency, history } = order;
  return { orderId, status, ...(cancellationReason ? { cancellationReason } : {}), customerId, items, totalAmount, currency, history };
}
