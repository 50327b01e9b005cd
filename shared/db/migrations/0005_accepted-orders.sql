-- Up Migration
-- The reconciler reads the accepted orders, oldest first, a batch at a time: once most
-- orders are final, this index holds only the few it looks at.

CREATE INDEX orders_accepted ON orders.orders (created_at, order_id) WHERE status = 'accepted';

-- Down Migration
DROP INDEX orders.orders_accepted;
