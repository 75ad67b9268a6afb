/**
 * The gateway: one HTTP server, one pipeline per upstream at `/mcp/<name>` (the global roles with the
 * upstream's own on top), operations endpoints, graceful shutdown. `mcp-warden serve` runs it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Policy, type RoleDefinition, type Verb, createWarden } from '@mcp-warden/core';
import { withWarden } from '@mcp-warden/core/node';
import { ConfigError } from '../config/load.js';
import type { UpstreamConfig, WardenConfig } from '../config/schema.js';
import { type Services, openServices } from '../services.js';
import { StdioUpstream } from '../upstream/stdio.js';
import type { Upstream, UpstreamLogger } from '../upstream/types.js';
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

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

/** Starts the gateway on the configured host and port. */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { config, logger } = options;
  const services = await openServices(config, {
    ...(options.configFile === undefined ? {} : { configFile: options.configFile }),
    onError: (error, where) => logger.error({ where, err: (error as Error).message }, 'background failure'),
  });
  const secret = config.server.sessionSecret ?? (await services.store.secrets.getOrCreate('session-signing-key', () => randomBytes(32).toString('base64url')));
  const signer = new SessionSigner(secret);

  const upstreams = new Map<string, Upstream>();
  const routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
  const learning: Promise<void>[] = [];
  for (const [name, upstreamConfig] of Object.entries(config.upstreams)) {
    if (upstreamConfig.type !== 'stdio') {
      await services.close();
      throw new ConfigError([`upstreams.${name}.type: ${upstreamConfig.type} upstreams are not served by this release yet (stdio is); see docs/gateway.md`]);
    }
    const upstream = new StdioUpstream(name, upstreamConfig, signer, logger);
    const policy = upstreamPolicy(config, upstreamConfig);
    const warden = createWarden({
      ...services.wardenOptions,
      policy,
      upstream: name,
      host: config.server.host,
      allowedOrigins: config.server.allowedOrigins,
      ...(config.server.allowedHosts === undefined ? {} : { allowedHosts: config.server.allowedHosts }),
      maxBodyBytes: config.server.maxBodyBytes,
    });
    upstreams.set(name, upstream);
    routes.set(`/mcp/${name}`, withWarden(warden, (req, res, body, principal) => upstream.handle(req, res, body, principal)));
    learning.push(
      upstream.listTools().then(
        (tools) => {
          policy.annotations.learn(tools);
          logger.info({ upstream: name, tools: tools.length }, 'tool annotations loaded');
        },
        (error: unknown) => logger.warn({ upstream: name, err: (error as Error).message }, 'could not list tools; unannotated tools need the delete verb until a tools/list passes'),
      ),
    );
  }
  let ready = false;
  const readyPromise = Promise.all(learning).then(() => {
    ready = true;
  });

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = routes.get(path.endsWith('/') && path.length > 1 ? path.slice(0, -1) : path);
    if (route !== undefined) return route(req, res);
    if (path === '/healthz' && req.method === 'GET') return json(res, 200, { status: 'ok' });
    if (path === '/readyz' && req.method === 'GET') {
      services.store.audit.head().then(
        () => json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'starting', auditQueue: services.audit.stats() }),
        () => json(res, 503, { status: 'store unavailable' }),
      );
      return;
    }
    json(res, 404, { jsonrpc: '2.0', id: null, error: { code: -32601, message: `Not Found: MCP endpoints are ${[...routes.keys()].join(', ') || '(none configured)'}` } });
  });
  server.listen(options.port ?? config.server.port, config.server.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  const host = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host;
  let closing: Promise<void> | undefined;
  return {
    url: config.server.publicUrl ?? `http://${host}:${port}`,
    port,
    services,
    upstreams,
    ready: readyPromise,
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
