// Composition root of the saga-bridge process: the reply bridge, the saga starter, and the
// reconciler on its schedule (RECONCILE_INTERVAL_MS).
import '../../shared/observability/tracing'; // first: it instruments what the imports below load
import type { Client } from '@temporalio/client';
import type { DependencyContainer } from 'tsyringe';
import type { Pool } from '../../shared/db';
import { runProcess, rootContainer } from '../../shared/runtime/process';
import { TOKENS } from '../../shared/di/tokens';
import { startWorker, type WorkerDefinition } from '../../shared/runtime/worker';
import type { Logger } from '../../shared/observability/logger';
import { connectTemporalWhenUp, ensureSearchAttributes } from '../../shared/temporal/client';
import { SagaBridge } from './handler';
import { ReconcileSchedule } from './reconciler';
import { sagaBridgeTopology } from './topology';

/** Clients this process opened (and so closes); a client given by the caller stays open. */
const opened = new WeakSet<Client>();
const schedules = new WeakMap<DependencyContainer, ReconcileSchedule>();

export const sagaBridgeWorker: WorkerDefinition = {
  name: 'saga-bridge',
  topology: sagaBridgeTopology,
  async register(container, config) {
    const logger = container.resolve<Logger>(TOKENS.Logger);
    if (!container.isRegistered(TOKENS.TemporalClient, true)) {
      const client = await connectTemporalWhenUp(config, logger);
      await ensureSearchAttributes(client, config.temporalNamespace);
      opened.add(client);
      container.register(TOKENS.TemporalClient, { useValue: client });
    }
    // Hosted here rather than in a process of its own: this process already starts sagas.
    // Several replicas may each run it; a saga's start is refused while a run of it is running.
    if (config.reconcileIntervalMs > 0) {
      const deps = { db: container.resolve<Pool>(TOKENS.Db), client: container.resolve<Client>(TOKENS.TemporalClient) };
      const schedule = new ReconcileSchedule(deps, { intervalMs: config.reconcileIntervalMs, graceMs: config.reconcileGraceMs }, logger);
      schedule.start();
      schedules.set(container, schedule);
    }
  },
  async close(container) {
    await schedules.get(container)?.stop();
    const client = container.resolve<Client>(TOKENS.TemporalClient);
    if (opened.has(client)) await client.connection.close();
  },
  consumers(container, topology) {
    const bridge = new SagaBridge(container.resolve<Client>(TOKENS.TemporalClient));
    const [replies, starts] = topology.queues;
    return [
      // No dedup for replies: completing an activity is idempotent, and a result re-emitted
      // for a retried attempt carries the id of the first, which dedup would swallow.
      { queue: replies!, handlers: bridge.replyHandlers, prefetch: 64, dedup: false },
      { queue: starts!, handlers: bridge.startHandlers, prefetch: 32 },
    ];
  },
};

if (require.main === module) {
  runProcess('saga-bridge', ({ config, logger }) => startWorker(sagaBridgeWorker, config, logger, rootContainer));
}
