import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SessionSigner } from '../../src/server/sessions.js';

const signer = new SessionSigner('k'.repeat(32));

describe('SessionSigner', () => {
  it('accepts its own ids for the same upstream and principal, in visible ASCII', () => {
    const id = signer.mint('everything', 'alice');
    expect(id).toMatch(/^[\x21-\x7e]+$/);
    expect(signer.verify('everything', 'alice', id)).toBe(id.split('.')[0]);
  });

  describe('Security', () => {
    it('refuses an id presented by another principal, for another upstream, or under another key', () => {
      const id = signer.mint('everything', 'alice');
      expect(signer.verify('everything', 'bob', id)).toBeUndefined();
      expect(signer.verify('other', 'alice', id)).toBeUndefined();
      expect(new SessionSigner('j'.repeat(32)).verify('everything', 'alice', id)).toBeUndefined();
    });
    it('refuses any change to a signed id', () => {
      const id = signer.mint('everything', 'alice');
      fc.assert(
        fc.property(fc.nat({ max: id.length - 1 }), fc.constantFrom(...'ABCxyz019-_.'), (at, ch) => {
          const changed = id.slice(0, at) + ch + id.slice(at + 1);
          if (changed !== id) expect(signer.verify('everything', 'alice', changed)).toBeUndefined();
        }),
        { numRuns: 1000 },
      );
      // Every other spelling of the MAC's last character (its spare bits) is refused too.
      const last = id.at(-1) as string;
      for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_') {
        if (ch !== last) expect(signer.verify('everything', 'alice', id.slice(0, -1) + ch)).toBeUndefined();
      }
      for (const bad of ['', '.', 'abc', 'abc.', '.abc', 'a b.c', 'x\u00e9.y']) expect(signer.verify('everything', 'alice', bad)).toBeUndefined();
    });
    it('refuses short keys', () => {
      expect(() => new SessionSigner('short')).toThrow(/at least 32 bytes/);
    });
  });
});
