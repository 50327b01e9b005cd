-- Up Migration
-- Projections that follow the event store (docs/event-sourcing.md#projections). Each keeps
-- where it is in read_model.checkpoints: the last event it applied, in the store's commit
-- order, saved in the same transaction as what the event changed.

CREATE TABLE read_model.checkpoints (
  projection     text PRIMARY KEY,
  transaction_id xid8 NOT NULL,
  position       bigint NOT NULL,
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A customer's orders, newest first (GET /customers/:customerId/orders), kept by the
-- customer-orders worker (shared/projections/customer-orders.ts).
CREATE TABLE read_model.customer_orders (
  order_id     text PRIMARY KEY,
  customer_id  text NOT NULL,
  status       text NOT NULL,
  total_amount numeric(12, 2) NOT NULL,
  currency     char(3) NOT NULL,
  placed_at    timestamptz NOT NULL,
  version      integer NOT NULL
);
CREATE INDEX customer_orders_by_customer ON read_model.customer_orders (customer_id, placed_at DESC, order_id DESC);

-- Down Migration
DROP TABLE read_model.customer_orders;
DROP TABLE read_model.checkpoints;
