// The HTTP API of order-api (docs/architecture.md#the-http-api). POST /orders writes the
// order's row and order.placed, the first event of its stream, in one transaction (the event
// store is the outbox) and answers 202 without waiting for the broker. Bad input gets a 4xx with a clear body, never a 500. Every route
// declares its request and response schemas (schemas.ts), from which GET /openapi.json is
// generated; Swagger UI reads it at /docs. Every route but /healthz, /readyz, the document and
// Swagger UI takes a bearer token (auth.ts): a customer sees and acts on its own orders only
// (another's are 404), an operator on any. Requests are limited per token subject and per
// client address (429 with Retry-After), and every answer carries security headers (helmet).
import type { IncomingMessage } from 'node:http';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Counter, Histogram, Registry } from 'prom-client';
import { version as API_VERSION } from '../../package.json';
import type { Pool } from '../../shared/db';
import { ConcurrencyError, readStream } from '../../shared/event-store';
import type { Logger } from '../../shared/observability/logger';
import { nameHttpRoute } from '../../shared/observability/tracing';
import { withDeadline } from '../../shared/runtime/deadline';
import { CustomerOrders, CustomerOrdersQuery, InvalidCursorError, readCustomerOrders } from '../../shared/orders/customer-orders';
import { orderViewOf, readOrder } from '../../shared/orders/read-model';
import { loadOrderState, placeOrder, requestCancellation } from '../../shared/orders/store';
import type { CancelRefusal } from '../../shared/saga';
import { SCOPES } from '../../shared/auth';
import { AuthenticationError, bearerToken, mayActFor, restrictedTo, ScopeError, type Principal, type TokenVerifier } from './auth';
import { registerOutboxGauges } from './outbox-metrics';
import {
  AsOfQuery,
  BadRequest,
  CancellationRequested,
  CannotCancel,
  CustomerIdParams,
  Forbidden,
  Health,
  NotFound,
  OpenApiDocument,
  Order,
  OrderAccepted,
  OrderEvents,
  OrderIdParams,
  PayloadTooLarge,
  PlaceOrderBody,
  PlaceOrderHeaders,
  Readiness,
  TooManyRequests,
  Unauthorized,
  Unavailable,
  UnsupportedMediaType,
  type PlaceOrder,
} from './schemas';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who the bearer token speaks for: set before the handler of every route but the open ones. */
    principal?: Principal;
  }
}

export { PlaceOrderBody, type PlaceOrder } from './schemas';

/** The saga's answer to a cancellation: accepted, or refused and why. */
export type CancelResult = { accepted: true } | { accepted: false; reason: CancelRefusal; message: string };

/** What the API needs from the saga: asking it to cancel an order. */
export interface SagaControl {
  /** Asks the order's saga to cancel; accepted only when the saga will cancel the order. */
  requestCancel(orderId: string): Promise<CancelResult>;
}

export interface ReadinessCheck {
  name: string;
  check(): Promise<boolean>;
}

/**
 * A readiness check that has not answered in this long counts as failed, in ms: a dependency
 * that accepts connections and never answers must make /readyz say 503 at once, not hang it.
 */
export const READINESS_CHECK_DEADLINE_MS = 2_000;

/** Where the API describes itself: the OpenAPI document, and Swagger UI over it. */
export const OPENAPI_PATH = '/openapi.json';
export const SWAGGER_UI_PREFIX = '/docs';

/** How many requests a minute the API takes from one token's subject, and from one client address; 0 turns a limit off. */
export interface RateLimits {
  perSubjectPerMinute: number;
  perAddressPerMinute: number;
}

export interface AppDeps {
  db: Pool;
  saga: SagaControl;
  readiness: ReadinessCheck[];
  logger: Logger;
  /** Checks each request's bearer token: verifierFor(config.auth) in order-api, a key of their own in the tests. */
  verifier: TokenVerifier;
  rateLimits: RateLimits;
  /** Where the API's metrics (http_*, outbox_*) are registered: order-api serves them on METRICS_PORT. Default: a registry of its own */
  registry?: Registry;
  /** Largest accepted body in bytes. Default 64 KiB */
  bodyLimit?: number;
}

/** Validates query strings and path parameters the way a query string needs: its numbers come as text. */
/** What a read of an order or a customer's orders may answer besides its 200. */
const READ_ERRORS = { 400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 429: TooManyRequests, 503: Unavailable };

const queryValidator = new Ajv({ coerceTypes: true, useDefaults: true, removeAdditional: false, allErrors: true });
addFormats(queryValidator, ['date-time']);

export function buildApp(deps: AppDeps): FastifyInstance {
  const loggerInstance: FastifyBaseLogger = deps.logger.child({}, { level: 'warn' });
  const app = Fastify({
    // Per-request lines would dominate the logs; the metrics count requests instead.
    loggerInstance,
    bodyLimit: deps.bodyLimit ?? 64 * 1024,
    // Reject unknown fields and wrong types instead of silently fixing them.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true, multipleOfPrecision: 9 } },
  });
  app.removeContentTypeParser('text/plain'); // JSON only: any other media type is a 415

  const registry = deps.registry ?? new Registry();
  const requests = new Counter({ name: 'http_requests_total', help: 'HTTP requests', labelNames: ['method', 'route', 'status'], registers: [registry] });
  const latency = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  // The API's readiness stays about the API; whether accepted orders leave the outbox is these gauges' signal.
  registerOutboxGauges(deps.db, registry);
  // With tracing on, the request's span is named after its route (`POST /orders/:orderId/cancel`).
  app.addHook('onRequest', async (req) => nameHttpRoute(req.routeOptions.url));
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });

  app.setErrorHandler(async (err: FastifyError, req, reply) => {
    if (err.validation) {
      return reply.status(400).send({
        error: 'validation_failed',
        details: err.validation.map((v) => ({ field: `${err.validationContext ?? 'body'}${v.instancePath || ''}`, message: v.message ?? 'is invalid', ...(v.params && 'additionalProperty' in v.params ? { unknownField: v.params.additionalProperty } : {}) })),
      });
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      // Answered while the client is still sending, the 413 was lost to a reset (EPIPE) when
      // the socket closed on unread data: read the rest first, within bounds.
      await discardBody(req.raw);
      return reply.status(413).send({ error: 'payload_too_large', message: `the body is larger than ${deps.bodyLimit ?? 65536} bytes` });
    }
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return reply.status(415).send({ error: 'unsupported_media_type', message: 'send the order as application/json' });
    // Declared as JSON but not JSON: the request is malformed (400); 415 is for other media types.
    // Every 400 has the same shape: an error code and details naming the field.
    if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) {
      const message = err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'the body is empty; send the order as JSON' : `the body is not valid JSON: ${err.message}`;
      return reply.status(400).send({ error: 'invalid_json', message, details: [{ field: 'body', message }] });
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return reply.status(err.statusCode).send({ error: 'bad_request', message: err.message });
    // PostgreSQL's data exceptions (class 22) are about the input, not the service.
    if (typeof err.code === 'string' && /^22[0-9A-Z]{3}$/.test(err.code)) return reply.status(400).send({ error: 'invalid_input', message: err.message });
    deps.logger.error({ err: err.message }, 'request failed');
    return reply.status(503).send({ error: 'unavailable', message: 'the order could not be processed now; retry later' });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url}` }));

  // A JSON API: no content of its own may load anything. Swagger UI's pages set their own policy.
  void app.register(helmet, { contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"], frameAncestors: ["'none'"] } } });
  // Only the limiters the routes create below (createRateLimit); no route is limited by the plugin itself.
  void app.register(rateLimit, { global: false });

  void app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'order-api',
        version: API_VERSION,
        description:
          'Takes orders, serves them, and cancels them through their saga. The whole design: docs/architecture.md; how to run and observe it: docs/operations.md.',
      },
      tags: [
        { name: 'orders', description: 'Placing, reading and cancelling orders' },
        { name: 'operations', description: 'Health, readiness and this document' },
      ],
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description:
              "A JWT from the identity provider (in development: `npm run token -- --customer <id>` or `-- --operator`). scope orders:customer (sub = the customerId: its own orders only) or orders:operator (any order).",
          },
        },
      },
      // Every route needs a token unless it says otherwise (security: []).
      security: [{ bearer: [] }],
    },
  });
  // Its pages load their scripts and styles from /docs/static and run two inline ones: the
  // policy it computes allows exactly those, without upgrade-insecure-requests (it serves plain http locally).
  void app.register(swaggerUi, { routePrefix: SWAGGER_UI_PREFIX, staticCSP: true, transformStaticCSP: (header) => header.replace(/\s*upgrade-insecure-requests;/, '') });

  /**
   * Answers a request before its handler (401, 403, 429): the rest of its body is read and
   * dropped first, as for a 413, so that a client still sending reads the answer.
   */
  const answerEarly = async (req: FastifyRequest, reply: FastifyReply, status: number, body: { error: string; message: string }, headers: Record<string, string>): Promise<FastifyReply> => {
    await discardBody(req.raw);
    return reply.status(status).headers(headers).send(body);
  };

  /** Sets req.principal from the bearer token, or answers 401 (no token, or not a valid one) or 403 (a token of no scope of this API). */
  const authenticate = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const header = req.headers.authorization;
    const token = bearerToken(header);
    if (token === undefined) {
      if (header === undefined) return answerEarly(req, reply, 401, { error: 'unauthorized', message: 'send a bearer token: Authorization: Bearer <token>' }, { 'www-authenticate': CHALLENGE });
      const message = 'the Authorization header is not Bearer <token>';
      return answerEarly(req, reply, 401, { error: 'unauthorized', message }, { 'www-authenticate': `${CHALLENGE}, error="invalid_request", error_description="${message}"` });
    }
    try {
      req.principal = await deps.verifier.verify(token);
      return undefined;
    } catch (err) {
      if (err instanceof AuthenticationError) {
        return answerEarly(req, reply, 401, { error: 'unauthorized', message: err.message }, { 'www-authenticate': `${CHALLENGE}, error="invalid_token", error_description="${err.message}"` });
      }
      if (err instanceof ScopeError) {
        return answerEarly(req, reply, 403, { error: 'forbidden', message: err.message }, { 'www-authenticate': `${CHALLENGE}, error="insufficient_scope", scope="${SCOPE_NAMES}"` });
      }
      throw err; // the keys could not be had (a JWKS URL that does not answer): 503
    }
  };

  /** A hook that answers 429 once the limiter's key has had its requests of the minute; keyOf names what the key is. */
  const limitBy = (api: FastifyInstance, perMinute: number, what: string, keyOf?: (req: FastifyRequest) => string) => {
    const limiter = api.createRateLimit({ max: perMinute, timeWindow: 60_000, ...(keyOf ? { keyGenerator: keyOf } : {}) });
    return async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
      if (req.routeOptions.url !== undefined && UNLIMITED_ROUTES.has(req.routeOptions.url)) return undefined;
      const limit = await limiter(req);
      if (limit.isAllowed || !limit.isExceeded) return undefined;
      const message = `more than ${perMinute} requests a minute from this ${what}; retry in ${limit.ttlInSeconds} s`;
      return answerEarly(req, reply, 429, { error: 'too_many_requests', message }, { 'retry-after': String(limit.ttlInSeconds) });
    };
  };

  /** A 404 that says the same whether the order does not exist or is another customer's. */
  const noOrder = (reply: FastifyReply, orderId: string, asOf?: string) => reply.status(404).send({ error: 'not_found', message: asOf ? `no order ${orderId} at ${asOf}` : `no order ${orderId}` });

  // In a plugin of their own, so that the routes are added after @fastify/swagger is loaded
  // (it reads each route as it is added); the hooks and handlers above apply to them.
  void app.register(async (api) => {
    if (deps.rateLimits.perAddressPerMinute > 0) api.addHook('onRequest', limitBy(api, deps.rateLimits.perAddressPerMinute, 'address'));

    api.get('/healthz', { schema: { summary: 'Liveness', tags: ['operations'], security: [], response: { 200: Health } } }, async () => ({ status: 'ok' }));
    api.get('/readyz', { schema: { summary: 'Readiness', tags: ['operations'], security: [], response: { 200: Readiness, 503: Readiness } } }, async (_req, reply) => {
      const down = await failedReadinessChecks(deps.readiness);
      return reply.status(down.length === 0 ? 200 : 503).send({ status: down.length === 0 ? 'ready' : 'not_ready', down });
    });
    api.get(OPENAPI_PATH, { schema: { summary: 'This API, as OpenAPI 3.1', tags: ['operations'], security: [], response: { 200: OpenApiDocument, 429: TooManyRequests } } }, async () => app.swagger());

    // The orders: a token first, then its subject's limit.
    void api.register(async (secured) => {
      secured.addHook('onRequest', authenticate);
      if (deps.rateLimits.perSubjectPerMinute > 0) secured.addHook('onRequest', limitBy(secured, deps.rateLimits.perSubjectPerMinute, 'token', subjectKey));

      secured.post<{ Body: PlaceOrder; Headers: { 'idempotency-key'?: string } }>(
        '/orders',
        {
          schema: {
            summary: 'Place an order',
            description:
              "Writes the order and order.placed, the first event of its stream, in one transaction and answers at once; the saga takes it from there. A customer token places orders for its own customerId only (403 for another's); an operator token for any. An Idempotency-Key is the customer's own: another customer's same key places an order of its own.",
            tags: ['orders'],
            body: PlaceOrderBody,
            headers: PlaceOrderHeaders,
            response: { 202: OrderAccepted, 400: BadRequest, 401: Unauthorized, 403: Forbidden, 413: PayloadTooLarge, 415: UnsupportedMediaType, 429: TooManyRequests, 503: Unavailable },
          },
        },
        async (req, reply) => {
          const { customerId, items, currency, shippingAddress, paymentMethod } = req.body;
          const caller = callerOf(req);
          if (caller.role === 'customer' && caller.customerId !== customerId) {
            return reply.status(403).send({ error: 'forbidden', message: `this token places orders for customer ${caller.customerId} only` });
          }
          const orderId = await placeOrder(deps.db, { customerId, items, currency, shippingAddress, paymentToken: paymentMethod.token }, req.headers['idempotency-key']);
          return reply.status(202).header('location', `/orders/${orderId}`).send({ orderId, status: 'accepted' });
        },
      );

      secured.get<{ Params: { orderId: string }; Querystring: { asOf?: string } }>(
        '/orders/:orderId',
        {
          schema: {
            summary: 'Read an order',
            description:
              'The read model of the order (its status and history), or, before the read model has it, the order folded from its events. With asOf, the order as it stood then, folded from its events up to that time (404 before it existed).',
            tags: ['orders'],
            params: OrderIdParams,
            querystring: AsOfQuery,
            response: { 200: Order, ...READ_ERRORS },
          },
        },
        async (req, reply) => {
          const caller = callerOf(req);
          const { orderId } = req.params;
          const asOf = req.query.asOf === undefined ? undefined : new Date(req.query.asOf);
          // The schema's date-time takes a leap second (…T23:59:60Z), which Date does not.
          if (asOf && Number.isNaN(asOf.getTime())) {
            const message = `asOf is not a time this API can read: ${req.query.asOf}`;
            return reply.status(400).send({ error: 'validation_failed', message, details: [{ field: 'querystring/asOf', message }] });
          }
          const view = asOf ? undefined : await readOrder(deps.db, orderId);
          if (view) return mayActFor(caller, view.customerId) ? view : noOrder(reply, orderId);
          const { state } = await loadOrderState(deps.db, orderId, asOf);
          if (!state || !mayActFor(caller, state.customerId)) return noOrder(reply, orderId, req.query.asOf);
          return orderViewOf(state);
        },
      );

      secured.get<{ Params: { orderId: string } }>(
        '/orders/:orderId/events',
        {
          schema: {
            summary: "Read an order's events",
            description: "The order's event stream from the event store, in version order. Each event's data is at its type's latest schema version.",
            tags: ['orders'],
            params: OrderIdParams,
            response: { 200: OrderEvents, ...READ_ERRORS },
          },
        },
        async (req, reply) => {
          const events = await readStream(deps.db, req.params.orderId);
          // Its first event, order.placed, names the customer.
          const owner = events[0]?.envelope.data.customerId;
          if (typeof owner !== 'string' || !mayActFor(callerOf(req), owner)) return noOrder(reply, req.params.orderId);
          return {
            orderId: req.params.orderId,
            version: events[events.length - 1]!.version,
            events: events.map((e) => ({ version: e.version, eventType: e.envelope.eventType, occurredAt: e.envelope.occurredAt, data: e.envelope.data })),
          };
        },
      );

      // A page's limit comes as text in the query string: this route's own validator reads it as
      // the integer it declares (the app's refuses to coerce, so a body's "12" stays an error).
      void secured.register(async (paged) => {
        paged.setValidatorCompiler(({ schema }) => queryValidator.compile(schema));
        paged.get<{ Params: { customerId: string }; Querystring: CustomerOrdersQuery }>(
          '/customers/:customerId/orders',
          {
            schema: {
              summary: "List a customer's orders",
              description:
                "The customer's orders, newest first, a page at a time, from the customer-orders read model (built from the event store's history: an order placed a moment ago may not be listed yet). A customer token lists its own only: another customer is a 404, as a customer that does not exist.",
              tags: ['orders'],
              params: CustomerIdParams,
              querystring: CustomerOrdersQuery,
              response: { 200: CustomerOrders, ...READ_ERRORS },
            },
          },
          async (req, reply) => {
            if (!mayActFor(callerOf(req), req.params.customerId)) return reply.status(404).send({ error: 'not_found', message: `no customer ${req.params.customerId}` });
            try {
              return await readCustomerOrders(deps.db, req.params.customerId, req.query);
            } catch (err) {
              if (!(err instanceof InvalidCursorError)) throw err;
              return reply.status(400).send({ error: 'validation_failed', message: err.message, details: [{ field: 'querystring/cursor', message: err.message }] });
            }
          },
        );
      });

      secured.post<{ Params: { orderId: string } }>(
        '/orders/:orderId/cancel',
        {
          schema: {
            summary: 'Cancel an order',
            description:
              "Records the request in the order's stream (order.cancellation_requested), asks the order's saga to cancel it and answers what the saga said: accepted (202) or too late (409). 409 concurrent_modification when another request changed the order meanwhile. 503 when Temporal or a Temporal worker does not answer within 10 s: the outcome is then unknown (the saga may still take the cancellation once a worker runs it), and retrying is safe.",
            tags: ['orders'],
            params: OrderIdParams,
            response: {
              202: CancellationRequested,
              400: BadRequest,
              401: Unauthorized,
              403: Forbidden,
              404: NotFound,
              409: CannotCancel,
              413: PayloadTooLarge,
              415: UnsupportedMediaType,
              429: TooManyRequests,
              503: Unavailable,
            },
          },
        },
        async (req, reply) => {
          let request;
          try {
            request = await requestCancellation(deps.db, req.params.orderId, restrictedTo(callerOf(req)));
          } catch (err) {
            if (!(err instanceof ConcurrencyError)) throw err;
            return reply.status(409).send({ error: 'concurrent_modification', message: `order ${req.params.orderId} changed while this request ran; read it and retry` });
          }
          if (request === 'unknown') return noOrder(reply, req.params.orderId);
          if (typeof request === 'object') return reply.status(409).send({ error: 'order_final', message: `order is already ${request.final}` });
          const answer = await deps.saga.requestCancel(req.params.orderId);
          if (!answer.accepted) {
            return reply.status(409).send({ error: answer.reason === 'already_shipped' ? 'cannot_cancel' : 'order_final', reason: answer.reason, message: answer.message });
          }
          return reply.status(202).send({ orderId: req.params.orderId, status: 'cancellation_requested' });
        },
      );
    });
  });
  return app;
}

/** The challenge of every 401: how to authenticate (RFC 6750). */
const CHALLENGE = 'Bearer realm="order-api"';
const SCOPE_NAMES = `${SCOPES.customer} ${SCOPES.operator}`;

/** The routes no limit applies to: probes of a load balancer or an orchestrator, which come often from one address. */
const UNLIMITED_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

/** The rate limit's key of a verified token: its subject, as a customer or an operator. */
const subjectKey = (req: FastifyRequest): string => {
  const caller = callerOf(req);
  return caller.role === 'customer' ? `customer:${caller.customerId}` : `operator:${caller.subject}`;
};

/** The principal of a route behind authenticate (which answers before the handler when there is none). */
function callerOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new Error(`${req.routeOptions.url ?? req.url} ran without authentication`);
  return req.principal;
}

/**
 * The names of the readiness checks that failed or gave no answer within deadlineMs: what
 * /readyz says, and what the process checks by itself. A late check runs on until its own
 * deadline (a query's, a call's) ends it.
 */
export async function failedReadinessChecks(checks: readonly ReadinessCheck[]): Promise<string[]> {
  const results = await Promise.all(checks.map(async (r) => [r.name, await withDeadline(r.check(), READINESS_CHECK_DEADLINE_MS).catch(() => false)] as const));
  return results.filter(([, ok]) => !ok).map(([name]) => name);
}

/**
 * How much of an over-size body is read and dropped so that the client can read its 413: a
 * client that sends a few MiB by mistake reads a readable answer, while one that streams
 * without end holds a connection (and reads) for at most this.
 */
const DISCARD_LIMIT = { bytes: 8 * 1024 * 1024, ms: 2_000 };

/** Reads and drops the rest of a request body, up to DISCARD_LIMIT; past it the socket closes as it is. */
function discardBody(raw: IncomingMessage): Promise<void> {
  if (raw.complete || raw.destroyed) return Promise.resolve();
  return new Promise((done) => {
    let seen = 0;
    const finish = (): void => {
      clearTimeout(timer);
      raw.off('data', onData).off('end', finish).off('error', finish).off('close', finish);
      done();
    };
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      if (seen > DISCARD_LIMIT.bytes) finish();
    };
    const timer = setTimeout(finish, DISCARD_LIMIT.ms);
    raw.on('data', onData).once('end', finish).once('error', finish).once('close', finish);
    raw.resume();
  });
}
