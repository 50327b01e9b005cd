// Who calls order-api (docs/architecture.md#the-http-api): a bearer token (JWT) verified with
// jose against the configured keys (an identity provider's JWKS URL, a PEM public key, or in
// development the key `npm start` generated), pinned to asymmetric algorithms, with its issuer,
// audience, expiry and not-before checked. Its `scope` makes the caller a customer (`sub` = its
// customerId) or an operator. A token is never logged, nor echoed in an answer.
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { DEV_KEY_ALGORITHM, ensureDevSigningKey, readDevSigningKey, SCOPES, type DevSigningKey } from '../../shared/auth';
import { productionAuthProblem, type AuthConfig } from '../../shared/config';

/** Who a verified token speaks for. */
export type Principal = { role: 'customer'; customerId: string } | { role: 'operator'; subject: string };

/** The token is missing, malformed or not valid: 401. The message says which, never what the token holds. */
export class AuthenticationError extends Error {
  override name = 'AuthenticationError';
}

/** The token is valid but grants no scope of this API: 403. */
export class ScopeError extends Error {
  override name = 'ScopeError';
}

/** Checks a bearer token: the principal, or AuthenticationError / ScopeError; any other error is the key source's (a JWKS URL not answering). */
export interface TokenVerifier {
  verify(token: string): Promise<Principal>;
}

export interface VerifierOptions {
  issuer: string;
  audience: string;
  algorithms: readonly string[];
}

/** How far the clocks of the issuer and the API may disagree on exp and nbf, in seconds. */
const CLOCK_TOLERANCE_S = 5;

/** A verifier of tokens signed by a key that getKey finds (a key set, or one key). */
export function tokenVerifier(getKey: JWTVerifyGetKey, options: VerifierOptions): TokenVerifier {
  return {
    async verify(token) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, getKey, {
          issuer: options.issuer,
          audience: options.audience,
          algorithms: [...options.algorithms],
          requiredClaims: ['sub', 'exp'],
          clockTolerance: CLOCK_TOLERANCE_S,
        }));
      } catch (err) {
        throw refusalOf(err, options);
      }
      return principalOf(payload);
    },
  };
}

/** What jose found wrong with a token, as the 401's message; an error that is not about the token is rethrown as it is (503). */
function refusalOf(err: unknown, options: VerifierOptions): Error {
  if (err instanceof errors.JWTExpired) return new AuthenticationError('the token has expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return new AuthenticationError('the token is not valid yet');
    if (err.claim === 'iss') return new AuthenticationError(`the token was not issued by ${options.issuer}`);
    if (err.claim === 'aud') return new AuthenticationError(`the token is not meant for ${options.audience}`);
    return new AuthenticationError(`the token's ${err.claim} claim is missing or not acceptable`);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed || err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) {
    return new AuthenticationError('the token is not signed by a key this API trusts');
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return new AuthenticationError(`the token's algorithm is not accepted (only ${options.algorithms.join(', ')})`);
  }
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid || err instanceof errors.JWKInvalid) return new AuthenticationError('the token is not a well-formed signed JWT');
  return err instanceof Error ? err : new Error(String(err));
}

function principalOf(payload: JWTPayload): Principal {
  const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
  const subject = payload.sub as string; // required above
  if (scopes.includes(SCOPES.operator)) return { role: 'operator', subject };
  if (scopes.includes(SCOPES.customer)) return { role: 'customer', customerId: subject };
  throw new ScopeError(`the token grants neither ${SCOPES.customer} nor ${SCOPES.operator}`);
}

/** The token of an `Authorization: Bearer <token>` header; undefined when there is none or it is not one. */
export function bearerToken(header: string | undefined): string | undefined {
  return /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(header ?? '')?.[1];
}

/** Whether the principal may see and act on a customer's orders: its own, or any for an operator. */
export function mayActFor(principal: Principal, customerId: string): boolean {
  return principal.role === 'operator' || principal.customerId === customerId;
}

/** The customer a principal is restricted to; undefined for an operator. */
export const restrictedTo = (principal: Principal): string | undefined => (principal.role === 'customer' ? principal.customerId : undefined);

/**
 * The verifier the configuration asks for: the JWKS URL's keys (fetched on first use, cached,
 * refetched for an unknown kid), the PEM public key, or in development the development key
 * (created when missing, as `npm start` does). Throws the ConfigError of a production
 * configuration without a key of its own: order-api then refuses to start.
 */
export async function verifierFor(auth: AuthConfig): Promise<TokenVerifier> {
  const problem = productionAuthProblem(auth);
  if (problem) throw problem;
  const options: VerifierOptions = { issuer: auth.issuer, audience: auth.audience, algorithms: auth.algorithms };
  if (auth.jwksUrl !== undefined) return tokenVerifier(createRemoteJWKSet(new URL(auth.jwksUrl), { timeoutDuration: 5_000 }), options);
  if (auth.publicKeyFile !== undefined) {
    const key = createPublicKey(readFileSync(auth.publicKeyFile));
    return tokenVerifier(async () => key, options);
  }
  await ensureDevSigningKey(auth.devKeyFile);
  return devKeyVerifier(readDevSigningKey(auth.devKeyFile), options);
}

/** A verifier of tokens signed with a development key (its public half, its kid, EdDSA only). */
export function devKeyVerifier(key: DevSigningKey, options: Omit<VerifierOptions, 'algorithms'>): TokenVerifier {
  return tokenVerifier(createLocalJWKSet({ keys: [{ ...key.publicJwk, kid: key.kid, alg: DEV_KEY_ALGORITHM }] }), { ...options, algorithms: [DEV_KEY_ALGORITHM] });
}
