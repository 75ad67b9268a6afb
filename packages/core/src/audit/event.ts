import type { ActionKind } from '../types.js';

/**
 * One audit event per decision: every MCP action decided, and every request refused before a
 * decision (guard, authentication). Events never carry a credential or tool arguments; a refused
 * credential appears only as a reference (a key id or a hash prefix).
 */
export interface AuditEvent {
  /** ISO 8601 time of the decision. */
  readonly time: string;
  /** Id of the HTTP request, shared by the events of a batch. */
  readonly requestId: string;
  /** The principal, when authentication succeeded. */
  readonly principal?: { readonly id: string; readonly kind: string };
  /** JSON-RPC method, or the HTTP method for a refusal before classification or a stream operation. */
  readonly method: string;
  /** The action kind, or `request` for a refusal before classification. */
  readonly kind: ActionKind | 'request';
  /** Tool or prompt name, or resource URI. */
  readonly target?: string;
  readonly decision: 'allow' | 'deny';
  /** The rule that decided (`role:reader verb:read`, `authn:credential_invalid`, `guard:origin_not_allowed`…). */
  readonly rule: string;
  readonly reason: string;
  /** Microseconds from the request's arrival to the decision. */
  readonly latencyMicros: number;
  readonly clientAddress?: string;
  readonly userAgent?: string;
  /** A reference to a refused credential (key id, hash prefix), never the credential. */
  readonly credentialRef?: string;
}

/** Receives audit events. It must not throw; a slow sink should queue and return. */
export type AuditSink = (event: AuditEvent) => void;

/** The subset of a pino logger (or any leveled logger) that {@link loggerAuditSink} uses. */
export interface AuditLogger {
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
}

/**
 * An audit sink over a pino logger: allowed actions at `info`, denials at `warn`, under the key
 * `audit`. Events carry no secrets, so they may go wherever the logs go.
 */
export function loggerAuditSink(logger: AuditLogger): AuditSink {
  return function loggerAuditSink(event: AuditEvent): void {
    if (event.decision === 'deny') logger.warn({ audit: event }, `mcp-warden deny ${event.method}`);
    else logger.info({ audit: event }, `mcp-warden allow ${event.method}`);
  };
}
