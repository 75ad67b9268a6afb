/**
 * The API key format: `mcpw_<id>_<secret>_<checksum>`.
 * - `mcpw_`: a fixed prefix, so secret scanners can recognise leaked keys;
 * - id: 12 characters of lower-case base32 (60 random bits), public, the lookup key;
 * - secret: 43 characters of base62 encoding 256 random bits;
 * - checksum: 6 characters of base62 CRC-32 over everything before it, so a typo or a truncated key
 *   is refused before any lookup (the idea of GitHub's token format).
 * Only a hash of `<id>:<secret>` is ever stored.
 */
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const KEY_PREFIX = 'mcpw_';
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const KEY_PATTERN = /^mcpw_([a-z2-7]{12})_([0-9A-Za-z]{43})_([0-9A-Za-z]{6})$/;

function base62(value: bigint, width: number): string {
  let out = '';
  let n = value;
  while (n > 0n) {
    out = BASE62[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out.padStart(width, '0');
}

function checksumOf(body: string): string {
  // CRC-32 fits in a double: plain arithmetic, no BigInt, on the verification path.
  let n = crc32(body);
  let out = '';
  for (let i = 0; i < 6; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** A new key id: 12 base32 characters from 60 random bits. */
export function newKeyId(): string {
  const bytes = randomBytes(8);
  let bits = bytes.readBigUInt64BE() >> 4n;
  let out = '';
  for (let i = 0; i < 12; i++) {
    out = BASE32[Number(bits & 31n)] + out;
    bits >>= 5n;
  }
  return out;
}

/** The parts of a well-formed key. */
export interface ParsedKey {
  readonly id: string;
  readonly secret: string;
}

/** Mints a key for an id: returns the plaintext (shown once) and its stored hash. */
export function mintKey(id: string): { readonly plaintext: string; readonly hash: string } {
  const secret = base62(BigInt(`0x${randomBytes(32).toString('hex')}`), 43);
  const body = `${KEY_PREFIX}${id}_${secret}`;
  return { plaintext: `${body}_${checksumOf(body)}`, hash: hashSecret(id, secret) };
}

/** Whether a credential claims to be an mcp-warden key (by its prefix). */
export function looksLikeKey(value: string): boolean {
  return value.startsWith(KEY_PREFIX);
}

/** Parses a key; `undefined` when its shape or checksum is wrong (a typo, a truncation, a forgery). */
export function parseKey(value: string): ParsedKey | undefined {
  const match = KEY_PATTERN.exec(value);
  if (match === null) return undefined;
  const [, id, secret, checksum] = match as unknown as [string, string, string, string];
  if (checksumOf(`${KEY_PREFIX}${id}_${secret}`) !== checksum) return undefined;
  return { id, secret };
}

const parsedCredentials = new WeakMap<object, ParsedKey | null>();

/**
 * {@link parseKey} of a credential, remembered for as long as the credential object lives: the
 * attempt limiter and the verifier both need the key id of the same request, and the checksum is
 * computed once. Keyed by the object, so no secret outlives its request here.
 */
export function parseKeyOf(credential: { readonly value: string }): ParsedKey | undefined {
  const known = parsedCredentials.get(credential);
  if (known !== undefined) return known ?? undefined;
  const parsed = parseKey(credential.value);
  parsedCredentials.set(credential, parsed ?? null);
  return parsed;
}

/** The stored hash of a key's secret: hex SHA-256 of `<id>:<secret>`. */
export function hashSecret(id: string, secret: string): string {
  return hash('sha256', `${id}:${secret}`, 'hex');
}

/** The same hash as bytes, for comparing against a decoded stored hash without hex work per request. */
export function hashSecretBytes(id: string, secret: string): Buffer {
  return hash('sha256', `${id}:${secret}`, 'buffer');
}

const HEX = /^(?:[0-9a-f]{2})+$/;

/** Compares two hex hashes in constant time; false for different lengths or anything not lower-case hex. */
export function hashesEqual(a: string, b: string): boolean {
  if (a.length !== b.length || !HEX.test(a) || !HEX.test(b)) return false;
  return timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
}
