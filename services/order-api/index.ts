// Composition root of the order-api process: the HTTP API on HTTP_PORT (with /healthz and
// /readyz for a load balancer), and its metrics on METRICS_PORT, where only the operators'
// network reaches them, as every process's. It verifies tokens as AUTH_* says (verifierFor), and
// refuses to start in production without a key of its own.
import '../../shared/observability/tracing'; // first: it instruments what the imports below load
import { Registry } from 'prom-client';
import { createPool, query } from '../../shared/db';
import { migrate, STARTUP_DATABASE_WAIT_MS } from '../../shared/db/migrate';
import { runProcess } from '../../shared/runtime/process';
import { DependencyWatch, observed } from '../../shared/observability/dependency-watch';
import { lazyTemporal } from '../../shared/temporal/client';
import { buildApp, failedReadinessChecks, READINESS_CHECK_DEADLINE_MS } from './app';
import { verifierFor } from './auth';
import { TemporalSagaControl } from './saga-control';

/**
 * How often the API checks its dependencies by itself, in ms: with nobody asking /readyz, an
 * outage would otherwise go unlogged and dependency_connected would show the last request's view.
 */
const SELF_CHECK_INTERVAL_MS = 5_000;

runProcess('order-api', async ({ config, logger }) => {
  // Before anything else: a production configuration without a key stops here, saying which variable.
  const verifier = await verifierFor(config.auth);
  await migrate(config.databaseUrl, logger, { waitForDatabaseMs: STARTUP_DATABASE_WAIT_MS });
  const db = createPool(config.databaseUrl, 'order-api', { max: 20, logger });
  // Orders are taken without Temporal (the outbox holds them), so the API starts and serves
  // while the Temporal server is down or restarting: cancellations answer 503 meanwhile and
  // /readyz names it. The saga-bridge registers the OrderId search attribute.
  const temporal = lazyTemporal(config);
  const temporalWatch = new DependencyWatch('temporal', logger);
  const readiness = [
    // The pool's own watch sees what this query finds.
    { name: 'postgres', check: async () => (await query(db, 'SELECT 1')).length === 1 },
    {
      name: 'temporal',
      // The call's own deadline: the client would otherwise retry an unreachable Temporal for longer.
      check: () => observed(temporalWatch, async () => (await temporal.withDeadline(Date.now() + READINESS_CHECK_DEADLINE_MS, () => temporal.workflowService.getSystemInfo({}))) !== undefined),
    },
  ];
  const registry = new Registry();
  const rateLimits = { perSubjectPerMinute: config.rateLimitPerSubjectPerMinute, perAddressPerMinute: config.rateLimitPerAddressPerMinute };
  const app = buildApp({ db, logger, saga: new TemporalSagaControl(temporal), readiness, verifier, rateLimits, registry });
  let checking = false;
  const selfCheck = setInterval(() => {
    if (checking) return; // the previous round still waits out its deadline
    checking = true;
    // Within /readyz's deadline: a query to a server that does not answer would hold a round for 12 s.
    void failedReadinessChecks(readiness).finally(() => (checking = false));
  }, SELF_CHECK_INTERVAL_MS);
  selfCheck.unref();
  await app.listen({ port: config.httpPort, host: '0.0.0.0' });
  logger.info({ url: `http://localhost:${config.httpPort}` }, 'order-api listening');
  return {
    registry,
    async stop() {
      clearInterval(selfCheck);
      temporalWatch.close();
      await app.close(); // finishes requests in flight
      await temporal.connection.close();
      await db.end();
    },
  };
});
