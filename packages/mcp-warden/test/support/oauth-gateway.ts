/**
 * A gateway for the OAuth end-to-end tests, started in-process on 127.0.0.1 port 0 in front of the
 * reference MCP server (server-everything over stdio), with the built-in authorization server on
 * and open dynamic registration: scope `mcp:read` grants the `reader` role's permissions (read),
 * `mcp:write` the `writer` role's (read, write, delete). People are local accounts in the store.
 */
import { createRequire } from 'node:module';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { UserService } from '../../src/users/service.js';

const everything = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

export interface OAuthGatewayOptions {
  /** `auth.oauth.challengeScopes`: what the 401 challenge asks for (default: every configured scope). */
  readonly challengeScopes?: readonly string[];
  /** `auth.oauth.authorizationServer.clients`: pre-registered clients. */
  readonly clients?: readonly Record<string, unknown>[];
  /**
   * Client ID metadata documents by URL, served to the authorization server through its `fetch` hook
   * (its own outgoing fetches refuse loopback addresses, and the documents' URLs are https).
   */
  readonly clientMetadataDocuments?: ReadonlyMap<string, Record<string, unknown>>;
}

export interface OAuthGateway {
  readonly gateway: Gateway;
  /** `http://127.0.0.1:<port>` */
  readonly base: string;
  /** The canonical MCP URL of the upstream: `<base>/mcp/everything`. */
  readonly mcpUrl: URL;
  /** Creates a local account. */
  addUser(username: string, password: string, roles: readonly string[]): Promise<void>;
  /** Every client ID metadata document URL the authorization server asked for. */
  readonly documentRequests: string[];
  close(): Promise<void>;
}

export async function startOAuthGateway(options: OAuthGatewayOptions = {}): Promise<OAuthGateway> {
  const documentRequests: string[] = [];
  const config = parseConfig(
    JSON.stringify({
      store: { type: 'memory' },
      server: { port: 0 },
      roles: { reader: ['read'], writer: ['read', 'write', 'delete'] },
      auth: {
        // The tests present deliberately bad tokens; the per-address limiter must not block 127.0.0.1.
        rateLimit: { perAddress: { attempts: 10_000, window: '1m', block: '1s' }, perKey: { attempts: 10_000, window: '1m', block: '1s' } },
        oauth: {
          scopes: { 'mcp:read': ['reader'], 'mcp:write': ['writer'] },
          ...(options.challengeScopes === undefined ? {} : { challengeScopes: options.challengeScopes }),
          authorizationServer: {
            enabled: true,
            registration: { mode: 'open' },
            ...(options.clients === undefined ? {} : { clients: options.clients }),
          },
        },
      },
      upstreams: { everything: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'], maxSessions: 16 } },
    }),
    'oauth-e2e.yaml',
    {},
  );
  const documents = options.clientMetadataDocuments;
  // The metadata documents' hook: their URLs are https on a reserved name, never fetched for real.
  const serveDocument = async (url: string | URL | Request): Promise<Response> => {
    const href = url instanceof Request ? url.url : String(url);
    documentRequests.push(href);
    const document = documents?.get(href);
    return document === undefined
      ? new Response('not found', { status: 404 })
      : new Response(JSON.stringify(document), { status: 200, headers: { 'content-type': 'application/json', 'cache-control': 'max-age=300' } });
  };
  // The gateway's own wiring of the built-in authorization server; only the documents' fetch is the test's.
  const gateway = await startGateway({
    config,
    logger: quiet,
    port: 0,
    ...(documents === undefined ? {} : { authorizationServerFetch: serveDocument as typeof fetch }),
  });
  await gateway.ready;
  const users = new UserService(gateway.services.store.users);
  return {
    gateway,
    base: gateway.url,
    mcpUrl: new URL(`${gateway.url}/mcp/everything`),
    documentRequests,
    async addUser(username, password, roles) {
      await users.add(username, password, [...roles]);
    },
    close: () => gateway.close(),
  };
}
