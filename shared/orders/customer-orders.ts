// A customer's orders as GET /customers/:customerId/orders shows them: the answer's and the
// query string's schemas, and how a page is read from read_model.customer_orders (kept by the
// customer-orders worker), newest first, with keyset pagination: the cursor is the last row's
// (placedAt, orderId), so a page costs the same however deep it is, and an order placed while
// a client pages never shifts the rows after its cursor.
import { Type, type Static } from '@sinclair/typebox';
import type { Pool } from '../db';
import { OrderStatus } from './read-model';

export const CustomerOrderSummary = Type.Object(
  {
    orderId: Type.String(),
    status: OrderStatus,
    totalAmount: Type.Number(),
    currency: Type.String({ pattern: '^[A-Z]{3}$' }),
    placedAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);
export type CustomerOrderSummary = Static<typeof CustomerOrderSummary>;

export const CustomerOrders = Type.Object(
  {
    customerId: Type.String(),
    orders: Type.Array(CustomerOrderSummary, { description: 'Newest first (placedAt, then orderId, descending).' }),
    nextCursor: Type.Optional(Type.String({ description: 'Pass as `cursor` for the next page; absent on the last page.' })),
  },
  { additionalProperties: false, description: "A page of a customer's orders, as the customer-orders projection has them (an order placed a moment ago may not be there yet)." },
);
export type CustomerOrders = Static<typeof CustomerOrders>;

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

export const CustomerOrdersQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE, description: 'Orders per page.' })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'The nextCursor of the page before (opaque).' })),
  },
  { additionalProperties: false },
);
export type CustomerOrdersQuery = Static<typeof CustomerOrdersQuery>;

/** A cursor that this API did not issue (or that was altered): a 400. */
export class InvalidCursorError extends Error {
  override name = 'InvalidCursorError';
  readonly code = 'invalid_cursor';
  constructor(readonly cursor: string) {
    super('cursor is not one this API issued: pass the nextCursor of the page before, unchanged');
  }
}

interface Position {
  /** placed_at as PostgreSQL writes it in JSON, to the microsecond: it goes back into SQL as it came. */
  placedAt: string;
  orderId: string;
}

const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;

export function encodeCursor(p: Position): string {
  return Buffer.from(JSON.stringify([p.placedAt, p.orderId])).toString('base64url');
}

/** The position a cursor holds; InvalidCursorError for anything else. */
export function decodeCursor(cursor: string): Position {
  let value: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw new Error('not base64url');
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidCursorError(cursor);
  }
  if (!Array.isArray(value) || value.length !== 2) throw new InvalidCursorError(cursor);
  const [placedAt, orderId] = value as unknown[];
  if (typeof placedAt !== 'string' || !ISO_TIMESTAMP.test(placedAt) || Number.isNaN(Date.parse(placedAt))) throw new InvalidCursorError(cursor);
  if (typeof orderId !== 'string' || orderId.length === 0 || orderId.length > 200) throw new InvalidCursorError(cursor);
  return { placedAt, orderId };
}

interface Row {
  order_id: string;
  status: CustomerOrderSummary['status'];
  /** numeric(12, 2): text from the driver. */
  total_amount: string;
  currency: string;
  placed_at: Date;
  /** placed_at in full (microseconds), for the cursor. */
  placed_at_text: string;
}

export interface CustomerOrdersPage {
  /** Default DEFAULT_PAGE_SIZE, at most MAX_PAGE_SIZE */
  limit?: number;
  cursor?: string;
}

/**
 * A page of a customer's orders, newest first (placed_at DESC, order_id DESC), after the
 * cursor's position when one is given. An unknown customer has no orders: an empty page.
 * Throws InvalidCursorError for a malformed cursor.
 */
export async function readCustomerOrders(db: Pool, customerId: string, page: CustomerOrdersPage = {}): Promise<CustomerOrders> {
  const limit = Math.min(Math.max(Math.trunc(page.limit ?? DEFAULT_PAGE_SIZE), 1), MAX_PAGE_SIZE);
  const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
  // Two texts rather than "$2 IS NULL OR …": the row comparison is then an index condition
  // (customer_orders_by_customer), and a deep page is as cheap as the first.
  const columns = "order_id, status, total_amount, currency, placed_at, to_json(placed_at) #>> '{}' AS placed_at_text";
  const r = after
    ? await db.query<Row>(
        `SELECT ${columns} FROM read_model.customer_orders
         WHERE customer_id = $1 AND (placed_at, order_id) < ($2::timestamptz, $3::text)
         ORDER BY placed_at DESC, order_id DESC LIMIT $4`,
        [customerId, after.placedAt, after.orderId, limit + 1],
      )
    : await db.query<Row>(`SELECT ${columns} FROM read_model.customer_orders WHERE customer_id = $1 ORDER BY placed_at DESC, order_id DESC LIMIT $2`, [customerId, limit + 1]);
  const rows = r.rows.slice(0, limit);
  const last = rows.at(-1);
  return {
    customerId,
    orders: rows.map((row) => ({
      orderId: row.order_id,
      status: row.status,
      totalAmount: Number(row.total_amount),
      currency: row.currency,
      placedAt: row.placed_at.toISOString(),
    })),
    ...(r.rows.length > limit && last ? { nextCursor: encodeCursor({ placedAt: last.placed_at_text, orderId: last.order_id }) } : {}),
  };
}
