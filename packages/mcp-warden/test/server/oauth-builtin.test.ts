/**
 * The gateway with its built-in authorization server: the resource metadata names it, its access
 * tokens are verified in-process, a machine client's client-credentials token calls a tool with the
 * SDK client, and a token for another resource is refused.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';

const catalogServer = new URL('../fixtures/catalog-server.mjs', import.meta.url).pathname;
const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const SECRET = 'machine-client-secret-0123456789';

describe('gateway with the built-in authorization server', () => {
  let gateway: Gateway;
  let dir: string;

  async function clientCredentials(resource: string, scope: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${gateway.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`deploy-bot:${SECRET}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }).toString(),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-oauth-as-'));
    const catalog = join(dir, 'catalog.json');
    writeFileSync(catalog, JSON.stringify([{ name: 'look', annotations: { readOnlyHint: true } }, { name: 'drop' }]));
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'sqlite', path: join(dir, 'warden.db') },
        roles: { reader: ['read'], admin: ['read', 'write', 'delete'] },
        auth: {
          oauth: {
            scopes: { 'mcp:read': ['reader'], 'mcp:admin': ['admin'] },
            authorizationServer: {
              enabled: true,
              clients: [{ clientId: 'deploy-bot', clientSecret: SECRET, grantTypes: ['client_credentials'], roles: ['reader'] }],
            },
          },
        },
        upstreams: { notes: { type: 'stdio', command: process.execPath, args: [catalogServer], env: { CATALOG_FILE: catalog } } },
      }),
      'builtin.yaml',
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
  });

  afterAll(async () => {
    await gateway?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('names itself in the resource metadata, at the path-inserted URL and (one endpoint) at the root', async () => {
    for (const path of ['/.well-known/oauth-protected-resource/mcp/notes', '/.well-known/oauth-protected-resource']) {
      const doc = (await (await fetch(`${gateway.url}${path}`)).json()) as Record<string, unknown>;
      expect(doc).toMatchObject({ resource: `${gateway.url}/mcp/notes`, authorization_servers: [gateway.url], scopes_supported: ['mcp:read', 'mcp:admin'] });
    }
    const metadata = (await (await fetch(`${gateway.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(metadata['issuer']).toBe(gateway.url);
    expect(metadata['code_challenge_methods_supported']).toEqual(['S256']);
  });

  it('a machine client gets a token by client credentials and calls a tool with the SDK client', async () => {
    const { status, body } = await clientCredentials(`${gateway.url}/mcp/notes`, 'mcp:read');
    expect(status).toBe(200);
    const client = new Client({ name: 'machine', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/notes`), { requestInit: { headers: { authorization: `Bearer ${String(body['access_token'])}` } } }));
    try {
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['announce', 'look']);
      expect((await client.callTool({ name: 'look', arguments: {} })).content).toEqual([{ type: 'text', text: 'look' }]);
      const denied = await client.callTool({ name: 'drop', arguments: {} }).then(
        () => undefined,
        (error: unknown) => error as { code?: number },
      );
      expect(denied?.code).toBe(-32003);
    } finally {
      await client.close();
    }
  });

  describe('Security', () => {
    it('refuses to run the authorization server on a plain-http public URL that is not loopback', async () => {
      const config = parseConfig(
        JSON.stringify({
          store: { type: 'memory' },
          server: { publicUrl: 'http://gateway.example.com' },
          roles: { reader: ['read'] },
          auth: { oauth: { scopes: { 'mcp:read': ['reader'] }, authorizationServer: { enabled: true } } },
          upstreams: {},
        }),
        'plain-http.yaml',
      );
      await expect(startGateway({ config, logger: quiet, port: 0 })).rejects.toThrow(/needs an https URL \(got http:\/\/gateway\.example\.com\)/);
    });

    it('a token minted for another resource is refused (401), and an unknown resource is not minted at all', async () => {
      const other = await clientCredentials('https://other.example/mcp', 'mcp:read');
      expect(other.status).toBe(400);
      expect(other.body['error']).toBe('invalid_target');
      const res = await fetch(`${gateway.url}/mcp/notes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: 'Bearer eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.sig' },
        body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
      });
      expect(res.status).toBe(401);
    });
  });
});
