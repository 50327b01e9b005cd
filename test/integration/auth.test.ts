// Who may do what on order-api (docs/architecture.md#the-http-api), against the real
// PostgreSQL: every route with no token, each kind of bad token (401), a token of no scope
// (403), a customer's own orders against another's (404, the same answer as none), and an
// operator's; Idempotency-Keys a customer's own; the rate limits per token and per address
// (429 with Retry-After); security headers; tokens never in the logs; and `npm run token`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { SignJWT, UnsecuredJWT } from 'jose';
import { buildApp, type RateLimits } from '../../services/order-api/app';
import { devKeyVerifier } from '../../services/order-api/auth';
import { generateDevSigningKey, readDevSigningKey } from '../../shared/auth';
import { DEV_AUDIENCE, DEV_ISSUER, getConfig } from '../../shared/config';
import { createPool, type Pool } from '../../shared/db';
import { migrate } from '../../shared/db/migrate';
import { silentLogger } from '../../shared/observability/logger';
import { appAuth, bearer, signClaims, type Tokens } from '../helpers/auth';
import { captureLogs } from '../helpers/logs';
import { VALID_ORDER } from '../helpers/orders';
import { runTs } from '../helpers/processes';
import { freePort } from '../helpers/services';

const OWNER = `c-auth-${Date.now().toString(36)}`;
const OTHER = `${OWNER}-other`;
const order = (customerId: string) => ({ ...VALID_ORDER, customerId });
const json = (payload: unknown, headers: Record<string, string> = {}) => ({ payload: JSON.stringify(payload), headers: { 'content-type': 'application/json', ...headers } });

describe('order-api: authentication, authorization and limits', function () {
  this.timeout(60_000);
  let db: Pool;
  let auth: Awaited<ReturnType<typeof appAuth>>;
  let tokens: Tokens;
  let app: FastifyInstance;
  const apps: FastifyInstance[] = [];

  const build = async (rateLimits: RateLimits = auth.rateLimits, logger = silentLogger, pool: Pool = db): Promise<FastifyInstance> => {
    const built = buildApp({ db: pool, logger, saga: { requestCancel: async () => ({ accepted: true }) }, readiness: [], verifier: auth.verifier, rateLimits });
    apps.push(built);
    await built.ready();
    return built;
  };
  const place = async (customerId: string): Promise<string> => {
    const res = await app.inject({ method: 'POST', url: '/orders', ...json(order(customerId), bearer(await tokens.operator())) });
    expect(res.statusCode).to.equal(202, res.body);
    return res.json<{ orderId: string }>().orderId;
  };

  before(async () => {
    await migrate(getConfig().databaseUrl);
    db = createPool(getConfig().databaseUrl, 'test-auth');
    auth = await appAuth();
    tokens = auth.tokens;
    app = await build();
  });
  after(async () => {
    for (const a of apps) await a.close();
    await db?.end();
  });

  /** Each route, with a request on an order of OWNER (a fresh one for a cancellation, which changes it). */
  const routes = async (): Promise<Array<{ name: string; request: InjectOptions & { url: string } }>> => {
    const id = await place(OWNER);
    return [
      { name: 'POST /orders', request: { method: 'POST', url: '/orders', ...json(order(OWNER)) } },
      { name: 'GET /orders/:orderId', request: { method: 'GET', url: `/orders/${id}` } },
      { name: 'GET /orders/:orderId?asOf', request: { method: 'GET', url: `/orders/${id}?asOf=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}` } },
      { name: 'GET /orders/:orderId/events', request: { method: 'GET', url: `/orders/${id}/events` } },
      { name: 'GET /customers/:customerId/orders', request: { method: 'GET', url: `/customers/${OWNER}/orders` } },
      { name: 'POST /orders/:orderId/cancel', request: { method: 'POST', url: `/orders/${await place(OWNER)}/cancel` } },
    ];
  };
  const send = (target: FastifyInstance, request: InjectOptions, headers: Record<string, string>) => target.inject({ ...request, headers: { ...request.headers, ...headers } });

  /** The bad tokens, each with the 401's message. */
  const badTokens = async (): Promise<Array<[string, Record<string, string>, RegExp]>> => {
    const now = Math.floor(Date.now() / 1000);
    const good = await tokens.customer(OWNER);
    const [header, payload, signature] = good.split('.') as [string, string, string];
    const otherKey = await generateDevSigningKey();
    const claims = { sub: OWNER, scope: 'orders:customer' };
    // HS256 keyed with the public key's bytes: the algorithm confusion a verifier must not fall for.
    const confused = await new SignJWT({ ...claims, iss: DEV_ISSUER, aud: DEV_AUDIENCE })
      .setProtectedHeader({ alg: 'HS256', kid: tokens.key.kid })
      .setExpirationTime('10m')
      .sign(Buffer.from(tokens.key.publicJwk.x!, 'base64url'));
    const unsigned = new UnsecuredJWT({ ...claims, iss: DEV_ISSUER, aud: DEV_AUDIENCE }).setExpirationTime('10m').encode();
    const flipped = `${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BB' : 'AA'}`;
    const otherSubject = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), sub: OTHER })).toString('base64url');
    return [
      ['no token', {}, /send a bearer token/],
      ['another scheme', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, /not Bearer <token>/],
      ['Bearer without a token', { authorization: 'Bearer ' }, /not Bearer <token>/],
      ['not a JWT', bearer('not-a-jwt'), /not a well-formed signed JWT/],
      ['three parts of garbage', bearer('abc.def.ghi'), /not a well-formed signed JWT/],
      ['expired', bearer(await signClaims(tokens.key, { ...claims, exp: now - 60 })), /has expired/],
      ['not valid yet', bearer(await signClaims(tokens.key, { ...claims, nbf: now + 600 })), /not valid yet/],
      ['another issuer', bearer(await signClaims(tokens.key, { ...claims, iss: 'https://evil.example/' })), /not issued by order-fulfillment-dev/],
      ['another audience', bearer(await signClaims(tokens.key, { ...claims, aud: 'another-api' })), /not meant for order-api/],
      ['no expiry', bearer(await signClaims(tokens.key, { ...claims, exp: undefined })), /exp claim/],
      ['no subject', bearer(await signClaims(tokens.key, { scope: 'orders:customer' })), /sub claim/],
      ['a tampered signature', bearer(`${header}.${payload}.${flipped}`), /not signed by a key this API trusts/],
      ['a payload changed under its signature', bearer(`${header}.${otherSubject}.${signature}`), /not signed by a key this API trusts/],
      ['signed by another key (with this key id)', bearer(await signClaims(otherKey, claims, { kid: tokens.key.kid })), /not signed by a key this API trusts/],
      ['alg none', bearer(unsigned), /algorithm is not accepted/],
      ['HS256 keyed with the public key', bearer(confused), /algorithm is not accepted/],
    ];
  };

  it('answers 401 with WWW-Authenticate and the error shape on every route for a missing, malformed, expired, not yet valid, foreign, tampered, wrongly signed or unsigned token', async () => {
    const bad = await badTokens();
    for (const { name, request } of await routes()) {
      for (const [what, headers, message] of bad) {
        const res = await send(app, request, headers);
        expect(res.statusCode, `${name}, ${what}`).to.equal(401);
        const body = res.json<{ error: string; message: string }>();
        expect(body.error, `${name}, ${what}`).to.equal('unauthorized');
        expect(body.message, `${name}, ${what}`).to.match(message);
        expect(res.headers['www-authenticate'], `${name}, ${what}`).to.match(/^Bearer realm="order-api"/);
        if (what !== 'no token') expect(res.headers['www-authenticate'], `${name}, ${what}`).to.match(/error="invalid_(token|request)"/);
      }
    }
  });

  it('answers 403 insufficient_scope on every route for a valid token of neither orders:customer nor orders:operator', async () => {
    const scopeless = bearer(await signClaims(tokens.key, { sub: OWNER, scope: 'profile email' }));
    for (const { name, request } of await routes()) {
      const res = await send(app, request, scopeless);
      expect(res.statusCode, name).to.equal(403);
      expect(res.json(), name).to.deep.include({ error: 'forbidden' });
      expect(res.headers['www-authenticate'], name).to.include('error="insufficient_scope"');
    }
  });

  it("lets a customer do everything with its own orders, answers another customer's with 404 (403 for placing one), and lets an operator do all", async () => {
    const expected: Record<string, [own: number, other: number, operator: number]> = {
      'POST /orders': [202, 403, 202],
      'GET /orders/:orderId': [200, 404, 200],
      'GET /orders/:orderId?asOf': [200, 404, 200],
      'GET /orders/:orderId/events': [200, 404, 200],
      'GET /customers/:customerId/orders': [200, 404, 200],
      'POST /orders/:orderId/cancel': [202, 404, 202],
    };
    const who: Array<[string, () => Promise<string>]> = [
      ['own', () => tokens.customer(OWNER)],
      ['other', () => tokens.customer(OTHER)],
      ['operator', () => tokens.operator()],
    ];
    for (const [i, [as, token]] of who.entries()) {
      // Fresh orders for each caller: a cancellation changes its order.
      for (const { name, request } of await routes()) {
        const res = await send(app, request, bearer(await token()));
        expect(res.statusCode, `${name} as ${as}: ${res.body}`).to.equal(expected[name]![i]);
      }
    }
  });

  it("answers another customer's order exactly as one that does not exist", async () => {
    const id = await place(OWNER);
    const other = bearer(await tokens.customer(OTHER));
    for (const suffix of ['', '/events']) {
      const theirs = await app.inject({ method: 'GET', url: `/orders/${id}${suffix}`, headers: other });
      const none = await app.inject({ method: 'GET', url: `/orders/ord_none${suffix}`, headers: other });
      expect([theirs.statusCode, theirs.json<{ message: string }>().message.replace(id, 'ID')]).to.deep.equal([none.statusCode, none.json<{ message: string }>().message.replace('ord_none', 'ID')]);
    }
    const cancel = await app.inject({ method: 'POST', url: `/orders/${id}/cancel`, headers: other });
    expect(cancel.json()).to.deep.equal({ error: 'not_found', message: `no order ${id}` });
    const events = await db.query("SELECT 1 FROM orders.events WHERE stream_id = $1 AND event_type = 'order.cancellation_requested'", [id]);
    expect(events.rowCount, 'no cancellation was recorded').to.equal(0);
  });

  it("keeps an Idempotency-Key its customer's own: another customer's same key places an order of its own", async () => {
    const key = `auth-key-${Date.now()}`;
    const first = await app.inject({ method: 'POST', url: '/orders', ...json(order(OWNER), { 'idempotency-key': key, ...bearer(await tokens.customer(OWNER)) }) });
    const again = await app.inject({ method: 'POST', url: '/orders', ...json(order(OWNER), { 'idempotency-key': key, ...bearer(await tokens.customer(OWNER)) }) });
    const other = await app.inject({ method: 'POST', url: '/orders', ...json(order(OTHER), { 'idempotency-key': key, ...bearer(await tokens.customer(OTHER)) }) });
    expect([first.statusCode, again.statusCode, other.statusCode]).to.deep.equal([202, 202, 202]);
    expect(again.json<{ orderId: string }>().orderId).to.equal(first.json<{ orderId: string }>().orderId);
    expect(other.json<{ orderId: string }>().orderId).not.to.equal(first.json<{ orderId: string }>().orderId);
  });

  it('keeps /healthz, /readyz, /openapi.json and /docs open, and serves no /metrics on the API port', async () => {
    for (const url of ['/healthz', '/readyz', '/openapi.json', '/docs']) expect((await app.inject({ method: 'GET', url })).statusCode, url).to.equal(200);
    expect((await app.inject({ method: 'GET', url: '/metrics', headers: bearer(await tokens.operator()) })).statusCode).to.equal(404);
  });

  it('limits requests per token subject: the one past the limit is a 429 with Retry-After in the error shape, another token is not affected', async () => {
    const limited = await build({ perSubjectPerMinute: 3, perAddressPerMinute: 0 });
    const ask = async (customerId: string) => limited.inject({ method: 'GET', url: `/customers/${customerId}/orders`, headers: bearer(await tokens.customer(customerId)) });
    for (let i = 0; i < 3; i++) expect((await ask(OWNER)).statusCode, `request ${i + 1}`).to.equal(200);
    const over = await ask(OWNER);
    expect(over.statusCode).to.equal(429);
    expect(Number(over.headers['retry-after'])).to.be.within(1, 60);
    expect(over.json()).to.have.keys('error', 'message').and.deep.include({ error: 'too_many_requests' });
    expect(over.json<{ message: string }>().message).to.match(/more than 3 requests a minute from this token/);
    expect((await ask(OTHER)).statusCode, 'another token').to.equal(200);
    // A fresh token of the same subject shares its limit.
    expect((await ask(OWNER)).statusCode).to.equal(429);
  });

  it('limits requests per client address, with a token or without, but never the probes; another address is not affected', async () => {
    const limited = await build({ perSubjectPerMinute: 0, perAddressPerMinute: 3 });
    const from = (remoteAddress: string, url = `/customers/${OWNER}/orders`, headers: Record<string, string> = {}) => limited.inject({ method: 'GET', url, remoteAddress, headers });
    const token = bearer(await tokens.customer(OWNER));
    expect((await from('10.0.0.1', '/orders/ord_x')).statusCode, 'no token').to.equal(401);
    for (let i = 0; i < 2; i++) expect((await from('10.0.0.1', undefined, token)).statusCode).to.equal(200);
    const over = await from('10.0.0.1', undefined, token);
    expect(over.statusCode).to.equal(429);
    expect(over.headers['retry-after']).to.match(/^\d+$/);
    expect(over.json<{ message: string }>().message).to.match(/from this address/);
    expect((await from('10.0.0.1', '/orders/ord_x')).statusCode, 'without a token too').to.equal(429);
    expect((await from('10.0.0.1', '/healthz')).statusCode, 'the probes').to.equal(200);
    expect((await from('10.0.0.1', '/readyz')).statusCode, 'the probes').to.equal(200);
    expect((await from('10.0.0.2', undefined, token)).statusCode, 'another address').to.equal(200);
  });

  it('sends security headers on every answer, a refusal included', async () => {
    for (const res of [await app.inject({ method: 'GET', url: '/healthz' }), await app.inject({ method: 'GET', url: '/orders/ord_x' })]) {
      expect(res.headers).to.include({ 'x-content-type-options': 'nosniff', 'x-frame-options': 'SAMEORIGIN', 'referrer-policy': 'no-referrer' });
      expect(res.headers['content-security-policy']).to.equal("default-src 'none';base-uri 'none';form-action 'none';frame-ancestors 'none'");
      expect(res.headers['strict-transport-security']).to.match(/max-age=\d+/);
    }
  });

  it('writes no token to the logs, valid or not, even when a request fails', async () => {
    const { logger, lines } = captureLogs('trace');
    const unreachable = createPool(`postgres://nobody@127.0.0.1:${await freePort()}/none`, 'test-auth-down', { connectTimeoutMs: 500 });
    try {
      const logged = await build(auth.rateLimits, logger, unreachable);
      const sent = [await tokens.customer(OWNER), ...(await badTokens()).map(([, headers]) => headers.authorization ?? '').filter((t) => t !== '')];
      for (const authorization of sent) {
        const value = authorization.startsWith('Bearer ') || authorization.startsWith('Basic ') ? authorization : `Bearer ${authorization}`;
        await logged.inject({ method: 'GET', url: `/customers/${OWNER}/orders`, headers: { authorization: value } });
      }
      expect(lines.join('\n')).to.include('request failed'); // the valid token's request reached the database and failed
      // Each token sent (an empty one, "Bearer " alone, has nothing to leak).
      const secrets = sent.map((token) => token.replace(/^(Bearer|Basic) /, '').trim()).filter((t) => t.length > 0);
      expect(secrets.length).to.be.at.least(5);
      for (const token of secrets) expect(lines.join('\n')).not.to.include(token);
    } finally {
      await unreachable.end();
    }
  });

  describe('npm run token', () => {
    let dir = '';
    before(() => (dir = mkdtempSync(join(tmpdir(), 'token-cli-'))));
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('prints a customer token and an operator token signed with the development key, creating it on first use, which order-api accepts', async () => {
      const keyFile = join(dir, 'auth', 'dev-signing-key.json');
      const customer = runTs('scripts/token.ts', ['--customer', OWNER, '--ttl', '5m'], { AUTH_DEV_KEY_FILE: keyFile });
      expect((await customer.exited(30_000)).code, customer.output.join('\n')).to.equal(0);
      const token = customer.output.find((l) => /^[\w-]+\.[\w-]+\.[\w-]+$/.test(l))!;
      const operator = runTs('scripts/token.ts', ['--operator'], { AUTH_DEV_KEY_FILE: keyFile });
      expect((await operator.exited(30_000)).code).to.equal(0);
      const operatorToken = operator.output.find((l) => /^[\w-]+\.[\w-]+\.[\w-]+$/.test(l))!;
      const verifier = devKeyVerifier(readDevSigningKey(keyFile), { issuer: DEV_ISSUER, audience: DEV_AUDIENCE });
      expect(await verifier.verify(token)).to.deep.equal({ role: 'customer', customerId: OWNER });
      expect(await verifier.verify(operatorToken)).to.deep.equal({ role: 'operator', subject: 'dev-operator' });
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number; iat: number };
      expect(claims.exp - claims.iat).to.equal(300);
    });

    for (const [what, args] of [
      ['no flag', []],
      ['both flags', ['--customer', 'c-1', '--operator']],
      ['an unknown flag', ['--admin']],
      ['a bad ttl', ['--customer', 'c-1', '--ttl', 'forever']],
      ['a ttl over 30 days', ['--operator', '--ttl', '31d']],
      ['a customerId with a slash', ['--customer', 'a/b']],
    ] as Array<[string, string[]]>) {
      it(`exits 2 with a usage line for ${what}`, async () => {
        const child = runTs('scripts/token.ts', args, { AUTH_DEV_KEY_FILE: join(dir, 'unused.json') });
        expect((await child.exited(30_000)).code).to.equal(2);
        expect(child.output.join('\n')).to.match(/^token: /m);
      });
    }

    for (const [what, env, reason] of [
      ['AUTH_MODE is production', { AUTH_MODE: 'production' }, /AUTH_MODE is production/],
      ['a JWKS URL is set', { AUTH_JWKS_URL: 'https://idp.example/.well-known/jwks.json' }, /AUTH_JWKS_URL is set/],
      ['a public key file is set', { AUTH_PUBLIC_KEY_FILE: '/etc/order-api/key.pem' }, /AUTH_PUBLIC_KEY_FILE is set/],
    ] as Array<[string, Record<string, string>, RegExp]>) {
      it(`refuses with status 2, signing nothing, when ${what}`, async () => {
        const child = runTs('scripts/token.ts', ['--operator'], { ...env, AUTH_DEV_KEY_FILE: join(dir, 'refused.json') });
        expect((await child.exited(30_000)).code).to.equal(2);
        const out = child.output.join('\n');
        expect(out).to.match(reason).and.match(/identity provider/);
        expect(out).not.to.match(/^[\w-]+\.[\w-]+\.[\w-]+$/m);
      });
    }
  });

  it('order-api refuses to start in production without a key of its own, naming the variable', async () => {
    const api = runTs('services/order-api/index.ts', [], { AUTH_MODE: 'production', METRICS_PORT: '0', HTTP_PORT: String(await freePort()) });
    const { code } = await api.exited(60_000);
    expect(code).to.not.equal(0);
    expect(api.output.join('\n')).to.match(/order-api: cannot start: AUTH_JWKS_URL must be set \(or AUTH_PUBLIC_KEY_FILE\) when AUTH_MODE is production/);
  });
});
