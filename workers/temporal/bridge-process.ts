// Composition root of the saga-bridge process: the reply bridge and the saga starter.
import type { Client } from '@temporalio/client';
import { runProcess, rootContainer } from '../../shared/di/process';
import { TOKENS } from '../../shared/di/tokens';
import { startWorker, type WorkerDefinition } from '../../shared/messaging/worker';
import { connectTemporal, ensureSearchAttributes } from '../../shared/temporal/client';
import { SagaBridge } from './bridge';
import { sagaBridgeTopology } from './topology';

/** Clients this process opened (and so closes); a client given by the caller stays open. */
const opened = new WeakSet<Client>();

export const sagaBridgeWorker: WorkerDefinition = {
  name: 'saga-bridge',
  topology: sagaBridgeTopology,
  async register(container, config) {
    if (!container.isRegistered(TOKENS.TemporalClient, true)) {
      const client = await connectTemporal(config);
      await ensureSearchAttributes(client, config.temporalNamespace);
      opened.add(client);
      container.register(TOKENS.TemporalClient, { useValue: client });
    }
  },
  async close(container) {
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
