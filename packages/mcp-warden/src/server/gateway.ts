/**
 * The gateway: one HTTP server, one pipeline per upstream at `/mcp/<name>` (the global roles with the
 * upstream's own on top), operations endpoints, hot reload, graceful shutdown. `mcp-warden serve`
 * runs it.
 */
import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import { type AuditEvent, Policy, type RoleDefinition, type Verb, createWarden } from '@mcp-warden/core';
import { withWarden } from '@mcp-warden/core/node';
import { ConfigError } from '../config/load.js';
import type { UpstreamConfig, WardenConfig } from '../config/schema.js';
import { type Services, buildPipelineOptions, openServices } from '../services.js';
import { HttpUpstream } from '../upstream/http.js';
import { StdioUpstream } from '../upstream/stdio.js';
import type { Upstream, UpstreamLogger } from '../upstream/types.js';
import { createGatewayMetrics } from './metrics.js';
import { IdentitySigner } from './identity.js';
import { SessionSigner } from './sessions.js';

export interface GatewayOptions {
  readonly config: WardenConfig;
  readonly configFile?: string;
  readonly logger: UpstreamLogger;
  /** Overrides `server.port` (0 picks a free port). */
  readonly port?: number;
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
  close(): Promise<void>;
}

/** The roles an upstream sees: the global ones, with the upstream's definitions replacing same-named ones. */
function upstreamPolicy(config: WardenConfig, upstream: UpstreamConfig): Policy {
  const own = upstream.policy;
  const roles: Record<string, RoleDefinition | readonly Verb[]> = { ...config.roles, ...(own?.roles ?? {}) };
  const deny = (family: 'tools' | 'resources' | 'prompts' | 'methods') => [...(config.deny?.[family] ?? []), ...(own?.deny?.[family] ?? [])];
  return new Policy({
    roles,
    deny: { tools: deny('tools'), resources: deny('resources'), prompts: deny('prompts'), methods: deny('methods') },
    toolAnnotations: { ...(config.toolAnnotations ?? {}), ...(own?.toolAnnotations ?? {}) },
  });
}

/** An upstream's definition without its policy: what decides whether its processes or connections must be replaced. */
function transportOf(config: UpstreamConfig): unknown {
  const { policy: _policy, ...transport } = config;
  return transport;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

function createUpstream(name: string, config: UpstreamConfig, signer: SessionSigner, logger: UpstreamLogger, identity: IdentitySigner | undefined): Upstream {
  if (config.type === 'stdio') return new StdioUpstream(name, config, signer, logger);
  const wanted = config.identity;
  try {
    return new HttpUpstream(name, config, signer, logger, {
      ...(wanted === undefined || identity === undefined
        ? {}
        : { identity: async (principal) => [wanted.header.toLowerCase(), (await identity.token(principal, config.url, wanted.ttl)).token] as const }),
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
  const secret = config.server.sessionSecret ?? (await services.store.secrets.getOrCreate('session-signing-key', () => randomBytes(32).toString('base64url')));
  const signer = new SessionSigner(secret);
  const listenHost = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host;
  // The identity signer exists from the start, so a reload may turn identity on for an upstream.
  let identity: IdentitySigner;
  try {
    identity = await IdentitySigner.open(services.store.secrets, config.server.publicUrl ?? '');
  } catch (error) {
    await services.close();
    throw error;
  }
  const upstreams = new Map<string, Upstream>();
  const metrics = createGatewayMetrics(() => upstreams, services.audit);
  const countDecision = (event: AuditEvent): void => metrics.decision(event);
  let authLimiter = services.wardenOptions.authLimiter;
  let routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();

  /** Builds every pipeline and the upstreams a configuration needs; nothing is swapped until it all worked. */
  function build(next: WardenConfig, current: ReadonlyMap<string, Upstream>) {
    if (next.auth.rateLimit !== config.auth.rateLimit && !isDeepStrictEqual(next.auth.rateLimit, config.auth.rateLimit)) authLimiter = undefined;
    const base = buildPipelineOptions(next, {
      keyVerifier: services.keyVerifier,
      audit: services.audit,
      extraAudit: [countDecision],
      ...(authLimiter === undefined ? {} : { authLimiter }),
    });
    const built = new Map<string, Upstream>();
    // Upstreams made for this configuration, closed again if building it fails.
    const created: Upstream[] = [];
    const nextRoutes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
    const policies = new Map<string, Policy>();
    try {
      for (const [name, upstreamConfig] of Object.entries(next.upstreams)) {
        const previous = current.get(name);
        const same = previous !== undefined && isDeepStrictEqual(transportOf(upstreamConfig), transportOf(config.upstreams[name] as UpstreamConfig));
        const upstream = same ? previous : createUpstream(name, upstreamConfig, signer, logger, identity);
        if (!same) created.push(upstream);
        built.set(name, upstream);
        const policy = upstreamPolicy(next, upstreamConfig);
        policies.set(name, policy);
        // A changed tool list is read again (debounced), so annotations follow the upstream.
        let relearn: NodeJS.Timeout | undefined;
        upstream.onToolsChanged = () => {
          clearTimeout(relearn);
          relearn = setTimeout(() => void learn(new Map([[name, policy]]), new Map([[name, upstream]])), 500);
          relearn.unref();
        };
        const warden = createWarden({
          ...base,
          policy,
          upstream: name,
          host: next.server.host,
          allowedOrigins: next.server.allowedOrigins,
          ...(next.server.allowedHosts === undefined ? {} : { allowedHosts: next.server.allowedHosts }),
          maxBodyBytes: next.server.maxBodyBytes,
        });
        const handler = withWarden(warden, (req, res, body, principal) => upstream.handle(req, res, body, principal));
        nextRoutes.set(`/mcp/${name}`, (req, res) => {
          const stop = metrics.request(name);
          res.once('close', () => stop(res.statusCode));
          handler(req, res);
        });
      }
    } catch (error) {
      for (const upstream of created) void upstream.close();
      throw error;
    }
    authLimiter = base.authLimiter;
    return { built, nextRoutes, policies };
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

  let first: ReturnType<typeof build>;
  try {
    first = build(config, new Map());
  } catch (error) {
    await services.close();
    throw error;
  }
  for (const [name, upstream] of first.built) upstreams.set(name, upstream);
  routes = first.nextRoutes;
  let ready = false;
  const readyPromise = learn(first.policies, upstreams).then(() => {
    ready = true;
  });

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = routes.get(path.endsWith('/') && path.length > 1 ? path.slice(0, -1) : path);
    if (route !== undefined) {
      // Until the upstreams' annotations are known, a read-only tool would look destructive: wait.
      if (!ready) {
        res.setHeader('retry-after', '1');
        return json(res, 503, { jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Service Unavailable: the gateway is starting' } });
      }
      return route(req, res);
    }
    if (req.method === 'GET' && path === '/healthz') return json(res, 200, { status: 'ok' });
    if (req.method === 'GET' && path === '/.well-known/jwks.json') return json(res, 200, identity.jwks());
    if (req.method === 'GET' && path === '/readyz') {
      services.store.audit.head().then(
        () => json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'starting', auditQueue: services.audit.stats() }),
        () => json(res, 503, { status: 'store unavailable' }),
      );
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      metrics.render().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        () => json(res, 500, { status: 'metrics unavailable' }),
      );
      return;
    }
    json(res, 404, { jsonrpc: '2.0', id: null, error: { code: -32601, message: `Not Found: MCP endpoints are ${[...routes.keys()].join(', ') || '(none configured)'}` } });
  });
  server.listen(options.port ?? config.server.port, config.server.host);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
  } catch (error) {
    await Promise.all([...upstreams.values()].map((u) => u.close()));
    await services.close();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  identity.issuer = config.server.publicUrl ?? `http://${listenHost}:${port}`;
  let closing: Promise<void> | undefined;

  return {
    url: config.server.publicUrl ?? `http://${listenHost}:${port}`,
    port,
    services,
    upstreams,
    ready: readyPromise,
    async reload(next) {
      const restart = (['store'] as const).filter((k) => !isDeepStrictEqual(next[k], config[k]));
      for (const key of ['host', 'port', 'sessionSecret', 'publicUrl'] as const) {
        if (!isDeepStrictEqual(next.server[key], config.server[key])) restart.push(`server.${key}` as never);
      }
      if (!isDeepStrictEqual(next.audit.sinks, config.audit.sinks) || !isDeepStrictEqual(next.audit.queue, config.audit.queue)) restart.push('audit.sinks/queue' as never);
      if (!isDeepStrictEqual(next.auth.apiKeys, config.auth.apiKeys)) restart.push('auth.apiKeys' as never);
      if (restart.length > 0) throw new ConfigError([`changes to ${restart.join(', ')} need a restart; the running configuration is kept`]);
      const { built, nextRoutes, policies } = build(next, upstreams);
      // The new policies learn the tools before they serve, so no call is decided without annotations.
      await learn(policies, built);
      const retired = [...upstreams].filter(([name, upstream]) => built.get(name) !== upstream).map(([, upstream]) => upstream);
      // The swap: new requests see the new pipelines from here on; requests in flight finish on the old ones.
      routes = nextRoutes;
      upstreams.clear();
      for (const [name, upstream] of built) upstreams.set(name, upstream);
      config = next;
      for (const upstream of retired) void upstream.close();
    },
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        const grace = setTimeout(() => server.closeAllConnections(), config.server.shutdownGrace);
        server.closeIdleConnections();
        await Promise.all([...upstreams.values()].map((u) => u.close()));
        server.closeAllConnections();
        await closed;
        clearTimeout(grace);
        await services.close();
      })();
      return closing;
    },
  };
}
