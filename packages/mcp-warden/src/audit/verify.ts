/** Verification of the audit hash chain: the first changed, missing or out-of-place event. */
import type { AuditHead, StoredAuditEvent } from '../store/types.js';
import { eventHash } from './chain.js';

/** The verdict of {@link verifyChain}. */
export type ChainVerdict =
  | { readonly ok: true; readonly events: number; readonly head: { readonly seq: number; readonly hash: string } }
  | {
      readonly ok: false;
      readonly events: number;
      /** The seq of the first event that does not check out. */
      readonly seq: number;
      readonly problem: 'changed' | 'missing' | 'broken-link' | 'head-mismatch' | 'outside';
      readonly message: string;
    };

/**
 * Walks events in seq order from the anchor retention left (or genesis) and reports the first one
 * whose content does not match its hash (`changed`), whose predecessor is not the one it names
 * (`broken-link`: reordered, replaced or re-hashed), a gap (`missing`), an event that is no link of
 * the chain (`outside`: at or before the anchor, or a seq seen before), or a head that the events do
 * not reach or that names another event (`head-mismatch`: events removed from the end, or the head
 * rewritten).
 *
 * `head` is read before the events, and a gateway may go on writing meanwhile: events after the
 * head are checked as the chain's continuation, as every other, and the head must be the event at
 * its seq. `headAfter`, when given, reads the head again once the walk is done: a writer moves the
 * head in the transaction that adds its events, so no event read may lie beyond that head (a row
 * added behind the store's back, without the head, does). The verdict's head is the last event
 * walked.
 */
export async function verifyChain(head: AuditHead, events: AsyncIterable<StoredAuditEvent>, headAfter?: () => Promise<AuditHead>): Promise<ChainVerdict> {
  let expected = head.prunedSeq + 1;
  let prev = head.prunedHash;
  let count = 0;
  const headMismatch = (seq: number, message: string): ChainVerdict => ({ ok: false, events: count, seq, problem: 'head-mismatch', message });
  if (head.seq === head.prunedSeq && head.hash !== head.prunedHash) return headMismatch(head.seq, `the chain head (event ${head.seq}) does not match the anchor retention left`);
  for await (const event of events) {
    if (event.seq < expected) {
      const where = event.seq <= head.prunedSeq ? `at or before the anchor retention left (event ${head.prunedSeq})` : `a second event ${event.seq}`;
      return { ok: false, events: count, seq: event.seq, problem: 'outside', message: `event ${event.seq} is not part of the chain: ${where}` };
    }
    if (event.seq > expected) {
      return { ok: false, events: count, seq: expected, problem: 'missing', message: `event ${expected} is missing (the next event is ${event.seq})` };
    }
    if (eventHash(event.prevHash, event.seq, event) !== event.hash) {
      return { ok: false, events: count, seq: event.seq, problem: 'changed', message: `event ${event.seq} was changed: its content does not match its hash` };
    }
    if (event.prevHash !== prev) {
      return {
        ok: false,
        events: count,
        seq: event.seq,
        problem: 'broken-link',
        message: `event ${event.seq} does not follow event ${event.seq - 1}: one of them was reordered, replaced or re-hashed`,
      };
    }
    if (event.seq === head.seq && event.hash !== head.hash) return headMismatch(head.seq, `the chain head (event ${head.seq}) does not match event ${head.seq}`);
    prev = event.hash;
    expected += 1;
    count += 1;
  }
  const last = expected - 1;
  if (last < head.seq) return headMismatch(expected, `events ${expected}..${head.seq} are missing from the end of the log`);
  if (last > head.seq) {
    const final = headAfter === undefined ? head : await headAfter();
    if (last > final.seq) return headMismatch(final.seq + 1, `events ${final.seq + 1}..${last} lie beyond the chain head (event ${final.seq}): rows added without moving the head`);
    if (last === final.seq && prev !== final.hash) return headMismatch(last, `the chain head (event ${final.seq}) does not match event ${final.seq}`);
  }
  return { ok: true, events: count, head: { seq: last, hash: prev } };
}
