-- Up Migration
-- The order store (owned by order-api): the whole order, which the saga loads in its
-- first step, and its write-side status.

CREATE SCHEMA orders;

CREATE TABLE orders.orders (
  order_id            text PRIMARY KEY,
  customer_id         text NOT NULL,
  items               jsonb NOT NULL,
  total_amount        numeric(12, 2) NOT NULL CHECK (total_amount >= 0),
  currency            char(3) NOT NULL,
  shipping_address    jsonb NOT NULL,
  payment_token       text NOT NULL,
  status              text NOT NULL DEFAULT 'accepted' CHECK (status IN ('accepted', 'fulfilled', 'cancelled')),
  cancellation_reason text,
  idempotency_key     text UNIQUE,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP SCHEMA orders CASCADE;
