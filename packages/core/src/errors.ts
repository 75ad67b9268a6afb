/**
 * The one error model of mcp-warden and its mapping to HTTP status, `WWW-Authenticate` challenge and
 * JSON-RPC error. Every stage throws a {@link WardenError} with a stable `code`; {@link toErrorResponse}
 * is the only place that turns one into an answer, so the status table of the design lives here alone.
 *
 * Status table (docs/errors.md has the long form):
 * | code                        | HTTP | challenge                               | JSON-RPC |
 * |-----------------------------|------|-----------------------------------------|----------|
 * | credential_missing          | 401  | `Bearer` (+ resource_metadata, scope)   | -32001   |
 * | credential_malformed        | 400  | `Bearer error="invalid_request"`        | -32001   |
 * | credential_invalid          | 401* | `Bearer error="invalid_token"`          | -32001   |
 * | insufficient_scope          | 403  | `Bearer error="insufficient_scope"`     | -32003   |
 * | forbidden (policy)          | 200  | none: a JSON-RPC error per request      | -32003   |
 * | origin_not_allowed          | 403  |                                         | -32000   |
 * | host_not_allowed            | 403  |                                         | -32000   |
 * | body_too_large              | 413  |                                         | -32000   |
 * | unsupported_media_type      | 415  |                                         | -32000   |
 * | unsupported_protocol_version| 400  |                                         | -32000   |
 * | parse_error                 | 400  |                                         | -32700   |
 * | invalid_request             | 400  |                                         | -32600   |
 * | header_mismatch             | 400  |                                         | -32020   |
 * | verifier_unavailable        | 503  |                                         | -32603   |
 * | too_many_attempts           | 429  | (+ Retry-After)                         | -32000   |
 * | rate_limited                | 429  | (+ Retry-After)                         | -32000   |
 * | audit_unavailable           | 503  | (+ Retry-After)                         | -32603   |
 * `*` 403 when `invalidCredentialStatus: 403` (the classic tutorial's behaviour).
 */

/** Stable codes of every failure mcp-warden answers. */
export type WardenErrorCode =
  | 'credential_missing'
  | 'credential_malformed'
  | 'credential_invalid'
  | 'insufficient_scope'
  | 'forbidden'
  | 'origin_not_allowed'
  | 'host_not_allowed'
  | 'body_too_large'
  | 'unsupported_media_type'
  | 'unsupported_protocol_version'
  | 'parse_error'
  | 'invalid_request'
  | 'header_mismatch'
  | 'verifier_unavailable'
  | 'too_many_attempts'
  | 'rate_limited'
  | 'audit_unavailable';

/** JSON-RPC error codes used by mcp-warden (JSON-RPC 2.0 §5.1 plus MCP's implementation-defined range). */
export const JsonRpcErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  InternalError: -32603,
  /** Generic server error used for transport-level refusals, as the MCP SDKs do. */
  ServerError: -32000,
  /** Authentication required or failed. */
  Unauthorized: -32001,
  /** The principal is authenticated but the policy does not allow the action. */
  Forbidden: -32003,
  /** MCP 2026-07-28 `HEADER_MISMATCH`: `Mcp-Method` / `Mcp-Name` disagree with the body. */
  HeaderMismatch: -32020,
} as const;

/** Extra facts an error may carry into its response. */
export interface WardenErrorDetails {
  /** Scopes that would make the request succeed (RFC 6750 §3 `scope`). */
  readonly scope?: readonly string[];
  /** Machine-readable data placed in the JSON-RPC error's `data` member. Never a secret. */
  readonly data?: Record<string, unknown>;
  /** Seconds after which a retry may succeed (`Retry-After`). */
  readonly retryAfterSeconds?: number;
  /** The id of the single JSON-RPC request refused, when it is known (else the answer's id is null). */
  readonly id?: string | number;
  readonly cause?: unknown;
}

/**
 * The base error of mcp-warden. `code` is stable and safe to switch on; `message` is for humans and
 * never contains a credential (callers pass ids or hash prefixes, never secrets).
 */
export class WardenError extends Error {
  override readonly name = 'WardenError';
  readonly code: WardenErrorCode;
  readonly details: WardenErrorDetails;

  constructor(code: WardenErrorCode, message: string, details: WardenErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.details = details;
  }
}

/** Options that shape how errors are answered. */
export interface ErrorResponseOptions {
  /** URL of the protected resource metadata document (RFC 9728), put in every challenge when set. */
  readonly resourceMetadataUrl?: string;
  /** Scopes named in the challenge of a 401 without credentials (RFC 6750 §3). */
  readonly challengeScopes?: readonly string[];
  /** `realm` of the challenge. */
  readonly realm?: string;
  /**
   * Status for a credential that is present but unknown, expired or revoked. RFC 6750 and the MCP
   * spec say 401 (the default); the classic tutorial answers 403.
   * @default 401
   */
  readonly invalidCredentialStatus?: 401 | 403;
}

/** A complete HTTP answer: what adapters write when the pipeline stops a request. */
export interface ErrorResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

const HTTP_STATUS: Record<WardenErrorCode, number> = {
  credential_missing: 401,
  credential_malformed: 400,
  credential_invalid: 401,
  insufficient_scope: 403,
  forbidden: 200,
  origin_not_allowed: 403,
  host_not_allowed: 403,
  body_too_large: 413,
  unsupported_media_type: 415,
  unsupported_protocol_version: 400,
  parse_error: 400,
  invalid_request: 400,
  header_mismatch: 400,
  verifier_unavailable: 503,
  too_many_attempts: 429,
  rate_limited: 429,
  audit_unavailable: 503,
};

const JSON_RPC_CODE: Record<WardenErrorCode, number> = {
  credential_missing: JsonRpcErrorCode.Unauthorized,
  credential_malformed: JsonRpcErrorCode.Unauthorized,
  credential_invalid: JsonRpcErrorCode.Unauthorized,
  insufficient_scope: JsonRpcErrorCode.Forbidden,
  forbidden: JsonRpcErrorCode.Forbidden,
  origin_not_allowed: JsonRpcErrorCode.ServerError,
  host_not_allowed: JsonRpcErrorCode.ServerError,
  body_too_large: JsonRpcErrorCode.ServerError,
  unsupported_media_type: JsonRpcErrorCode.ServerError,
  unsupported_protocol_version: JsonRpcErrorCode.ServerError,
  parse_error: JsonRpcErrorCode.ParseError,
  invalid_request: JsonRpcErrorCode.InvalidRequest,
  header_mismatch: JsonRpcErrorCode.HeaderMismatch,
  verifier_unavailable: JsonRpcErrorCode.InternalError,
  too_many_attempts: JsonRpcErrorCode.ServerError,
  rate_limited: JsonRpcErrorCode.ServerError,
  audit_unavailable: JsonRpcErrorCode.InternalError,
};

/** RFC 6750 §3 error codes by warden code; codes without one get a bare challenge or none. */
const BEARER_ERROR: Partial<Record<WardenErrorCode, string>> = {
  credential_malformed: 'invalid_request',
  credential_invalid: 'invalid_token',
  insufficient_scope: 'insufficient_scope',
};

/** The JSON-RPC error code a warden code maps to. */
export function jsonRpcCodeFor(code: WardenErrorCode): number {
  return JSON_RPC_CODE[code];
}

/**
 * Quotes a value for an auth-param (RFC 9110 §5.6.4 quoted-string). Characters that cannot appear
 * in a quoted-string (controls, CR/LF) are dropped so no input can split or forge a header.
 */
export function quoteAuthParam(value: string): string {
  let out = '';
  for (const ch of value) {
    const c = ch.codePointAt(0) ?? 0;
    if (c < 0x20 || c === 0x7f || c > 0x7e) continue;
    out += ch === '"' || ch === '\\' ? `\\${ch}` : ch;
  }
  return `"${out}"`;
}

function bearerChallenge(error: WardenError, options: ErrorResponseOptions): string | undefined {
  const params: string[] = [];
  if (options.realm !== undefined) params.push(`realm=${quoteAuthParam(options.realm)}`);
  const bearerError = BEARER_ERROR[error.code];
  if (bearerError !== undefined) {
    params.push(`error="${bearerError}"`);
    params.push(`error_description=${quoteAuthParam(error.message)}`);
  }
  const scopes = error.details.scope ?? (error.code === 'credential_missing' ? options.challengeScopes : undefined);
  if (scopes !== undefined && scopes.length > 0) params.push(`scope=${quoteAuthParam(scopes.join(' '))}`);
  if (options.resourceMetadataUrl !== undefined) {
    params.push(`resource_metadata=${quoteAuthParam(options.resourceMetadataUrl)}`);
  }
  return params.length === 0 ? 'Bearer' : `Bearer ${params.join(', ')}`;
}

/** Serialises a JSON-RPC error response. `id` is null when the request's id is unknown. */
export function jsonRpcErrorBody(
  id: string | number | null,
  code: number,
  message: string,
  data?: Record<string, unknown>,
): string {
  return JSON.stringify({ jsonrpc: '2.0', id, error: data === undefined ? { code, message } : { code, message, data } });
}

/**
 * Maps an error to the HTTP answer the design's status table prescribes. Unknown errors become a
 * 500 with a generic message: internals and stack traces never reach the caller.
 */
export function toErrorResponse(error: unknown, options: ErrorResponseOptions = {}): ErrorResponse {
  if (!(error instanceof WardenError)) {
    return {
      status: 500,
      headers: { 'content-type': 'application/json' },
      body: jsonRpcErrorBody(null, JsonRpcErrorCode.InternalError, 'Internal error'),
    };
  }
  let status = HTTP_STATUS[error.code];
  if (error.code === 'credential_invalid' && options.invalidCredentialStatus === 403) status = 403;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (
    error.code === 'credential_missing' ||
    error.code === 'credential_malformed' ||
    error.code === 'credential_invalid' ||
    error.code === 'insufficient_scope'
  ) {
    const challenge = bearerChallenge(error, options);
    if (challenge !== undefined) headers['www-authenticate'] = challenge;
  }
  // The rest of an oversized body is never read: close the connection rather than leave it stalled.
  if (error.code === 'body_too_large') headers['connection'] = 'close';
  if (error.details.retryAfterSeconds !== undefined) {
    headers['retry-after'] = String(Math.max(0, Math.ceil(error.details.retryAfterSeconds)));
  }
  return { status, headers, body: jsonRpcErrorBody(error.details.id ?? null, JSON_RPC_CODE[error.code], error.message, error.details.data) };
}
