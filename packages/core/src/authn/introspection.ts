/**
 * Opaque access tokens checked by OAuth 2.0 Token Introspection (RFC 7662) at their issuer, with
 * `oauth4webapi`. Active answers are cached by the token's hash, never past the token's `exp` and
 * never longer than `cacheTtlMs`; inactive answers are not cached.
 */
import * as oauth from 'oauth4webapi';
import type { Credential, CredentialVerifier, Principal, VerificationResult } from '../types.js';
import { type ClaimMapping, claimAt, rolesFromClaims, scopesFromClaims } from './claims.js';
import { requireHttpsUrl } from './https-url.js';
import { VerifiedTokenCache } from './token-cache.js';

/** One issuer that introspects its tokens for us. */
export interface IntrospectionIssuerOptions {
  /** Short name: principal ids are `<name>:<sub>`. */
  readonly name: string;
  /** Its issuer identifier: discovery finds the endpoint from it, and an answer's `iss`, when present, must equal it. */
  readonly issuer: string;
  /** The introspection endpoint; default: `introspection_endpoint` from discovery. */
  readonly endpoint?: string;
  /** This resource server's client credentials at the issuer (client_secret_basic). */
  readonly clientId: string;
  readonly clientSecret: string;
  /** Upper bound on how long an active answer is reused, in ms. @default 60000 */
  readonly cacheTtlMs?: number;
  readonly claims?: ClaimMapping;
  /** Accepted audiences, replacing the resource's canonical URI. */
  readonly audience?: readonly string[];
  /** Time limit of an introspection or discovery request, in ms. @default 5000 */
  readonly timeoutMs?: number;
}

/** Options of {@link introspectionVerifier}. */
export interface IntrospectionVerifierOptions {
  readonly issuers: readonly IntrospectionIssuerOptions[];
  /** This resource's canonical URI(s): an active token's `aud` must contain one (RFC 8707). */
  readonly audience: string | readonly string[];
  /** Bound on cached answers. @default 10000 */
  readonly maxCachedTokens?: number;
}

interface Introspector {
  readonly options: IntrospectionIssuerOptions;
  metadata: Promise<oauth.AuthorizationServer> | undefined;
}

/**
 * Verifies opaque bearer tokens by asking each configured issuer in turn (the first that says
 * `active` wins). Put it after every verifier that recognises its own credentials locally, since
 * each unknown credential costs a round trip. An issuer that cannot be reached makes the request
 * fail closed (503). The answer's `aud` must name this resource: an issuer that omits `aud`
 * cannot be audience-checked, so its tokens are refused (configure `audience` to what it sends).
 */
export function introspectionVerifier(options: IntrospectionVerifierOptions): CredentialVerifier {
  const audience = typeof options.audience === 'string' ? [options.audience] : [...options.audience];
  if (audience.length === 0) throw new TypeError('introspectionVerifier: audience must name this resource');
  const introspectors: Introspector[] = options.issuers.map((o) => {
    requireHttpsUrl(o.issuer, `issuer ${o.name}.issuer`);
    if (o.endpoint !== undefined) requireHttpsUrl(o.endpoint, `issuer ${o.name}.introspection.endpoint`);
    if (o.clientId === '' || o.clientSecret === '') throw new TypeError(`issuer ${o.name}.introspection needs clientId and clientSecret`);
    return { options: o, metadata: undefined };
  });
  const cache = new VerifiedTokenCache({ maxEntries: options.maxCachedTokens ?? 10_000, maxAgeMs: Math.max(...options.issuers.map((o) => o.cacheTtlMs ?? 60_000), 0) });

  function metadataOf(introspector: Introspector): Promise<oauth.AuthorizationServer> {
    const o = introspector.options;
    introspector.metadata ??= (async () => {
      const issuer = new URL(o.issuer);
      if (o.endpoint !== undefined) return { issuer: o.issuer, introspection_endpoint: o.endpoint };
      const insecure = issuer.protocol === 'http:' ? { [oauth.allowInsecureRequests]: true } : {};
      const response = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', signal: AbortSignal.timeout(o.timeoutMs ?? 5000), ...insecure });
      const metadata = await oauth.processDiscoveryResponse(issuer, response);
      if (metadata.introspection_endpoint === undefined) throw new Error(`issuer ${o.name}: no introspection_endpoint in its metadata`);
      requireHttpsUrl(metadata.introspection_endpoint, `issuer ${o.name} discovered introspection_endpoint`);
      return metadata;
    })().catch((error: unknown) => {
      introspector.metadata = undefined;
      throw error;
    });
    return introspector.metadata;
  }

  return {
    name: 'introspection',
    async verify(credential: Credential): Promise<VerificationResult | undefined> {
      if (credential.source !== 'bearer') return undefined;
      const key = VerifiedTokenCache.keyOf(credential.value);
      const cached = cache.get(key);
      if (cached !== undefined) return { ok: true, principal: cached };
      const ref = `sha256:${key.slice(0, 12)}`;
      for (const introspector of introspectors) {
        const o = introspector.options;
        const as = await metadataOf(introspector);
        const insecure = new URL(as.introspection_endpoint as string).protocol === 'http:' ? { [oauth.allowInsecureRequests]: true } : {};
        const client: oauth.Client = { client_id: o.clientId };
        const response = await oauth.introspectionRequest(as, client, oauth.ClientSecretBasic(o.clientSecret), credential.value, {
          signal: AbortSignal.timeout(o.timeoutMs ?? 5000),
          additionalParameters: { token_type_hint: 'access_token' },
          ...insecure,
        });
        const answer = await oauth.processIntrospectionResponse(as, client, response);
        if (!answer.active) continue;
        if (answer.iss !== undefined && answer.iss !== o.issuer) continue;
        const now = Math.floor(Date.now() / 1000);
        if (answer.exp !== undefined && answer.exp <= now) return { ok: false, reason: 'expired', description: 'The access token has expired', credentialRef: ref };
        const accepted = o.audience ?? audience;
        const aud = answer.aud === undefined ? [] : Array.isArray(answer.aud) ? answer.aud : [answer.aud];
        if (!aud.some((a) => accepted.includes(a))) {
          return { ok: false, reason: 'wrong_audience', description: 'The access token was not issued for this resource', credentialRef: ref };
        }
        const claims = answer as unknown as Record<string, unknown>;
        const subject = claimAt(claims, o.claims?.subject ?? 'sub') ?? answer.client_id;
        if (typeof subject !== 'string' || subject === '') return { ok: false, reason: 'invalid', description: 'The access token names no subject', credentialRef: ref };
        const principal: Principal = {
          id: `${o.name}:${subject}`,
          kind: 'introspection',
          subject,
          roles: Object.freeze(rolesFromClaims(claims, o.claims ?? {})),
          scopes: Object.freeze(scopesFromClaims(claims, o.claims ?? {})),
          claims: Object.freeze({ ...claims }),
          ...(answer.exp === undefined ? {} : { expiresAt: answer.exp }),
          ...(answer.client_id === undefined ? {} : { clientId: answer.client_id }),
          scopeLimited: true,
        };
        cache.set(key, principal, o.cacheTtlMs ?? 60_000);
        return { ok: true, principal };
      }
      return undefined;
    },
  };
}
