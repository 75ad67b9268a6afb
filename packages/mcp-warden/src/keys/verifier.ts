/**
 * The API key verifier: a `CredentialVerifier` for `mcpw_` keys, with a short-lived in-process cache
 * and last-used times written in the background.
 */
import type { Credential, CredentialVerifier, Principal, VerificationResult } from '@mcp-warden/core';
import type { ApiKeyRecord, KeyStore } from '../store/types.js';
import { timingSafeEqual } from 'node:crypto';
import { hashSecretBytes, looksLikeKey, parseKeyOf } from './format.js';

/** Options of {@link createApiKeyVerifier}. */
export interface ApiKeyVerifierOptions {
  /**
   * How long a key read from the store is trusted without reading it again, in ms. Revocations made
   * in this process, and (through the store's change token) in other processes, drop entries at once.
   * @default 30000
   */
  readonly cacheTtlMs?: number;
  /** Most keys kept in the cache. @default 100000 */
  readonly maxCacheEntries?: number;
  /** How often last-used times are written, in ms. @default 10000 */
  readonly lastUsedFlushMs?: number;
  readonly now?: () => number;
  /** Called when writing last-used times fails (they are retried at the next flush). */
  readonly onError?: (error: unknown) => void;
}

interface CacheEntry {
  readonly record: ApiKeyRecord;
  /** The stored hash, decoded once; empty when the stored value is not a SHA-256 hex digest. */
  readonly hash: Buffer;
  readonly principal: Principal;
  readonly fetchedAt: number;
  readonly token: number;
}

/** A verifier that can also drop cached keys and must be closed (it flushes last-used times). */
export interface ApiKeyVerifier extends CredentialVerifier {
  invalidate(id: string): void;
  /** Writes pending last-used times now. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

function principalOf(record: ApiKeyRecord): Principal {
  return {
    id: record.id,
    kind: 'api-key',
    subject: record.name,
    roles: Object.freeze([...record.roles]),
    scopes: Object.freeze([]),
    claims: Object.freeze({ name: record.name }),
    ...(record.expiresAt === undefined ? {} : { expiresAt: Math.floor(record.expiresAt / 1000) }),
  };
}

/** Verifies `mcpw_` keys against a key store. Other credentials are left to other verifiers. */
export function createApiKeyVerifier(store: KeyStore, options: ApiKeyVerifierOptions = {}): ApiKeyVerifier {
  const ttl = options.cacheTtlMs ?? 30_000;
  const maxEntries = options.maxCacheEntries ?? 100_000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, CacheEntry>();
  const lastUsed = new Map<string, number>();
  let flushing: Promise<void> | undefined;

  const refuse = (reason: 'unknown' | 'expired' | 'revoked' | 'invalid', description: string, id?: string): VerificationResult => ({
    ok: false,
    reason,
    description,
    ...(id === undefined ? {} : { credentialRef: `key:${id}` }),
  });

  function entryFor(record: ApiKeyRecord, at: number, token: number): CacheEntry {
    const hash = /^[0-9a-f]{64}$/.test(record.hash) ? Buffer.from(record.hash, 'hex') : Buffer.alloc(0);
    return { record, hash, principal: principalOf(record), fetchedAt: at, token };
  }

  function judge(entry: CacheEntry, secret: string, at: number): VerificationResult {
    const record = entry.record;
    const presented = hashSecretBytes(record.id, secret);
    if (entry.hash.length !== presented.length || !timingSafeEqual(presented, entry.hash)) return refuse('unknown', 'The API key is not valid', record.id);
    // Any revocation counts, whenever it is dated: it is stamped by the clock of the machine that
    // revoked the key, which may run ahead of this one (a revocation is never scheduled).
    if (record.revokedAt !== undefined) return refuse('revoked', 'The API key has been revoked', record.id);
    if (record.expiresAt !== undefined && record.expiresAt <= at) return refuse('expired', 'The API key has expired', record.id);
    lastUsed.set(record.id, at);
    return { ok: true, principal: entry.principal };
  }

  /** Writes every use recorded so far: waits for a write in progress, then writes what came since. */
  async function flush(): Promise<void> {
    while (flushing !== undefined) await flushing;
    if (lastUsed.size === 0) return;
    const batch = new Map(lastUsed);
    lastUsed.clear();
    flushing = store
      .touchKeys(batch)
      .catch((error: unknown) => {
        for (const [id, at] of batch) if ((lastUsed.get(id) ?? 0) < at) lastUsed.set(id, at);
        options.onError?.(error);
      })
      .finally(() => {
        flushing = undefined;
      });
    return flushing;
  }
  const timer = setInterval(() => void flush(), options.lastUsedFlushMs ?? 10_000);
  timer.unref();

  return {
    name: 'api-keys',
    verify(credential: Credential): VerificationResult | undefined | Promise<VerificationResult | undefined> {
      if (!looksLikeKey(credential.value)) return undefined;
      const parsed = parseKeyOf(credential);
      if (parsed === undefined) return refuse('invalid', 'The API key is malformed (wrong length, characters or checksum)');
      const at = now();
      const token = store.changeToken();
      const cached = cache.get(parsed.id);
      if (cached !== undefined && at - cached.fetchedAt < ttl && cached.token === token) return judge(cached, parsed.secret, at);
      return store.getKey(parsed.id).then((record) => {
        if (record === undefined) {
          cache.delete(parsed.id);
          return refuse('unknown', 'The API key is not valid', parsed.id);
        }
        if (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string);
        cache.delete(parsed.id);
        const entry = entryFor(record, at, token);
        cache.set(parsed.id, entry);
        return judge(entry, parsed.secret, at);
      });
    },
    invalidate(id: string): void {
      cache.delete(id);
    },
    flush,
    async close(): Promise<void> {
      clearInterval(timer);
      await flush();
    },
  };
}
