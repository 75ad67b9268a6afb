/**
 * Brute-force protection for authentication, on rate-limiter-flexible (in memory here; a Redis
 * backend comes with the scale-out issue): failed attempts are counted per client address and per
 * key id, and a blocked address or key is answered 429 with Retry-After before any lookup.
 */
import type { AuthAttempt, AuthAttemptLimiter } from '@mcp-warden/core';
import { RateLimiterMemory, type RateLimiterRes } from 'rate-limiter-flexible';
import { parseKeyOf } from '../keys/format.js';

/** How many failures in what window, and how long a block lasts (ms). */
export interface AttemptLimit {
  readonly attempts: number;
  readonly window: number;
  readonly block: number;
}

export interface AuthLimiterOptions {
  readonly perAddress: AttemptLimit;
  readonly perKey: AttemptLimit;
}

/** A failure counter with blocking, in memory. */
export function memoryLimiter(limit: AttemptLimit, keyPrefix: string): RateLimiterMemory {
  return new RateLimiterMemory({
    keyPrefix,
    points: limit.attempts,
    duration: Math.max(1, Math.ceil(limit.window / 1000)),
    blockDuration: Math.max(1, Math.ceil(limit.block / 1000)),
  });
}

/** Seconds until a blocked key may try again; undefined when it is not blocked. */
export function waitSeconds(res: RateLimiterRes | null): number | undefined {
  if (res === null || res.remainingPoints > 0) return undefined;
  return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
}

/** Counts a failure; the failure that uses up the window's attempts starts the block. */
export async function count(limiter: RateLimiterMemory, key: string, limit: AttemptLimit): Promise<void> {
  // consume() rejects once the attempts are used up; that is the limit working, not an error.
  const res = await limiter.consume(key).catch((rejected: unknown) => rejected as RateLimiterRes);
  if (res.remainingPoints <= 0) await limiter.block(key, Math.max(1, Math.ceil(limit.block / 1000)));
}

/** Creates the limiter the pipeline consults before verifying a credential. */
export function createAuthLimiter(options: AuthLimiterOptions): AuthAttemptLimiter {
  const byAddress = memoryLimiter(options.perAddress, 'mcpw-auth-addr');
  const byKey = memoryLimiter(options.perKey, 'mcpw-auth-key');
  const keyIdOf = (attempt: AuthAttempt): string | undefined => parseKeyOf(attempt.credential)?.id;

  return {
    async check(attempt) {
      const waits: (number | undefined)[] = [];
      if (attempt.address !== undefined) waits.push(waitSeconds(await byAddress.get(attempt.address)));
      const keyId = keyIdOf(attempt);
      if (keyId !== undefined) waits.push(waitSeconds(await byKey.get(keyId)));
      const blocked = waits.filter((w): w is number => w !== undefined);
      return blocked.length === 0 ? undefined : Math.max(...blocked);
    },
    async failed(attempt) {
      if (attempt.address !== undefined) await count(byAddress, attempt.address, options.perAddress);
      const keyId = keyIdOf(attempt);
      if (keyId !== undefined) await count(byKey, keyId, options.perKey);
    },
  };
}
