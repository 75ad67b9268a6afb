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

/** Seals events after a head: assigns seqs and hashes. */
export function sealEvents(
  head: { readonly seq: number; readonly hash: string },
  events: readonly AuditEvent[],
): StoredAuditEvent[] {
  let seq = head.seq;
  let prev = head.hash;
  return events.map((event) => {
    seq += 1;
    const digest = eventHash(prev, seq, event);
    // Object.assign, not a spread: this runs once per audited decision (a spread costs ~10× more here).
    const sealed: StoredAuditEvent = Object.assign({}, event, { seq, prevHash: prev, hash: digest });
    prev = digest;
    return sealed;
  });
}
