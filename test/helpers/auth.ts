// Bearer tokens for the tests, one helper for all: fleets started by a test (`npm start` as a
// child, which inherits this process's environment) verify with the development key of the
// configuration (AUTH_DEV_KEY_FILE), so fleetTokens() signs with that key, creating it first
// as `npm start` would; an in-process API (buildApp) gets a key of its own, in memory, from appAuth().
import { importJWK, SignJWT, type JWTHeaderParameters, type JWTPayload } from 'jose';
import { DEV_KEY_ALGORITHM, ensureDevSigningKey, generateDevSigningKey, readDevSigningKey, SCOPES, signDevToken, type DevSigningKey } from '../../shared/auth';
import { DEV_AUDIENCE, DEV_ISSUER, getConfig } from '../../shared/config';
import { devKeyVerifier, type TokenVerifier } from '../../services/order-api/auth';
import type { RateLimits } from '../../services/order-api/app';

/** Signs tokens with one key. */
export interface Tokens {
  readonly key: DevSigningKey;
  /** A customer's token (sub = customerId, scope orders:customer), valid for ttlSeconds (default an hour). */
  customer(customerId: string, ttlSeconds?: number): Promise<string>;
  /** An operator's token (scope orders:operator). */
  operator(): Promise<string>;
}

export function tokensOf(key: DevSigningKey, issuer: string, audience: string): Tokens {
  return {
    key,
    customer: (customerId, ttlSeconds = 3_600) => signDevToken(key, { subject: customerId, scope: SCOPES.customer, issuer, audience, ttlSeconds }),
    operator: () => signDevToken(key, { subject: 'test-operator', scope: SCOPES.operator, issuer, audience, ttlSeconds: 3_600 }),
  };
}

let fleetKey: Promise<Tokens> | undefined;

/** Tokens the fleets of this test run accept: signed with the configuration's development key. */
export function fleetTokens(): Promise<Tokens> {
  fleetKey ??= (async () => {
    const { auth } = getConfig();
    await ensureDevSigningKey(auth.devKeyFile);
    return tokensOf(readDevSigningKey(auth.devKeyFile), auth.issuer, auth.audience);
  })();
  return fleetKey;
}

/** The limits of an in-process API under test: none, unless a test sets them. */
export const NO_LIMITS: RateLimits = { perSubjectPerMinute: 0, perAddressPerMinute: 0 };

/** What buildApp needs to authenticate (a verifier of a new key, no limits unless given), and tokens of that key. */
export async function appAuth(rateLimits: RateLimits = NO_LIMITS): Promise<{ verifier: TokenVerifier; rateLimits: RateLimits; tokens: Tokens }> {
  const key = await generateDevSigningKey();
  return { verifier: devKeyVerifier(key, { issuer: DEV_ISSUER, audience: DEV_AUDIENCE }), rateLimits, tokens: tokensOf(key, DEV_ISSUER, DEV_AUDIENCE) };
}

/**
 * A token with these claims over a valid issuer, audience and a 10-minute expiry (a claim set to
 * undefined is left out) and header fields, signed with the key: the bad tokens of test/integration/auth.test.ts.
 */
export async function signClaims(key: DevSigningKey, payload: JWTPayload, header: Partial<Pick<JWTHeaderParameters, 'alg' | 'kid' | 'typ'>> = {}): Promise<string> {
  const claims: JWTPayload = { iss: DEV_ISSUER, aud: DEV_AUDIENCE, exp: Math.floor(Date.now() / 1000) + 600, ...payload };
  return new SignJWT(claims).setProtectedHeader({ alg: DEV_KEY_ALGORITHM, kid: key.kid, ...header }).sign(await importJWK(key.privateJwk, DEV_KEY_ALGORITHM));
}

/** The header that carries a token. */
export const bearer = (token: string): { authorization: string } => ({ authorization: `Bearer ${token}` });

/** An operator's header for a fleet of this test run, which may read and act on any order. */
export const asOperator = async (): Promise<{ authorization: string }> => bearer(await (await fleetTokens()).operator());

/** A fleet's environment without rate limits: tests poll orders faster than a client may (test/integration/auth.test.ts checks the limits). */
export const NO_RATE_LIMITS: Readonly<Record<string, string>> = { RATE_LIMIT_PER_SUBJECT_PER_MINUTE: '0', RATE_LIMIT_PER_ADDRESS_PER_MINUTE: '0' };
