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

/**
 * SSE event ids of an HTTP upstream, sealed to the caller: the client gets `<base64url of the
 * upstream's id>.<MAC>`, signed like a session id for the upstream's name plus `#events` (a name
 * never has '#', so an event id never passes for a session id). A `Last-Event-ID` that was not sealed
 * for the same principal opens to nothing, so one principal cannot resume another's stream from an
 * upstream whose event store spans sessions; any gateway instance sharing the key can open it.
 */
export class EventIds {
  readonly #signer: SessionSigner;
  readonly #scope: string;

  constructor(signer: SessionSigner, upstream: string) {
    this.#signer = signer;
    this.#scope = `${upstream}#events`;
  }

  /** The id the client gets for the upstream's event id (its bytes). */
  seal(principalId: string, id: Buffer): string {
    return this.#signer.sign(this.#scope, principalId, id.toString('base64url'));
  }

  /** The upstream's event id (bytes as latin1 code units, what an HTTP header carries), or undefined when `sealed` is not one sealed for this principal. */
  open(principalId: string, sealed: string | readonly string[]): string | undefined {
    if (typeof sealed !== 'string') return undefined;
    const inner = this.#signer.verify(this.#scope, principalId, sealed.trim());
    if (inner === undefined || !/^[A-Za-z0-9_-]*$/.test(inner)) return undefined;
    return Buffer.from(inner, 'base64url').toString('latin1');
  }
}
