/**
 * The gateway: one HTTP server, one pipeline per upstream at `/mcp/<name>` (the global roles with the
 * upstream's own on top), operations endpoints, hot reload, graceful shutdown. `mcp-warden serve`
 * runs it.
 */
import { hash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import type { JSONWebKeySet } from 'jose';
import { type AuditEvent, Policy, type Principal, type RoleDefinition, type Verb, canonicalResourceUri, createOriginCheck, createWarden, isLoopbackHost, resourceMetadata } from '@mcp-warden/core';
import { withWarden } from '@mcp-warden/core/node';
import { ConfigError } from '../config/load.js';
import type { UpstreamConfig, WardenConfig } from '../config/schema.js';
import { type OAuthIssuers, type Services, authorizationServerProblems, buildPipelineOptions, credentialOptions, oauthIssuersOf, openServices } from '../services.js';
import { HttpUpstream } from '../upstream/http.js';
import { type JsonRpcId, requestIdOf } from '../upstream/json-rpc.js';
import { StdioUpstream } from '../upstream/stdio.js';
import type { Upstream, UpstreamLogger } from '../upstream/types.js';
import { createGatewayMetrics } from './metrics.js';
import { IdentitySigner } from './identity.js';
import { EventIds, SessionSigner } from './sessions.js';

export interface GatewayOptions {
  readonly config: WardenConfig;
  readonly configFile?: string;
  readonly logger: UpstreamLogger;
  /** Overrides `server.port` (0 picks a free port). */
  readonly port?: number;
  /**
   * Starts the authorization server when the config enables it; default: the built-in one
   * (oidc-provider and local users), imported only then.
   */
  readonly authorizationServer?: (context: AuthorizationServerContext) => Promise<MountedAuthorizationServer>;
  /**
   * Tests only: the fetch the built-in authorization server uses for client ID metadata documents.
   * Production keeps oidc-provider's own, which refuses loopback and private addresses (SSRF).
   */
  readonly authorizationServerFetch?: typeof fetch;
}

/** What the built-in authorization server is started with. */
export interface AuthorizationServerContext {
  /** The gateway's canonical base URL: the authorization server's issuer identifier. */
  readonly issuer: string;
  readonly config: WardenConfig;
  readonly services: Services;
  readonly logger: UpstreamLogger;
  /** The canonical URIs of the protected endpoints (token audiences), current after reloads. */
  readonly resources: () => readonly string[];
}

/** The built-in authorization server as the gateway sees it. */
export interface MountedAuthorizationServer {
  readonly issuer: string;
  /** Handles the request when its path is the authorization server's (returns true). */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Public keys of its access tokens, for in-process verification. */
  jwks(): JSONWebKeySet;
  close(): Promise<void>;
}

export interface Gateway {
  readonly url: string;
  readonly port: number;
  readonly services: Services;
  readonly upstreams: ReadonlyMap<string, Upstream>;
  /** Resolves once every upstream's tool annotations are known (or failed to load). */
  readonly ready: Promise<void>;
  /**
   * Swaps in a new configuration atomically: pipelines (roles, patterns, tokens, limits) and
   * upstreams whose definition changed. Open streams keep running. Throws a ConfigError, and keeps
   * the running configuration, for changes that need a restart (store, host, port, session key).
   */
  reload(config: WardenConfig): Promise<void>;
  /**
   * Shuts down gracefully: stops accepting connections, answers what would start new work 503 (and
   * `/readyz` 503) while serving what lets work in flight finish (see `finishesWork`), waits up to
   * `server.shutdownGrace` for the requests in flight to be answered (streams that only listen, GET
   * and `subscriptions/listen`, are not waited for), then ends what is left with the upstreams
   * (sessions, processes), and flushes the audit. A reload is refused from then on.
   */
  close(): Promise<void>;
}

/**
 * The roles an upstream sees: the global ones, with the upstream's definitions replacing same-named
 * ones. (`config check` builds it too.)
 * @throws TypeError naming the upstream and the key of what is not valid.
 */
export function upstreamPolicy(config: WardenConfig, name: string, upstream: UpstreamConfig): Policy {
  const own = upstream.policy;
  const roles: Record<string, RoleDefinition | readonly Verb[]> = { ...config.roles, ...(own?.roles ?? {}) };
  const deny = (family: 'tools' | 'resources' | 'prompts' | 'methods') => [...(config.deny?.[family] ?? []), ...(own?.deny?.[family] ?? [])];
  try {
    return new Policy({
      roles,
      deny: { tools: deny('tools'), resources: deny('resources'), prompts: deny('prompts'), methods: deny('methods') },
      toolAnnotations: { ...(config.toolAnnotations ?? {}), ...(own?.toolAnnotations ?? {}) },
      scopes: config.auth.oauth.scopes,
    });
  } catch (error) {
    // The policy's keys are those of the merged definition (a deny index counts the global ones first).
    if (error instanceof TypeError && own !== undefined) throw new TypeError(`upstreams.${name}.policy, merged with the global roles and deny lists: ${error.message}`);
    throw error;
  }
}

/**
 * The built-in authorization server (oidc-provider, local users): loaded only when the config
 * enables it, so a gateway without OAuth never imports it.
 */
async function builtinAuthorizationServer(context: AuthorizationServerContext, fetchOverride?: typeof fetch): Promise<MountedAuthorizationServer> {
  const [{ createAuthorizationServer }, { UserService }, { createLoginLimiter }] = await Promise.all([
    import('../oauth/index.js'),
    import('../users/service.js'),
    import('../ratelimit/login-limiter.js'),
  ]);
  const oauth = context.config.auth.oauth;
  const limits = context.config.auth.rateLimit;
  const server = await createAuthorizationServer({
    issuer: context.issuer,
    config: oauth.authorizationServer,
    scopes: oauth.scopes,
    resources: context.resources,
    store: context.services.store,
    users: new UserService(context.services.store.users),
    logger: context.logger,
    loginLimiter: createLoginLimiter(
      {
        perAddress: limits.perAddress,
        perAccount: limits.perKey,
        // One key for every instance on this store, so they name an account's counter alike.
        nameSecret: await context.services.store.secrets.getOrCreate('login-limiter-key', () => randomBytes(32).toString('base64url')),
      },
      context.services.limiters,
    ),
    limiters: context.services.limiters,
    ...(fetchOverride === undefined ? {} : { fetch: fetchOverride }),
  });
  return { issuer: server.issuer, handle: (req, res) => server.handle(req, res), jwks: () => server.jwks() as JSONWebKeySet, close: () => server.close() };
}

/**
 * CORS for browser clients of the allowed origins (MCP's Streamable HTTP has them read
 * `Mcp-Session-Id`, and send it back with `Mcp-Protocol-Version`, which a browser permits only when
 * told so): the request headers a preflight may ask for, besides `Mcp-Param-*`, and the response
 * headers exposed.
 */
const CORS_REQUEST_HEADERS = new Set(['authorization', 'x-api-key', 'content-type', 'accept', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id', 'mcp-method', 'mcp-name']);
const CORS_EXPOSED_HEADERS = 'mcp-session-id, mcp-protocol-version, www-authenticate, retry-after, x-request-id';

/**
 * The request's `Origin` when a browser there may call (one `Origin`, listed in
 * `server.allowedOrigins`, or on a loopback host behind a loopback bind: what the pipeline's guard
 * admits); `undefined` otherwise, and without an `Origin`.
 */
function corsOrigin(req: IncomingMessage, allowed: (origin: string) => boolean): string | undefined {
  const origin = req.headers.origin;
  if (origin === undefined || req.headersDistinct['origin']?.length !== 1) return undefined;
  return allowed(origin) ? origin : undefined;
}

/**
 * Answers a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) before any credential is
 * asked for, as browsers send none with it: 204 with what may be sent, or 403 for an origin that may
 * not call. Any other `OPTIONS` gets 204 with `Allow`.
 */
function preflight(req: IncomingMessage, res: ServerResponse, origin: string | undefined): void {
  const method = req.headers['access-control-request-method'];
  if (method === undefined) return void res.writeHead(204, { allow: 'GET, POST, DELETE, OPTIONS' }).end();
  if (origin === undefined) return json(res, 403, { jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Forbidden: this Origin is not allowed' } }, { vary: 'Origin' });
  const asked = (req.headers['access-control-request-headers'] ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== '' && (CORS_REQUEST_HEADERS.has(h) || h.startsWith('mcp-param-')));
  res
    .writeHead(204, {
      'access-control-allow-origin': origin,
      'access-control-allow-methods': 'GET, POST, DELETE',
      'access-control-allow-headers': [...new Set([...CORS_REQUEST_HEADERS, ...asked])].join(', '),
      'access-control-max-age': '600',
      vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
    })
    .end();
}

/**
 * Whether a request lets work already in flight finish, and so is served while the gateway drains: a
 * client's answers to the server's requests (sampling, elicitation, roots), its notifications
 * (cancellation), a 2026-07-28 retry of a call that asked for input (`requestState`), the end of a
 * session. New requests and new streams are not.
 */
function finishesWork(method: string | undefined, body: unknown): boolean {
  if (method === 'DELETE') return true;
  if (method !== 'POST') return false;
  const messages = Array.isArray(body) ? body : [body];
  return messages.every((m) => {
    if (typeof m !== 'object' || m === null) return true;
    const message = m as { method?: unknown; id?: unknown; params?: { requestState?: unknown } };
    // A notification is `notifications/…`: an id-less request method is new work like any request.
    return typeof message.method !== 'string' || (message.id === undefined && message.method.startsWith('notifications/')) || message.params?.requestState !== undefined;
  });
}

/** The answer to what may not start while the gateway drains; this connection ends with it. */
function refuseWhileDraining(res: ServerResponse, id: JsonRpcId): void {
  json(res, 503, { jsonrpc: '2.0', id, error: { code: -32000, message: 'Service Unavailable: the gateway is shutting down' } }, { 'retry-after': '1', connection: 'close' });
}

/** An upstream's definition without its policy: what decides whether its processes or connections must be replaced. */
function transportOf(config: UpstreamConfig): unknown {
  const { policy: _policy, ...transport } = config;
  return transport;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }).end(JSON.stringify(body));
}

function createUpstream(
  name: string,
  config: UpstreamConfig,
  signer: SessionSigner,
  logger: UpstreamLogger,
  identity: IdentitySigner | undefined,
  scopeRoles: () => Readonly<Record<string, readonly string[]>> = () => ({}),
): Upstream {
  if (config.type === 'stdio') return new StdioUpstream(name, config, signer, logger);
  const wanted = config.identity;
  try {
    return new HttpUpstream(name, config, signer, logger, {
      ...(wanted === undefined || identity === undefined
        ? {}
        : { identity: async (principal) => [wanted.header.toLowerCase(), (await identity.token(principal, config.url, wanted.ttl, scopeRoles())).token] as const }),
    });
  } catch (error) {
    if (error instanceof TypeError) throw new ConfigError([error.message]);
    throw error;
  }
}

/** Starts the gateway on the configured host and port. */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { logger } = options;
  let config = options.config;
  const services = await openServices(config, {
    ...(options.configFile === undefined ? {} : { configFile: options.configFile }),
    onError: (error, where) => logger.error({ where, err: (error as Error).message }, 'background failure'),
  });
  let secret: string;
  // The identity signer exists from the start, so a reload may turn identity on for an upstream.
  let identity: IdentitySigner;
  try {
    secret = config.server.sessionSecret ?? (await services.store.secrets.getOrCreate('session-signing-key', () => randomBytes(32).toString('base64url')));
    identity = await IdentitySigner.open(services.store.secrets, config.server.publicUrl ?? '');
  } catch (error) {
    await services.close();
    throw error;
  }
  const signer = new SessionSigner(secret);
  const listenHost = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host;
  const upstreams = new Map<string, Upstream>();
  const metrics = createGatewayMetrics(() => upstreams, services.audit);
  const countDecision = (event: AuditEvent): void => metrics.decision(event);
  /** The gateway's id of each MCP request, for the pipeline (audit) and the upstreams (logs). */
  const requestIds = new WeakMap<IncomingMessage, string>();
  /** A line per MCP request at debug level (LOG_LEVEL=debug); decided once, as it costs on every request. */
  const accessLog = logger.debug !== undefined && (logger.isLevelEnabled?.('debug') ?? true);
  let authLimiter = services.wardenOptions.authLimiter;
  let requestLimiter = services.wardenOptions.requestLimiter;
  let routes = new Map<string, (req: IncomingMessage, res: ServerResponse, requestId: string) => void>();
  /** Whether a browser origin may call (CORS): the guard's own rule; swapped with the routes. */
  let corsAllowed: (origin: string) => boolean = () => false;
  /** Protected resource metadata documents (RFC 9728) by path; empty when OAuth is off. */
  let metadataDocs = new Map<string, Record<string, unknown>>();
  let ready = false;
  let started = false;
  /** Shutting down: new work is refused (503) while the requests in flight finish. */
  let draining = false;
  /**
   * MCP requests in flight whose answers shutdown waits for: all but the streams that only listen
   * (GET, `subscriptions/listen`), which never end by themselves and are ended with their upstream.
   * Each with the upstream it went to: a reload that retires one waits for its own (`retire`).
   */
  const awaited = new Map<ServerResponse, Upstream>();
  /** Upstreams a reload replaced or removed, still finishing what is in flight to them. */
  const retiring = new Set<Upstream>();
  /** Their closes under way, which shutdown waits for (a child's close ends with SIGKILL at worst). */
  const retireClosing = new Set<Promise<void>>();
  let onSettled: (() => void) | undefined;
  const settle = (res: ServerResponse): void => {
    if (awaited.delete(res) && awaited.size === 0) onSettled?.();
  };
  let authorizationServer: MountedAuthorizationServer | undefined;

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = routes.get(path.endsWith('/') && path.length > 1 ? path.slice(0, -1) : path);
    if (route !== undefined) {
      // CORS first: a browser's preflight carries no credential, and a browser reads a refusal
      // (503 included) only with these headers.
      const origin = req.headers.origin === undefined ? undefined : corsOrigin(req, corsAllowed);
      if (req.method === 'OPTIONS') return preflight(req, res, origin);
      if (origin !== undefined) {
        res.setHeader('access-control-allow-origin', origin);
        res.setHeader('access-control-expose-headers', CORS_EXPOSED_HEADERS);
        res.setHeader('vary', 'Origin');
      }
      // One id per request: in its audit events, in the log lines about it, and sent back.
      const requestId = randomUUID();
      requestIds.set(req, requestId);
      res.setHeader('x-request-id', requestId);
      // Until the upstreams' annotations are known, a read-only tool would look destructive: wait.
      if (!ready) {
        res.setHeader('retry-after', '1');
        return json(res, 503, { jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Service Unavailable: the gateway is starting' } });
      }
      return route(req, res, requestId);
    }
    if (path.startsWith('/.well-known/oauth-protected-resource') && (req.method === 'GET' || req.method === 'HEAD')) {
      const doc = metadataDocs.get(path.endsWith('/') ? path.slice(0, -1) : path);
      if (doc !== undefined) return json(res, 200, doc, { 'access-control-allow-origin': '*', 'cache-control': 'public, max-age=300' });
      const known = [...metadataDocs.keys()];
      return json(res, 404, {
        error: 'not_found',
        error_description: known.length === 0 ? 'OAuth is not configured on this gateway' : `protected resource metadata is at ${known.join(', ')}`,
      });
    }
    if (authorizationServer !== undefined && authorizationServer.handle(req, res)) return;
    if (req.method === 'GET' && path === '/healthz') return json(res, 200, { status: 'ok' });
    if (req.method === 'GET' && path === '/.well-known/jwks.json') return json(res, 200, identity.jwks());
    if (req.method === 'GET' && path === '/readyz') {
      services.store.audit.head().then(
        // Without its brute-force counters (Redis) the gateway refuses every credential (503): not ready either.
        () =>
          services.limiters.healthy().then((counting) => {
            if (!counting) return json(res, 503, { status: 'rate-limit store unavailable' });
            if (draining) return json(res, 503, { status: 'shutting down' });
            json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'starting', auditQueue: services.audit.stats() });
          }),
        () => json(res, 503, { status: 'store unavailable' }),
      );
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      if (!metricsAllowed(req, config.server.metricsToken)) {
        return json(res, 401, { status: 'unauthorized', message: 'GET /metrics requires the bearer token of server.metricsToken' }, { 'www-authenticate': 'Bearer realm="metrics"' });
      }
      metrics.render().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        () => json(res, 500, { status: 'metrics unavailable' }),
      );
      return;
    }
    if (!started) {
      res.setHeader('retry-after', '1');
      return json(res, 503, { jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Service Unavailable: the gateway is starting' } });
    }
    json(res, 404, { jsonrpc: '2.0', id: null, error: { code: -32601, message: `Not Found: MCP endpoints are ${[...routes.keys()].join(', ') || '(none configured)'}` } });
  });
  const exposure = metricsExposure(config);
  if (exposure !== undefined) logger.warn({ host: config.server.host }, exposure);
  // Listen first: the public URL (and so each endpoint's canonical URI, the tokens' audience) may
  // depend on the port picked. Requests before the pipelines exist are answered 503.
  server.listen(options.port ?? config.server.port, config.server.host);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
  } catch (error) {
    await services.close();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  const baseUrl = canonicalResourceUri(config.server.publicUrl ?? `http://${listenHost}:${port}`);
  identity.issuer = baseUrl;
  const resourceOf = (name: string): string => `${baseUrl}/mcp/${name}`;
  const abort = async (error: unknown): Promise<never> => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await Promise.all([...upstreams.values()].map((u) => u.close()));
    await authorizationServer?.close();
    await services.close();
    throw error;
  };
  if (config.auth.oauth.authorizationServer.enabled) {
    // MCP authorization "Communication Security": authorization server endpoints MUST be https.
    const problems = authorizationServerProblems(config, baseUrl);
    if (problems.length > 0) await abort(new ConfigError(problems));
    const start = options.authorizationServer ?? ((context: AuthorizationServerContext) => builtinAuthorizationServer(context, options.authorizationServerFetch));
    try {
      authorizationServer = await start({ issuer: baseUrl, config, services, logger, resources: () => [...routes.keys()].map((p) => `${baseUrl}${p}`) });
    } catch (error) {
      // The authorization server checks its options with TypeErrors naming the key: a config problem.
      await abort(error instanceof TypeError ? new ConfigError([error.message]) : error);
    }
  }

  /**
   * Builds every pipeline and the upstreams a configuration needs. Nothing running is touched: the
   * limiters kept or made, and `wire` (which points the upstreams' tool-change and error callbacks
   * at the new policies), are applied by the caller once it swaps the configuration in. A build or
   * reload that fails leaves the running upstreams and limiters as they were.
   */
  function build(next: WardenConfig, current: ReadonlyMap<string, Upstream>) {
    // Counters (and their blocks) are kept unless their settings changed.
    const keepAuth = next.auth.rateLimit === config.auth.rateLimit || isDeepStrictEqual(next.auth.rateLimit, config.auth.rateLimit);
    const keepRequest = isDeepStrictEqual(next.requestRateLimit, config.requestRateLimit);
    const parts = {
      keyVerifier: services.keyVerifier,
      audit: services.audit,
      extraAudit: [countDecision],
      limiterBackend: services.limiters,
      ...(authLimiter === undefined || !keepAuth ? {} : { authLimiter }),
      ...(requestLimiter === undefined || !keepRequest ? {} : { requestLimiter }),
    };
    const base = buildPipelineOptions(next, parts);
    let oauth: OAuthIssuers | undefined;
    try {
      oauth = oauthIssuersOf(next, authorizationServer === undefined ? undefined : { issuer: authorizationServer.issuer, jwks: () => authorizationServer?.jwks() ?? { keys: [] } });
    } catch (error) {
      throw error instanceof TypeError ? new ConfigError([error.message]) : error;
    }
    const built = new Map<string, Upstream>();
    // Upstreams made for this configuration, closed again if building it fails.
    const created: Upstream[] = [];
    const nextRoutes = new Map<string, (req: IncomingMessage, res: ServerResponse, requestId: string) => void>();
    const nextDocs = new Map<string, Record<string, unknown>>();
    const policies = new Map<string, Policy>();
    const wiring: (() => void)[] = [];
    let nextCors: (origin: string) => boolean;
    try {
      // The guard's rule, so CORS admits exactly the origins the pipeline does.
      nextCors = createOriginCheck({ host: next.server.host, allowedOrigins: next.server.allowedOrigins });
      for (const [name, upstreamConfig] of Object.entries(next.upstreams)) {
        const previous = current.get(name);
        const same = previous !== undefined && isDeepStrictEqual(transportOf(upstreamConfig), transportOf(config.upstreams[name] as UpstreamConfig));
        // The scopes' roles of the configuration in force when a token is signed (a reload may change them).
        const upstream = same ? previous : createUpstream(name, upstreamConfig, signer, logger, identity, () => config.auth.oauth.scopes);
        if (!same) created.push(upstream);
        built.set(name, upstream);
        const policy = upstreamPolicy(next, name, upstreamConfig);
        policies.set(name, policy);
        // A changed tool list is read again (debounced), so annotations follow the upstream: into
        // this policy once it is in force (until then a running upstream keeps teaching the old one).
        let relearn: NodeJS.Timeout | undefined;
        wiring.push(() => {
          upstream.onError = (kind) => metrics.upstreamError(name, kind);
          upstream.onToolsChanged = () => {
            clearTimeout(relearn);
            relearn = setTimeout(() => void learn(new Map([[name, policy]]), new Map([[name, upstream]])), 500);
            relearn.unref();
          };
        });
        const resource = resourceOf(name);
        // Each endpoint verifies OAuth tokens for its own canonical URI (RFC 8707 audience).
        const credentials = credentialOptions(next, services.keyVerifier, oauth, resource);
        if (oauth !== undefined) {
          const doc = resourceMetadata({ resource, authorizationServers: oauth.authorizationServers, scopesSupported: oauth.scopes, resourceName: `mcp-warden: ${name}` });
          nextDocs.set(`/.well-known/oauth-protected-resource/mcp/${name}`, doc);
          // The root location (RFC 9728 §3.1 without a path) is unambiguous only with one endpoint.
          if (Object.keys(next.upstreams).length === 1) nextDocs.set('/.well-known/oauth-protected-resource', doc);
        }
        const warden = createWarden({
          ...base,
          ...credentials,
          policy,
          upstream: name,
          host: next.server.host,
          allowedOrigins: next.server.allowedOrigins,
          ...(next.server.allowedHosts === undefined ? {} : { allowedHosts: next.server.allowedHosts }),
          maxBodyBytes: next.server.maxBodyBytes,
          maxBatchSize: next.server.maxBatchSize,
        });
        // An HTTP upstream's SSE event ids reach the client sealed to the caller (`EventIds`): a
        // Last-Event-ID resumes the caller's own events only. (The stdio bridge keeps no events.)
        const eventIds = upstreamConfig.type === 'http' ? new EventIds(signer, name) : undefined;
        const handler = withWarden(
          warden,
          (req, res, body, principal) => {
            // Draining: what lets the work in flight finish is served; new work goes to another instance.
            if (draining && !finishesWork(req.method, body)) return refuseWhileDraining(res, requestIdOf(body));
            // Only a GET resumes (the relay drops the header on other methods, as before).
            if (eventIds !== undefined && req.method === 'GET' && req.headers['last-event-id'] !== undefined) {
              const opened = eventIds.open(principal.id, req.headers['last-event-id']);
              if (opened === undefined) {
                return json(res, 400, {
                  jsonrpc: '2.0',
                  id: null,
                  error: { code: -32000, message: 'Bad Request: Last-Event-ID is not an event id this gateway sent this caller' },
                });
              }
              req.headers['last-event-id'] = opened;
            }
            if (req.method === 'GET' || (typeof body === 'object' && body !== null && (body as { method?: unknown }).method === 'subscriptions/listen')) settle(res);
            return upstream.handle(req, res, body, principal, requestIds.get(req));
          },
          {
            requestId: (req) => requestIds.get(req),
            ...(eventIds === undefined ? {} : { eventIds: (principal: Principal) => (id: Buffer) => eventIds.seal(principal.id, id) }),
          },
        );
        nextRoutes.set(`/mcp/${name}`, (req, res, requestId) => {
          const stop = metrics.request(name);
          const started = accessLog ? performance.now() : 0;
          awaited.set(res, upstream);
          res.once('close', () => {
            settle(res);
            stop(res.statusCode);
            if (accessLog) {
              logger.debug?.({ requestId, upstream: name, method: req.method, status: res.statusCode, ms: Math.round((performance.now() - started) * 10) / 10, completed: res.writableFinished }, 'request');
            }
          });
          handler(req, res);
        });
      }
    } catch (error) {
      for (const upstream of created) void upstream.close();
      throw error instanceof TypeError ? new ConfigError([error.message]) : error;
    }
    const limiters = { auth: base.authLimiter, request: base.requestLimiter };
    const wire = (): void => {
      for (const apply of wiring) apply();
      authLimiter = limiters.auth;
      requestLimiter = limiters.request;
    };
    return { built, nextRoutes, nextDocs, nextCors, policies, wire };
  }

  /**
   * Closes an upstream a reload replaced or removed once no request awaited of it is in flight, or
   * after `grace` (ms) at most: as at shutdown, what was under way gets its answer, and streams that
   * only listen are not waited for. New requests no longer reach it: its route is gone, or is the
   * new upstream's.
   */
  function retire(upstream: Upstream, grace: number): void {
    retiring.add(upstream);
    // Not when shutdown has closed it meanwhile.
    const close = (): void => {
      if (!retiring.delete(upstream)) return;
      const closed = upstream.close().catch(() => {});
      retireClosing.add(closed);
      void closed.finally(() => retireClosing.delete(closed));
    };
    const busy = (): boolean => {
      for (const owner of awaited.values()) if (owner === upstream) return true;
      return false;
    };
    if (grace <= 0 || !busy()) return close();
    const poll = setInterval(() => {
      if (!busy()) done();
    }, 100);
    const timer = setTimeout(() => done(), grace);
    poll.unref();
    timer.unref();
    function done(): void {
      clearInterval(poll);
      clearTimeout(timer);
      close();
    }
  }

  /** Learns each upstream's tool annotations into its policy (asked outside any client session). */
  function learn(policies: ReadonlyMap<string, Policy>, from: ReadonlyMap<string, Upstream>): Promise<void> {
    return Promise.all(
      [...policies].map(([name, policy]) =>
        (from.get(name) as Upstream).listTools().then(
          (tools) => {
            policy.annotations.learn(tools);
            logger.info({ upstream: name, tools: tools.length }, 'tool annotations loaded');
          },
          (error: unknown) => logger.warn({ upstream: name, err: (error as Error).message }, 'could not list tools; unannotated tools need the delete verb until a tools/list passes'),
        ),
      ),
    ).then(() => {});
  }

  let first: ReturnType<typeof build> | undefined;
  try {
    first = build(config, new Map());
  } catch (error) {
    await abort(error);
  }
  const initial = first as ReturnType<typeof build>;
  initial.wire();
  for (const [name, upstream] of initial.built) upstreams.set(name, upstream);
  routes = initial.nextRoutes;
  metadataDocs = initial.nextDocs;
  corsAllowed = initial.nextCors;
  started = true;
  const readyPromise = learn(initial.policies, upstreams).then(() => {
    ready = true;
  });
  let closing: Promise<void> | undefined;

  return {
    url: baseUrl,
    port,
    services,
    upstreams,
    ready: readyPromise,
    async reload(next) {
      if (closing !== undefined) throw new Error('the gateway is shutting down');
      const restart = (['store'] as const).filter((k) => !isDeepStrictEqual(next[k], config[k]));
      for (const key of ['host', 'port', 'sessionSecret', 'publicUrl'] as const) {
        if (!isDeepStrictEqual(next.server[key], config.server[key])) restart.push(`server.${key}` as never);
      }
      if (!isDeepStrictEqual(next.audit.sinks, config.audit.sinks) || !isDeepStrictEqual(next.audit.queue, config.audit.queue)) restart.push('audit.sinks/queue' as never);
      if (!isDeepStrictEqual(next.auth.apiKeys, config.auth.apiKeys)) restart.push('auth.apiKeys' as never);
      if (!isDeepStrictEqual(next.auth.rateLimit.redis, config.auth.rateLimit.redis)) restart.push('auth.rateLimit.redis' as never);
      if (!isDeepStrictEqual(next.auth.oauth.authorizationServer, config.auth.oauth.authorizationServer)) restart.push('auth.oauth.authorizationServer' as never);
      // The authorization server offers the scopes it was started with.
      if (config.auth.oauth.authorizationServer.enabled && !isDeepStrictEqual(next.auth.oauth.scopes, config.auth.oauth.scopes)) restart.push('auth.oauth.scopes' as never);
      if (restart.length > 0) throw new ConfigError([`changes to ${restart.join(', ')} need a restart; the running configuration is kept`]);
      const { built, nextRoutes, nextDocs, nextCors, policies, wire } = build(next, upstreams);
      // The new policies learn the tools before they serve, so no call is decided without annotations.
      await learn(policies, built);
      if (closing !== undefined) {
        // Shutdown began meanwhile and closed the running upstreams: the new ones are not swapped in.
        for (const [name, upstream] of built) if (upstreams.get(name) !== upstream) void upstream.close();
        throw new Error('the gateway is shutting down');
      }
      const retired = [...upstreams].filter(([name, upstream]) => built.get(name) !== upstream).map(([, upstream]) => upstream);
      // The swap: new requests see the new pipelines from here on; requests in flight finish on the old ones.
      wire();
      routes = nextRoutes;
      corsAllowed = nextCors;
      metadataDocs = nextDocs;
      upstreams.clear();
      for (const [name, upstream] of built) upstreams.set(name, upstream);
      config = next;
      for (const upstream of retired) retire(upstream, next.server.shutdownGrace);
    },
    close() {
      closing ??= (async () => {
        // Drain: no new connections, MCP requests refused, and those in flight get up to
        // `shutdownGrace` to finish, their answers (and the streams that carry them) included.
        draining = true;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const grace = config.server.shutdownGrace;
        if (awaited.size > 0 && grace > 0) {
          logger.info({ inFlight: awaited.size, graceMs: grace }, 'shutting down: waiting for requests in flight');
          let timer: NodeJS.Timeout | undefined;
          const drained = await Promise.race([
            new Promise<boolean>((resolve) => {
              onSettled = () => resolve(true);
            }),
            new Promise<boolean>((resolve) => {
              timer = setTimeout(() => resolve(false), grace);
            }),
          ]);
          clearTimeout(timer);
          onSettled = undefined;
          if (!drained) logger.warn({ inFlight: awaited.size, graceMs: grace }, 'shutdown grace over: ending the requests still in flight');
        }
        // What is left (listening streams, requests past the grace) ends with the upstreams, the
        // ones a reload retired included.
        const retired = [...retiring];
        retiring.clear();
        await Promise.all([...upstreams.values(), ...retired].map((u) => u.close()));
        await Promise.all([...retireClosing]);
        server.closeAllConnections();
        await closed;
        await authorizationServer?.close();
        await services.close();
      })();
      return closing;
    },
  };
}

/**
 * Whether a request may read /metrics: always when no token is configured, else only with exactly
 * `Authorization: Bearer <token>` (one header; compared as SHA-256 digests in constant time).
 */
function metricsAllowed(req: IncomingMessage, token: string | undefined): boolean {
  if (token === undefined) return true;
  const values = req.headersDistinct['authorization'];
  if (values?.length !== 1) return false;
  const match = /^Bearer ([^\s]+)$/i.exec(values[0] as string);
  if (match === null) return false;
  return timingSafeEqual(hash('sha256', match[1] as string, 'buffer'), hash('sha256', token, 'buffer'));
}

/**
 * The warning for a gateway that serves /metrics to anyone beyond this machine (no
 * `server.metricsToken`, a bind that is not loopback); `undefined` when there is nothing to say.
 */
export function metricsExposure(config: WardenConfig): string | undefined {
  if (config.server.metricsToken !== undefined || isLoopbackHost(config.server.host)) return undefined;
  return 'GET /metrics is served without authentication on a non-loopback bind: set server.metricsToken, or keep the port off untrusted networks';
}
