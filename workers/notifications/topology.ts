// The notifications worker's queue, as data: order, payment and shipping events.
import { coreTopology, inNamespace, type QueueSpec, type Topology } from '../../shared/messaging/topology';

export function notificationsTopology(namespace: string): Topology {
  const events: QueueSpec = {
    name: inNamespace(namespace, 'notifications.events'),
    bind: [
      [inNamespace(namespace, 'orders'), 'order.*'],
      [inNamespace(namespace, 'payments'), 'payment.*'],
      [inNamespace(namespace, 'shipping'), 'shipping.*'],
    ],
    deliveryLimit: 10,
  };
  return { ...coreTopology(namespace), queues: [events] };
}
