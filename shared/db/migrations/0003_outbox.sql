-- Up Migration
-- The transactional outbox of order-api: an event is written in the same transaction as
-- the order, and the relay publishes it with confirms, marking it sent only afterwards.

CREATE TABLE orders.outbox (
  id          bigserial PRIMARY KEY,
  event_id    text NOT NULL UNIQUE,
  envelope    jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  sent_at     timestamptz
);
CREATE INDEX outbox_unsent ON orders.outbox (id) WHERE sent_at IS NULL;

-- Down Migration
DROP TABLE orders.outbox;
