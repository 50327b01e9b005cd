// order-api under 2,000+ generated malformed and hostile requests over real HTTP (seeded:
// FUZZ_SEED replays a run): random JSON shapes, wrong types, deep nesting, huge strings
// and arrays, invalid UTF-8, random bytes, wrong methods, media types, headers and paths,
// and broken HTTP. None may get a 5xx; the API must stay up and keep accepting orders. Each
// request carries an operator's token, so that it reaches the handlers whatever customer it names.
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { expect } from 'chai';
import type { FastifyInstance } from 'fastify';
import { getConfig } from '../../shared/config';
import { createPool, type Pool } from '../../shared/db';
import { migrate } from '../../shared/db/migrate';
import { silentLogger } from '../../shared/observability/logger';
import { buildApp } from '../../services/order-api/app';
import { appAuth, bearer } from '../helpers/auth';
import { VALID_ORDER } from '../helpers/orders';
import { Random } from '../../scripts/random';

const SEED = Number(process.env.FUZZ_SEED ?? 20261128);
const REQUESTS = 2_000;
const FUZZ_CUSTOMER = 'c-fuzz';

/** Percent-encodes a string, lone surrogates included (as U+FFFD). */
const enc = (s: string): string => encodeURIComponent(Buffer.from(s).toString('utf8'));

interface FuzzRequest {
  kind: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

/** Sets a random value at a random place in a copy of the valid order, or removes or adds a field. */
function mutate(rnd: Random): unknown {
  const order = structuredClone(VALID_ORDER) as Record<string, unknown>;
  order.customerId = FUZZ_CUSTOMER;
  const paths: string[][] = [['customerId'], ['items'], ['items', '0'], ['items', '0', 'sku'], ['items', '0', 'quantity'], ['items', '0', 'unitPrice'], ['currency'], ['shippingAddress'], ['shippingAddress', 'city'], ['shippingAddress', 'country'], ['paymentMethod'], ['paymentMethod', 'token']];
  const path = rnd.pick(paths);
  let target = order;
  for (const key of path.slice(0, -1)) target = target[key] as Record<string, unknown>;
  const last = path[path.length - 1]!;
  const what = rnd.int(0, 2);
  if (what === 0) delete target[last];
  else if (what === 1) target[last] = rnd.json(2);
  else target[`x${rnd.string(6)}`] = rnd.json(1); // an unknown field
  return order;
}

function generate(rnd: Random): FuzzRequest {
  const json = { 'content-type': 'application/json' };
  const post = (kind: string, body: string | Buffer, headers: Record<string, string> = json): FuzzRequest => ({ kind, method: 'POST', path: '/orders', headers, body });
  switch (rnd.int(0, 11)) {
    case 0:
    case 1:
    case 2:
      return post('mutated order', JSON.stringify(mutate(rnd)));
    case 3:
      return post('random JSON', JSON.stringify(rnd.json(4)) ?? 'null');
    case 4: {
      const depth = rnd.int(100, 20_000);
      const [open, close] = rnd.chance(0.5) ? ['[', ']'] : ['{"a":', '}'];
      return post('deep nesting', `${open.repeat(depth)}1${close.repeat(depth)}`);
    }
    case 5: {
      const size = rnd.pick([1_000, 60_000, 70_000, 1_000_000]);
      return rnd.chance(0.5)
        ? post('huge string', JSON.stringify({ ...VALID_ORDER, customerId: 'x'.repeat(size) }))
        : post('huge array', JSON.stringify({ ...VALID_ORDER, items: Array.from({ length: size / 50 }, () => VALID_ORDER.items[0]) }));
    }
    case 6:
      return post('invalid UTF-8', Buffer.concat([Buffer.from('{"customerId":"'), rnd.bytes(rnd.int(1, 20)).map((b) => b | 0x80), Buffer.from('"}')]));
    case 7:
      return post('random bytes', rnd.bytes(rnd.int(0, 2_000)), { 'content-type': rnd.pick(['application/json', 'application/octet-stream', 'text/plain', 'multipart/form-data; boundary=x']) });
    case 8:
      return post('odd media type', JSON.stringify({ ...VALID_ORDER, customerId: FUZZ_CUSTOMER }), {
        'content-type': rnd.pick(['application/json; charset=latin1', 'application/jsonx', 'json', 'application/x-www-form-urlencoded', 'text/json', '*/*', 'application/json; charset=utf-16']),
      });
    case 9:
      return post('odd Idempotency-Key', JSON.stringify({ ...VALID_ORDER, customerId: FUZZ_CUSTOMER }), { ...json, 'idempotency-key': rnd.pick(['', 'k'.repeat(rnd.int(200, 5_000)), 'é', ' ', 'a b']) });
    case 10: {
      const method = rnd.pick(['GET', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'POST']);
      const path = rnd.pick(['/orders', `/orders/${enc(rnd.string(30))}`, `/orders/${enc(rnd.string(10))}/cancel`, '/orders/%ff', '/orders/..%2f..%2fetc%2fpasswd', '/metrics/x', `/${'a'.repeat(rnd.int(1, 3_000))}`]);
      return { kind: 'wrong method or path', method, path, headers: json, body: method === 'GET' || method === 'HEAD' ? undefined : JSON.stringify(rnd.json(2)) };
    }
    default:
    {
      const method = rnd.pick(['GET', 'POST']);
      const id = rnd.pick(['ord_', 'ord_' + 'Z'.repeat(26), "ord_' OR 1=1 --", 'ORD_01', '%00', rnd.string(40)].map(enc));
      return { kind: 'odd order id', method, path: `/orders/${id}${rnd.chance(0.5) ? '/cancel' : ''}`, headers: json, body: method === 'GET' ? undefined : '{}' };
    }
  }
}

/** Bytes that are not HTTP at all, or HTTP that lies about its length, on a raw socket. */
async function rawRequest(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let answer = '';
    socket.on('data', (d) => (answer += d.toString()));
    socket.on('error', () => resolve(answer));
    socket.on('close', () => resolve(answer));
    socket.setTimeout(2_000, () => socket.destroy());
    socket.end(bytes);
  });
}

describe(`order-api under ${REQUESTS} fuzzed requests (seed ${SEED})`, function () {
  this.timeout(180_000);
  let db: Pool;
  let app: FastifyInstance;
  let base = '';
  let port = 0;
  let token = '';
  const started = new Date();

  before(async () => {
    await migrate(getConfig().databaseUrl);
    db = createPool(getConfig().databaseUrl, 'test-fuzz');
    const { tokens, ...auth } = await appAuth();
    token = await tokens.operator();
    app = buildApp({ db, logger: silentLogger, saga: { requestCancel: async () => ({ accepted: true }) }, readiness: [], ...auth });
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
  });
  after(async () => {
    await app?.close();
    // Orders the fuzzer made valid by chance stay in the order store, unpublished.
    await db?.query("UPDATE orders.events SET sent_at = now() WHERE sent_at IS NULL AND occurred_at >= $1 AND envelope->'data'->>'customerId' = $2", [started, FUZZ_CUSTOMER]);
    await db?.end();
  });

  it('answers every request below 500, stays up and keeps accepting valid orders', async () => {
    const rnd = new Random(SEED);
    const byStatus = new Map<number, number>();
    const byKind = new Map<string, number>();
    const failures: string[] = [];
    const requests = Array.from({ length: REQUESTS }, () => generate(rnd));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < requests.length) {
        const i = next++;
        const r = requests[i]!;
        const res = await fetch(`${base}${r.path}`, { method: r.method, headers: { ...bearer(token), ...r.headers }, body: r.body });
        await res.arrayBuffer();
        byStatus.set(res.status, (byStatus.get(res.status) ?? 0) + 1);
        byKind.set(r.kind, (byKind.get(r.kind) ?? 0) + 1);
        if (res.status >= 500) failures.push(`#${i} ${r.kind} ${r.method} ${r.path.slice(0, 60)} → ${res.status}`);
        if (i % 100 === 0) {
          const ok = await fetch(`${base}/orders`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(token) }, body: JSON.stringify({ ...VALID_ORDER, customerId: FUZZ_CUSTOMER }) });
          if (ok.status !== 202) failures.push(`valid order after #${i} → ${ok.status}`);
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));

    const raw = [
      'GARBAGE\r\n\r\n',
      'POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"customerId":',
      'POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      `GET /${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
      'POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n{}{}{}{',
    ];
    for (const bytes of raw) {
      const answer = await rawRequest(port, bytes);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
      if (status >= 500) failures.push(`raw ${JSON.stringify(bytes.slice(0, 40))} → ${status}`);
    }

    console.log(`      statuses: ${JSON.stringify(Object.fromEntries([...byStatus].sort(([a], [b]) => a - b)))}; kinds: ${JSON.stringify(Object.fromEntries(byKind))}`);
    expect(failures).to.deep.equal([]);
    expect([...byStatus.values()].reduce((a, b) => a + b, 0)).to.equal(REQUESTS);
    expect(byKind.size).to.equal(11); // every kind of request was sent
    expect((await fetch(`${base}/healthz`)).status).to.equal(200);
  });
});
