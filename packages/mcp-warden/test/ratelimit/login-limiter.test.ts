/**
 * The sign-in limiter counts an account under the same fold the account is looked up with: every
 * spelling that signs in to it shares one counter, or an attacker gets a fresh budget per spelling.
 */
import { describe, expect, it } from 'vitest';
import { createLoginLimiter } from '../../src/ratelimit/login-limiter.js';
import { foldUsername } from '../../src/users/username.js';

describe('login limiter', () => {
  describe('Security', () => {
    it('blocks every spelling of a blocked account that signs in to it (case, width, dotless ı, ß)', async () => {
      const limiter = createLoginLimiter({ perAddress: { attempts: 1000, window: 60_000, block: 60_000 }, perAccount: { attempts: 3, window: 60_000, block: 60_000 } });
      for (let i = 0; i < 3; i++) await limiter.failed(`10.0.0.${i}`, 'mini');
      for (const spelling of ['mini', 'MINI', 'ｍｉｎｉ', 'mını', 'MıNı']) {
        // Each is the account `mini` for sign-in, so each is blocked.
        expect(foldUsername(spelling), spelling).toBe('mini');
        expect(await limiter.check('10.9.9.9', spelling), spelling).toBeGreaterThan(0);
      }
      // Another account is not blocked by it.
      expect(await limiter.check('10.9.9.9', 'maxi')).toBeUndefined();
      // ß folds to ss for lookup: the two spellings are one account, one counter.
      for (let i = 0; i < 3; i++) await limiter.failed(`10.1.0.${i}`, 'strasse');
      expect(foldUsername('straße')).toBe('strasse');
      expect(await limiter.check('10.9.9.9', 'straße')).toBeGreaterThan(0);
    });
  });
});
