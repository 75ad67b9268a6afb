/**
 * A request rate limit per principal (`requestRateLimit.perPrincipal`): every HTTP request of an
 * authenticated caller is counted, in memory or in Redis like the brute-force counters, and one over
 * the limit is answered 429 with Retry-After. Principals are counted by kind and id (safe to store).
 */
import type { RequestLimiter } from '@mcp-warden/core';
import type { RateLimiterRes } from 'rate-limiter-flexible';
import { type LimiterBackend, memoryBackend } from './backend.js';

export interface RequestRate {
  /** Requests allowed per window. */
  readonly requests: number;
  /** The window, ms. */
  readonly window: number;
}

export function createRequestLimiter(rate: RequestRate, backend: LimiterBackend = memoryBackend): RequestLimiter {
  // No block beyond the window: a caller over the limit waits for the window to move on.
  const counter = backend.counter({ attempts: rate.requests, window: rate.window, block: 0 }, 'req-principal');
  return {
    async take(principal) {
      try {
        await counter.consume(`${principal.kind}:${principal.id}`);
        return undefined;
      } catch (rejected) {
        // An Error is the store failing (the pipeline answers 503); a RateLimiterRes is the limit.
        if (rejected instanceof Error) throw rejected;
        return Math.max(1, Math.ceil((rejected as RateLimiterRes).msBeforeNext / 1000));
      }
    },
  };
}
