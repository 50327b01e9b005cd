// The read model's queues, as data. Order events are partitioned by order id through a
// consistent-hash exchange (hashing the x-aggregate-id header every envelope carries) into
// single-active-consumer queues: with several replicas, one order's events are only ever
// applied by one consumer at a time.
import { coreTopology, inNamespace, type QueueSpec, type Topology } from '../../shared/messaging/topology';

export const PARTITIONS = 4;

export function projectionTopology(namespace: string): Topology {
  const partitions = inNamespace(namespace, 'order-projection.partitions');
  const queues: QueueSpec[] = Array.from({ length: PARTITIONS }, (_, i) => ({
    name: inNamespace(namespace, `order-projection.p${i}`),
    bind: [[partitions, '1']], // the binding key of a consistent-hash exchange is the weight
    singleActiveConsumer: true,
    deliveryLimit: 10,
  }));
  const core = coreTopology(namespace);
  return {
    ...core,
    exchanges: [
      ...core.exchanges,
      {
        name: partitions,
        type: 'x-consistent-hash',
        arguments: { 'hash-header': 'x-aggregate-id' },
        bindFrom: [[inNamespace(namespace, 'orders'), 'order.*']],
      },
    ],
    queues,
  };
}
