// The HTTP API of order-api (DESIGN.md, "HTTP API"). POST /orders writes the order and its
// order.placed event in one transaction (the outbox) and answers 202 without waiting for
// the broker. Bad input gets a 4xx with a clear body, never a 500.
import { Type, type Static } from '@sinclair/typebox';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { Counter, Histogram, Registry } from 'prom-client';
import { ulid } from 'ulid';
import { query, withTransaction, type Pool } from '../../shared/db';
import { Amount, Country, Currency, Quantity, Sku } from '../../shared/events/schemas/common';
import { newEnvelope } from '../../shared/messaging/envelope';
import type { Logger } from '../../shared/observability/logger';
import { readOrder } from '../../workers/order-projection/handler';
import { enqueue } from './outbox';

const strict = { additionalProperties: false } as const;

/** Text without control characters (PostgreSQL cannot store NUL; none belong in an order). */
const Text = (maxLength: number) => Type.String({ minLength: 1, maxLength, pattern: '^[^\\u0000-\\u001f\\u007f]*$' });

export const PlaceOrderBody = Type.Object(
  {
    customerId: Text(64),
    items: Type.Array(Type.Object({ sku: Sku, quantity: Quantity, unitPrice: Amount }, strict), { minItems: 1, maxItems: 100 }),
    currency: Currency,
    shippingAddress: Type.Object({ city: Text(100), country: Country }, strict),
    paymentMethod: Type.Object({ token: Text(128) }, strict),
  },
  strict,
);
export type PlaceOrder = Static<typeof PlaceOrderBody>;

const IdempotencyKey = Text(200);
/** Order ids in URLs: what the API issues (`ord_<ULID>`) and any other plain id. */
const OrderId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });

/** What the API needs from the saga: asking it to cancel an order. */
export interface SagaControl {
  /** Asks the order's saga to cancel; returns false when no saga runs for it. */
  requestCancel(orderId: string): Promise<boolean>;
}

export interface ReadinessCheck {
  name: string;
  check(): Promise<boolean>;
}

export interface AppDeps {
  db: Pool;
  saga: SagaControl;
  readiness: ReadinessCheck[];
  logger: Logger;
  /** Largest accepted body in bytes. Default 64 KiB */
  bodyLimit?: number;
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const loggerInstance: FastifyBaseLogger = deps.logger.child({}, { level: 'warn' });
  const app = Fastify({
    // Per-request lines would dominate the logs; the metrics count requests instead.
    loggerInstance,
    bodyLimit: deps.bodyLimit ?? 64 * 1024,
    // Reject unknown fields and wrong types instead of silently fixing them.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true, multipleOfPrecision: 9 } },
  });
  app.removeContentTypeParser('text/plain'); // JSON only: any other media type is a 415

  const registry = new Registry();
  const requests = new Counter({ name: 'http_requests_total', help: 'HTTP requests', labelNames: ['method', 'route', 'status'], registers: [registry] });
  const latency = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    if (err.validation) {
      return reply.status(400).send({
        error: 'validation_failed',
        details: err.validation.map((v) => ({ field: `${err.validationContext ?? 'body'}${v.instancePath || ''}`, message: v.message ?? 'is invalid', ...(v.params && 'additionalProperty' in v.params ? { unknownField: v.params.additionalProperty } : {}) })),
      });
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.status(413).send({ error: 'payload_too_large', message: `the body is larger than ${deps.bodyLimit ?? 65536} bytes` });
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return reply.status(415).send({ error: 'unsupported_media_type', message: 'send the order as application/json' });
    if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err instanceof SyntaxError) {
      return reply.status(415).send({ error: 'invalid_json', message: 'the body is not JSON' });
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return reply.status(err.statusCode).send({ error: 'bad_request', message: err.message });
    // PostgreSQL's data exceptions (class 22) are about the input, not the service.
    if (typeof err.code === 'string' && /^22[0-9A-Z]{3}$/.test(err.code)) return reply.status(400).send({ error: 'invalid_input', message: err.message });
    deps.logger.error({ err: err.message }, 'request failed');
    return reply.status(503).send({ error: 'unavailable', message: 'the order could not be processed now; retry later' });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url}` }));

  app.post<{ Body: PlaceOrder; Headers: { 'idempotency-key'?: string } }>(
    '/orders',
    { schema: { body: PlaceOrderBody, headers: Type.Object({ 'idempotency-key': Type.Optional(IdempotencyKey) }) } },
    async (req, reply) => {
      const orderId = await placeOrder(deps.db, req.body, req.headers['idempotency-key']);
      return reply.status(202).header('location', `/orders/${orderId}`).send({ orderId, status: 'accepted' });
    },
  );

  app.get<{ Params: { orderId: string } }>('/orders/:orderId', { schema: { params: Type.Object({ orderId: OrderId }) } }, async (req, reply) => {
    const order = (await readOrder(deps.db, req.params.orderId)) ?? (await fromOrderStore(deps.db, req.params.orderId));
    if (!order) return reply.status(404).send({ error: 'not_found', message: `no order ${req.params.orderId}` });
    return order;
  });

  app.post<{ Params: { orderId: string } }>('/orders/:orderId/cancel', { schema: { params: Type.Object({ orderId: OrderId }) } }, async (req, reply) => {
    const [row] = await query<{ status: string }>(deps.db, 'SELECT status FROM orders.orders WHERE order_id = $1', [req.params.orderId]);
    if (!row) return reply.status(404).send({ error: 'not_found', message: `no order ${req.params.orderId}` });
    if (row.status !== 'accepted') return reply.status(409).send({ error: 'order_final', message: `order is already ${row.status}` });
    if (!(await deps.saga.requestCancel(req.params.orderId))) return reply.status(409).send({ error: 'order_final', message: 'the order has no running saga' });
    return reply.status(202).send({ orderId: req.params.orderId, status: 'cancellation_requested' });
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const results = await Promise.all(deps.readiness.map(async (r) => [r.name, await r.check().catch(() => false)] as const));
    const down = results.filter(([, ok]) => !ok).map(([name]) => name);
    return reply.status(down.length === 0 ? 200 : 503).send({ status: down.length === 0 ? 'ready' : 'not_ready', down });
  });
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  return app;
}

async function placeOrder(db: Pool, body: PlaceOrder, idempotencyKey: string | undefined): Promise<string> {
  const orderId = `ord_${ulid()}`;
  const totalAmount = Math.round(body.items.reduce((sum, i) => sum + i.quantity * i.unitPrice * 100, 0)) / 100;
  return withTransaction(db, async (tx) => {
    const inserted = await tx.query<{ order_id: string }>(
      `INSERT INTO orders.orders (order_id, customer_id, items, total_amount, currency, shipping_address, payment_token, idempotency_key)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (idempotency_key) DO NOTHING RETURNING order_id`,
      [orderId, body.customerId, JSON.stringify(body.items), totalAmount, body.currency, JSON.stringify(body.shippingAddress), body.paymentMethod.token, idempotencyKey ?? null],
    );
    if (inserted.rowCount === 0) {
      // A retried request: the same order, nothing new started.
      const existing = await tx.query<{ order_id: string }>('SELECT order_id FROM orders.orders WHERE idempotency_key = $1', [idempotencyKey]);
      return existing.rows[0]!.order_id;
    }
    const event = newEnvelope(
      'order.placed',
      { orderId, customerId: body.customerId, items: body.items, totalAmount, currency: body.currency },
      { aggregateId: orderId, aggregateVersion: 1, correlationId: orderId },
    );
    await enqueue(tx, event);
    return orderId;
  });
}

/** An order accepted but not yet in the read model. */
async function fromOrderStore(db: Pool, orderId: string): Promise<object | undefined> {
  const [row] = await query<{ customer_id: string; items: unknown; total_amount: string; currency: string }>(
    db,
    'SELECT customer_id, items, total_amount, currency FROM orders.orders WHERE order_id = $1',
    [orderId],
  );
  if (!row) return undefined;
  return { orderId, status: 'accepted', customerId: row.customer_id, items: row.items, totalAmount: Number(row.total_amount), currency: row.currency.trim(), history: [] };
}
