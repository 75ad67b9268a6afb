/**
 * JWT access tokens from trusted issuers (rung 4 of the hardening ladder; the MCP authorization
 * spec's "Token Handling"): signature by the issuer's JWKS, exact `iss`, `aud` equal to this
 * resource's canonical URI (RFC 8707, on by default), `exp`/`nbf` with a small clock skew, an
 * allow-list of asymmetric algorithms, and the RFC 9068 profile when asked for.
 */
import {
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import * as oauth from 'oauth4webapi';
import type { Credential, CredentialVerifier, Principal, VerificationResult } from '../types.js';
import { type ClaimMapping, claimAt, rolesFromClaims, scopesFromClaims } from './claims.js';
import { requireHttpsUrl } from './https-url.js';
import { VerifiedTokenCache } from './token-cache.js';

/** Asymmetric JWS algorithms only: an HMAC key shared with clients would let them mint tokens. */
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

/** One issuer whose tokens are accepted. */
export interface TrustedIssuerOptions {
  /** Short name: principal ids are `<name>:<sub>`, audit events name it. */
  readonly name: string;
  /** The exact `iss` its tokens carry. */
  readonly issuer: string;
  /** The issuer's keys given in-process (the built-in authorization server): a set, or a function read on each miss. */
  readonly jwks?: JSONWebKeySet | (() => JSONWebKeySet);
  /** Where its keys are; default: `jwks_uri` from its discovery document (RFC 8414, then OIDC). */
  readonly jwksUri?: string;
  /** Accepted algorithms. @default ['RS256', 'PS256', 'ES256', 'EdDSA'] */
  readonly algorithms?: readonly string[];
  /** Leeway for `exp`, `nbf` and `iat`, in seconds. @default 30 */
  readonly clockToleranceSeconds?: number;
  /** `rfc9068`: require `typ: at+jwt` and the profile's claims (RFC 9068 §2.2, §4). @default 'jwt' */
  readonly profile?: 'jwt' | 'rfc9068';
  readonly claims?: ClaimMapping;
  /** Accepted audiences, replacing the resource's canonical URI (for IdPs that cannot mint it). */
  readonly audience?: readonly string[];
  /** After a key set fetch, no new fetch for an unknown `kid` before this many ms. @default 30000 */
  readonly jwksCooldownMs?: number;
  /** Remote key sets are refetched after this many ms even when every `kid` is known. @default 600000 */
  readonly jwksMaxAgeMs?: number;
  /** Time limit of a key set or discovery fetch, in ms. @default 5000 */
  readonly fetchTimeoutMs?: number;
}

/**
 * A trusted issuer and its keys, shared by the verifiers of every protected path so a key set is
 * fetched once. Remote key sets are refetched on an unknown `kid` (key rotation) after a cooldown.
 */
export class TrustedIssuer {
  readonly name: string;
  readonly issuer: string;
  readonly algorithms: readonly string[];
  readonly clockToleranceSeconds: number;
  readonly profile: 'jwt' | 'rfc9068';
  readonly claims: ClaimMapping;
  readonly audience: readonly string[] | undefined;
  readonly #options: TrustedIssuerOptions;
  #remote: Promise<JWTVerifyGetKey> | undefined;
  #local: { source: JSONWebKeySet; keys: JWTVerifyGetKey } | undefined;

  constructor(options: TrustedIssuerOptions) {
    const where = `issuer ${options.name}`;
    if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(options.name)) throw new TypeError(`${where}: name must be lower-case letters, digits, - and _`);
    if (options.jwks === undefined) requireHttpsUrl(options.issuer, `${where}.issuer`);
    if (options.jwksUri !== undefined) requireHttpsUrl(options.jwksUri, `${where}.jwksUri`);
    const algorithms = options.algorithms ?? ['RS256', 'PS256', 'ES256', 'EdDSA'];
    for (const alg of algorithms) {
      if (!(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg)) {
        throw new TypeError(`${where}.algorithms: "${alg}" is not an asymmetric algorithm (${ASYMMETRIC_ALGORITHMS.join(', ')})`);
      }
    }
    if (algorithms.length === 0) throw new TypeError(`${where}.algorithms must not be empty`);
    this.name = options.name;
    this.issuer = options.issuer;
    this.algorithms = Object.freeze([...algorithms]);
    this.clockToleranceSeconds = options.clockToleranceSeconds ?? 30;
    this.profile = options.profile ?? 'jwt';
    this.claims = options.claims ?? {};
    this.audience = options.audience === undefined ? undefined : Object.freeze([...options.audience]);
    this.#options = options;
  }

  /** The key resolver: in-process keys, or the remote set (discovered on first use; a failed discovery is retried next time). */
  keys(): JWTVerifyGetKey | Promise<JWTVerifyGetKey> {
    const given = this.#options.jwks;
    if (given !== undefined) {
      const source = typeof given === 'function' ? given() : given;
      if (this.#local?.source !== source) this.#local = { source, keys: createLocalJWKSet(source) };
      return this.#local.keys;
    }
    this.#remote ??= this.#discoverKeys().catch((error: unknown) => {
      this.#remote = undefined;
      throw error;
    });
    return this.#remote;
  }

  async #discoverKeys(): Promise<JWTVerifyGetKey> {
    const timeout = this.#options.fetchTimeoutMs ?? 5000;
    let jwksUri = this.#options.jwksUri;
    if (jwksUri === undefined) {
      const issuer = new URL(this.issuer);
      const insecure = issuer.protocol === 'http:' ? { [oauth.allowInsecureRequests]: true } : {};
      let metadata: oauth.AuthorizationServer | undefined;
      let lastError: unknown;
      for (const algorithm of ['oauth2', 'oidc'] as const) {
        try {
          const response = await oauth.discoveryRequest(issuer, { algorithm, signal: AbortSignal.timeout(timeout), ...insecure });
          metadata = await oauth.processDiscoveryResponse(issuer, response);
          break;
        } catch (error) {
          lastError = error;
        }
      }
      if (metadata?.jwks_uri === undefined) {
        throw new Error(`issuer ${this.name}: no jwks_uri in its discovery document`, { cause: lastError });
      }
      jwksUri = metadata.jwks_uri;
      requireHttpsUrl(jwksUri, `issuer ${this.name} discovered jwks_uri`);
    }
    return createRemoteJWKSet(new URL(jwksUri), {
      cooldownDuration: this.#options.jwksCooldownMs ?? 30_000,
      cacheMaxAge: this.#options.jwksMaxAgeMs ?? 600_000,
      timeoutDuration: timeout,
    });
  }
}

/** Options of {@link jwtVerifier}. */
export interface JwtVerifierOptions {
  readonly issuers: readonly TrustedIssuer[];
  /** This resource's canonical URI(s): a token's `aud` must contain one (RFC 8707; MCP "Token Handling"). */
  readonly audience: string | readonly string[];
  /** Verified tokens reused until expiry; `false` verifies every request. @default a new cache */
  readonly cache?: VerifiedTokenCache | false;
}

/** jose failures caused by the token (refuse it), as opposed to a key set that cannot be fetched (fail closed). */
const TOKEN_FAULTS = new Set([
  'ERR_JWT_EXPIRED',
  'ERR_JWT_CLAIM_VALIDATION_FAILED',
  'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  'ERR_JWKS_NO_MATCHING_KEY',
  'ERR_JWKS_MULTIPLE_MATCHING_KEYS',
  'ERR_JOSE_ALG_NOT_ALLOWED',
  'ERR_JOSE_NOT_SUPPORTED',
  'ERR_JWT_INVALID',
  'ERR_JWS_INVALID',
]);

const JWT_SHAPE = /^[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*$/;

function refusal(reason: Extract<VerificationResult, { ok: false }>['reason'], description: string, ref: string): VerificationResult {
  return { ok: false, reason, description, credentialRef: ref };
}

/**
 * Verifies JWT access tokens of the given issuers for one protected resource. A credential that is
 * not a JWT, or a JWT naming an issuer not in the list, is left to other verifiers (`undefined`);
 * the routing by `iss` reads the unverified payload, then the signature and every claim are checked
 * against that issuer only. Does NOT check token revocation (a JWT is valid until it expires; use
 * short lifetimes, or introspection for opaque tokens).
 */
export function jwtVerifier(options: JwtVerifierOptions): CredentialVerifier {
  const byIssuer = new Map<string, TrustedIssuer>();
  for (const issuer of options.issuers) {
    if (byIssuer.has(issuer.issuer)) throw new TypeError(`issuer ${issuer.name}: ${issuer.issuer} is configured twice`);
    byIssuer.set(issuer.issuer, issuer);
  }
  const audience = typeof options.audience === 'string' ? [options.audience] : [...options.audience];
  if (audience.length === 0) throw new TypeError('jwtVerifier: audience must name this resource');
  const cache = options.cache === false ? undefined : (options.cache ?? new VerifiedTokenCache());

  async function verifyUncached(credential: Credential, key: string): Promise<VerificationResult | undefined> {
    const ref = `sha256:${key.slice(0, 12)}`;
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(credential.value);
    } catch {
      return undefined;
    }
    const issuer = typeof unverified.iss === 'string' ? byIssuer.get(unverified.iss) : undefined;
    if (issuer === undefined) return undefined;
    let payload: JWTPayload;
    try {
      const result = await jwtVerify(credential.value, await issuer.keys(), {
        issuer: issuer.issuer,
        audience: [...(issuer.audience ?? audience)],
        algorithms: [...issuer.algorithms],
        clockTolerance: issuer.clockToleranceSeconds,
        ...(issuer.profile === 'rfc9068' ? { typ: 'at+jwt', requiredClaims: ['exp', 'iat', 'sub', 'client_id', 'jti'] } : { requiredClaims: ['exp'] }),
      });
      payload = result.payload;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === undefined || !TOKEN_FAULTS.has(code)) throw error;
      if (error instanceof joseErrors.JWTExpired) return refusal('expired', 'The access token has expired', ref);
      if (error instanceof joseErrors.JWTClaimValidationFailed) {
        if (error.claim === 'aud') return refusal('wrong_audience', 'The access token was not issued for this resource', ref);
        if (error.claim === 'nbf') return refusal('not_yet_valid', 'The access token is not valid yet', ref);
        return refusal('invalid', `The access token's ${error.claim} claim is not acceptable`, ref);
      }
      return refusal('invalid', 'The access token is not valid', ref);
    }
    const mapping = issuer.claims;
    const subject = claimAt(payload, mapping.subject ?? 'sub');
    if (typeof subject !== 'string' || subject === '') return refusal('invalid', 'The access token names no subject', ref);
    const clientId = typeof payload['client_id'] === 'string' ? payload['client_id'] : typeof payload['azp'] === 'string' ? payload['azp'] : undefined;
    const principal: Principal = {
      id: `${issuer.name}:${subject}`,
      kind: 'jwt',
      subject,
      roles: Object.freeze(rolesFromClaims(payload, mapping)),
      scopes: Object.freeze(scopesFromClaims(payload, mapping)),
      claims: Object.freeze({ ...payload }),
      ...(payload.exp === undefined ? {} : { expiresAt: payload.exp }),
      ...(clientId === undefined ? {} : { clientId }),
      scopeLimited: true,
    };
    cache?.set(key, principal);
    return { ok: true, principal };
  }

  return {
    name: 'jwt',
    // A cached token is answered synchronously (no promise to await per request); the rest is async.
    verify(credential: Credential): VerificationResult | undefined | Promise<VerificationResult | undefined> {
      if (credential.source !== 'bearer' || !JWT_SHAPE.test(credential.value)) return undefined;
      const key = VerifiedTokenCache.keyOf(credential.value);
      const cached = cache?.get(key);
      if (cached !== undefined) return { ok: true, principal: cached };
      return verifyUncached(credential, key);
    },
  };
}
