import type { Credential, Principal } from '../types.js';

/** One authentication attempt, as a limiter sees it. */
export interface AuthAttempt {
  /** The peer address, when known. */
  readonly address?: string;
  /** The credential (secret: a limiter may derive a public key id from it, never store it). */
  readonly credential: Credential;
}

/**
 * Brute-force protection for authentication. The pipeline asks `check` before verifying a
 * credential and reports each refused credential to `failed`. A blocked attempt is answered 429
 * with `Retry-After`, and audited.
 */
export interface AuthAttemptLimiter {
  /** Seconds until the attempt may be made, or `undefined` when it may be made now. */
  check(attempt: AuthAttempt): number | undefined | Promise<number | undefined>;
  /** Records a refused credential. */
  failed(attempt: AuthAttempt): void | Promise<void>;
}

/**
 * A request rate limit per principal. The pipeline asks `take` once per HTTP request, after the
 * credential is verified and before the body is read; a principal over its limit is answered 429
 * with `Retry-After`, and audited. A limiter that throws makes the request fail closed (503).
 */
export interface RequestLimiter {
  /** Counts one request; seconds to wait when the principal is over its limit, else `undefined`. */
  take(principal: Principal): number | undefined | Promise<number | undefined>;
}
