/**
 * The authorization server's signing keys, kept in the store so every gateway instance on one
 * database signs with the same keys and a restart keeps them. One ES256 key signs access tokens
 * (RFC 9068); one RS256 key signs ID tokens (OpenID Connect Core §15.1 makes RS256 the default every
 * relying party supports). Rotation puts a new pair first and keeps the retired keys published in
 * the JWKS until every token they signed has expired.
 */
import { type JWK, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { OAuthStore } from '../store/types.js';

/** A private signing key as stored. Times in ms since the epoch. */
export interface StoredSigningKey {
  readonly jwk: JWK;
  readonly createdAt: number;
  /** When a newer key replaced it; it stays published until `retiredAt` + the longest token lifetime. */
  readonly retiredAt?: number;
}

const MODEL = 'KeySet';
const SIGNING = 'signing';
const ALGORITHMS = ['ES256', 'RS256'] as const;

async function generateKey(alg: (typeof ALGORITHMS)[number], now: number): Promise<StoredSigningKey> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
  const jwk = await exportJWK(privateKey);
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = jwk;
  return { jwk: { ...jwk, kid: await calculateJwkThumbprint(publicJwk), alg, use: 'sig' }, createdAt: now };
}

async function generatePair(now: number): Promise<StoredSigningKey[]> {
  return Promise.all(ALGORITHMS.map((alg) => generateKey(alg, now)));
}

function keysOf(payload: Readonly<Record<string, unknown>> | undefined): StoredSigningKey[] {
  return Array.isArray(payload?.['keys']) ? (payload['keys'] as StoredSigningKey[]) : [];
}

/** Keys still needed: the active ones, and retired ones whose tokens may not have expired yet; active first. */
function usable(keys: readonly StoredSigningKey[], now: number, retainMs: number): StoredSigningKey[] {
  const kept = keys.filter((k) => k.retiredAt === undefined || k.retiredAt + retainMs > now);
  return [...kept.filter((k) => k.retiredAt === undefined), ...kept.filter((k) => k.retiredAt !== undefined)];
}

/**
 * The signing keys, active first (oidc-provider signs with the first key of an algorithm), creating
 * them on first use; when two instances start at once the first writer wins.
 */
export async function loadSigningKeys(store: OAuthStore, retainMs: number, now = Date.now()): Promise<StoredSigningKey[]> {
  const existing = await store.find(MODEL, SIGNING);
  if (existing === undefined) {
    const fresh = await generatePair(now);
    if (await store.insert(MODEL, SIGNING, { keys: fresh })) return fresh;
  }
  const stored = existing ?? (await store.find(MODEL, SIGNING));
  return usable(keysOf(stored?.payload), now, retainMs);
}

/**
 * Puts a new key pair in front and retires the current one; retired keys older than `retainMs` are
 * dropped. Instances pick the new keys up when they (re)start: restart them all within `retainMs`.
 * Returns the key ids now active.
 */
export async function rotateSigningKeys(store: OAuthStore, retainMs: number, now = Date.now()): Promise<string[]> {
  const current = keysOf((await store.find(MODEL, SIGNING))?.payload);
  const fresh = await generatePair(now);
  const retired = current.map((k) => (k.retiredAt === undefined ? { ...k, retiredAt: now } : k));
  await store.upsert(MODEL, SIGNING, { keys: [...fresh, ...usable(retired, now, retainMs)] });
  return fresh.map((k) => k.jwk.kid as string);
}

/** How long the authorization server's ID tokens live (seconds). */
export const ID_TOKEN_TTL_SECONDS = 3600;

/** How long a retired signing key stays published: past the life of every token it signed (access and ID tokens), plus a minute. */
export function signingKeyRetentionMs(config: { readonly accessTokenTtl: number }): number {
  return Math.max(config.accessTokenTtl, ID_TOKEN_TTL_SECONDS * 1000) + 60_000;
}

/** The public half of a stored key, for a JWKS. */
export function publicJwk(key: StoredSigningKey): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicPart } = key.jwk;
  return publicPart;
}
