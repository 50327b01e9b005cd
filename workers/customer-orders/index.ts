// The customer-orders worker: keeps read_model.customer_orders (a customer's orders, newest
// first) by following the event store from its checkpoint (shared/projections/follow.ts).
// It needs only PostgreSQL. Replicas take turns batch by batch (the projection's advisory
// lock), so none applies an event twice; a second one stands by for a first that dies.
import '../../shared/observability/tracing'; // first: it instruments what the imports below load
import type { Config } from '../../shared/config';
import { createPool } from '../../shared/db';
import { migrate, STARTUP_DATABASE_WAIT_MS } from '../../shared/db/migrate';
import type { Logger } from '../../shared/observability/logger';
import { customerOrdersProjection } from '../../shared/projections/customer-orders';
import { ProjectionFollower, type FollowOptions } from '../../shared/projections/follow';
import { runProcess, type RunningProcess } from '../../shared/runtime/process';

export const CUSTOMER_ORDERS = 'customer-orders';

/** Migrates the database and runs the projection; `ended` settles when it gave up. */
export async function startCustomerOrders(config: Config, logger: Logger, options: FollowOptions = {}): Promise<RunningProcess & { follower: ProjectionFollower }> {
  await migrate(config.databaseUrl, logger, { waitForDatabaseMs: STARTUP_DATABASE_WAIT_MS });
  // The runner's loop and its LISTEN connection.
  const db = createPool(config.databaseUrl, CUSTOMER_ORDERS, {
    max: 3,
    logger,
    connectTimeoutMs: config.databaseConnectTimeoutMs,
    statementTimeoutMs: config.databaseStatementTimeoutMs,
  });
  const follower = new ProjectionFollower(db, customerOrdersProjection, { logger, ...options });
  await follower.start();
  logger.info({ projection: customerOrdersProjection.name }, 'customer-orders started: catching up with the event store');
  return {
    follower,
    ended: follower.ended,
    async stop() {
      await follower.stop();
      await db.end();
    },
  };
}

if (require.main === module) {
  runProcess(CUSTOMER_ORDERS, ({ config, logger }) => startCustomerOrders(config, logger));
}
