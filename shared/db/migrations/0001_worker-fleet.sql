-- Up Migration
-- The state of each worker, one schema per worker. Money and stock carry constraints:
-- one capture per order, refunds only of what was captured, stock never negative, one
-- reservation per order, one notification per event.

CREATE SCHEMA payments;

CREATE TABLE payments.captures (
  order_id    text PRIMARY KEY,
  payment_id  text NOT NULL UNIQUE,
  amount      numeric(12, 2) NOT NULL CHECK (amount >= 0),
  currency    char(3) NOT NULL,
  captured_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (order_id, amount)
);

-- A refund references its capture with the same amount: only what was captured, once.
CREATE TABLE payments.refunds (
  order_id    text PRIMARY KEY,
  amount      numeric(12, 2) NOT NULL,
  refunded_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (order_id, amount) REFERENCES payments.captures (order_id, amount)
);

CREATE TABLE payments.declines (
  order_id    text PRIMARY KEY,
  reason      text NOT NULL,
  declined_at timestamptz NOT NULL DEFAULT now()
);

-- Calls made to the (simulated) payment provider, per order: tok_flaky fails the first two.
CREATE TABLE payments.provider_calls (
  order_id text PRIMARY KEY,
  calls    integer NOT NULL
);

CREATE SCHEMA inventory;

CREATE TABLE inventory.stock (
  sku       text PRIMARY KEY,
  available integer NOT NULL CHECK (available >= 0)
);

CREATE TABLE inventory.reservations (
  order_id    text PRIMARY KEY,
  items       jsonb NOT NULL,
  reserved_at timestamptz NOT NULL DEFAULT now(),
  released_at timestamptz
);

INSERT INTO inventory.stock (sku, available)
SELECT format('PROD-%s', lpad(n::text, 3, '0')), 1000000 FROM generate_series(1, 10) AS n
UNION ALL SELECT 'PROD-OOS', 0
ON CONFLICT (sku) DO NOTHING;

CREATE SCHEMA shipping;

CREATE TABLE shipping.shipments (
  order_id     text PRIMARY KEY,
  shipment_id  text NOT NULL UNIQUE,
  carrier      text NOT NULL,
  country      char(2) NOT NULL,
  city         text NOT NULL,
  status       text NOT NULL CHECK (status IN ('scheduled', 'cancelled')),
  scheduled_at timestamptz NOT NULL DEFAULT now(),
  cancelled_at timestamptz
);

CREATE SCHEMA notifications;

CREATE TABLE notifications.notifications (
  event_id   text PRIMARY KEY,
  order_id   text NOT NULL,
  kind       text NOT NULL,
  message    text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_by_order ON notifications.notifications (order_id);

CREATE SCHEMA read_model;

CREATE TABLE read_model.orders (
  order_id            text PRIMARY KEY,
  status              text NOT NULL,
  cancellation_reason text,
  customer_id         text NOT NULL,
  items               jsonb NOT NULL,
  total_amount        numeric(12, 2) NOT NULL,
  currency            char(3) NOT NULL,
  version             integer NOT NULL,
  history             jsonb NOT NULL,
  updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Events that arrived ahead of their turn, applied once the gap before them is filled.
CREATE TABLE read_model.pending_events (
  order_id text NOT NULL,
  version  integer NOT NULL,
  event    jsonb NOT NULL,
  PRIMARY KEY (order_id, version)
);

-- Down Migration
DROP SCHEMA read_model CASCADE;
DROP SCHEMA notifications CASCADE;
DROP SCHEMA shipping CASCADE;
DROP SCHEMA inventory CASCADE;
DROP SCHEMA payments CASCADE;
