/**
 * Brute-force protection for the built-in authorization server's login form: failed sign-ins are
 * counted per client address and per account name, and a blocked one is refused before its
 * password is hashed (each argon2id verification costs real CPU, so unthrottled guessing is also a
 * way to load the server). The same limits and the same counter store as credentials (`auth.rateLimit`).
 */
import { count, waitSeconds } from './auth-limiter.js';
import { type AttemptLimit, type LimiterBackend, memoryBackend } from './backend.js';

export interface LoginLimiter {
  /** Seconds to wait when the address or the name is blocked, else undefined. */
  check(address: string | undefined, username: string): Promise<number | undefined>;
  /** Counts one failed sign-in. */
  failed(address: string | undefined, username: string): Promise<void>;
}

/** Names are counted case-folded and NFKC-normalised, so `Alice` and `ＡＬＩＣＥ` share one counter. */
function nameKey(username: string): string {
  return username.normalize('NFKC').toLowerCase();
}

export function createLoginLimiter(options: { readonly perAddress: AttemptLimit; readonly perAccount: AttemptLimit }, backend: LimiterBackend = memoryBackend): LoginLimiter {
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
