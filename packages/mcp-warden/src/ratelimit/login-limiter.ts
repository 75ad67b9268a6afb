/**
 * Brute-force protection for the built-in authorization server's login form: failed sign-ins are
 * counted per client address and per account name, and a blocked one is refused before its
 * password is hashed (each argon2id verification costs real CPU, so unthrottled guessing is also a
 * way to load the server). The same limits and the same counter store as credentials (`auth.rateLimit`).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { foldUsername } from '../users/username.js';
import { count, waitSeconds } from './auth-limiter.js';
import { type AttemptLimit, type LimiterBackend, memoryBackend } from './backend.js';

export interface LoginLimiter {
  /** Seconds to wait when the address or the name is blocked, else undefined. */
  check(address: string | undefined, username: string): Promise<number | undefined>;
  /** Counts one failed sign-in. */
  failed(address: string | undefined, username: string): Promise<void>;
}

export interface LoginLimiterOptions {
  readonly perAddress: AttemptLimit;
  readonly perAccount: AttemptLimit;
  /**
   * Key of the HMAC that names an account's counter. A password typed into the name field must not
   * land in a shared store as it was typed, so counters carry HMAC-SHA-256(name) instead of the
   * name; give every instance the same key (the gateway keeps one in its store). @default a random key
   */
  readonly nameSecret?: string;
}

export function createLoginLimiter(options: LoginLimiterOptions, backend: LimiterBackend = memoryBackend): LoginLimiter {
  const secret = options.nameSecret ?? randomBytes(32).toString('base64url');
  /**
   * Names are counted folded exactly as accounts are looked up (`foldUsername`), so every spelling
   * that signs in to one account shares its counter: `Alice`, `ＡＬＩＣＥ`, and `alıce` (dotless ı,
   * which upper-cases to I) alike. A weaker fold gave each `i` or `ß` of a name a second counter.
   */
  const nameKey = (username: string): string => createHmac('sha256', secret).update(foldUsername(username)).digest('base64url');
  const byAddress = backend.counter(options.perAddress, 'login-addr');
  const byName = backend.counter(options.perAccount, 'login-name');
  return {
    async check(address, username) {
      const waits = [address === undefined ? undefined : waitSeconds(await byAddress.get(address)), waitSeconds(await byName.get(nameKey(username)))];
      const blocked = waits.filter((w): w is number => w !== undefined);
      return blocked.length === 0 ? undefined : Math.max(...blocked);
    },
    async failed(address, username) {
      if (address !== undefined) await count(byAddress, address, options.perAddress);
      await count(byName, nameKey(username), options.perAccount);
    },
  };
}
