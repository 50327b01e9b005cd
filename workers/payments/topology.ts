// The payments worker's queues, as data.
import { coreExchanges, inNamespace, type QueueSpec, type Topology } from '../../shared/messaging/topology';

export function paymentsTopology(namespace: string): Topology {
  const commands: QueueSpec = {
    name: inNamespace(namespace, 'payments.commands'),
    bind: [[inNamespace(namespace, 'commands'), 'payments.*']],
    deliveryLimit: 10,
    // Short first delays: a flaky provider usually recovers within a second or two.
    retry: { maxAttempts: 6, delaysMs: [250, 1_000, 5_000, 30_000] },
  };
  return { exchanges: coreExchanges(namespace), queues: [commands] };
}
