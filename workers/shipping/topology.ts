// The shipping worker's queue, as data: `shipping.commands`, bound to "commands" with `shipping.*`.
import { commandWorkerTopology, type Topology } from '../../shared/messaging/topology';

export function shippingTopology(namespace: string): Topology {
  return commandWorkerTopology(namespace, 'shipping');
}
