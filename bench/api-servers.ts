// The two sides of the api benchmark, each in a process of its own:
//   ours  order-api as it runs (order + outbox row in one transaction, 202 at once)
//   sync  the same business flow done synchronously: an orchestrator that writes the order,
//         then calls payment, inventory and shipping services over HTTP in sequence; each
//         service runs the same handler, so the same database work, as our worker does.
// Usage: ts-node bench/api-servers.ts ours|sync <port>   (sync also uses port+1..port+3)
// Ours verifies each request's bearer token (the development key, as `npm start` runs it) and
// runs without rate limits (the bench's rate is above them); the synchronous side has no
// authentication, so ours carries a cost the other does not (an Ed25519 verification).
import 'reflect-metadata';
import Fastify from 'fastify';
import { newId } from '../shared/ids';
import { getConfig } from '../shared/config';
import { createPool, query } from '../shared/db';
import type { DataOf, EnvelopeOf, MessageType } from '../shared/events';
import { newEnvelope } from '../shared/messaging/new-envelope';
import { silentLogger } from '../shared/observability/logger';
import { buildApp, PlaceOrderBody, type PlaceOrder } from '../services/order-api/app';
import { verifierFor } from '../services/order-api/auth';
import { InventoryHandler } from '../workers/inventory/handler';
import { PaymentsHandler } from '../workers/payments/handler';
import { SimulatedPaymentProvider } from '../workers/payments/provider';
import { StaticCarrierDirectory } from '../workers/shipping/carriers';
import { ShippingHandler } from '../workers/shipping/handler';

/** Order ids of the synchronous side, so the benchmark can clean them up. */
export const SYNC_ORDER_PREFIX = 'bsync_';

async function ours(port: number): Promise<void> {
  const db = createPool(getConfig().databaseUrl, 'bench-api', 20);
  const verifier = await verifierFor(getConfig().auth);
  const rateLimits = { perSubjectPerMinute: 0, perAddressPerMinute: 0 };
  const app = buildApp({ db, logger: silentLogger, saga: { requestCancel: async () => ({ accepted: true }) }, readiness: [], verifier, rateLimits });
  await app.listen({ port, host: '127.0.0.1' });
}

async function sync(port: number): Promise<void> {
  const config = getConfig();
  const db = createPool(config.databaseUrl, 'bench-sync', 20);
  const payments = new PaymentsHandler(createPool(config.databaseUrl, 'bench-sync-payments', 20), new SimulatedPaymentProvider(config));
  const inventory = new InventoryHandler(createPool(config.databaseUrl, 'bench-sync-inventory', 20));
  const shipping = new ShippingHandler(createPool(config.databaseUrl, 'bench-sync-shipping', 20), new StaticCarrierDirectory());

  /** A service that runs one handler for the command in its body and answers with the result event. */
  const service = async <T extends MessageType>(servicePort: number, type: T, handle: (cmd: EnvelopeOf<T>) => Promise<unknown>): Promise<void> => {
    const app = Fastify();
    app.post('/', async (req) => {
      const data = req.body as DataOf<T>;
      return handle(newEnvelope(type, data, { aggregateId: (data).orderId }));
    });
    await app.listen({ port: servicePort, host: '127.0.0.1' });
  };
  await service(port + 1, 'payments.capture', (cmd) => payments.capture(cmd));
  await service(port + 2, 'inventory.reserve', (cmd) => inventory.reserve(cmd));
  await service(port + 3, 'shipping.schedule', (cmd) => shipping.schedule(cmd));

  const call = async (servicePort: number, body: unknown): Promise<{ publish?: Array<{ eventType: string }> }> => {
    const res = await fetch(`http://127.0.0.1:${servicePort}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body)});
    if (!res.ok) throw new Error(`service on ${servicePort} answered ${res.status}`);
    return (await res.json()) as { publish?: Array<{ eventType: string }> };
  };
  const app = Fastify({ bodyLimit: 64 * 1024 });
  app.post<{ Body: PlaceOrder }>('/orders', { schema: { body: PlaceOrderBody } }, async (req, reply) => {
    const o = req.body;
    const orderId = `${SYNC_ORDER_PREFIX}${newId()}`;
    const totalAmount = Math.round(o.items.reduce((sum, i) => sum + i.quantity * i.unitPrice * 100, 0)) / 100;
    await query(db, `INSERT INTO orders.orders (order_id, customer_id, items, total_amount, currency, shipping_address, payment_token) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
      orderId,
      o.customerId,
      JSON.stringify(o.items),
      totalAmount,
      o.currency,
      JSON.stringify(o.shippingAddress),
      o.paymentMethod.token,
    ]);
    const paid = await call(port + 1, { orderId, amount: totalAmount, currency: o.currency, paymentToken: o.paymentMethod.token });
    const reserved = await call(port + 2, { orderId, items: o.items.map((i) => ({ sku: i.sku, quantity: i.quantity })) });
    const shipped = await call(port + 3, { orderId, address: o.shippingAddress });
    const outcome = [paid, reserved, shipped].map((r) => r.publish?.[0]?.eventType).join(',');
    await query(db, "UPDATE orders.orders SET status = 'fulfilled' WHERE order_id = $1", [orderId]);
    return reply.status(201).send({ orderId, status: 'fulfilled', outcome });
  });
  await app.listen({ port, host: '127.0.0.1' });
}

if (require.main === module) {
  const [mode, portText] = process.argv.slice(2);
  const port = Number(portText);
  (mode === 'ours' ? ours(port) : mode === 'sync' ? sync(port) : Promise.reject(new Error('usage: api-servers.ts ours|sync <port>'))).then(
    () => console.log(`listening ${mode} ${port}`),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
