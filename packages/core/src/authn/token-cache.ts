import type { Principal } from '../types.js';
import { sha256Hex } from './static-tokens.js';

/**
 * Verified tokens by SHA-256 of the token (never the token itself), each until the earlier of its
 * own expiry and `maxAgeMs`. Bounded: past `maxEntries` the oldest entry goes. Only successes are
 * kept, so a refused token is checked again every time (a key rotation can make it valid).
 */
export class VerifiedTokenCache {
  readonly #entries = new Map<string, { readonly principal: Principal; readonly until: number }>();
  readonly #maxEntries: number;
  readonly #maxAgeMs: number;
  readonly #now: () => number;

  /**
   * @param maxEntries at most this many tokens are kept. @default 10000
   * @param maxAgeMs no entry is reused longer than this, whatever the token's expiry. @default 300000 (5 min)
   */
  constructor(options: { maxEntries?: number; maxAgeMs?: number; now?: () => number } = {}) {
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#maxAgeMs = options.maxAgeMs ?? 300_000;
    this.#now = options.now ?? Date.now;
    if (!Number.isInteger(this.#maxEntries) || this.#maxEntries < 0) throw new TypeError('token cache maxEntries must be a non-negative integer');
  }

  /** The cache key of a token. */
  static keyOf(token: string): string {
    return sha256Hex(token);
  }

  get(key: string): Principal | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.until <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.principal;
  }

  /** Keeps a verified principal; `expiresAt` in seconds since the epoch bounds the entry. */
  set(key: string, principal: Principal, ttlMs = this.#maxAgeMs): void {
    if (this.#maxEntries === 0) return;
    const now = this.#now();
    let until = now + Math.min(ttlMs, this.#maxAgeMs);
    if (principal.expiresAt !== undefined) until = Math.min(until, principal.expiresAt * 1000);
    if (until <= now) return;
    if (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { principal, until });
  }

  get size(): number {
    return this.#entries.size;
  }

  clear(): void {
    this.#entries.clear();
  }
}
