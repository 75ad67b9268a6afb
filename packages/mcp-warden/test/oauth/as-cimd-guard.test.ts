/**
 * Client ID metadata documents, the fetch side (MCP authorization ≥ 2025-11-25, checklist 25): in
 * production (no test fetch hook) URL-shaped client ids on loopback or plain http are never fetched
 * (SSRF), and documents are cached per their HTTP headers.
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Browser, authorizeUrl, closeAll, fullFlow, pkce, startAs } from './as-harness.js';

afterEach(closeAll);

describe('Security: client ID metadata document fetching', () => {
  let documentServer: Server;
  let hits = 0;
  let port = 0;

  beforeAll(async () => {
    documentServer = createServer((_req, res) => {
      hits++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((r) => documentServer.listen(0, '127.0.0.1', r));
    port = (documentServer.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => documentServer.close(() => r())));

  it('never fetches a client id on a loopback address or over plain http, and redirects nowhere', async () => {
    const as = await startAs();
    for (const clientId of [`http://127.0.0.1:${port}/client.json`, `https://127.0.0.1:${port}/client.json`, `https://localhost:${port}/client.json`]) {
      const { challenge } = pkce();
      const response = await new Browser().fetch(authorizeUrl(as.base, { clientId, redirectUri: 'http://127.0.0.1:1/cb', resource: as.resource, challenge, challengeMethod: 'S256' }));
      expect(response.status, clientId).toBe(400);
      expect(response.headers.get('location')).toBeNull();
    }
    expect(hits).toBe(0);
  });

  it('refuses a document without client_name, without redirecting', async () => {
    const CLIENT_ID = 'https://client.example/nameless.json';
    const REDIRECT = 'http://127.0.0.1:33421/callback';
    const hook = (async () =>
      new Response(JSON.stringify({ client_id: CLIENT_ID, redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' }), {
        status: 200,
        headers: { 'content-type': 'application/json' },
      })) as typeof fetch;
    const as = await startAs({ fetch: hook });
    const { challenge } = pkce();
    const response = await new Browser().fetch(authorizeUrl(as.base, { clientId: CLIENT_ID, redirectUri: REDIRECT, resource: as.resource, challenge, challengeMethod: 'S256' }));
    expect(response.status).toBe(400);
    expect(response.headers.get('location')).toBeNull();
    expect(await response.text()).toContain('client_name');
  });

  it('reuses a fetched document within its max-age instead of fetching it per authorization', async () => {
    const CLIENT_ID = 'https://client.example/cimd.json';
    const REDIRECT = 'http://127.0.0.1:33420/callback';
    let fetches = 0;
    const hook = (async (input: string | URL | Request) => {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      if (url !== CLIENT_ID) return new Response('not found', { status: 404 });
      fetches++;
      const document = { client_id: CLIENT_ID, client_name: 'Cached client', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'] };
      return new Response(JSON.stringify(document), { status: 200, headers: { 'content-type': 'application/json', 'cache-control': 'max-age=300' } });
    }) as typeof fetch;
    const as = await startAs({ fetch: hook });
    await fullFlow(as, { client: { client_id: CLIENT_ID, redirect_uri: REDIRECT } });
    await fullFlow(as, { client: { client_id: CLIENT_ID, redirect_uri: REDIRECT } });
    expect(fetches).toBe(1);
  });
});
