// Bearer tokens of order-api (docs/operations.md#authentication): the scopes a token grants,
// and the development signing key. In development `npm start` (and `npm run token`) create an
// Ed25519 key pair on first use in AUTH_DEV_KEY_FILE (under DATA_DIR, never in the repository);
// order-api verifies with its public half and `npm run token` signs with its private half. In
// production tokens come from an identity provider, and none of this signs anything.
import { randomUUID } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { usesDevKey, type AuthConfig } from '../config';

/** The scopes order-api knows, in the token's `scope` claim (space-separated, as OAuth 2 has it). */
export const SCOPES = {
  /** A customer (`sub` = its customerId): places orders for itself, and reads, lists and cancels its own. */
  customer: 'orders:customer',
  /** An operator: reads and cancels any order, places orders for any customer. */
  operator: 'orders:operator',
} as const;
export type Scope = (typeof SCOPES)[keyof typeof SCOPES];

/** The algorithm of the development key. */
export const DEV_KEY_ALGORITHM = 'EdDSA';

/** The development key pair, as AUTH_DEV_KEY_FILE keeps it. */
export interface DevSigningKey {
  /** The key id, in each token's header. */
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

/**
 * Creates the development key in the file unless it exists; true when it created it. The file
 * appears whole or not at all (written aside, then linked into place), readable by its owner
 * only, so two processes starting at once end up with one key.
 */
export async function ensureDevSigningKey(file: string): Promise<boolean> {
  try {
    readDevSigningKey(file);
    return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = await generateDevSigningKey();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const aside = `${file}.${process.pid}.tmp`;
  writeFileSync(aside, `${JSON.stringify(key, null, 2)}\n`, { mode: 0o600 });
  try {
    linkSync(aside, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false; // another process made it first: theirs stands
    throw err;
  } finally {
    unlinkSync(aside);
  }
}

/** A new development key pair (Ed25519), in memory: ensureDevSigningKey keeps one; the tests of an in-process API make their own. */
export async function generateDevSigningKey(): Promise<DevSigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(DEV_KEY_ALGORITHM, { crv: 'Ed25519', extractable: true });
  return { kid: `dev-${randomUUID()}`, privateJwk: await exportJWK(privateKey), publicJwk: await exportJWK(publicKey) };
}

/** The development key in the file; throws ENOENT when there is none, and says so when the file is not one. */
export function readDevSigningKey(file: string): DevSigningKey {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<DevSigningKey>;
  if (typeof parsed.kid !== 'string' || parsed.privateJwk?.crv !== 'Ed25519' || parsed.publicJwk?.crv !== 'Ed25519') {
    throw new Error(`${file} is not a development signing key (kid, privateJwk and publicJwk, Ed25519); delete it and run \`npm start\` to make a new one`);
  }
  return parsed as DevSigningKey;
}

/** What a token says about its bearer. */
export interface TokenClaims {
  /** `sub`: the customerId of a customer, an operator's name. */
  subject: string;
  scope: Scope;
  issuer: string;
  audience: string;
  /** How long it is valid, in seconds. */
  ttlSeconds: number;
}

/** A token signed with the development key: what `npm run token` prints and the tests send. */
export async function signDevToken(key: DevSigningKey, claims: TokenClaims): Promise<string> {
  const privateKey = await importJWK(key.privateJwk, DEV_KEY_ALGORITHM);
  return new SignJWT({ scope: claims.scope })
    .setProtectedHeader({ alg: DEV_KEY_ALGORITHM, kid: key.kid, typ: 'JWT' })
    .setSubject(claims.subject)
    .setIssuer(claims.issuer)
    .setAudience(claims.audience)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + claims.ttlSeconds)
    .sign(privateKey);
}

/**
 * A token signed with the configuration's development key (created when missing), as
 * `npm run token` prints: for the demo, the chaos run and the benchmarks, which call the API
 * of a fleet they run themselves. Valid for an hour unless ttlSeconds says otherwise. Throws
 * when the configuration verifies tokens with another key: only its identity provider signs them.
 */
export async function devTokenFor(auth: AuthConfig, subject: string, scope: Scope, ttlSeconds = 3_600): Promise<string> {
  if (!usesDevKey(auth)) throw new Error('order-api is configured with another key than the development one (AUTH_MODE, AUTH_JWKS_URL or AUTH_PUBLIC_KEY_FILE): its tokens come from the identity provider');
  await ensureDevSigningKey(auth.devKeyFile);
  return signDevToken(readDevSigningKey(auth.devKeyFile), { subject, scope, issuer: auth.issuer, audience: auth.audience, ttlSeconds });
}
