/**
 * Session ids handed to clients are bound to the principal and signed, so a session created by one
 * principal is unknown (404) to every other, and any gateway instance sharing the key can check them.
 * Format: `<inner>.<mac>`: the inner id (random, or the upstream's own) and a 128-bit HMAC-SHA-256 of
 * upstream, principal and inner id; visible ASCII only (MCP transports, "Session Management").
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export class SessionSigner {
  readonly #key: Buffer;

  constructor(key: string | Buffer) {
    this.#key = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
    if (this.#key.length < 32) throw new TypeError('the session signing key must be at least 32 bytes');
  }

  #mac(upstream: string, principalId: string, inner: string): Buffer {
    return createHmac('sha256', this.#key).update(`${upstream}\n${principalId}\n${inner}`).digest().subarray(0, 16);
  }

  /** A new signed id for a fresh inner id. */
  mint(upstream: string, principalId: string): string {
    return this.sign(upstream, principalId, randomBytes(16).toString('base64url'));
  }

  /** Signs an inner id (which must not contain '.' or non-visible characters). */
  sign(upstream: string, principalId: string, inner: string): string {
    return `${inner}.${this.#mac(upstream, principalId, inner).toString('base64url')}`;
  }

  /** The inner id when `sessionId` was signed for this upstream and principal; otherwise undefined. */
  verify(upstream: string, principalId: string, sessionId: string): string | undefined {
    const dot = sessionId.lastIndexOf('.');
    if (dot <= 0 || !/^[\x21-\x7e]+$/.test(sessionId)) return undefined;
    const inner = sessionId.slice(0, dot);
    // Compare the encoded text, not decoded bytes: base64url ignores the last character's spare bits,
    // so decoding would accept several spellings of one id.
    const given = Buffer.from(sessionId.slice(dot + 1), 'utf8');
    const expected = Buffer.from(this.#mac(upstream, principalId, inner).toString('base64url'), 'utf8');
    return given.length === expected.length && timingSafeEqual(given, expected) ? inner : undefined;
  }
}
