// The queues of the saga's AMQP side, as data: result events for the reply bridge, and
// order.placed for the saga starter.
import { coreTopology, FAST_RETRY, inNamespace, type QueueSpec, type Topology } from '../../shared/messaging/topology';

export function sagaBridgeTopology(namespace: string): Topology {
  const ns = (name: string): string => inNamespace(namespace, name);
  const replies: QueueSpec = {
    name: ns('saga-bridge.replies'),
    bind: [
      [ns('payments'), 'payment.*'],
      [ns('inventory'), 'inventory.*'],
      [ns('shipping'), 'shipping.*'],
    ],
    deliveryLimit: 10,
    retry: FAST_RETRY,
  };
  const starts: QueueSpec = {
    name: ns('saga-starter.orders'),
    bind: [[ns('orders'), 'order.placed']],
    deliveryLimit: 10,
    retry: FAST_RETRY,
  };
  return { ...coreTopology(namespace), queues: [replies, starts] };
}
