// The process's own Prometheus metrics, whatever the process: whether it is connected to
// each dependency it needs. order-api serves them on /metrics beside its HTTP metrics.
import { Gauge, Registry } from 'prom-client';

export const processRegistry = new Registry();

export type DependencyName = 'rabbitmq' | 'postgres' | 'redis' | 'temporal';

export const dependencyConnected = new Gauge<'dependency'>({
  name: 'dependency_connected',
  help: '1 while the process is connected to the dependency, 0 while it waits for it',
  labelNames: ['dependency'],
  registers: [processRegistry],
});
