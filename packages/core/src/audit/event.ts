import type { ActionKind } from '../types.js';

/**
 * One audit event per decision: every MCP action decided, and every request refused before a
 * decision (guard, authentication, rate limit). Events never carry a credential; a refused credential
 * appears only as a reference (a key id or a hash prefix). Arguments are recorded only for the tools
 * `recordArguments` names, with secret-looking fields redacted.
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
  /** Tool or prompt name, or resource URI; for a `subscriptions/listen` following resources, the JSON array of their URIs. */
  readonly target?: string;
  /** The upstream (gateway) or server label the request was for. */
  readonly upstream?: string;
  /** Tool or prompt arguments, only when recording was asked for, secret-looking fields redacted. */
  readonly arguments?: Readonly<Record<string, unknown>>;
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

/**
 * A sink that can run out of room (a bounded queue in front of a store). While `accepting()` is
 * false the pipeline refuses new requests with 503 rather than decide without a record.
 */
export interface AuditWriter {
  write(event: AuditEvent): void;
  accepting(): boolean;
}

const SECRET_KEY = /pass(word|phrase)?|secret|token|api[-_]?key|auth|credential|cookie|session|private[-_]?key|signature/i;

/**
 * Copies arguments with the values of secret-looking keys (password, token, api_key, cookie…)
 * replaced by `[REDACTED]`, at any depth (nesting past 16 levels is cut as `[TRUNCATED]`).
 */
export function redactArguments(value: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return redact(value, 0) as Record<string, unknown>;
}

function redact(value: unknown, depth: number): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= 16) return '[TRUNCATED]';
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = SECRET_KEY.test(key) ? '[REDACTED]' : redact(v, depth + 1);
  return out;
}

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
