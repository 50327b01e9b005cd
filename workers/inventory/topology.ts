// The inventory worker's queue, as data: `inventory.commands`, bound to "commands" with `inventory.*`.
import { commandWorkerTopology, type Topology } from '../../shared/messaging/topology';

export function inventoryTopology(namespace: string): Topology {
  return commandWorkerTopology(namespace, 'inventory');
}
