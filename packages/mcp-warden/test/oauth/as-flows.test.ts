/**
 * The authorization server over real HTTP: metadata (RFC 8414, OIDC Discovery), the authorization
 * code flow with PKCE through the sign-in and consent pages, RFC 9207 `iss`, resource indicators
 * (RFC 8707) bound into RFC 9068 JWT access tokens, and refresh token rotation with reuse detection.
 */
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Browser,
  authorize,
  authorizeUrl,
  claimsOf,
  closeAll,
  fullFlow,
  headerOf,
  pkce,
  registerClient,
  startAs,
  tokenRequest,
} from './as-harness.js';

afterEach(closeAll);

describe('metadata', () => {
  it('serves RFC 8414 and OpenID Discovery with the same issuer, S256 only, iss and CIMD supported', async () => {
    const as = await startAs();
    const oauth = await fetch(`${as.base}/.well-known/oauth-authorization-server`);
    const openid = await fetch(`${as.base}/.well-known/openid-configuration`);
    expect(oauth.status).toBe(200);
    expect(openid.status).toBe(200);
    const a = (await oauth.json()) as Record<string, unknown>;
    const b = (await openid.json()) as Record<string, unknown>;
    for (const metadata of [a, b]) {
      expect(metadata['issuer']).toBe(as.base);
      expect(metadata['issuer']).toBe(as.as.issuer);
      expect(metadata['code_challenge_methods_supported']).toEqual(['S256']);
      expect(metadata['authorization_response_iss_parameter_supported']).toBe(true);
      expect(metadata['client_id_metadata_document_supported']).toBe(true);
      expect(metadata['response_types_supported']).toEqual(['code']);
      expect(metadata['grant_types_supported']).toEqual(expect.arrayContaining(['authorization_code', 'refresh_token', 'client_credentials']));
      expect(metadata['grant_types_supported']).not.toContain('implicit');
      expect(metadata['scopes_supported']).toEqual(['openid', 'offline_access', 'mcp:read', 'mcp:write']);
      for (const endpoint of ['authorization_endpoint', 'token_endpoint', 'registration_endpoint', 'jwks_uri', 'revocation_endpoint', 'introspection_endpoint']) {
        expect(String(metadata[endpoint]).startsWith(`${as.base}/oauth/`), endpoint).toBe(true);
      }
    }
    expect(a['token_endpoint']).toBe(b['token_endpoint']);
  });

  it('builds URLs from the issuer, not from the Host or X-Forwarded-* a client sends', async () => {
    const as = await startAs();
    const response = await fetch(`${as.base}/.well-known/oauth-authorization-server`, { headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } });
    const metadata = (await response.json()) as Record<string, string>;
    expect(metadata['token_endpoint']).toBe(`${as.base}/oauth/token`);
  });

  it('leaves requests outside its paths alone, and publishes the JWKS it signs with', async () => {
    const as = await startAs();
    expect((await fetch(`${as.base}/mcp/everything`)).status).toBe(404);
    expect(await (await fetch(`${as.base}/mcp/everything`)).text()).toBe('not the authorization server');
    const published = (await (await fetch(`${as.base}/oauth/jwks`)).json()) as { keys: { kid: string; d?: string }[] };
    expect(published.keys.map((k) => k.kid).sort()).toEqual(as.as.jwks().keys.map((k) => (k as { kid: string }).kid).sort());
    expect(published.keys.every((k) => k.d === undefined)).toBe(true);
    expect(as.as.jwks().keys.every((k) => k.d === undefined)).toBe(true);
  });
});

describe('authorization code with PKCE', () => {
  it('signs in, consents, and redeems the code for a JWT bound to the resource (RFC 9068) and a refresh token', async () => {
    const as = await startAs({ config: { accessTokenTtl: '5m' } });
    const { tokens, client, pages } = await fullFlow(as, { scope: 'mcp:read mcp:write' });
    expect(pages).toHaveLength(2);
    expect(pages[0]?.html).toContain('name="password"');
    expect(pages[1]?.html).toContain('name="decision"');
    expect(tokens).toMatchObject({ token_type: 'Bearer', expires_in: 300, scope: 'mcp:read mcp:write' });
    expect(typeof tokens['refresh_token']).toBe('string');

    const { payload, protectedHeader } = await jwtVerify(tokens['access_token'] as string, createLocalJWKSet(as.as.jwks() as never), {
      issuer: as.base,
      audience: as.resource,
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
    expect(protectedHeader.typ).toBe('at+jwt');
    expect(payload).toMatchObject({ sub: 'usr_alice', client_id: client.client_id, scope: 'mcp:read mcp:write', roles: ['reader', 'writer'], aud: as.resource });
    expect((payload.exp as number) - (payload.iat as number)).toBe(300);
  });

  it('puts iss (RFC 9207) and state in the redirect', async () => {
    const as = await startAs();
    const client = await registerClient(as.base);
    const { challenge } = pkce();
    const { callback } = await authorize(new Browser(), as.base, { clientId: client.client_id, redirectUri: client.redirect_uri, resource: as.resource, challenge, challengeMethod: 'S256', state: 'xyz' });
    expect(callback.origin + callback.pathname).toBe(client.redirect_uri);
    expect(callback.searchParams.get('iss')).toBe(as.base);
    expect(callback.searchParams.get('state')).toBe('xyz');
  });

  it('a denied consent returns access_denied with iss to the client', async () => {
    const as = await startAs();
    const client = await registerClient(as.base);
    const { challenge } = pkce();
    const { callback } = await authorize(new Browser(), as.base, { clientId: client.client_id, redirectUri: client.redirect_uri, resource: as.resource, challenge, challengeMethod: 'S256' }, 'deny');
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('iss')).toBe(as.base);
    expect(callback.searchParams.get('code')).toBeNull();
  });

  it('refuses a wrong code_verifier with invalid_grant', async () => {
    const as = await startAs();
    const client = await registerClient(as.base);
    const { challenge } = pkce();
    const { callback } = await authorize(new Browser(), as.base, { clientId: client.client_id, redirectUri: client.redirect_uri, resource: as.resource, challenge, challengeMethod: 'S256' });
    const { status, body } = await tokenRequest(as.base, {
      grant_type: 'authorization_code',
      code: callback.searchParams.get('code') as string,
      redirect_uri: client.redirect_uri,
      client_id: client.client_id,
      code_verifier: pkce().verifier,
      resource: as.resource,
    });
    expect(status).toBe(400);
    expect(body['error']).toBe('invalid_grant');
  });

  it('refuses the plain method and a missing code_challenge, before any sign-in, with a page and no redirect', async () => {
    // Sent to the redirect_uri, the error would make this server an open redirect for any client
    // anyone registers (RFC 9700 §4.11.2): found by an adversarial probe.
    const as = await startAs();
    const client = await registerClient(as.base);
    const browser = new Browser();
    const { verifier } = pkce();
    for (const extra of [{ challenge: verifier, challengeMethod: 'plain' }, {}]) {
      const response = await browser.fetch(authorizeUrl(as.base, { clientId: client.client_id, redirectUri: client.redirect_uri, resource: as.resource, ...extra }));
      expect(response.status).toBe(400);
      expect(response.headers.get('location')).toBeNull();
      expect(await response.text()).toContain('invalid_request');
    }
  });

  it('answers an unregistered redirect_uri with a 400 page and no redirect', async () => {
    const as = await startAs();
    const client = await registerClient(as.base);
    const { challenge } = pkce();
    for (const redirectUri of ['http://127.0.0.1:33418/other', 'https://evil.example/callback', `${client.redirect_uri}/..`, `${client.redirect_uri}?x=1`]) {
      const response = await new Browser().fetch(authorizeUrl(as.base, { clientId: client.client_id, redirectUri, resource: as.resource, challenge, challengeMethod: 'S256' }));
      expect(response.status, redirectUri).toBe(400);
      expect(response.headers.get('location')).toBeNull();
      expect(await response.text()).toContain('redirect_uri');
    }
  });

  it('refuses a resource it does not serve with invalid_target, on a page: no error redirect before the user did anything', async () => {
    // Sent to the redirect_uri, the error would make this server an open redirect for any client
    // anyone registers (RFC 9700 §4.11.2).
    const as = await startAs();
    const client = await registerClient(as.base);
    const { challenge } = pkce();
    const cases: { resource: string; extra?: Record<string, string> }[] = [
      { resource: 'https://other.example/mcp' },
      { resource: as.resource, extra: { response_type: 'token' } },
      { resource: as.resource, extra: { prompt: 'none' } },
    ];
    for (const extra of cases) {
      const response = await new Browser().fetch(authorizeUrl(as.base, { clientId: client.client_id, redirectUri: client.redirect_uri, challenge, challengeMethod: 'S256', ...extra }));
      expect(response.status).toBe(400);
      expect(response.headers.get('location')).toBeNull();
      expect(await response.text()).toMatch(/invalid_target|unsupported_response_type|login_required|invalid_request/);
    }
  });

  it('mints the audience of the resource asked for, in canonical form', async () => {
    const as = await startAs();
    const client = await registerClient(as.base);
    const { verifier, challenge } = pkce();
    const other = `${as.base}/mcp/other`;
    const { callback } = await authorize(new Browser(), as.base, { clientId: client.client_id, redirectUri: client.redirect_uri, resource: `${other}/`, challenge, challengeMethod: 'S256' });
    const { status, body } = await tokenRequest(as.base, {
      grant_type: 'authorization_code',
      code: callback.searchParams.get('code') as string,
      redirect_uri: client.redirect_uri,
      client_id: client.client_id,
      code_verifier: verifier,
      resource: `${other}/`,
    });
    expect(status, JSON.stringify(body)).toBe(200);
    expect(claimsOf(body['access_token'] as string)['aud']).toBe(other);
    expect(headerOf(body['access_token'] as string)['typ']).toBe('at+jwt');
  });

  it('redeems a code once', async () => {
    const as = await startAs();
    const client = await registerClient(as.base);
    const { verifier, challenge } = pkce();
    const { callback } = await authorize(new Browser(), as.base, { clientId: client.client_id, redirectUri: client.redirect_uri, resource: as.resource, challenge, challengeMethod: 'S256' });
    const params = {
      grant_type: 'authorization_code',
      code: callback.searchParams.get('code') as string,
      redirect_uri: client.redirect_uri,
      client_id: client.client_id,
      code_verifier: verifier,
      resource: as.resource,
    };
    expect((await tokenRequest(as.base, params)).status).toBe(200);
    const again = await tokenRequest(as.base, params);
    expect(again.status).toBe(400);
    expect(again.body['error']).toBe('invalid_grant');
  });
});

describe('refresh tokens', () => {
  it('rotates on every use; a reused refresh token revokes the whole grant', async () => {
    const as = await startAs();
    const { tokens, client } = await fullFlow(as);
    const rt1 = tokens['refresh_token'] as string;
    const refresh = (token: string) => tokenRequest(as.base, { grant_type: 'refresh_token', refresh_token: token, client_id: client.client_id, resource: as.resource });

    const first = await refresh(rt1);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const rt2 = first.body['refresh_token'] as string;
    expect(rt2).toBeDefined();
    expect(rt2).not.toBe(rt1);
    expect(claimsOf(first.body['access_token'] as string)).toMatchObject({ aud: as.resource, sub: 'usr_alice', roles: ['reader', 'writer'] });

    const reuse = await refresh(rt1);
    expect(reuse.status).toBe(400);
    expect(reuse.body['error']).toBe('invalid_grant');
    expect(as.logs.some((l) => l.message === 'authorization server: grant revoked')).toBe(true);

    const afterReuse = await refresh(rt2);
    expect(afterReuse.status).toBe(400);
    expect(afterReuse.body['error']).toBe('invalid_grant');
  });

  it('issues refresh tokens to clients registered with the refresh_token grant without offline_access, and none to others', async () => {
    const as = await startAs();
    const withRefresh = await fullFlow(as, { scope: 'mcp:read' });
    expect(withRefresh.tokens['refresh_token']).toBeDefined();
    const noRefresh = await fullFlow(as, { client: await registerClient(as.base, { grant_types: ['authorization_code'] }) });
    expect(noRefresh.tokens['refresh_token']).toBeUndefined();
  });

  it('stops refreshing for a user who has been disabled', async () => {
    const as = await startAs();
    const { tokens, client } = await fullFlow(as);
    (as.users.users.get('usr_alice') as { disabled: boolean }).disabled = true;
    const { status, body } = await tokenRequest(as.base, { grant_type: 'refresh_token', refresh_token: tokens['refresh_token'] as string, client_id: client.client_id, resource: as.resource });
    expect(status).toBe(400);
    expect(body['error']).toBe('invalid_grant');
  });
});

describe('revocation and introspection', () => {
  it('revokes a refresh token; JWT access tokens answer unsupported_token_type at both endpoints', async () => {
    const as = await startAs({
      config: { clients: [{ clientId: 'resource-server', clientSecret: 'rs-secret-0123456789abcdef', grantTypes: ['client_credentials'], roles: [] }] },
    });
    const { tokens, client } = await fullFlow(as);
    const basic = `Basic ${Buffer.from('resource-server:rs-secret-0123456789abcdef').toString('base64')}`;
    const post = (path: string, params: Record<string, string>, headers: Record<string, string> = {}) =>
      fetch(`${as.base}/oauth/${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(params).toString() });

    const introspected = (await (await post('introspect', { token: tokens['refresh_token'] as string }, { authorization: basic })).json()) as Record<string, unknown>;
    expect(introspected).toMatchObject({ active: true, sub: 'usr_alice', client_id: client.client_id });

    for (const path of ['introspect', 'revoke']) {
      const response =
        path === 'introspect' ? await post(path, { token: tokens['access_token'] as string }, { authorization: basic }) : await post(path, { token: tokens['access_token'] as string, client_id: client.client_id });
      expect(response.status, path).toBe(400);
      expect(((await response.json()) as { error: string }).error).toBe('unsupported_token_type');
    }

    expect((await post('revoke', { token: tokens['refresh_token'] as string, client_id: client.client_id })).status).toBe(200);
    const refreshed = await tokenRequest(as.base, { grant_type: 'refresh_token', refresh_token: tokens['refresh_token'] as string, client_id: client.client_id });
    expect(refreshed.body['error']).toBe('invalid_grant');
  });
});
