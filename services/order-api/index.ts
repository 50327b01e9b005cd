// Composition root of the order-api process: the HTTP API on HTTP_PORT.
import { createPool, query } from '../../shared/db';
import { migrate, STARTUP_DATABASE_WAIT_MS } from '../../shared/db/migrate';
import { runProcess } from '../../shared/di/process';
import { connectTemporal, ensureSearchAttributes } from '../../shared/temporal/client';
import { buildApp } from './app';
import { TemporalSagaControl } from './saga-control';

runProcess('order-api', async ({ config, logger }) => {
  await migrate(config.databaseUrl, logger, { waitForDatabaseMs: STARTUP_DATABASE_WAIT_MS });
  const db = createPool(config.databaseUrl, 'order-api', 20);
  const temporal = await connectTemporal(config);
  await ensureSearchAttributes(temporal, config.temporalNamespace);
  const app = buildApp({
    db,
    logger,
    saga: new TemporalSagaControl(temporal),
    readiness: [
      { name: 'postgres', check: async () => (await query(db, 'SELECT 1')).length === 1 },
      { name: 'temporal', check: async () => (await temporal.workflowService.getSystemInfo({})) !== undefined },
    ],
  });
  await app.listen({ port: config.httpPort, host: '0.0.0.0' });
  logger.info({ url: `http://localhost:${config.httpPort}` }, 'order-api listening');
  return {
    async stop() {
      await app.close(); // finishes requests in flight
      await temporal.connection.close();
      await db.end();
    },
  };
});
