/**
 * `@mcp-warden/core`: authentication, MCP-aware authorization, list filtering and audit hooks for
 * MCP servers. The stages, in request order: guard → authn → classify → authz → (forward) → filter.
 * Adapters live at `@mcp-warden/core/express`, `/hono` and `/node`.
 */
export { type AuditEvent, type AuditLogger, type AuditSink, type AuditWriter, loggerAuditSink, redactArguments } from './audit/event.js';
export { type AuthenticationOutcome, authenticate } from './authn/authenticate.js';
export { type ExtractOptions, extractCredential } from './authn/extract.js';
export type { AuthAttempt, AuthAttemptLimiter, RequestLimiter } from './authn/limiter.js';
export { type ClaimMapping, type ClaimRoleRule, claimAt, claimValues, rolesFromClaims, scopesFromClaims } from './authn/claims.js';
export { type IntrospectionIssuerOptions, type IntrospectionVerifierOptions, introspectionVerifier } from './authn/introspection.js';
export { ASYMMETRIC_ALGORITHMS, TrustedIssuer, type TrustedIssuerOptions, type JwtVerifierOptions, jwtVerifier } from './authn/jwt.js';
export { canonicalResourceUri, resourceMetadata, type ResourceMetadataOptions, resourceMetadataUrl } from './authn/resource-metadata.js';
export { requireHttpsUrl } from './authn/https-url.js';
export { VerifiedTokenCache } from './authn/token-cache.js';
export { type StaticTokenEntry, type StaticTokensOptions, sha256Hex, staticTokens } from './authn/static-tokens.js';
export { ToolAnnotationRegistry } from './authz/annotations.js';
export { compilePattern, foldForComparison, unsafeNameReason, unsafeUriReason } from './authz/patterns.js';
export { type PatternRules, Policy, type PolicyOptions, type RoleDefinition, requiredVerb } from './authz/policy.js';
export {
  type ErrorResponse,
  type ErrorResponseOptions,
  JsonRpcErrorCode,
  WardenError,
  type WardenErrorCode,
  jsonRpcErrorBody,
  toErrorResponse,
} from './errors.js';
export { createGuard, DEFAULT_MAX_BODY_BYTES, DEFAULT_PROTOCOL_VERSIONS, type GuardOptions, createOriginCheck, isLoopbackHost } from './guard/guard.js';
export type { RequestView } from './http.js';
export { checkMcpHeaders, type ClassifiedBody, classifyBody, classifyMessage, classifyParsed, decodeMcpHeaderValue } from './mcp/classify.js';
export { type EventIdSeal, filterJsonAnswer, filterJsonBody, filterListResult, type PendingLists, pendingListsOf, SseListFilter, WITHHELD, withheldBody } from './mcp/filter.js';
export { type FilteredResponse, filterNodeResponse } from './mcp/filter-node.js';
export { filterWebResponse } from './mcp/filter-web.js';
export { nodeRequestView, readNodeBody } from './node-http.js';
export { type BodySource, createWarden, type PipelineResult, type Warden, type WardenOptions } from './pipeline.js';
export type * from './types.js';
