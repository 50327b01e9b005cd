-- Up Migration
-- An Idempotency-Key is its customer's own (docs/architecture.md#the-http-api): unique per
-- customer, not across customers. A key unique across customers let a customer that sent
-- another's key read back that customer's orderId; now it places an order of its own.

ALTER TABLE orders.orders DROP CONSTRAINT orders_idempotency_key_key;
ALTER TABLE orders.orders ADD CONSTRAINT orders_customer_idempotency_key UNIQUE (customer_id, idempotency_key);

-- Down Migration
-- Fails when two customers have used the same key since: there is no going back without choosing.
ALTER TABLE orders.orders DROP CONSTRAINT orders_customer_idempotency_key;
ALTER TABLE orders.orders ADD CONSTRAINT orders_idempotency_key_key UNIQUE (idempotency_key);
