/**
 * The audit hash chain. Each event's hash covers its content and the previous event's hash, so a
 * changed, removed or reordered event breaks the chain from that point on. Content is hashed in a
 * fixed field order (a canonical form), never via object key order.
 */
import { hash } from 'node:crypto';
import type { AuditEvent } from '@mcp-warden/core';
import type { StoredAuditEvent } from '../store/types.js';

/** The `prevHash` of the first event. */
export const GENESIS_HASH = '0'.repeat(64);

/** The canonical text of an event and its seq: a JSON array in a fixed order. */
export function canonicalEvent(seq: number, e: AuditEvent): string {
  return JSON.stringify([
    seq,
    e.time,
    e.requestId,
    e.principal?.id ?? null,
    e.principal?.kind ?? null,
    e.upstream ?? null,
    e.method,
    e.kind,
    e.target ?? null,
    e.decision,
    e.rule,
    e.reason,
    e.latencyMicros,
    e.clientAddress ?? null,
    e.userAgent ?? null,
    e.credentialRef ?? null,
    e.arguments === undefined ? null : JSON.stringify(e.arguments),
  ]);
}

/** The hash of an event at `seq` following `prevHash`. */
export function eventHash(prevHash: string, seq: number, event: AuditEvent): string {
  return hash('sha256', `${prevHash}\n${canonicalEvent(seq, event)}`, 'hex');
}

/** A lone surrogate (half of a UTF-16 pair): text that is not well-formed Unicode. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

function wellFormed(text: string): string {
  return LONE_SURROGATE.test(text) ? text.replace(LONE_SURROGATES, '\uFFFD') : text;
}

/**
 * The event with its text made well-formed Unicode (each lone surrogate becomes U+FFFD), or the
 * event itself when it already is. A request can put a lone surrogate in a target or a method
 * (`"\ud800"` in its JSON), and the stores cannot keep one: SQLite stores it as bytes that read back
 * as U+FFFD, PostgreSQL as one U+FFFD. Sealed as it came, the event would then fail its own hash,
 * and `audit verify` would stop there on an untouched log. `arguments` are stored as JSON text,
 * where a lone surrogate is an escape, and survive as they are.
 */
export function wellFormedEvent(event: AuditEvent): AuditEvent {
  let clean: Record<string, unknown> | undefined;
  for (const key in event) {
    const value = (event as unknown as Record<string, unknown>)[key];
    if (typeof value === 'string' && LONE_SURROGATE.test(value)) (clean ??= { ...event })[key] = wellFormed(value);
  }
  const principal = event.principal;
  if (principal !== undefined && (LONE_SURROGATE.test(principal.id) || LONE_SURROGATE.test(principal.kind))) {
    (clean ??= { ...event })['principal'] = { id: wellFormed(principal.id), kind: wellFormed(principal.kind) };
  }
  return clean === undefined ? event : (clean as unknown as AuditEvent);
}

/** Seals events after a head: assigns seqs and hashes (of their well-formed text, see {@link wellFormedEvent}). */
export function sealEvents(
  head: { readonly seq: number; readonly hash: string },
  events: readonly AuditEvent[],
): StoredAuditEvent[] {
  let seq = head.seq;
  let prev = head.hash;
  return events.map((written) => {
    const event = wellFormedEvent(written);
    seq += 1;
    const digest = eventHash(prev, seq, event);
    // Object.assign, not a spread: this runs once per audited decision (a spread costs ~10× more here).
    const sealed: StoredAuditEvent = Object.assign({}, event, { seq, prevHash: prev, hash: digest });
    prev = digest;
    return sealed;
  });
}
