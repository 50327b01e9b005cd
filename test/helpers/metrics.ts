// What this process's metrics read now: the value of one series of a metric.
import { processRegistry } from '../../shared/observability/metrics';

/** The value of metric `name`'s series whose labels include `labels`; undefined when it has none yet. */
export async function metricValue(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const metric = await processRegistry.getSingleMetric(name)?.get();
  return metric?.values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))?.value;
}
