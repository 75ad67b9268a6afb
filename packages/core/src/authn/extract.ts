import { WardenError } from '../errors.js';
import type { RequestView } from '../http.js';
import type { Credential } from '../types.js';

/** Where credentials may come from. */
export interface ExtractOptions {
  /**
   * Accept `X-API-Key: <key>` besides `Authorization: Bearer <token>`.
   * @default true
   */
  readonly apiKeyHeader?: boolean;
  /**
   * The classic tutorial's raw mode: the whole `Authorization` value is the credential
   * (`Authorization: secret123`). `Bearer <token>` is still understood. Off by default: it is not RFC 6750.
   * @default false
   */
  readonly rawAuthorization?: boolean;
}

/** RFC 6750 §2.1 `b64token` (token68 of RFC 9110 §11.2). */
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
/** A raw credential or API key: visible ASCII without separators that could smuggle a second value. */
const RAW_CREDENTIAL = /^[\x21-\x7e]+$/;

function malformed(description: string): WardenError {
  return new WardenError('credential_malformed', description);
}

/**
 * Extracts exactly one credential (RFC 6750 §2: a client MUST NOT use more than one method).
 * Returns `undefined` when the request carries none (or only another scheme, such as Basic). Throws `credential_malformed` (400) for a
 * repeated or comma-joined `Authorization`, a malformed bearer token, or two credentials at once.
 * Tokens in the query string are never read: `access_token=` in the URL alone counts as no
 * credential (401), and next to a header credential it is a second method (400).
 */
export function extractCredential(request: RequestView, options: ExtractOptions = {}): Credential | undefined {
  let credential: Credential | undefined;
  const authorization = request.header('authorization');
  if (authorization !== undefined) {
    if (request.headerCount('authorization') > 1) throw malformed('Only one Authorization header is allowed');
    credential = parseAuthorization(authorization, options.rawAuthorization === true);
  }
  if (options.apiKeyHeader !== false) {
    const apiKey = request.header('x-api-key');
    if (apiKey !== undefined) {
      if (request.headerCount('x-api-key') > 1) throw malformed('Only one X-API-Key header is allowed');
      const value = apiKey.trim();
      if (!RAW_CREDENTIAL.test(value) || value.includes(',')) throw malformed('The X-API-Key header is malformed');
      if (credential !== undefined) throw twoCredentials();
      credential = { source: 'api-key', value };
    }
  }
  if (credential !== undefined && hasQueryAccessToken(request.url)) throw twoCredentials();
  return credential;
}

function twoCredentials(): WardenError {
  return malformed('Send exactly one credential: use one of Authorization or X-API-Key, and never the query string');
}

/** Parses `Authorization`; `undefined` for a well-formed header of another scheme (answered with a challenge). */
function parseAuthorization(header: string, raw: boolean): Credential | undefined {
  const value = header.trim();
  const space = value.indexOf(' ');
  const scheme = space < 0 ? value : value.slice(0, space);
  if (space > 0 && scheme.toLowerCase() === 'bearer') {
    const token = value.slice(space + 1).trim();
    if (token === '' || !TOKEN68.test(token)) {
      throw malformed('The Authorization header is malformed: expected "Bearer <token>"');
    }
    return { source: 'bearer', value: token };
  }
  if (raw) {
    if (!RAW_CREDENTIAL.test(value) || value.includes(',')) {
      throw malformed('The Authorization header is malformed');
    }
    return { source: 'raw-authorization', value };
  }
  if (space < 0 || !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(scheme)) {
    throw malformed('The Authorization header is malformed: expected "Bearer <token>"');
  }
  return undefined;
}

function hasQueryAccessToken(url: string): boolean {
  const q = url.indexOf('?');
  if (q < 0) return false;
  return new URLSearchParams(url.slice(q + 1)).has('access_token');
}
