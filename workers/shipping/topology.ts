// The shipping worker's queues, as data.
import { coreExchanges, inNamespace, type QueueSpec, type Topology } from '../../shared/messaging/topology';

export function shippingTopology(namespace: string): Topology {
  const commands: QueueSpec = {
    name: inNamespace(namespace, 'shipping.commands'),
    bind: [[inNamespace(namespace, 'commands'), 'shipping.*']],
    deliveryLimit: 10,
    retry: { maxAttempts: 6, delaysMs: [250, 1_000, 5_000, 30_000] },
  };
  return { exchanges: coreExchanges(namespace), queues: [commands] };
}
