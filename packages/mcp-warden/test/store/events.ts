/** Audit events for the store tests. */
import type { AuditEvent } from '@mcp-warden/core';

/** A fixed time the tests count from (ms since the epoch). */
export const T0 = Date.UTC(2026, 0, 15, 9, 0, 0);

/** An allowed tool call at `T0` with no optional fields, changed by `overrides`. */
export function auditEvent(overrides: Partial<AuditEvent> = {}): AuditEvent {
  return {
    time: new Date(T0).toISOString(),
    requestId: 'req-1',
    method: 'tools/call',
    kind: 'tool',
    decision: 'allow',
    rule: 'role:reader verb:read',
    reason: 'allowed by role reader',
    latencyMicros: 120,
    ...overrides,
  };
}

/** An event at `T0 + offsetMs`. */
export function auditEventAt(offsetMs: number, overrides: Partial<AuditEvent> = {}): AuditEvent {
  return auditEvent({ time: new Date(T0 + offsetMs).toISOString(), ...overrides });
}
