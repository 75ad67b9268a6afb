/**
 * Clients of the authorization server: dynamic registration (RFC 7591) in its three modes, client ID
 * metadata documents (fetched through the `fetch` hook, as oidc-provider's SSRF guard refuses
 * 127.0.0.1), pre-registered machine clients with client credentials, and the registration attacks.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Browser, authorize, authorizeUrl, claimsOf, closeAll, fullFlow, pkce, registerClient, startAs, tokenRequest } from './as-harness.js';
import { type LimiterBackend, memoryBackend } from '../../src/ratelimit/backend.js';

afterEach(closeAll);

const register = (base: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(`${base}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

const publicClient = (redirect: string): Record<string, unknown> => ({
  client_name: 'x',
  redirect_uris: [redirect],
  grant_types: ['authorization_code', 'refresh_token'],
  token_endpoint_auth_method: 'none',
});

describe('dynamic client registration', () => {
  it('open: anyone registers and gets a client_id, and no registration access token', async () => {
    const as = await startAs();
    const response = await register(as.base, { ...publicClient('http://localhost:8765/cb'), application_type: 'native' });
    expect(response.status).toBe(201);
    const body = (await response.json()) as Record<string, unknown>;
    expect(typeof body['client_id']).toBe('string');
    expect(body['registration_access_token']).toBeUndefined();
    expect(body['client_secret']).toBeUndefined();
  });

  it('token: an initial access token is required', async () => {
    const token = 'initial-access-token-0123456789';
    const as = await startAs({ config: { registration: { mode: 'token', initialAccessToken: token } } });
    const without = await register(as.base, publicClient('http://127.0.0.1:1/cb'));
    expect(without.status).toBe(401);
    const wrong = await register(as.base, publicClient('http://127.0.0.1:1/cb'), { authorization: 'Bearer wrong-token-0123456789abc' });
    expect(wrong.status).toBe(401);
    const right = await register(as.base, publicClient('http://127.0.0.1:1/cb'), { authorization: `Bearer ${token}` });
    expect(right.status).toBe(201);
  });

  it('token mode without a token in the config is refused at start, naming the key', async () => {
    await expect(startAs({ config: { registration: { mode: 'token' } } })).rejects.toThrow(/registration\.initialAccessToken/);
  });

  it('off: no registration endpoint, in the metadata or at the URL', async () => {
    const as = await startAs({ config: { registration: { mode: 'off' } } });
    const metadata = (await (await fetch(`${as.base}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(metadata['registration_endpoint']).toBeUndefined();
    expect((await register(as.base, publicClient('http://127.0.0.1:1/cb'))).status).toBe(404);
  });
});

describe('client ID metadata documents', () => {
  const CLIENT_ID = 'https://client.example/oauth/client.json';
  const REDIRECT = 'http://127.0.0.1:33419/callback';

  const documentFetch = (document: Record<string, unknown>, seen: string[] = []): typeof fetch =>
    (async (input: string | URL | Request) => {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      seen.push(url);
      if (url !== CLIENT_ID) return new Response('not found', { status: 404 });
      return new Response(JSON.stringify(document), { status: 200, headers: { 'content-type': 'application/json', 'cache-control': 'max-age=60' } });
    }) as typeof fetch;

  const document = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
    client_id: CLIENT_ID,
    client_name: 'Example Desktop Assistant',
    redirect_uris: [REDIRECT],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    ...overrides,
  });

  it('fetches the document, shows its name, the redirect host and a warning for localhost-only redirects, and issues tokens', async () => {
    const seen: string[] = [];
    const as = await startAs({ fetch: documentFetch(document(), seen) });
    const { tokens, pages } = await fullFlow(as, { client: { client_id: CLIENT_ID, redirect_uri: REDIRECT } });
    expect(seen).toContain(CLIENT_ID);
    const consent = pages[1]?.html as string;
    expect(consent).toContain('Example Desktop Assistant');
    expect(consent).toContain('127.0.0.1:33419');
    expect(consent).toMatch(/class="warning">[^<]*localhost/);
    expect(claimsOf(tokens['access_token'] as string)).toMatchObject({ client_id: CLIENT_ID, aud: as.resource, sub: 'usr_alice' });
  });

  it('no warning when a redirect is not on this computer', async () => {
    const as = await startAs({ fetch: documentFetch(document({ redirect_uris: ['https://app.example/cb', REDIRECT] })) });
    const { pages } = await fullFlow(as, { client: { client_id: CLIENT_ID, redirect_uri: REDIRECT } });
    expect(pages[1]?.html).not.toContain('class="warning"');
  });

  it('refuses a document whose client_id is not its URL (invalid_client), without redirecting', async () => {
    const as = await startAs({ fetch: documentFetch(document({ client_id: 'https://attacker.example/client.json' })) });
    const { challenge } = pkce();
    const response = await new Browser().fetch(authorizeUrl(as.base, { clientId: CLIENT_ID, redirectUri: REDIRECT, resource: as.resource, challenge, challengeMethod: 'S256' }));
    expect(response.status).toBe(400);
    expect(response.headers.get('location')).toBeNull();
    expect(await response.text()).toContain('invalid_client');
  });

  it('refuses a redirect_uri the document does not list, without redirecting', async () => {
    const as = await startAs({ fetch: documentFetch(document()) });
    const { challenge } = pkce();
    const response = await new Browser().fetch(
      authorizeUrl(as.base, { clientId: CLIENT_ID, redirectUri: 'http://127.0.0.1:33419/elsewhere', resource: as.resource, challenge, challengeMethod: 'S256' }),
    );
    expect(response.status).toBe(400);
    expect(response.headers.get('location')).toBeNull();
    expect(await response.text()).toContain('redirect_uri');
  });

  it('is off when the config says so', async () => {
    const as = await startAs({ config: { clientIdMetadataDocuments: false }, fetch: documentFetch(document()) });
    const metadata = (await (await fetch(`${as.base}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(metadata['client_id_metadata_document_supported']).toBeUndefined();
    const { challenge } = pkce();
    const response = await new Browser().fetch(authorizeUrl(as.base, { clientId: CLIENT_ID, redirectUri: REDIRECT, resource: as.resource, challenge, challengeMethod: 'S256' }));
    expect(response.status).toBe(400);
  });
});

describe('client credentials', () => {
  const SECRET = 'machine-secret-0123456789abcdef';
  const machine = { clientId: 'deploy-bot', clientSecret: SECRET, clientName: 'Deploy bot', grantTypes: ['client_credentials'], roles: ['deployer', 'reader'], scopes: ['mcp:read'] };
  const basic = (id: string, secret: string): string => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

  it('a configured machine client gets a JWT for the resource carrying its roles', async () => {
    const as = await startAs({ config: { clients: [machine] } });
    const { status, body } = await tokenRequest(as.base, { grant_type: 'client_credentials', resource: as.resource, scope: 'mcp:read' }, { authorization: basic('deploy-bot', SECRET) });
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body['refresh_token']).toBeUndefined();
    expect(claimsOf(body['access_token'] as string)).toMatchObject({ aud: as.resource, client_id: 'deploy-bot', sub: 'deploy-bot', roles: ['deployer', 'reader'], scope: 'mcp:read' });
  });

  it('refuses a wrong secret, a scope outside the client, and an unknown resource', async () => {
    const as = await startAs({ config: { clients: [machine] } });
    const wrong = await tokenRequest(as.base, { grant_type: 'client_credentials', resource: as.resource }, { authorization: basic('deploy-bot', `${SECRET}x`) });
    expect(wrong.status).toBe(401);
    expect(wrong.body['error']).toBe('invalid_client');
    const scope = await tokenRequest(as.base, { grant_type: 'client_credentials', resource: as.resource, scope: 'mcp:write' }, { authorization: basic('deploy-bot', SECRET) });
    expect(scope.body['error']).toBe('invalid_scope');
    const target = await tokenRequest(as.base, { grant_type: 'client_credentials', resource: 'https://other.example/mcp' }, { authorization: basic('deploy-bot', SECRET) });
    expect(target.body['error']).toBe('invalid_target');
  });

  it('a machine client without a secret is a config error naming the key', async () => {
    await expect(startAs({ config: { clients: [{ ...machine, clientSecret: undefined }] } })).rejects.toThrow(/clients\[0\]\.clientSecret/);
  });

  it('a dynamically registered client cannot have the client_credentials grant', async () => {
    const as = await startAs();
    const response = await register(as.base, { client_name: 'sneaky', grant_types: ['client_credentials'], response_types: [], redirect_uris: [] });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toBe('invalid_client_metadata');
  });
});

describe('Security: registration and redirects', () => {
  it('refuses javascript:, data: and custom schemes, and http to a host that is not loopback', async () => {
    const as = await startAs();
    for (const [redirect, type] of [
      ['javascript:alert(1)', 'native'],
      ['javascript://127.0.0.1/%0aalert(1)', 'web'],
      ['data:text/html,hi', 'native'],
      ['com.example.app:/callback', 'native'],
      ['http://evil.example/callback', 'web'],
      ['http://127.0.0.1.evil.example/callback', 'web'],
    ] as const) {
      const response = await register(as.base, { ...publicClient(redirect), application_type: type });
      expect(response.status, redirect).toBe(400);
      expect(((await response.json()) as { error: string }).error, redirect).toMatch(/^invalid_(redirect_uri|client_metadata)$/);
    }
    expect((await register(as.base, publicClient('https://app.example/cb'))).status).toBe(201);
    expect((await register(as.base, publicClient('http://[::1]:9/cb'))).status).toBe(201);
  });

  it('refuses an oversized registration body and registers nothing', async () => {
    const as = await startAs();
    const before = (await as.store.oauth.list('Client')).length;
    const response = await register(as.base, { ...publicClient('http://127.0.0.1:1/cb'), client_name: 'x'.repeat(64 * 1024) });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toBe('invalid_request');
    expect((await as.store.oauth.list('Client')).length).toBe(before);
  });

  it('bounds what an anonymous registration may store: name length, redirect URIs, metadata size', async () => {
    const as = await startAs();
    const before = (await as.store.oauth.list('Client')).length;
    const refused = [
      { ...publicClient('http://127.0.0.1:1/cb'), client_name: 'x'.repeat(201) },
      { ...publicClient('http://127.0.0.1:1/cb'), redirect_uris: Array.from({ length: 11 }, (_, i) => `http://127.0.0.1:1/cb${i}`) },
      { ...publicClient(`http://127.0.0.1:1/${'p'.repeat(2100)}`) },
    ];
    for (const metadata of refused) {
      const response = await register(as.base, metadata);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: string }).error).toMatch(/^invalid_(client_metadata|redirect_uri)$/);
    }
    expect((await as.store.oauth.list('Client')).length).toBe(before);
    expect((await register(as.base, { ...publicClient('http://127.0.0.1:1/cb'), client_name: 'x'.repeat(200) })).status).toBe(201);
  });

  it('throttles open registration per client address: 429 with Retry-After past 30 in ten minutes', async () => {
    const as = await startAs();
    for (let i = 0; i < 30; i++) expect((await register(as.base, publicClient('http://127.0.0.1:1/cb'))).status).toBe(201);
    const refused = await register(as.base, publicClient('http://127.0.0.1:1/cb'));
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await refused.json()) as { error: string }).error).toBe('temporarily_unavailable');
  });

  it('refuses open registration, 503, while the counters cannot be reached (fail closed)', async () => {
    const down = { ...memoryBackend, counter: () => ({ get: () => Promise.reject(new Error('redis down')) }) } as unknown as LimiterBackend;
    const as = await startAs({ limiters: down });
    const before = (await as.store.oauth.list('Client')).length;
    const refused = await register(as.base, publicClient('http://127.0.0.1:1/cb'));
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect((await as.store.oauth.list('Client')).length).toBe(before);
  });

  it('never redirects to a URI from the request that the client did not register (open redirect)', async () => {
    const as = await startAs();
    const client = await registerClient(as.base);
    const { challenge } = pkce();
    const attempts = [
      'https://evil.example/',
      'http://127.0.0.1:33418/callback@evil.example',
      'http://127.0.0.1:33418/callback/../../evil',
      '//evil.example/callback',
      'http://127.0.0.1:33418/callback#frag',
      'HTTP://127.0.0.1:33418/callback',
    ];
    for (const redirectUri of attempts) {
      // Also with errors that would otherwise be sent to the client (no PKCE, an unknown resource).
      for (const extra of [{ challenge, challengeMethod: 'S256', resource: as.resource }, { resource: 'https://other.example/' }]) {
        const response = await new Browser().fetch(authorizeUrl(as.base, { clientId: client.client_id, redirectUri, ...extra }));
        expect(response.status, redirectUri).toBe(400);
        expect(response.headers.get('location'), redirectUri).toBeNull();
      }
    }
    // The registered one still works.
    const { callback } = await authorize(new Browser(), as.base, { clientId: client.client_id, redirectUri: client.redirect_uri, resource: as.resource, challenge, challengeMethod: 'S256' });
    expect(callback.searchParams.get('code')).not.toBeNull();
  });
});
