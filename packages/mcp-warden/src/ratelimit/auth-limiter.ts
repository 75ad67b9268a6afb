/**
 * Brute-force protection for authentication, on rate-limiter-flexible: failed attempts are counted
 * per client address and per key id, and a blocked address or key is answered 429 with Retry-After
 * before any lookup. The counters live in memory, or in Redis when `auth.rateLimit.redis` is set
 * (shared by every instance; see `backend.ts`).
 */
import type { AuthAttempt, AuthAttemptLimiter } from '@mcp-warden/core';
import type { RateLimiterAbstract, RateLimiterRes } from 'rate-limiter-flexible';
import { parseKeyOf } from '../keys/format.js';
import { type AttemptLimit, type LimiterBackend, memoryBackend } from './backend.js';

export type { AttemptLimit } from './backend.js';

export interface AuthLimiterOptions {
  readonly perAddress: AttemptLimit;
  readonly perKey: AttemptLimit;
}

/** Seconds until a blocked key may try again; undefined when it is not blocked. */
export function waitSeconds(res: RateLimiterRes | null): number | undefined {
  if (res === null || res.remainingPoints > 0) return undefined;
  return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
}

/** Counts a failure; the failure that uses up the window's attempts starts the block. */
export async function count(limiter: RateLimiterAbstract, key: string, limit: AttemptLimit): Promise<void> {
  // consume() rejects with a RateLimiterRes once the attempts are used up: that is the limit
  // working. It rejects with an Error when the store failed: that is passed on.
  const res = await limiter.consume(key).catch((rejected: unknown) => {
    if (rejected instanceof Error) throw rejected;
    return rejected as RateLimiterRes;
  });
  if (res.remainingPoints <= 0) await limiter.block(key, Math.max(1, Math.ceil(limit.block / 1000)));
}

/** Creates the limiter the pipeline consults before verifying a credential. */
export function createAuthLimiter(options: AuthLimiterOptions, backend: LimiterBackend = memoryBackend): AuthAttemptLimiter {
  const byAddress = backend.counter(options.perAddress, 'auth-addr');
  const byKey = backend.counter(options.perKey, 'auth-key');
  const keyIdOf = (attempt: AuthAttempt): string | undefined => parseKeyOf(attempt.credential)?.id;

  return {
    async check(attempt) {
      const keyId = keyIdOf(attempt);
      // Both counters asked at once: with Redis, one round trip's wait instead of two in a row.
      const [byAddressRes, byKeyRes] = await Promise.all([
        attempt.address === undefined ? null : byAddress.get(attempt.address),
        keyId === undefined ? null : byKey.get(keyId),
      ]);
      const blocked = [waitSeconds(byAddressRes), waitSeconds(byKeyRes)].filter((w): w is number => w !== undefined);
      return blocked.length === 0 ? undefined : Math.max(...blocked);
    },
    async failed(attempt) {
      if (attempt.address !== undefined) await count(byAddress, attempt.address, options.perAddress);
      const keyId = keyIdOf(attempt);
      if (keyId !== undefined) await count(byKey, keyId, options.perKey);
    },
  };
}
