/**
 * "The corporate IdP" is a real oidc-provider (an mcp-warden authorization server on its own port,
 * with its own store): it issues JWT access tokens by client credentials whose `roles` claim holds
 * the IdP's group names; the gateway discovers its JWKS over HTTP, maps those groups to its own
 * roles, and keeps working when the IdP rotates its signing key mid-test.
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { parseConfig } from '../../src/config/load.js';
import { type AuthorizationServer, createAuthorizationServer } from '../../src/oauth/index.js';
import { rotateSigningKeys } from '../../src/oauth/keys.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { callToolInSession } from './mcp-session.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { Store } from '../../src/store/types.js';

const catalogServer = new URL('../fixtures/catalog-server.mjs', import.meta.url).pathname;
const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const SECRET = 'corporate-app-secret-0123456789';

/** The IdP: an authorization server on 127.0.0.1 that a restart (same store, same port) brings back with its keys. */
class CorporateIdp {
  server!: Server;
  issuer = '';
  as: AuthorizationServer | undefined;
  readonly store: Store = createMemoryStore();
  resources: string[] = [];

  async start(): Promise<void> {
    await this.store.migrate();
    this.server = createServer((req, res) => {
      if (this.as === undefined || !this.as.handle(req, res)) res.writeHead(404).end();
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.issuer = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    await this.boot();
  }

  /** (Re)creates the authorization server over the same store: keys are loaded from it at start. */
  async boot(): Promise<void> {
    await this.as?.close();
    const parsed = configSchema.parse({
      upstreams: {},
      auth: {
        oauth: {
          scopes: { 'mcp:read': ['x'], 'mcp:write': ['x'] },
          authorizationServer: {
            enabled: true,
            clients: [{ clientId: 'corp-app', clientSecret: SECRET, grantTypes: ['client_credentials'], roles: ['mcp-writers', 'sales'] }],
          },
        },
      },
    } as unknown);
    this.as = await createAuthorizationServer({
      issuer: this.issuer,
      config: parsed.auth.oauth.authorizationServer,
      scopes: parsed.auth.oauth.scopes,
      resources: () => this.resources,
      store: this.store,
      users: { authenticate: async () => undefined, get: async () => undefined },
      logger: quiet,
    });
  }

  async token(resource: string, scope: string): Promise<string> {
    const res = await fetch(`${this.issuer}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`corp-app:${SECRET}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }).toString(),
    });
    const body = (await res.json()) as Record<string, unknown>;
    if (res.status !== 200) throw new Error(`IdP token request failed: ${JSON.stringify(body)}`);
    return body['access_token'] as string;
  }

  async close(): Promise<void> {
    await this.as?.close();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
    await this.store.close();
  }
}

const kidOf = (jwt: string): string => (JSON.parse(Buffer.from(jwt.split('.')[0] as string, 'base64url').toString()) as { kid: string }).kid;

describe('gateway trusting a corporate IdP (oidc-provider) by discovery and JWKS', () => {
  const idp = new CorporateIdp();
  let gateway: Gateway;
  let dir: string;
  let endpoint: string;

  const callTool = (token: string, name: string): Promise<Response> => callToolInSession(endpoint, token, name);

  beforeAll(async () => {
    await idp.start();
    dir = mkdtempSync(join(tmpdir(), 'warden-idp-'));
    const catalog = join(dir, 'catalog.json');
    writeFileSync(catalog, JSON.stringify([{ name: 'look', annotations: { readOnlyHint: true } }, { name: 'edit', annotations: { readOnlyHint: false, destructiveHint: false } }]));
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        roles: { reader: ['read'], writer: ['read', 'write'] },
        auth: {
          oauth: {
            scopes: { 'mcp:read': ['reader'], 'mcp:write': ['writer'] },
            issuers: [
              {
                name: 'corp',
                issuer: idp.issuer,
                profile: 'rfc9068',
                jwksCooldown: '1ms',
                claims: { roles: [{ claim: 'roles', values: { 'mcp-writers': ['writer'], 'mcp-readers': ['reader'] } }] },
              },
            ],
          },
        },
        upstreams: { notes: { type: 'stdio', command: process.execPath, args: [catalogServer], env: { CATALOG_FILE: catalog } } },
      }),
      'idp.yaml',
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
    endpoint = `${gateway.url}/mcp/notes`;
    idp.resources = [endpoint];
  });

  afterAll(async () => {
    await gateway?.close();
    await idp.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts the IdP token, mapping its group names to the gateway roles (mcp-writers → writer)', async () => {
    const token = await idp.token(endpoint, 'mcp:read mcp:write');
    const res = await callTool(token, 'edit');
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await res.text()).toContain('"text":"edit"');
  });

  it('keeps working across a signing-key rotation at the IdP (unknown kid → JWKS fetched again)', async () => {
    const before = await idp.token(endpoint, 'mcp:read');
    expect((await callTool(before, 'look')).status).toBe(200);
    const newKids = await rotateSigningKeys(idp.store.oauth, 3_600_000);
    await idp.boot();
    const after = await idp.token(endpoint, 'mcp:read');
    expect(newKids).toContain(kidOf(after));
    expect(kidOf(after)).not.toBe(kidOf(before));
    expect((await callTool(after, 'look')).status).toBe(200);
    // The token signed before the rotation still verifies: the IdP keeps the retired key published.
    expect((await callTool(before, 'look')).status).toBe(200);
  });

  it('a token minted by the IdP for another resource is refused (401 invalid_token)', async () => {
    idp.resources = [endpoint, 'https://elsewhere.example/mcp'];
    const token = await idp.token('https://elsewhere.example/mcp', 'mcp:read');
    const res = await callTool(token, 'look');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });
});
