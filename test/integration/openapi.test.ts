// The API describes itself (GET /openapi.json, OpenAPI 3.1): every route the server has is in
// the document, and real answers of each route and status, against the real PostgreSQL,
// validate against the document's response schemas and carry its headers. Since fastify
// serializes with the same schemas, an answer that lost a field would fail here too. Requests
// go as an operator unless a test sends another token or none: the 401, 403, 404 of another
// customer and 429 of every route are answered too, and the document says which routes need a token.
import { expect } from 'chai';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { FastifyInstance, HTTPMethods, InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp, OPENAPI_PATH, SWAGGER_UI_PREFIX, type CancelResult } from '../../services/order-api/app';
import { getConfig } from '../../shared/config';
import { createPool, type Pool } from '../../shared/db';
import { migrate } from '../../shared/db/migrate';
import { DependencyUnavailableError } from '../../shared/errors';
import { appendToStream } from '../../shared/event-store';
import { newEnvelope, stableEventId } from '../../shared/messaging/new-envelope';
import { silentLogger } from '../../shared/observability/logger';
import { orderViewOf, readOrder } from '../../shared/orders/read-model';
import { loadOrderState, recordOutcome } from '../../shared/orders/store';
import { OrderProjection } from '../../workers/order-projection/handler';
import { appAuth, bearer, signClaims, type Tokens } from '../helpers/auth';
import { VALID_ORDER } from '../helpers/orders';
import { freePort } from '../helpers/services';
import { eventually } from '../helpers/wait';

interface MediaType {
  schema: object;
}
interface ResponseObject {
  description: string;
  headers?: Record<string, { schema: object }>;
  content?: Record<string, MediaType>;
}
interface OpenApi {
  openapi: string;
  paths: Record<string, Partial<Record<string, { responses: Record<string, ResponseObject>; security?: unknown[] }>>>;
  security?: unknown[];
  components?: { securitySchemes?: Record<string, unknown> };
}

/** A route as fastify registered it: `/orders/:orderId` is `/orders/{orderId}` in the document. */
const documentPath = (url: string): string => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

describe('the OpenAPI document of order-api', function () {
  this.timeout(30_000);
  let db: Pool;
  let app: FastifyInstance;
  /** The same app over a PostgreSQL nobody listens for: its answers are the 503s. */
  let down: { app: FastifyInstance; db: Pool };
  /** The same app with a limit of one request a minute per address and per token: past its first request, every answer is a 429. */
  let limited: FastifyInstance;
  let tokens: Tokens;
  let operator = '';
  const routes: Array<{ method: string; url: string }> = [];
  const sagaAnswers = new Map<string, CancelResult | Error>();
  let ready = true;
  let doc: OpenApi;
  const ajv = new Ajv2020({ allErrors: true, multipleOfPrecision: 9 });
  addFormats(ajv);
  /** Each [method path status] answered so far, to check that every documented answer was seen. */
  const seen = new Set<string>();

  before(async () => {
    await migrate(getConfig().databaseUrl);
    db = createPool(getConfig().databaseUrl, 'test-openapi');
    const auth = await appAuth();
    tokens = auth.tokens;
    operator = await tokens.operator();
    const { verifier, rateLimits } = auth;
    app = buildApp({
      db,
      logger: silentLogger,
      saga: {
        requestCancel: async (id) => {
          const answer = sagaAnswers.get(id) ?? { accepted: true };
          if (answer instanceof Error) throw answer;
          return answer;
        },
      },
      readiness: [{ name: 'postgres', check: async () => ready }],
      verifier,
      rateLimits,
    });
    app.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) routes.push({ method, url: route.url });
    });
    await app.ready();
    const unreachable = createPool(`postgres://nobody@127.0.0.1:${await freePort()}/none`, 'test-openapi-down', { connectTimeoutMs: 1_000 });
    down = { db: unreachable, app: buildApp({ db: unreachable, logger: silentLogger, saga: { requestCancel: async () => ({ accepted: true }) }, readiness: [], verifier, rateLimits }) };
    await down.app.ready();
    limited = buildApp({ db, logger: silentLogger, saga: { requestCancel: async () => ({ accepted: true }) }, readiness: [], verifier, rateLimits: { perSubjectPerMinute: 1, perAddressPerMinute: 1 } });
    await limited.ready();
    const res = await app.inject({ method: 'GET', url: OPENAPI_PATH });
    expect(res.statusCode).to.equal(200);
    doc = res.json<OpenApi>();
  });
  after(async () => {
    await app?.close();
    await down?.app.close();
    await limited?.close();
    await db?.end();
    await down?.db.end();
  });

  /** Sends a request with the token (the operator's unless given; null: none) and checks its answer against the document: status, body schema, headers. */
  async function answer(target: FastifyInstance, request: InjectOptions & { method: HTTPMethods; url: string }, route: string, token: string | null = operator): Promise<LightMyRequestResponse> {
    const res = await target.inject({ ...request, headers: { ...(token === null ? {} : bearer(token)), ...request.headers } });
    const method = request.method.toLowerCase();
    const documented = doc.paths[documentPath(route)]?.[method]?.responses[String(res.statusCode)];
    expect(documented, `${request.method} ${route} answered ${res.statusCode}, which the document does not list: ${res.body.slice(0, 300)}`).to.not.equal(undefined);
    seen.add(`${method} ${documentPath(route)} ${res.statusCode}`);
    const mediaType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
    const content = documented!.content?.[mediaType];
    expect(content, `${request.method} ${route} ${res.statusCode}: no schema for ${mediaType}`).to.not.equal(undefined);
    const body: unknown = mediaType === 'application/json' ? res.json() : res.body;
    const validate: ValidateFunction = ajv.compile(content!.schema);
    expect(validate(body), `${request.method} ${route} ${res.statusCode}: ${ajv.errorsText(validate.errors)}\n${res.body.slice(0, 500)}`).to.equal(true);
    for (const header of Object.keys(documented!.headers ?? {})) {
      expect(res.headers[header.toLowerCase()], `${request.method} ${route} ${res.statusCode}: header ${header}`).to.be.a('string');
    }
    return res;
  }

  const json = (payload: unknown, headers: Record<string, string> = {}) => ({ payload: JSON.stringify(payload), headers: { 'content-type': 'application/json', ...headers } });
  const place = async (): Promise<string> => (await answer(app, { method: 'POST', url: '/orders', ...json(VALID_ORDER) }, '/orders')).json<{ orderId: string }>().orderId;

  it('is OpenAPI 3.1 and lists every route the server has (the Swagger UI at /docs aside)', () => {
    expect(doc.openapi).to.equal('3.1.0');
    const api = routes.filter((r) => !r.url.startsWith(SWAGGER_UI_PREFIX));
    // fastify answers HEAD for each GET by itself: HTTP's GET without the body.
    const served = api.filter((r) => r.method !== 'HEAD' || !api.some((g) => g.method === 'GET' && g.url === r.url));
    expect(served.map((r) => r.url)).to.include.members(['/orders', '/orders/:orderId', '/orders/:orderId/cancel', '/healthz', '/readyz', OPENAPI_PATH]);
    expect(served.map((r) => r.url), 'metrics are on METRICS_PORT only').not.to.include('/metrics');
    for (const { method, url } of served) {
      expect(doc.paths[documentPath(url)]?.[method.toLowerCase()], `${method} ${url} is in the document`).to.not.equal(undefined);
    }
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(documented.sort()).to.deep.equal(served.map((r) => `${r.method} ${documentPath(r.url)}`).sort());
  });

  it('declares the bearer scheme, required by every route but /healthz, /readyz and the document (security: [])', () => {
    expect(doc.components?.securitySchemes?.bearer).to.deep.include({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    expect(doc.security).to.deep.equal([{ bearer: [] }]);
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const open = ['/healthz', '/readyz', OPENAPI_PATH].includes(path);
        if (open) expect(op!.security, `${method} ${path} is open`).to.deep.equal([]);
        else expect(op!.security, `${method} ${path} takes the default: a token`).to.equal(undefined);
        if (!open) expect(Object.keys(op!.responses), `${method} ${path}`).to.include.members(['401', '403', '429']);
      }
    }
  });

  it('serves Swagger UI at /docs, over the same document, with a policy that lets its own scripts and styles load, and security headers on every answer', async () => {
    const ui = await app.inject({ method: 'GET', url: SWAGGER_UI_PREFIX });
    expect(ui.statusCode).to.equal(200);
    expect(ui.body).to.include('swagger-ui');
    const csp = String(ui.headers['content-security-policy']);
    expect(csp).to.match(/script-src 'self'/).and.match(/style-src 'self'/).and.not.include('upgrade-insecure-requests');
    const api = await app.inject({ method: 'GET', url: '/healthz' });
    expect(api.headers['content-security-policy']).to.include("default-src 'none'");
    expect(api.headers).to.include({ 'x-content-type-options': 'nosniff', 'x-frame-options': 'SAMEORIGIN' });
    expect(api.headers['strict-transport-security']).to.be.a('string');
    expect((await app.inject({ method: 'GET', url: `${SWAGGER_UI_PREFIX}/json` })).json()).to.deep.equal(doc);
  });

  it('every route but the open ones: 401 without a token, 403 with a token of no scope of this API, 429 past its limit, each as documented', async () => {
    const scopeless = await signClaims(tokens.key, { sub: 'c-openapi', scope: 'profile' });
    const id = (await answer(app, { method: 'POST', url: '/orders', ...json(VALID_ORDER) }, '/orders')).json<{ orderId: string }>().orderId;
    const secured: Array<['GET' | 'POST', string, string, Pick<InjectOptions, 'payload' | 'headers'>]> = [
      ['POST', '/orders', '/orders', json(VALID_ORDER)],
      ['GET', `/orders/${id}`, '/orders/:orderId', {}],
      ['GET', `/orders/${id}/events`, '/orders/:orderId/events', {}],
      ['GET', '/customers/c-openapi/orders', '/customers/:customerId/orders', {}],
      ['POST', `/orders/${id}/cancel`, '/orders/:orderId/cancel', {}],
    ];
    // The limited app's address has its one request of the minute: everything after is a 429, the document included.
    await answer(limited, { method: 'GET', url: OPENAPI_PATH }, OPENAPI_PATH, null);
    await answer(limited, { method: 'GET', url: OPENAPI_PATH }, OPENAPI_PATH, null);
    for (const [method, url, route, extra] of secured) {
      expect((await answer(app, { method, url, ...extra }, route, null)).headers['www-authenticate']).to.equal('Bearer realm="order-api"');
      expect((await answer(app, { method, url, ...extra }, route, scopeless)).json()).to.deep.include({ error: 'forbidden' });
      const tooMany = await answer(limited, { method, url, ...extra }, route);
      expect(Number(tooMany.headers['retry-after'])).to.be.within(1, 60);
    }
  });

  it('a customer token: 403 for an order of another customer, 404 for another customer\'s orders, as documented', async () => {
    const own = await tokens.customer(VALID_ORDER.customerId);
    expect((await answer(app, { method: 'POST', url: '/orders', ...json({ ...VALID_ORDER, customerId: 'c-openapi-other' }) }, '/orders', own)).json()).to.deep.include({ error: 'forbidden' });
    await answer(app, { method: 'GET', url: '/customers/c-openapi-other/orders' }, '/customers/:customerId/orders', own);
  });

  it('POST /orders: 202 with a Location, 400, 413, 415 and 503, each as documented', async () => {
    await answer(app, { method: 'POST', url: '/orders', ...json(VALID_ORDER, { 'idempotency-key': `openapi-${Date.now()}` }) }, '/orders');
    const invalid = await answer(app, { method: 'POST', url: '/orders', ...json({ ...VALID_ORDER, items: [{ sku: 'PROD-001', quantity: 1, unitPrice: 1, discount: 5 }] }) }, '/orders');
    expect(invalid.json()).to.deep.include({ error: 'validation_failed' });
    expect(invalid.json<{ details: Array<{ unknownField?: string }> }>().details.some((d) => d.unknownField === 'discount')).to.equal(true);
    const notJson = await answer(app, { method: 'POST', url: '/orders', payload: '{"customerId": ', headers: { 'content-type': 'application/json' } }, '/orders');
    expect(notJson.json()).to.have.keys('error', 'message', 'details');
    await answer(app, { method: 'POST', url: '/orders', ...json(VALID_ORDER, { 'idempotency-key': '' }) }, '/orders');
    await answer(app, { method: 'POST', url: '/orders', ...json({ ...VALID_ORDER, customerId: 'x'.repeat(100_000) }) }, '/orders');
    await answer(app, { method: 'POST', url: '/orders', payload: JSON.stringify(VALID_ORDER), headers: { 'content-type': 'text/plain' } }, '/orders');
    await answer(down.app, { method: 'POST', url: '/orders', ...json(VALID_ORDER) }, '/orders');
  });

  it('GET /orders/:orderId: 200 from the order store and from the read model (history, reason), 400, 404 and 503', async () => {
    // Before the read model has it (a fleet running on this database may get there first: then
    // the read model answers, as documented too).
    const acceptedId = await place();
    const accepted = await answer(app, { method: 'GET', url: `/orders/${acceptedId}` }, '/orders/:orderId');
    expect(accepted.json()).to.have.all.keys(Object.keys(orderViewOf((await loadOrderState(db, acceptedId)).state!)));
    expect(accepted.json()).to.deep.include({ orderId: acceptedId, customerId: VALID_ORDER.customerId, totalAmount: 44.98, currency: 'EUR' });

    // The read model's answer, with everything it has: a cancellation reason and a history of
    // two. Serialized by the response schema, it must have lost none of what readOrder gave.
    const id = `openapi-${Date.now().toString(36)}`;
    const projection = new OrderProjection(db);
    const placed = newEnvelope('order.placed', { orderId: id, customerId: 'c-openapi', items: [{ sku: 'PROD-002', quantity: 2, unitPrice: 12.5 }], totalAmount: 25, currency: 'EUR' }, { aggregateId: id });
    await projection.apply(placed);
    await projection.apply(newEnvelope('order.cancelled', { orderId: id, reason: 'step_timed_out', failedStep: 'reserving_stock' }, { aggregateId: id }));
    const cancelled = await answer(app, { method: 'GET', url: `/orders/${id}` }, '/orders/:orderId');
    expect(cancelled.json()).to.deep.equal(await readOrder(db, id));
    expect(cancelled.json()).to.deep.include({ status: 'cancelled', cancellationReason: 'step_timed_out', currency: 'EUR', totalAmount: 25 });
    expect(cancelled.json<{ history: Array<{ eventType: string; aggregateVersion: number }> }>().history.map((h) => [h.eventType, h.aggregateVersion])).to.deep.equal([
      ['order.placed', 1],
      ['order.cancelled', 2],
    ]);

    await answer(app, { method: 'GET', url: '/orders/a%00b' }, '/orders/:orderId');
    await answer(app, { method: 'GET', url: '/orders/ord_nope' }, '/orders/:orderId');
    await answer(down.app, { method: 'GET', url: '/orders/ord_nope' }, '/orders/:orderId');
  });

  it('GET /orders/:orderId/events: 200, 400, 404 and 503', async () => {
    const id = await place();
    expect((await answer(app, { method: 'GET', url: `/orders/${id}/events` }, '/orders/:orderId/events')).json()).to.deep.include({ orderId: id, version: 1 });
    await answer(app, { method: 'GET', url: '/orders/a%00b/events' }, '/orders/:orderId/events');
    await answer(app, { method: 'GET', url: '/orders/ord_nope/events' }, '/orders/:orderId/events');
    await answer(down.app, { method: 'GET', url: '/orders/ord_nope/events' }, '/orders/:orderId/events');
  });

  it('GET /customers/:customerId/orders: 200, 400 (a bad limit, a cursor it did not issue) and 503', async () => {
    const route = '/customers/:customerId/orders';
    expect((await answer(app, { method: 'GET', url: '/customers/c-openapi-nobody/orders' }, route)).json()).to.deep.equal({ customerId: 'c-openapi-nobody', orders: [] });
    await answer(app, { method: 'GET', url: '/customers/c-openapi-nobody/orders?limit=0' }, route);
    expect((await answer(app, { method: 'GET', url: '/customers/c-openapi-nobody/orders?cursor=not-ours' }, route)).json()).to.deep.include({ error: 'validation_failed' });
    await answer(down.app, { method: 'GET', url: '/customers/c-openapi-nobody/orders' }, route);
  });

  it('POST /orders/:orderId/cancel: 202, 400, 404, every kind of 409, 413, 415 and 503', async () => {
    const cancel = (id: string, extra: Pick<InjectOptions, 'payload' | 'headers'> = {}) => answer(app, { method: 'POST', url: `/orders/${id}/cancel`, ...extra }, '/orders/:orderId/cancel');
    await cancel(await place());
    await cancel('a%00b');
    await cancel('ord_nope');
    const final = await place();
    await recordOutcome(db, final, { outcome: 'fulfilled' }, stableEventId(`openapi/${final}`));
    expect((await cancel(final)).json()).to.deep.include({ error: 'order_final' });
    // Another writer appends between the request's read and its write.
    const raced = await place();
    const other = await db.connect();
    try {
      await other.query('BEGIN');
      await appendToStream(other, raced, 1, [newEnvelope('order.cancellation_requested', { orderId: raced }, { aggregateId: raced })]);
      const request = cancel(raced);
      await eventually(async () => (await db.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%orders.streams%'")).rowCount! > 0, { what: 'the request waiting' });
      await other.query('COMMIT');
      expect((await request).json()).to.deep.include({ error: 'concurrent_modification' });
    } finally {
      other.release();
    }
    const shipped = await place();
    sagaAnswers.set(shipped, { accepted: false, reason: 'already_shipped', message: 'the shipment is already scheduled' });
    expect((await cancel(shipped)).json()).to.deep.equal({ error: 'cannot_cancel', reason: 'already_shipped', message: 'the shipment is already scheduled' });
    await cancel(await place(), json({ note: 'x'.repeat(100_000) }));
    await cancel(await place(), { payload: 'please', headers: { 'content-type': 'text/plain' } });
    const noTemporal = await place();
    sagaAnswers.set(noTemporal, new DependencyUnavailableError('temporal', new Error('no Temporal worker answered')));
    expect((await cancel(noTemporal)).json()).to.deep.include({ error: 'unavailable' });
  });

  it('GET /healthz, /readyz (200 and 503) and /openapi.json, without a token', async () => {
    await answer(app, { method: 'GET', url: '/healthz' }, '/healthz', null);
    await answer(app, { method: 'GET', url: '/readyz' }, '/readyz', null);
    ready = false;
    try {
      expect((await answer(app, { method: 'GET', url: '/readyz' }, '/readyz')).statusCode).to.equal(503);
    } finally {
      ready = true;
    }
    expect((await answer(app, { method: 'GET', url: OPENAPI_PATH }, OPENAPI_PATH, null)).json()).to.deep.equal(doc);
  });

  it('was seen to answer every status it documents', () => {
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).flatMap(([m, op]) => Object.keys(op!.responses).map((s) => `${m} ${path} ${s}`)));
    expect(documented.filter((d) => !seen.has(d))).to.deep.equal([]);
  });
});
