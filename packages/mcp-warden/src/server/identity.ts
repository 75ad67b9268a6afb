/**
 * Identity for upstreams (opt-in, per HTTP upstream): instead of the caller's credential, which is
 * never forwarded, the gateway sends a short-lived JWT it signs itself, naming the principal and
 * its roles, with the upstream as audience. Its public keys are served at `/.well-known/jwks.json`.
 * The ES256 key is kept in the store, so every instance on one database signs with the same key.
 */
import { randomUUID } from 'node:crypto';
import { type JWK, SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } from 'jose';
import type { Principal } from '@mcp-warden/core';
import type { SecretStore } from '../store/types.js';

export interface IdentityToken {
  readonly token: string;
  /** Seconds since the epoch. */
  readonly expiresAt: number;
}

export class IdentitySigner {
  /** The gateway's URL, known once it listens. */
  issuer: string;
  readonly #key: CryptoKey;
  readonly #kid: string;
  readonly #publicJwk: JWK;
  readonly #cache = new Map<string, IdentityToken>();

  private constructor(issuer: string, key: CryptoKey, kid: string, publicJwk: JWK) {
    this.issuer = issuer;
    this.#key = key;
    this.#kid = kid;
    this.#publicJwk = publicJwk;
  }

  /** Loads the signing key from the store, creating it on first use. */
  static async open(secrets: SecretStore, issuer: string): Promise<IdentitySigner> {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const fresh = await exportJWK(privateKey);
    const stored = JSON.parse(await secrets.getOrCreate('identity-signing-key', () => JSON.stringify(fresh))) as JWK;
    const key = (await importJWK(stored, 'ES256')) as CryptoKey;
    const { d: _private, ...publicJwk } = stored;
    const kid = await calculateJwkThumbprint(publicJwk);
    return new IdentitySigner(issuer, key, kid, { ...publicJwk, kid, alg: 'ES256', use: 'sig' });
  }

  /** The JWK Set with the public key. */
  jwks(): { keys: JWK[] } {
    return { keys: [this.#publicJwk] };
  }

  /**
   * A token for `principal` with `audience` (the upstream's URL), valid `ttlMs`. Reused from a cache
   * while more than half its lifetime remains, so signing stays off most requests; only for the same
   * claims: a principal whose roles, scopes or subject changed gets a new token at once.
   *
   * An OAuth access token's caller may do only what both its roles and its scopes allow (the
   * policy's rule), so for it `roles` lists only the roles its scopes grant too (`scopeRoles`:
   * `auth.oauth.scopes`), and `user_roles`, `scope` and `scope_roles` say the rest. An upstream that
   * checks `roles` never sees more authority than the caller has: an admin's token consented to
   * `mcp:read` alone does not say `admin`.
   */
  async token(principal: Principal, audience: string, ttlMs: number, scopeRoles: Readonly<Record<string, readonly string[]>> = {}): Promise<IdentityToken> {
    const now = Math.floor(Date.now() / 1000);
    const limited = principal.scopeLimited === true;
    const granted = limited ? [...new Set(principal.scopes.flatMap((scope) => (Object.hasOwn(scopeRoles, scope) ? (scopeRoles[scope] ?? []) : [])))] : [];
    const claims = limited
      ? { roles: principal.roles.filter((role) => granted.includes(role)), user_roles: [...principal.roles], scope: principal.scopes.join(' '), scope_roles: granted }
      : { roles: [...principal.roles] };
    const cacheKey = JSON.stringify([this.issuer, audience, principal.kind, principal.id, principal.subject, claims]);
    const cached = this.#cache.get(cacheKey);
    const ttl = Math.max(1, Math.floor(ttlMs / 1000));
    if (cached !== undefined && cached.expiresAt - now > ttl / 2) return cached;
    const expiresAt = now + ttl;
    const token = await new SignJWT({ ...claims, principal_id: principal.id, principal_kind: principal.kind })
      .setProtectedHeader({ alg: 'ES256', kid: this.#kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setSubject(principal.subject)
      .setAudience(audience)
      .setIssuedAt(now)
      .setExpirationTime(expiresAt)
      .setJti(randomUUID())
      .sign(this.#key);
    const issued = { token, expiresAt };
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(cacheKey, issued);
    return issued;
  }
}
