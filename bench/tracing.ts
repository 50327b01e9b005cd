// tracing: what tracing costs the publish hot path. Confirmed publishes per second through our
// Publisher (bench/tracing-publisher.ts), each run in a process of its own, since the
// instrumentation must be in place before amqplib loads:
//   baseline   the tracing module never loaded
//   off        loaded as every process loads it, with no OTLP endpoint: how the fleet runs by
//              default (nothing of the SDK is loaded, nothing is patched)
//   unsampled  an endpoint and OTEL_TRACES_SAMPLER=always_off: the SDK and the amqplib
//              instrumentation in the path (a non-recording span and a traceparent per
//              message), nothing recorded or exported
//   exported   every span recorded and exported, in batches, to an OTLP/HTTP receiver of the
//              benchmark's own that answers each post and keeps nothing
// The runs alternate, best of `rounds` each; the ratios are against the baseline.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { childEnvironment, type Config } from '../shared/config';
import { generatedNamespace } from '../scripts/bus';

export type TracingMode = 'baseline' | 'off' | 'unsampled' | 'exported';
const MODES: readonly TracingMode[] = ['baseline', 'off', 'unsampled', 'exported'];

export interface TracingComparison {
  /** Confirmed msg/s of each mode, the best of its rounds. */
  rates: Record<TracingMode, number>;
  /** Each mode's rate over the baseline's. */
  ratios: Record<Exclude<TracingMode, 'baseline'>, number>;
  unit: string;
  messages: number;
}

const ratio = (ours: number, baseline: number): number => Math.round((ours / baseline) * 1000) / 1000;

/** One run of the publisher in a process of its own; its rate. */
async function run(config: Config, mode: TracingMode, messages: number, endpoint: string): Promise<number> {
  // No endpoint unless the mode wants one, whatever the benchmark's own environment says.
  const otel: Record<string, string> = { OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '', OTEL_TRACES_SAMPLER: '' };
  if (mode === 'unsampled') Object.assign(otel, { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_SAMPLER: 'always_off' });
  if (mode === 'exported') Object.assign(otel, { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_SAMPLER: 'always_on' });
  const env = childEnvironment({ ...otel, LOG_LEVEL: 'silent', AMQP_URL: config.amqpUrl });
  const namespace = generatedNamespace('bench');
  const args = ['-r', 'ts-node/register', resolve(__dirname, 'tracing-publisher.ts'), mode === 'baseline' ? 'bare' : 'traced', String(messages), namespace];
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((exited) => child.once('exit', exited));
  const last = output.trim().split('\n').at(-1) ?? '';
  if (code !== 0 || !last.startsWith('{')) throw new Error(`the ${mode} publisher failed (exit ${String(code)}): ${output.slice(-500)}`);
  return (JSON.parse(last) as { rate: number }).rate;
}

export async function benchTracing(config: Config, messages: number, rounds: number): Promise<TracingComparison> {
  const receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((listening) => receiver.listen(0, '127.0.0.1', listening));
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  try {
    const best: Record<TracingMode, number> = { baseline: 0, off: 0, unsampled: 0, exported: 0 };
    for (let r = 0; r < rounds; r++) for (const mode of MODES) best[mode] = Math.max(best[mode], await run(config, mode, messages, endpoint));
    return {
      rates: { baseline: Math.round(best.baseline), off: Math.round(best.off), unsampled: Math.round(best.unsampled), exported: Math.round(best.exported) },
      ratios: { off: ratio(best.off, best.baseline), unsampled: ratio(best.unsampled, best.baseline), exported: ratio(best.exported, best.baseline) },
      unit: 'confirmed msg/s',
      messages,
    };
  } finally {
    await new Promise((closed) => receiver.close(closed));
  }
}
