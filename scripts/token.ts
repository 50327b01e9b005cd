// npm run token -- --customer <customerId> | --operator [--ttl 1h]: prints a bearer token for
// order-api signed with the development key (AUTH_DEV_KEY_FILE, created on first use as
// `npm start` does), and nothing else on stdout, so that
//   curl -H "Authorization: Bearer $(npm run -s token -- --customer c-1)" localhost:3000/customers/c-1/orders
// works. Refuses (status 2) when the configuration verifies tokens with another key (AUTH_JWKS_URL,
// AUTH_PUBLIC_KEY_FILE) or is a production one: such tokens come from the identity provider.
import { parseArgs } from 'node:util';
import { ensureDevSigningKey, readDevSigningKey, SCOPES, signDevToken } from '../shared/auth';
import { getConfig, usesDevKey } from '../shared/config';
import { runCli, UsageError } from './cli';

const USAGE = 'usage: npm run token -- --customer <customerId> | --operator [--ttl <n>s|m|h|d]  (default --ttl 1h, at most 30d)';
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3_600, d: 86_400 };
const MAX_TTL_S = 30 * 86_400;

/** What GET /customers/:customerId/orders takes: 1 to 64 characters, no control character nor "/". */
const isCustomerId = (id: string): boolean => id.length >= 1 && id.length <= 64 && ![...id].some((c) => c === '/' || c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);

/** `--ttl 90m`: a whole number and a unit, in seconds. */
function ttlOf(text: string): number {
  const match = /^([1-9]\d{0,6})([smhd])$/.exec(text);
  const seconds = match ? Number(match[1]) * UNIT_SECONDS[match[2]!]! : NaN;
  if (!(seconds <= MAX_TTL_S)) throw new UsageError(`--ttl must be a whole number and s, m, h or d, at most 30d (got "${text}")\n${USAGE}`);
  return seconds;
}

runCli('token', async () => {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: { customer: { type: 'string' }, operator: { type: 'boolean', default: false }, ttl: { type: 'string', default: '1h' } },
    strict: true,
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"\n${USAGE}`);
  if ((values.customer === undefined) === !values.operator) throw new UsageError(`give either --customer <customerId> or --operator\n${USAGE}`);
  const customer = values.customer;
  if (customer !== undefined && !isCustomerId(customer)) throw new UsageError(`--customer must be a customerId of 1 to 64 characters, without control characters or "/" (got "${customer}")`);
  const ttlSeconds = ttlOf(values.ttl);
  const { auth } = getConfig();
  if (!usesDevKey(auth)) {
    const why = auth.mode === 'production' ? 'AUTH_MODE is production' : auth.jwksUrl !== undefined ? 'AUTH_JWKS_URL is set' : 'AUTH_PUBLIC_KEY_FILE is set';
    console.error(`token: refusing: ${why}, so order-api does not accept development tokens; get a token from your identity provider`);
    return 2;
  }
  if (await ensureDevSigningKey(auth.devKeyFile)) console.error(`token: created the development signing key in ${auth.devKeyFile}`);
  const key = readDevSigningKey(auth.devKeyFile);
  const claims = customer !== undefined ? { subject: customer, scope: SCOPES.customer } : { subject: 'dev-operator', scope: SCOPES.operator };
  console.log(await signDevToken(key, { ...claims, issuer: auth.issuer, audience: auth.audience, ttlSeconds }));
  return 0;
});
