/**
 * The gateway as an OAuth 2.1 resource server (MCP authorization spec; checklist 1a): protected
 * resource metadata per endpoint, challenges, audience per endpoint, claims → roles from an
 * identity provider's JWTs, scope step-up, key rotation, and the SDK client on a JWT.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type CryptoKey, type JWK, SignJWT, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { callToolInSession, postMcp } from './mcp-session.js';

const catalogServer = new URL('../fixtures/catalog-server.mjs', import.meta.url).pathname;
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/** "The corporate IdP": discovery and a JWKS on 127.0.0.1, keys the test rotates. */
class CorporateIdp {
  server!: Server;
  issuer = '';
  keys: { kid: string; privateKey: CryptoKey; jwk: JWK }[] = [];

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const send = (body: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (req.url === '/.well-known/oauth-authorization-server') return send({ issuer: this.issuer, jwks_uri: `${this.issuer}/keys` });
      if (req.url === '/keys') return send({ keys: this.keys.map((k) => k.jwk) });
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.issuer = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async rotate(kid: string): Promise<void> {
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    this.keys = [{ kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } }];
  }

  token(claims: { aud: string; groups?: string[]; scope?: string; exp?: number; sub?: string }): Promise<string> {
    const key = this.keys[0] as CorporateIdp['keys'][number];
    return new SignJWT({ groups: claims.groups ?? [], scope: claims.scope ?? '' })
      .setProtectedHeader({ alg: 'RS256', kid: key.kid })
      .setIssuer(this.issuer)
      .setSubject(claims.sub ?? 'alice')
      .setAudience(claims.aud)
      .setIssuedAt()
      .setExpirationTime(claims.exp ?? Math.floor(Date.now() / 1000) + 300)
      .sign(key.privateKey);
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe('gateway as an OAuth resource server, with an identity provider’s JWTs', () => {
  const idp = new CorporateIdp();
  let gateway: Gateway;
  let dir: string;
  let notes: string;
  let files: string;
  /** An HTTP upstream that records the identity the gateway sends it. */
  let recorder: Server;
  let recorded: string;
  const identities: string[] = [];

  const post = (path: string, token: string | undefined, body: unknown, headers: Record<string, string> = {}) => postMcp(`${gateway.url}${path}`, token, body, headers);
  const call = (name: string) => ({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: {} } });
  const callIn = (path: string, token: string, name: string): Promise<Response> => callToolInSession(`${gateway.url}${path}`, token, name);

  beforeAll(async () => {
    await idp.start();
    await idp.rotate('k1');
    dir = mkdtempSync(join(tmpdir(), 'warden-oauth-rs-'));
    const catalog = join(dir, 'catalog.json');
    writeFileSync(
      catalog,
      JSON.stringify([
        { name: 'look', annotations: { readOnlyHint: true } },
        { name: 'edit', annotations: { readOnlyHint: false, destructiveHint: false } },
      ]),
    );
    const stdio = { type: 'stdio', command: process.execPath, args: [catalogServer], env: { CATALOG_FILE: catalog } };
    recorder = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const identity = req.headers['x-mcp-identity'];
        if (typeof identity === 'string') identities.push(identity);
        const message = JSON.parse(body === '' ? '{}' : body) as { id?: number; method?: string };
        if (message.id === undefined) return void res.writeHead(202).end();
        const result = message.method === 'tools/list' ? { tools: [] } : {};
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
      });
    });
    recorder.listen(0, '127.0.0.1');
    await once(recorder, 'listening');
    const recorderUrl = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/mcp`;
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
                jwksCooldown: '1ms',
                claims: { roles: [{ claim: 'groups', values: { 'mcp-readers': ['reader'], 'mcp-writers': ['writer'] } }] },
              },
            ],
          },
        },
        upstreams: { notes: stdio, files: stdio, recorded: { type: 'http', url: recorderUrl, identity: { header: 'X-MCP-Identity', ttl: '2m' } } },
      }),
      'oauth.yaml',
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
    notes = `${gateway.url}/mcp/notes`;
    files = `${gateway.url}/mcp/files`;
    recorded = `${gateway.url}/mcp/recorded`;
  });

  afterAll(async () => {
    await gateway?.close();
    recorder?.closeAllConnections();
    await new Promise((resolve) => recorder?.close(resolve));
    await idp.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves protected resource metadata at the path-inserted URL of each endpoint, and none at the root with two endpoints', async () => {
    const res = await fetch(`${gateway.url}/.well-known/oauth-protected-resource/mcp/notes`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      resource: notes,
      authorization_servers: [idp.issuer],
      bearer_methods_supported: ['header'],
      scopes_supported: ['mcp:read', 'mcp:write'],
      resource_name: 'mcp-warden: notes',
    });
    expect((await fetch(`${gateway.url}/.well-known/oauth-protected-resource`)).status).toBe(404);
  });

  it('challenges a request without a token: 401, resource_metadata and scope, no error code', async () => {
    const res = await post('/mcp/notes', undefined, { jsonrpc: '2.0', id: 1, method: 'ping' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer scope="mcp:read mcp:write", resource_metadata="${gateway.url}/.well-known/oauth-protected-resource/mcp/notes"`,
    );
  });

  it('maps the IdP groups to roles and lets the token do what both its roles and scopes allow', async () => {
    const token = await idp.token({ aud: notes, groups: ['mcp-writers'], scope: 'mcp:read mcp:write' });
    const res = await callIn('/mcp/notes', token, 'edit');
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('"text":"edit"');
  });

  it('step-up: a token lacking the scope gets 403 insufficient_scope naming it; a token with it succeeds', async () => {
    const narrow = await idp.token({ aud: notes, groups: ['mcp-writers'], scope: 'mcp:read' });
    const res = await callIn('/mcp/notes', narrow, 'edit');
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer error="insufficient_scope", error_description="[^\r\n]+", scope="mcp:read mcp:write", resource_metadata="[^"]+\/mcp\/notes"$/);
    const wide = await idp.token({ aud: notes, groups: ['mcp-writers'], scope: 'mcp:read mcp:write' });
    expect((await callIn('/mcp/notes', wide, 'edit')).status).toBe(200);
  });

  it("Security: the identity sent upstream states the token's authority, its roles as its scopes narrow them", async () => {
    // A writer's token consented to mcp:read only: the upstream must not be told "writer".
    const identityFor = async (scope: string): Promise<Record<string, unknown>> => {
      const token = await idp.token({ aud: recorded, groups: ['mcp-writers'], scope });
      const res = await post('/mcp/recorded', token, { jsonrpc: '2.0', id: 1, method: 'ping' });
      expect(res.status).toBe(200);
      await res.text();
      const jwt = identities.at(-1) ?? '';
      return JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
    };
    expect(await identityFor('mcp:read')).toMatchObject({ roles: [], user_roles: ['writer'], scope: 'mcp:read', scope_roles: ['reader'] });
    expect(await identityFor('mcp:read mcp:write')).toMatchObject({ roles: ['writer'], user_roles: ['writer'], scope_roles: ['reader', 'writer'] });
  });

  it('a reader whose roles refuse gets a JSON-RPC denial, not a step-up no scope could cure', async () => {
    const token = await idp.token({ aud: notes, groups: ['mcp-readers'], scope: 'mcp:read mcp:write' });
    const res = await post('/mcp/notes', token, call('edit'));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { error: { code: number } }).error.code).toBe(-32003);
  });

  it('follows the IdP key rotation mid-test', async () => {
    await idp.rotate('k2');
    const token = await idp.token({ aud: notes, groups: ['mcp-readers'], scope: 'mcp:read' });
    expect((await callIn('/mcp/notes', token, 'look')).status).toBe(200);
  });

  it('the SDK client works with an IdP token, and sees only what roles and scopes allow', async () => {
    const token = await idp.token({ aud: notes, groups: ['mcp-writers'], scope: 'mcp:read' });
    const client = new Client({ name: 'jwt-client', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(notes), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(['announce', 'look']);
      const result = await client.callTool({ name: 'look', arguments: {} });
      expect(result.content).toEqual([{ type: 'text', text: 'look' }]);
    } finally {
      await client.close();
    }
  });

  describe('Security', () => {
    it('audience confusion: a token for one endpoint is refused by the other (401 invalid_token)', async () => {
      const forNotes = await idp.token({ aud: notes, groups: ['mcp-writers'], scope: 'mcp:read mcp:write' });
      const res = await post('/mcp/files', forNotes, call('look'));
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token", error_description="The access token was not issued for this resource", resource_metadata="[^"]+\/mcp\/files"$/);
      expect((await callIn('/mcp/files', await idp.token({ aud: files, groups: ['mcp-readers'], scope: 'mcp:read' }), 'look')).status).toBe(200);
      expect((await post('/mcp/notes', await idp.token({ aud: 'https://other.example/mcp', groups: ['mcp-writers'] }), call('look'))).status).toBe(401);
    });

    it('an expired token is refused with 401 invalid_token', async () => {
      const expired = await idp.token({ aud: notes, groups: ['mcp-readers'], scope: 'mcp:read', exp: Math.floor(Date.now() / 1000) - 3600 });
      const res = await post('/mcp/notes', expired, call('look'));
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    });

    it('a token in the query string is refused even when valid', async () => {
      const token = await idp.token({ aud: notes, groups: ['mcp-readers'], scope: 'mcp:read' });
      const res = await post(`/mcp/notes?access_token=${token}`, undefined, call('look'));
      expect([400, 401]).toContain(res.status);
    });

    it('a session is not a credential: reusing a session id without the token is 401', async () => {
      const token = await idp.token({ aud: notes, groups: ['mcp-readers'], scope: 'mcp:read' });
      const init = await post('/mcp/notes', token, {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
      });
      const session = init.headers.get('mcp-session-id') as string;
      expect(session).toBeTruthy();
      const res = await post('/mcp/notes', undefined, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' });
      expect(res.status).toBe(401);
    });
  });
});
