/**
 * The services a configuration describes, wired once: store, key service and verifier, audit queue,
 * auth limiter, and the pipeline options built from them. The CLI and the HTTP faces share them.
 */
import {
  type AuditSink,
  type AuditWriter,
  type AuthAttemptLimiter,
  type CredentialVerifier,
  type RequestLimiter,
  type IntrospectionIssuerOptions,
  Policy,
  TrustedIssuer,
  type WardenOptions,
  compilePattern,
  introspectionVerifier,
  jwtVerifier,
  requireHttpsUrl,
  resourceMetadataUrl,
  staticTokens,
} from '@mcp-warden/core';
import type { JSONWebKeySet } from 'jose';
import { AuditQueue } from './audit/writer.js';
import { type AuditBatchSink, databaseSink, jsonlFileSink, stdoutSink } from './audit/sinks.js';
import type { WardenConfig } from './config/schema.js';
import { type ApiKeyVerifier, createApiKeyVerifier } from './keys/verifier.js';
import { KeyService } from './keys/service.js';
import { createAuthLimiter } from './ratelimit/auth-limiter.js';
import { type LimiterBackend, limiterBackendOf } from './ratelimit/backend.js';
import { createRequestLimiter } from './ratelimit/request-limiter.js';
import { openStore } from './store/open.js';
import type { Store } from './store/types.js';
import { resolve, dirname } from 'node:path';

export interface Services {
  readonly config: WardenConfig;
  readonly store: Store;
  readonly keys: KeyService;
  readonly policy: Policy;
  /** Present when API keys are enabled. */
  readonly keyVerifier?: ApiKeyVerifier;
  readonly audit: AuditQueue;
  /** Where rate-limit counters live, brute force and request rate (memory, or Redis with `auth.rateLimit.redis`). */
  readonly limiters: LimiterBackend;
  /** Options for `createWarden` / the adapters, ready to use; spread and add your own. */
  readonly wardenOptions: WardenOptions;
  close(): Promise<void>;
}

export interface OpenServicesOptions {
  /** The config file's path, to resolve relative sink paths against. */
  readonly configFile?: string;
  /** Extra audit sinks (a pino logger sink, a test's collector). */
  readonly extraAudit?: readonly (AuditSink | AuditWriter)[];
  /** Told about background failures (audit sinks, last-used writes). */
  readonly onError?: (error: unknown, where: string) => void;
}

/** What the pipeline options are built from besides the configuration. */
export interface PipelineParts {
  readonly keyVerifier: ApiKeyVerifier | undefined;
  readonly audit: AuditQueue;
  readonly extraAudit: readonly (AuditSink | AuditWriter)[];
  /** Reuse a limiter (its counters) across reloads; a new one is made when absent. */
  readonly authLimiter?: AuthAttemptLimiter;
  /** Where a new limiter keeps its counters. @default memory */
  readonly limiterBackend?: LimiterBackend;
  /** Reuse a request limiter (its counters) across reloads; a new one is made when absent and configured. */
  readonly requestLimiter?: RequestLimiter;
  /** Token issuers (from {@link oauthIssuersOf}); with `resource`, OAuth access tokens are verified for it. */
  readonly oauth?: OAuthIssuers;
  /** The canonical URI of the protected MCP endpoint these options serve (token audience, metadata URL). */
  readonly resource?: string;
}

/** The issuers a configuration trusts, built once per configuration so key sets are shared by every path. */
export interface OAuthIssuers {
  /** JWT issuers: the configured IdPs, and the built-in authorization server when it runs. */
  readonly jwt: readonly TrustedIssuer[];
  readonly introspection: readonly IntrospectionIssuerOptions[];
  /** Issuer identifiers for protected resource metadata's `authorization_servers`. */
  readonly authorizationServers: readonly string[];
  /** Scopes for metadata and the 401 challenge (never `offline_access`). */
  readonly scopes: readonly string[];
}

/** The built-in authorization server as a token issuer: its identifier and its current public keys. */
export interface BuiltinIssuer {
  readonly issuer: string;
  readonly jwks: () => JSONWebKeySet;
}

/**
 * What keeps the built-in authorization server from running at `baseUrl` (the gateway's canonical
 * URL): its issuer must be an origin (no path), https unless on a loopback address (MCP
 * authorization, "Communication Security"), and a federated provider https too.
 */
export function authorizationServerProblems(config: WardenConfig, baseUrl: string): string[] {
  const problems: string[] = [];
  const url = new URL(baseUrl);
  if (url.pathname !== '/' && url.pathname !== '') {
    problems.push(`server.publicUrl: the built-in authorization server needs the gateway at the root of its origin (got ${baseUrl}); serve it at https://host/ and put upstreams under it`);
  }
  const loopback = url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !loopback) {
    problems.push(
      `server.publicUrl: the built-in authorization server needs an https URL (got ${baseUrl}); plain http is accepted on loopback addresses only. Put TLS in front and set server.publicUrl to its https URL.`,
    );
  }
  const federation = config.auth.oauth.authorizationServer.federation;
  if (federation !== undefined) {
    try {
      requireHttpsUrl(federation.issuer, 'auth.oauth.authorizationServer.federation.issuer');
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  return problems;
}

/** The principal-id prefix of tokens from the built-in authorization server. */
export const BUILTIN_ISSUER_NAME = 'local';

/**
 * The token issuers `auth.oauth` names, plus the built-in authorization server when given. Its
 * tokens carry mcp-warden roles in a `roles` claim and follow RFC 9068. Undefined when OAuth is off.
 */
export function oauthIssuersOf(config: WardenConfig, builtin?: BuiltinIssuer): OAuthIssuers | undefined {
  const oauth = config.auth.oauth;
  const jwt: TrustedIssuer[] = [];
  const introspection: IntrospectionIssuerOptions[] = [];
  const servers: string[] = [];
  if (builtin !== undefined) {
    jwt.push(new TrustedIssuer({ name: BUILTIN_ISSUER_NAME, issuer: builtin.issuer, jwks: builtin.jwks, profile: 'rfc9068', algorithms: ['ES256', 'RS256', 'PS256', 'EdDSA'], claims: { roles: [{ claim: 'roles' }] } }));
    servers.push(builtin.issuer);
  }
  const seen = new Set<string>();
  for (const [i, issuer] of oauth.issuers.entries()) {
    if (seen.has(issuer.issuer)) throw new TypeError(`auth.oauth.issuers[${i}].issuer: ${issuer.issuer} is listed twice; one entry per issuer (give it jwksUri and introspection both when it needs both)`);
    seen.add(issuer.issuer);
    if (builtin !== undefined && issuer.issuer === builtin.issuer) throw new TypeError(`auth.oauth.issuers[${i}].issuer: ${issuer.issuer} is the built-in authorization server's own issuer`);
    requireHttpsUrl(issuer.issuer, `auth.oauth.issuers[${i}].issuer`);
    if (issuer.introspection?.endpoint !== undefined) requireHttpsUrl(issuer.introspection.endpoint, `auth.oauth.issuers[${i}].introspection.endpoint`);
    if (issuer.name === BUILTIN_ISSUER_NAME && builtin !== undefined) throw new TypeError(`auth.oauth.issuers[${i}].name: "${BUILTIN_ISSUER_NAME}" is the built-in authorization server's`);
    const claims = { subject: issuer.claims.subject, scopes: issuer.claims.scopes, roles: issuer.claims.roles, defaultRoles: issuer.claims.defaultRoles };
    const common = { name: issuer.name, issuer: issuer.issuer, claims, ...(issuer.audience === undefined ? {} : { audience: issuer.audience }) };
    if (issuer.introspection === undefined || issuer.jwksUri !== undefined) {
      jwt.push(
        new TrustedIssuer({
          ...common,
          ...(issuer.jwksUri === undefined ? {} : { jwksUri: issuer.jwksUri }),
          algorithms: issuer.algorithms,
          clockToleranceSeconds: Math.ceil(issuer.clockSkew / 1000),
          profile: issuer.profile,
          jwksCooldownMs: issuer.jwksCooldown,
        }),
      );
    }
    if (issuer.introspection !== undefined) {
      const i7n = issuer.introspection;
      introspection.push({ ...common, clientId: i7n.clientId, clientSecret: i7n.clientSecret, cacheTtlMs: i7n.cacheTtl, ...(i7n.endpoint === undefined ? {} : { endpoint: i7n.endpoint }) });
    }
    if (!servers.includes(issuer.issuer)) servers.push(issuer.issuer);
  }
  if (servers.length === 0) return undefined;
  const scopes = (oauth.challengeScopes ?? Object.keys(oauth.scopes)).filter((s) => s !== 'offline_access');
  return { jwt, introspection, authorizationServers: servers, scopes };
}

/**
 * The pipeline options a configuration implies: verifiers (API keys, then static tokens), audit,
 * limiter, roles, argument recording. Re-run on reload; the store-backed parts are passed in.
 */
export function buildPipelineOptions(
  config: WardenConfig,
  parts: PipelineParts,
): WardenOptions & { readonly authLimiter: AuthAttemptLimiter; readonly requestLimiter?: RequestLimiter } {
  const recorded = config.audit.recordArguments.map((p, i) => compilePattern(p, `audit.recordArguments[${i}]`));
  return {
    ...credentialOptions(config, parts.keyVerifier, parts.oauth, parts.resource),
    policy: new Policy({
      roles: config.roles,
      scopes: config.auth.oauth.scopes,
      ...(config.deny === undefined ? {} : { deny: config.deny }),
      ...(config.toolAnnotations === undefined ? {} : { toolAnnotations: config.toolAnnotations }),
    }),
    audit: [parts.audit, ...parts.extraAudit],
    authLimiter: parts.authLimiter ?? createAuthLimiter(config.auth.rateLimit, parts.limiterBackend),
    ...(config.requestRateLimit === undefined
      ? {}
      : { requestLimiter: parts.requestLimiter ?? createRequestLimiter(config.requestRateLimit.perPrincipal, parts.limiterBackend) }),
    ...(recorded.length === 0 ? {} : { recordArguments: (action) => action.target !== undefined && recorded.some((p) => p.exact.test(action.target as string)) }),
  };
}

/**
 * The verifiers, in order, and the challenge settings for one protected endpoint: API keys, OAuth
 * JWTs for `resource` (its audience), static tokens, then introspection (static tokens are matched
 * locally, so only what matches none costs a round trip). Without `resource` or OAuth, no OAuth.
 */
export function credentialOptions(
  config: WardenConfig,
  keyVerifier: CredentialVerifier | undefined,
  oauth: OAuthIssuers | undefined,
  resource: string | undefined,
): Pick<WardenOptions, 'verifiers' | 'resourceMetadataUrl' | 'challengeScopes'> {
  const verifiers: CredentialVerifier[] = [];
  if (keyVerifier !== undefined) verifiers.push(keyVerifier);
  const forResource = resource === undefined ? undefined : oauth;
  if (forResource !== undefined && forResource.jwt.length > 0) verifiers.push(jwtVerifier({ issuers: forResource.jwt, audience: resource as string }));
  const introspect = forResource !== undefined && forResource.introspection.length > 0;
  if (config.auth.staticTokens.length > 0) verifiers.push(staticTokens(config.auth.staticTokens, { passUnknown: introspect }));
  if (introspect) verifiers.push(introspectionVerifier({ issuers: forResource.introspection, audience: resource as string }));
  if (forResource === undefined) return { verifiers };
  return {
    verifiers,
    resourceMetadataUrl: resourceMetadataUrl(resource as string),
    ...(forResource.scopes.length === 0 ? {} : { challengeScopes: forResource.scopes }),
  };
}

/** Opens everything a configuration describes. Close it to flush the audit queue and last-used times. */
export async function openServices(config: WardenConfig, options: OpenServicesOptions = {}): Promise<Services> {
  const store = await openStore(config.store);
  const onError = options.onError ?? (() => {});
  const base = options.configFile === undefined ? process.cwd() : dirname(resolve(options.configFile));
  const keyVerifier = config.auth.apiKeys.enabled
    ? createApiKeyVerifier(store.keys, { cacheTtlMs: config.auth.apiKeys.cacheTtl, onError: (e) => onError(e, 'api-keys') })
    : undefined;
  const keys = new KeyService(store.keys, { onChange: (id) => keyVerifier?.invalidate(id) });
  const sinks: AuditBatchSink[] = config.audit.sinks.map((sink) => {
    if (sink === 'database') return databaseSink(store.audit);
    if (sink === 'stdout') return stdoutSink();
    return jsonlFileSink(resolve(base, sink.jsonl));
  });
  const audit = new AuditQueue({
    sinks,
    capacity: config.audit.queue.capacity,
    batchSize: config.audit.queue.batchSize,
    flushIntervalMs: config.audit.queue.flushInterval,
    onFull: config.audit.queue.onFull,
    onError: (e, sink) => onError(e, `audit:${sink}`),
  });
  const limiters = limiterBackendOf(config.auth.rateLimit, (e) => onError(e, 'rate-limit store'));
  const close = async (): Promise<void> => {
    // Each part is closed even when one before it fails (a Redis client left open would keep
    // reconnecting, and the process alive).
    const results = await Promise.allSettled([audit.close(), keyVerifier?.close(), limiters.close()]);
    await store.close();
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  };
  let wardenOptions: ReturnType<typeof buildPipelineOptions>;
  try {
    // Checks fail closed (503) until Redis answers: give it a moment before serving. If it does not
    // come, serve anyway (refusing what needs the counters) and keep reconnecting; the error is reported.
    await limiters.ready(3000);
    wardenOptions = buildPipelineOptions(config, { keyVerifier, audit, extraAudit: options.extraAudit ?? [], limiterBackend: limiters });
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
  return {
    config,
    store,
    keys,
    policy: wardenOptions.policy as Policy,
    ...(keyVerifier === undefined ? {} : { keyVerifier }),
    audit,
    limiters,
    wardenOptions,
    close,
  };
}
