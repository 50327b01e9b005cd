// The payments worker's queue, as data: `payments.commands`, bound to "commands" with `payments.*`.
import { commandWorkerTopology, type Topology } from '../../shared/messaging/topology';

export function paymentsTopology(namespace: string): Topology {
  return commandWorkerTopology(namespace, 'payments');
}
