/**
 * A confidential client (configured, with a secret) on the authorization-code flow (OAuth 2.1
 * §2.1, checklist row 18): it must authenticate at the token endpoint, and PKCE is still required.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Browser, authorize, claimsOf, closeAll, pkce, startAs, tokenRequest } from './as-harness.js';

afterEach(closeAll);

const SECRET = 'web-app-secret-0123456789abcdef';
const REDIRECT = 'https://app.example/callback';
const basic = (id: string, secret: string): string => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

describe('confidential client, authorization code', () => {
  it('redeems a code only with its secret (and its PKCE verifier), then refreshes with the secret', async () => {
    const as = await startAs({
      config: { clients: [{ clientId: 'web-app', clientSecret: SECRET, clientName: 'Web app', grantTypes: ['authorization_code', 'refresh_token'], redirectUris: [REDIRECT] }] },
    });
    const { verifier, challenge } = pkce();
    const { callback } = await authorize(new Browser(), as.base, { clientId: 'web-app', redirectUri: REDIRECT, resource: as.resource, challenge, challengeMethod: 'S256' });
    const code = callback.searchParams.get('code') as string;
    const params = { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier, resource: as.resource };

    const anonymous = await tokenRequest(as.base, { ...params, client_id: 'web-app' });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body['error']).toBe('invalid_client');
    const wrong = await tokenRequest(as.base, params, { authorization: basic('web-app', `${SECRET}x`) });
    expect(wrong.status).toBe(401);

    const ok = await tokenRequest(as.base, params, { authorization: basic('web-app', SECRET) });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(claimsOf(ok.body['access_token'] as string)).toMatchObject({ client_id: 'web-app', aud: as.resource });
    const refreshed = await tokenRequest(as.base, { grant_type: 'refresh_token', refresh_token: ok.body['refresh_token'] as string, resource: as.resource }, { authorization: basic('web-app', SECRET) });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
  });

  it('still requires PKCE from a confidential client', async () => {
    const as = await startAs({ config: { clients: [{ clientId: 'web-app', clientSecret: SECRET, redirectUris: [REDIRECT] }] } });
    const response = await new Browser().fetch(`${as.base}/oauth/authorize?client_id=web-app&redirect_uri=${encodeURIComponent(REDIRECT)}&response_type=code&scope=mcp%3Aread&state=s&resource=${encodeURIComponent(as.resource)}`);
    expect(response.status).toBe(400);
    expect(response.headers.get('location')).toBeNull();
  });
});
