-- Up Migration
-- The order is event-sourced (docs/event-sourcing.md). Each order is a stream of events in
-- orders.events, with versions 1, 2, 3, … (contiguous: orders.streams holds each stream's
-- version, and an append moves it from the version the writer expected, or fails) and a
-- global position across all streams. orders.events is also the outbox: the relay publishes
-- the rows whose sent_at is NULL, in position order, and sets sent_at after the confirm.
-- orders.orders stays as the order's current state, written in the same transaction as each
-- append (an inline projection): it holds the idempotency keys, the index the reconciler
-- reads, and the payment token, which no event carries.

CREATE TABLE orders.streams (
  stream_id text PRIMARY KEY,
  version   integer NOT NULL CHECK (version >= 1)
);

CREATE TABLE orders.events (
  position       bigserial PRIMARY KEY,
  -- Readers of all streams go in (transaction_id, position) order, and only as far as the
  -- oldest transaction still running: a position taken by a transaction that commits later
  -- than a higher one is never skipped.
  transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
  stream_id      text NOT NULL,
  version        integer NOT NULL CHECK (version >= 1),
  event_id       text NOT NULL UNIQUE,
  event_type     text NOT NULL,
  schema_version integer NOT NULL,
  occurred_at    timestamptz NOT NULL,
  -- The envelope as published (or to be), its data as written (an older schema version is upcast on read).
  envelope       jsonb NOT NULL,
  sent_at        timestamptz,
  UNIQUE (stream_id, version)
);
CREATE INDEX events_unsent ON orders.events (position) WHERE sent_at IS NULL;
CREATE INDEX events_in_commit_order ON orders.events (transaction_id, position);

-- The state of a stream as of a version, taken every EVENT_STORE_SNAPSHOT_EVERY events;
-- `schema` is the version of the fold that wrote it (a fold that changed ignores older ones).
CREATE TABLE orders.snapshots (
  stream_id text PRIMARY KEY,
  version   integer NOT NULL,
  schema    integer NOT NULL,
  state     jsonb NOT NULL,
  taken_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE orders.orders ADD COLUMN version integer NOT NULL DEFAULT 1;

-- The orders placed before this migration get their streams from their rows and the outbox:
-- order.placed is the outbox's envelope as it was (unsent if the outbox had not sent it
-- yet); an order with no outbox row gets one built from its row. The outcome the saga
-- recorded gets the event id the saga published it under (`order-<id>/order.<outcome>`,
-- shared/messaging/new-envelope.ts stableEventId) and goes out again: an activity that had
-- written the row but not published when the old code stopped finds its outcome recorded,
-- and consumers deduplicate the others by that id (the read model finds them stale).
CREATE FUNCTION pg_temp.iso(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;
CREATE FUNCTION pg_temp.stable_event_id(seed text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT string_agg(substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', get_byte(h.d, i) % (CASE WHEN i = 0 THEN 8 ELSE 32 END) + 1, 1), '' ORDER BY i)
  FROM (SELECT sha256(convert_to(seed, 'UTF8')) AS d) h, generate_series(0, 25) AS i
$$;

INSERT INTO orders.events (stream_id, version, event_id, event_type, schema_version, occurred_at, envelope, sent_at)
SELECT p.order_id, 1, p.envelope->>'eventId', 'order.placed', (p.envelope->>'schemaVersion')::int, (p.envelope->>'occurredAt')::timestamptz,
       jsonb_set(p.envelope, '{aggregateVersion}', '1'), p.sent_at
FROM (
  SELECT o.order_id,
         coalesce(x.envelope, jsonb_build_object(
           'eventId', pg_temp.stable_event_id('backfill/' || o.order_id || '/order.placed'), 'eventType', 'order.placed', 'schemaVersion', 2,
           'occurredAt', pg_temp.iso(o.created_at), 'aggregateId', o.order_id, 'aggregateVersion', 1, 'correlationId', o.order_id,
           'causationId', pg_temp.stable_event_id('backfill/' || o.order_id || '/order.placed'),
           'data', jsonb_build_object('orderId', o.order_id, 'customerId', o.customer_id, 'items', o.items, 'totalAmount', o.total_amount,
                                      'currency', rtrim(o.currency), 'shippingAddress', o.shipping_address))) AS envelope,
         CASE WHEN x.id IS NULL THEN o.created_at ELSE x.sent_at END AS sent_at,
         coalesce(x.id, 0) AS outbox_id, o.created_at
  FROM orders.orders o
  LEFT JOIN orders.outbox x ON x.envelope->>'aggregateId' = o.order_id AND x.envelope->>'eventType' = 'order.placed'
) p
ORDER BY p.outbox_id, p.created_at, p.order_id;

INSERT INTO orders.events (stream_id, version, event_id, event_type, schema_version, occurred_at, envelope)
SELECT o.order_id, 2, e.event_id, e.event_type, e.schema_version, o.updated_at,
       jsonb_build_object(
         'eventId', e.event_id, 'eventType', e.event_type, 'schemaVersion', e.schema_version, 'occurredAt', pg_temp.iso(o.updated_at),
         'aggregateId', o.order_id, 'aggregateVersion', 2, 'correlationId', o.order_id, 'causationId', e.event_id, 'data', e.data)
FROM orders.orders o
CROSS JOIN LATERAL (
  SELECT pg_temp.stable_event_id('order-' || o.order_id || '/order.' || o.status) AS event_id,
         'order.' || o.status AS event_type,
         CASE o.status WHEN 'fulfilled' THEN 1 ELSE 2 END AS schema_version,
         CASE o.status WHEN 'fulfilled' THEN jsonb_build_object('orderId', o.order_id)
              ELSE jsonb_build_object('orderId', o.order_id, 'reason', coalesce(o.cancellation_reason, 'customer_cancelled')) END AS data
) e
WHERE o.status IN ('fulfilled', 'cancelled')
ORDER BY o.updated_at, o.order_id;

INSERT INTO orders.streams (stream_id, version) SELECT stream_id, max(version) FROM orders.events GROUP BY stream_id;
UPDATE orders.orders o SET version = s.version FROM orders.streams s WHERE s.stream_id = o.order_id AND o.version <> s.version;

DROP TABLE orders.outbox;

-- Down Migration
CREATE TABLE orders.outbox (
  id          bigserial PRIMARY KEY,
  event_id    text NOT NULL UNIQUE,
  envelope    jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  sent_at     timestamptz
);
CREATE INDEX outbox_unsent ON orders.outbox (id) WHERE sent_at IS NULL;
INSERT INTO orders.outbox (event_id, envelope, created_at, sent_at)
  SELECT event_id, envelope, occurred_at, sent_at FROM orders.events WHERE event_type = 'order.placed' ORDER BY position;
ALTER TABLE orders.orders DROP COLUMN version;
DROP TABLE orders.snapshots;
DROP TABLE orders.events;
DROP TABLE orders.streams;
