// One order is one trace (docs/operations.md#following-an-orders-trace): `npm start`, with a
// bus namespace and a database of its own, exports its spans over OTLP/HTTP as JSON to a
// receiver of this test's own. A tok_ok order placed over HTTP and fulfilled leaves spans in
// every process on its path (the API, the relay, the saga starter, the workflow and its
// activities, the three workers, the reply bridge, the read model), all of the POST's trace,
// each span's parent a span of that trace; and the log lines of its handling carry that trace.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { StartedFleet } from '../../scripts/fleet';
import { deleteFleetNamespace, dropDatabase, testDatabaseUrl } from '../helpers/fleet';
import { migrate } from '../../shared/db/migrate';
import { silentLogger } from '../../shared/observability/logger';
import { workflowIdOf } from '../../shared/saga';
import { bearer, fleetTokens, NO_RATE_LIMITS } from '../helpers/auth';
import { freePort } from '../helpers/services';
import { readModelStatus, triggerOrder } from '../helpers/trigger-orders';
import { eventually } from '../helpers/wait';
import { generatedNamespace } from '../../scripts/bus';

/** The processes an order goes through, by the service.name of their spans (each process's name). */
const ON_THE_PATH = ['order-api', 'outbox-relay', 'saga-bridge', 'temporal-worker', 'payments', 'inventory', 'shipping', 'order-projection'];

interface Span {
  service: string;
  traceId: string;
  spanId: string;
  /** Absent for a root. */
  parentSpanId?: string;
  name: string;
  attributes: Record<string, unknown>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: number | string;
  doubleValue?: number;
  boolValue?: boolean;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpTraces {
  resourceSpans?: Array<{
    resource?: { attributes?: OtlpAttribute[] };
    scopeSpans?: Array<{ spans?: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: OtlpAttribute[] }> }>;
  }>;
}

const valueOf = (v: OtlpValue): unknown => v.stringValue ?? (v.intValue === undefined ? undefined : Number(v.intValue)) ?? v.doubleValue ?? v.boolValue;
const attributesOf = (list: OtlpAttribute[] = []): Record<string, unknown> => Object.fromEntries(list.map((a) => [a.key, valueOf(a.value)]));

/** An OTLP/HTTP receiver (JSON): keeps every span posted to /v1/traces. */
class OtlpReceiver {
  readonly spans: Span[] = [];
  readonly errors: string[] = [];
  private readonly server: Server = createServer((req, res) => void this.receive(req, res));

  async start(): Promise<string> {
    await new Promise<void>((listening) => this.server.listen(0, '127.0.0.1', listening));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.method !== 'POST' || req.url !== '/v1/traces') {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpTraces;
      for (const resourceSpans of body.resourceSpans ?? []) {
        const service = String(attributesOf(resourceSpans.resource?.attributes)['service.name']);
        for (const scope of resourceSpans.scopeSpans ?? []) {
          for (const s of scope.spans ?? []) {
            this.spans.push({ service, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || undefined, name: s.name, attributes: attributesOf(s.attributes) });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    } catch (err) {
      this.errors.push(`${String(req.headers['content-type'])}: ${String(err)}`);
      res.writeHead(400).end();
    }
  }

  close(): Promise<void> {
    return new Promise((closed) => this.server.close(() => closed()));
  }
}

/** A span and its ancestors up to the trace's root, each as `service: name`. */
function ancestry(span: Span, byId: Map<string, Span>): string[] {
  const chain: string[] = [];
  for (let s: Span | undefined = span; s; s = s.parentSpanId ? byId.get(s.parentSpanId) : undefined) chain.push(`${s.service}: ${s.name}`);
  return chain;
}

const describeSpans = (spans: Span[]): string => spans.map((s) => `${s.service}: ${s.name} ${s.spanId}<-${s.parentSpanId ?? 'root'}`).join('\n');

describe('tracing: one order is one trace', function () {
  this.timeout(420_000);
  const namespace = generatedNamespace('test-fleet');
  const databaseUrl = testDatabaseUrl('e2e_tracing');
  const receiver = new OtlpReceiver();
  let fleet: StartedFleet | undefined;
  let api = '';

  before(async () => {
    await migrate(databaseUrl, silentLogger);
    const endpoint = await receiver.start();
    const httpPort = await freePort();
    api = `http://127.0.0.1:${httpPort}`;
    fleet = new StartedFleet({
      BUS_NAMESPACE: namespace,
      HTTP_PORT: String(httpPort),
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      DATABASE_URL: databaseUrl,
      RECONCILE_INTERVAL_MS: '0',
      ...NO_RATE_LIMITS,
      LOG_LEVEL: 'info',
      METRICS_PORT_BASE: '0', // a free metrics port each: another fleet on this machine may hold the first ones
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      // Batches every 200 ms instead of 5 s: the last spans arrive soon after the order ends.
      OTEL_BSP_SCHEDULE_DELAY: '200',
    });
    await fleet.waitFor(/^\[start\] Ctrl-C stops everything/, 240_000);
    for (const name of ['payments', 'inventory', 'shipping', 'order-projection', 'saga-bridge']) await fleet.waitFor(new RegExp(`^\\[${name}\\].*worker started`), 240_000);
    await fleet.waitFor(/^\[order-api\].*order-api listening/, 240_000);
    await fleet.waitFor(/^\[temporal-worker\].*temporal worker started/, 240_000);
    await fleet.waitFor(/^\[outbox-relay\].*outbox relay started/, 240_000);
  });

  after(async () => {
    await fleet?.stop();
    await receiver.close();
    try {
      await deleteFleetNamespace(namespace, 'test-e2e-tracing-cleanup');
    } finally {
      await dropDatabase(databaseUrl);
    }
  });

  it("gives a fulfilled order's spans, from every process on its path, one trace with the right parents, and its log lines that trace", async () => {
    const headers = { 'content-type': 'application/json', ...bearer(await (await fleetTokens()).customer(`c-${namespace}`)) };
    const res = await fetch(`${api}/orders`, { method: 'POST', headers, body: JSON.stringify(triggerOrder('tok_ok', `c-${namespace}`, 0).body) });
    expect(res.status).to.equal(202, await res.clone().text());
    const { orderId } = (await res.json()) as { orderId: string };
    await eventually(async () => (await readModelStatus(api, orderId)) === 'fulfilled', { timeoutMs: 120_000, intervalMs: 250, what: `order ${orderId} fulfilled in GET /orders/:orderId` });

    // The POST is the only one this fleet takes, and no traceparent came with it: the root.
    const post = await eventually(() => receiver.spans.find((s) => s.service === 'order-api' && s.attributes['http.route'] === '/orders' && s.attributes['http.request.method'] === 'POST'), {
      timeoutMs: 30_000,
      intervalMs: 250,
      what: 'the span of POST /orders',
    });
    expect(post.name).to.equal('POST /orders');
    expect(post.parentSpanId, 'the POST span has no parent').to.equal(undefined);
    const inTrace = (): Span[] => receiver.spans.filter((s) => s.traceId === post.traceId);
    const byId = (): Map<string, Span> => new Map(inTrace().map((s) => [s.spanId, s]));
    // The read model's update of order.fulfilled ends the path; its chain reaches the POST once
    // every span on the way was exported (the workflow's own when it completed).
    const projected = (): Span | undefined => inTrace().find((s) => s.service === 'order-projection' && s.attributes['messaging.rabbitmq.routing_key'] === 'order.fulfilled');
    try {
      await eventually(
        () => {
          const spans = inTrace();
          const exported = byId();
          const services = new Set(spans.map((s) => s.service));
          const last = projected();
          return ON_THE_PATH.every((s) => services.has(s)) && last !== undefined && ancestry(last, exported).at(-1) === `order-api: ${post.name}` && spans.every((s) => !s.parentSpanId || exported.has(s.parentSpanId));
        },
        { timeoutMs: 90_000, intervalMs: 500, what: "the order's trace complete: every process on its path, every parent exported" },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\nspans of the trace:\n${describeSpans(inTrace())}\nreceiver errors: ${receiver.errors.join('; ') || 'none'}`, { cause: err });
    }
    const spans = inTrace();
    const ids = byId();

    // Every span that names the order (its messages' correlation id, its workflow) is of this one trace.
    const naming = receiver.spans.filter((s) => s.attributes['messaging.conversation_id'] === orderId || s.attributes.temporalWorkflowId === workflowIdOf(orderId));
    expect(naming.length).to.be.greaterThan(10);
    expect([...new Set(naming.map((s) => s.traceId))], 'trace ids of the spans that name the order').to.deep.equal([post.traceId]);
    expect([...new Set(spans.map((s) => s.service))]).to.include.members(ON_THE_PATH);

    // Parents: the POST is the only root; every other span's parent is a span of the trace.
    expect(spans.filter((s) => !s.parentSpanId).map((s) => s.spanId), 'roots of the trace').to.deep.equal([post.spanId]);
    for (const s of spans) if (s.parentSpanId) expect(ids.has(s.parentSpanId), `the parent of ${s.service}: ${s.name}`).to.equal(true);

    // The path itself: the read model's update comes from the saga's last activity, which the
    // workflow ran, which the saga starter started on the relay's publish of the POST's event.
    const chain = ancestry(projected()!, ids);
    const names = chain.map((c) => c.replace(/^[^:]+: /, ''));
    const order = ['RunActivity:markOrderFulfilled', 'StartActivity:markOrderFulfilled', 'RunWorkflow:orderFulfillment', 'StartWorkflow:orderFulfillment', 'POST /orders'].map((n) => names.indexOf(n));
    expect(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!)), `the read model's chain:\n${chain.join('\n')}`).to.equal(true);
    expect(chain[1], "the read model's event came from the relay").to.match(/^outbox-relay: publish /);
    expect(chain.filter((c) => c.startsWith('outbox-relay: ')), 'the relay published both of its events in the trace').to.have.length(2);
    // Each worker handled the command its activity published, and the reply bridge its result.
    for (const [worker, activity] of [
      ['payments', 'capturePayment'],
      ['inventory', 'reserveStock'],
      ['shipping', 'scheduleShipment'],
    ] as const) {
      const handled = spans.find((s) => s.service === worker && s.parentSpanId && ids.get(s.parentSpanId)?.service === 'temporal-worker');
      expect(handled, `${worker}'s span of its command`).to.not.equal(undefined);
      expect(ancestry(handled!, ids).map((c) => c.replace(/^[^:]+: /, '')), `${worker}'s chain`).to.include(`RunActivity:${activity}`);
      const reply = spans.find((s) => s.service === 'saga-bridge' && s.parentSpanId && ids.get(s.parentSpanId)?.service === worker);
      expect(reply, `the reply bridge's span of ${worker}'s result`).to.not.equal(undefined);
    }

    // Log lines written while handling the order's messages carry its trace.
    const handledLine = fleet!.lines.find((l) => l.startsWith('[payments] ') && l.includes(`"aggregateId":"${orderId}"`) && l.includes('"outcome":"handled"'));
    expect(handledLine, "payments' line for the order's capture").to.be.a('string');
    const logged = JSON.parse(handledLine!.slice('[payments] '.length)) as { trace_id?: string; span_id?: string };
    expect(logged.trace_id).to.equal(post.traceId);
    expect(ids.has(logged.span_id ?? ''), "the line's span is in the trace").to.equal(true);
  });
});
