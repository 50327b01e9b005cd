// Every process's own HTTP server on METRICS_PORT (runProcess starts it): GET /metrics (the
// process registry in Prometheus text), GET /readyz (200 when the process runs and is
// connected to every dependency it watches, else 503 naming what is not) and GET /healthz.
// A process with metrics of its own (order-api's http_* and outbox_*) serves them here too:
// only the operators' network reaches this port.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorMessage, IncurableError } from '../errors';
import { dependenciesDown } from '../observability/dependency-watch';
import type { Logger } from '../observability/logger';
import { Registry } from 'prom-client';
import { processRegistry } from '../observability/metrics';

/** Where a process is in its life: only a running one can be ready. */
export type ProcessPhase = 'starting' | 'running' | 'stopping';

/** What a running process says about its own parts (a consumer not consuming, say). */
export interface Working {
  /** The parts of it that are not doing their job now, by name; empty when all are. */
  notWorking?(): string[];
}

/**
 * Why the process is not ready, each reason once: its phase unless running, then every
 * dependency an open watch finds away, then its parts that do not work. Empty when it is ready.
 */
export function notReadyBecause(phase: ProcessPhase, running?: Working): string[] {
  const phaseReason = phase === 'running' ? [] : [phase];
  return [...new Set([...phaseReason, ...dependenciesDown(), ...(phase === 'running' ? (running?.notWorking?.() ?? []) : [])])];
}

export interface ProcessServerOptions {
  /** METRICS_PORT; 0 picks a free one. */
  port: number;
  logger: Logger;
  /** Why the process is not ready now (notReadyBecause); empty when it is. */
  notReady(): string[];
  /** The process's own registry, once it has one, served with processRegistry (RunningProcess.registry). */
  registry?(): Registry | undefined;
}

export interface ProcessServer {
  /** The port it listens on: METRICS_PORT, or the one picked for 0. */
  readonly port: number;
  /** Its metrics, as logged at start: http://localhost:<port>/metrics */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Listens on the port (every interface: Prometheus scrapes it from another container) and
 * logs `metrics on http://localhost:<port>/metrics`. A port that is taken is an IncurableError
 * naming METRICS_PORT: restarting the process would meet it again.
 */
export async function serveProcess(options: ProcessServerOptions): Promise<ProcessServer> {
  // Whatever a request holds (a request line no URL parser takes, a client gone mid-answer), it never reaches the process.
  const server = createServer((req, res) => {
    answer(req, res, options).catch((err: unknown) => {
      options.logger.warn({ err: errorMessage(err) }, 'metrics server: could not answer a request');
      if (!res.headersSent) send(res, 400, 'application/json', JSON.stringify({ error: 'bad_request', message: 'the request could not be read' }));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new IncurableError(`METRICS_PORT ${options.port} is in use: another process listens on it. Give this process a port of its own (METRICS_PORT), or 0 for a free one`));
      else if (err.code === 'EACCES') reject(new IncurableError(`METRICS_PORT ${options.port} may not be used by this user: take one above 1023, or 0 for a free one`));
      else reject(err);
    });
    server.listen(options.port, '0.0.0.0', resolve);
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://localhost:${port}/metrics`;
  options.logger.info({ url }, `metrics on ${url}`);
  return {
    port,
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function answer(req: IncomingMessage, res: ServerResponse, options: ProcessServerOptions): Promise<void> {
  // The path alone, without parsing a URL out of what a client sent.
  const path = (req.url ?? '/').split('?')[0]!;
  if (!['/metrics', '/readyz', '/healthz'].includes(path)) return send(res, 404, 'application/json', JSON.stringify({ error: 'not_found', message: `no route ${req.method ?? ''} ${path}: /metrics, /readyz and /healthz are served here` }));
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'application/json', JSON.stringify({ error: 'method_not_allowed', message: `${path} answers GET` }));
  if (path === '/healthz') return send(res, 200, 'application/json', JSON.stringify({ status: 'ok' }));
  if (path === '/readyz') {
    const down = options.notReady();
    return send(res, down.length === 0 ? 200 : 503, 'application/json', JSON.stringify(down.length === 0 ? { status: 'ready' } : { status: 'not_ready', down }));
  }
  try {
    const own = options.registry?.();
    const registry = own ? Registry.merge([processRegistry, own]) : processRegistry;
    send(res, 200, registry.contentType, await registry.metrics());
  } catch (err) {
    options.logger.warn({ err: errorMessage(err) }, 'could not collect the metrics');
    send(res, 500, 'text/plain', `could not collect the metrics: ${errorMessage(err)}\n`);
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
