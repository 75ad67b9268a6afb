import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KEY_PREFIX, hashSecret, hashesEqual, looksLikeKey, mintKey, newKeyId, parseKey, parseKeyOf } from '../../src/keys/format.js';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** Characters a key never holds, to try in every place too. */
const FOREIGN = '-_.+/=~ Ω';
const KEY_SHAPE = /^mcpw_[a-z2-7]{12}_[0-9A-Za-z]{43}_[0-9A-Za-z]{6}$/;

function freshKey(): { id: string; plaintext: string; hash: string } {
  const id = newKeyId();
  return { id, ...mintKey(id) };
}

/** The key with the character at `index` replaced. */
const substitute = (key: string, index: number, char: string): string => key.slice(0, index) + char + key.slice(index + 1);

describe('key format', () => {
  it('mints mcpw_<12 base32 id>_<43 base62 secret>_<6 base62 checksum>, 68 characters', () => {
    for (let i = 0; i < 200; i++) {
      const { id, plaintext } = freshKey();
      expect(plaintext).toMatch(KEY_SHAPE);
      expect(plaintext).toHaveLength(68);
      expect(plaintext.startsWith(`${KEY_PREFIX}${id}_`)).toBe(true);
      expect(id).toMatch(/^[a-z2-7]{12}$/);
    }
  });

  it('mints a new secret every time, even for the same id', () => {
    const id = newKeyId();
    const secrets = new Set(Array.from({ length: 100 }, () => parseKey(mintKey(id).plaintext)?.secret));
    expect(secrets.size).toBe(100);
  });

  it('draws ids from all of base32 and never repeats one in 10,000', () => {
    const ids = Array.from({ length: 10_000 }, () => newKeyId());
    expect(new Set(ids).size).toBe(10_000);
    expect(new Set(ids.join(''))).toEqual(new Set(BASE32));
  });

  it('returns the hash of <id>:<secret> with the key, as a 64-character hex SHA-256', () => {
    const { id, plaintext, hash } = freshKey();
    const parsed = parseKey(plaintext);
    expect(parsed).toEqual({ id, secret: plaintext.slice(18, 61) });
    expect(hash).toBe(hashSecret(id, parsed?.secret as string));
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    // Test vector: echo -n 'abcdefghijkl:s3cret' | sha256sum
    expect(hashSecret('abcdefghijkl', 's3cret')).toBe('14592f297532073d20487adcacc60071b8378a2e775d45239788dc638463c87b');
  });

  it('recognises keys by their prefix only', () => {
    expect(looksLikeKey(freshKey().plaintext)).toBe(true);
    expect(looksLikeKey('mcpw_')).toBe(true);
    expect(looksLikeKey('mcpw_not-a-key')).toBe(true);
    expect(looksLikeKey('eyJhbGciOiJIUzI1NiJ9.e30.sig')).toBe(false);
    expect(looksLikeKey('MCPW_abc')).toBe(false);
    expect(looksLikeKey(' mcpw_abc')).toBe(false);
  });
});

describe('parseKey', () => {
  it('accepts every minted key', () => {
    for (let i = 0; i < 200; i++) {
      const { id, plaintext } = freshKey();
      expect(parseKey(plaintext)?.id).toBe(id);
    }
  });

  it('refuses a key with any single character changed, in every place, to any other character', () => {
    const { plaintext } = freshKey();
    for (let index = 0; index < plaintext.length; index++) {
      for (const char of BASE62 + BASE32 + FOREIGN) {
        if (char === plaintext[index]) continue;
        const changed = substitute(plaintext, index, char);
        expect(parseKey(changed), `position ${index} changed to ${JSON.stringify(char)}`).toBeUndefined();
      }
    }
  });

  it('refuses a truncated key, a key with a character dropped or added, and surrounding whitespace', () => {
    const { plaintext } = freshKey();
    for (let length = 0; length < plaintext.length; length++) expect(parseKey(plaintext.slice(0, length))).toBeUndefined();
    for (let index = 0; index < plaintext.length; index++) expect(parseKey(plaintext.slice(0, index) + plaintext.slice(index + 1))).toBeUndefined();
    expect(parseKey(`${plaintext}0`)).toBeUndefined();
    expect(parseKey(`${plaintext}\n`)).toBeUndefined();
    expect(parseKey(` ${plaintext}`)).toBeUndefined();
  });

  it('refuses a key under another prefix', () => {
    const { plaintext } = freshKey();
    const rest = plaintext.slice(KEY_PREFIX.length);
    for (const prefix of ['', 'MCPW_', 'mcpx_', 'mcp_', 'mcpww_', 'ghp_', 'sk_']) expect(parseKey(`${prefix}${rest}`)).toBeUndefined();
  });

  it('refuses random single-character substitutions (property)', () => {
    // Keys are minted up front, so a failing case replays from fast-check's seed.
    const keys = Array.from({ length: 64 }, () => freshKey().plaintext);
    const alphabet = [...new Set(BASE62 + BASE32 + FOREIGN)];
    fc.assert(
      fc.property(fc.constantFrom(...keys), fc.integer({ min: 0, max: 67 }), fc.constantFrom(...alphabet), (key, index, char) => {
        fc.pre(key[index] !== char);
        // CRC-32 catches every change confined to one byte, so no substitution can collide.
        expect(parseKey(substitute(key, index, char))).toBeUndefined();
      }),
      { numRuns: 5_000 },
    );
  });
});

describe('parseKeyOf', () => {
  it('answers as parseKey does, for keys and for anything else, asked once or twice', () => {
    const { id, plaintext } = freshKey();
    for (const value of [plaintext, `${plaintext.slice(0, -1)}x`, 'secret123', '']) {
      const credential = { source: 'bearer' as const, value };
      expect(parseKeyOf(credential)).toEqual(parseKey(value));
      expect(parseKeyOf(credential)).toEqual(parseKey(value));
    }
    expect(parseKeyOf({ value: plaintext })?.id).toBe(id);
  });
});

describe('hashesEqual', () => {
  const a = hashSecret('abcdefghijkl', 'one');
  const b = hashSecret('abcdefghijkl', 'two');

  it('is true for the same hash and false for different ones', () => {
    expect(hashesEqual(a, a)).toBe(true);
    expect(hashesEqual(a, `${a}`)).toBe(true);
    expect(hashesEqual(a, b)).toBe(false);
    expect(hashesEqual(a, substitute(a, 63, a[63] === '0' ? '1' : '0'))).toBe(false);
    expect(hashesEqual(a, substitute(a, 0, a[0] === '0' ? '1' : '0'))).toBe(false);
  });

  it('is false, without throwing, for hashes of different lengths', () => {
    expect(hashesEqual(a, a.slice(0, 62))).toBe(false);
    expect(hashesEqual(a, `${a}00`)).toBe(false);
    expect(hashesEqual(a, '')).toBe(false);
  });

  it('is false for different strings that are not hex, and never throws', () => {
    expect(hashesEqual('zz', 'yy')).toBe(false);
    expect(hashesEqual('abzz', 'abyy')).toBe(false);
    expect(hashesEqual('ab', 'ag')).toBe(false);
    expect(hashesEqual(a, `${a.slice(0, 63)}g`)).toBe(false);
  });
});
