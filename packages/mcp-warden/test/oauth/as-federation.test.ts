/**
 * Federation: "Log in with" an upstream OpenID provider. The upstream is a minimal provider started
 * by the test on 127.0.0.1 (discovery, an authorization endpoint that signs "carol" in at once, a
 * token endpoint checking the client secret and PKCE, an ES256 ID token with groups).
 */
import { createHash } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, generateKeyPair } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { mapClaimsToRoles } from '../../src/oauth/federation.js';
import { Browser, actionOf, authorizeUrl, claimsOf, closeAll, csrfOf, pkce, registerClient, startAs, tokenRequest } from './as-harness.js';

afterEach(closeAll);

interface Upstream {
  readonly issuer: string;
  readonly tokenRequests: URLSearchParams[];
  close(): Promise<void>;
}

async function startUpstream(claims: Record<string, unknown>): Promise<Upstream> {
  const { privateKey } = await generateKeyPair('ES256');
  const codes = new Map<string, { challenge: string; nonce: string; redirectUri: string }>();
  const tokenRequests: URLSearchParams[] = [];
  let issuer = '';
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    if (url.pathname === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          issuer,
          authorization_endpoint: `${issuer}/authorize`,
          token_endpoint: `${issuer}/token`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['ES256'],
          code_challenge_methods_supported: ['S256'],
        }),
      );
      return;
    }
    if (url.pathname === '/authorize') {
      const code = `code-${codes.size}`;
      codes.set(code, { challenge: url.searchParams.get('code_challenge') ?? '', nonce: url.searchParams.get('nonce') ?? '', redirectUri: url.searchParams.get('redirect_uri') ?? '' });
      const back = new URL(url.searchParams.get('redirect_uri') as string);
      back.searchParams.set('code', code);
      back.searchParams.set('state', url.searchParams.get('state') ?? '');
      res.writeHead(302, { location: back.href });
      res.end();
      return;
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const params = new URLSearchParams(body);
        tokenRequests.push(params);
        const entry = codes.get(params.get('code') ?? '');
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
        const [id, secret] = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64')
          .toString()
          .split(':')
          .map((part) => decodeURIComponent(part));
        const basic = id === 'warden' && secret === 'upstream-secret';
        const verifier = createHash('sha256').update(params.get('code_verifier') ?? '').digest('base64url');
        if (entry === undefined || !basic || verifier !== entry.challenge || params.get('redirect_uri') !== entry.redirectUri) {
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'invalid_grant' }));
          return;
        }
        const now = Math.floor(Date.now() / 1000);
        void new SignJWT({ ...claims, nonce: entry.nonce })
          .setProtectedHeader({ alg: 'ES256' })
          .setIssuer(issuer)
          .setAudience('warden')
          .setIssuedAt(now)
          .setExpirationTime(now + 300)
          .sign(privateKey)
          .then((idToken) => {
            res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
            res.end(JSON.stringify({ access_token: 'upstream-at', token_type: 'Bearer', expires_in: 300, id_token: idToken }));
          });
      });
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    tokenRequests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('federation', () => {
  it('logs in with the upstream provider, maps its claims to roles, and upserts the account', async () => {
    const upstream = await startUpstream({ sub: 'u-123', preferred_username: 'carol', groups: ['eng', 'unrelated'], realm_access: { roles: 'ops dev' } });
    try {
      const as = await startAs({
        config: {
          federation: {
            name: 'Corp SSO',
            issuer: upstream.issuer,
            clientId: 'warden',
            clientSecret: 'upstream-secret',
            roles: [
              { claim: 'groups', values: { eng: ['writer'] } },
              { claim: 'realm_access.roles', values: { ops: ['operator'] } },
            ],
            defaultRoles: ['reader'],
          },
        },
      });
      const client = await registerClient(as.base);
      const browser = new Browser();
      const { verifier, challenge } = pkce();
      let response = await browser.fetch(authorizeUrl(as.base, { clientId: client.client_id, redirectUri: client.redirect_uri, resource: as.resource, challenge, challengeMethod: 'S256' }));
      while (response.status === 303) response = await browser.fetch(new URL(response.headers.get('location') as string, as.base).href);
      const login = await response.text();
      const link = /<a class="button" href="([^"]+)">Log in with Corp SSO<\/a>/.exec(login)?.[1];
      expect(link).toBeDefined();

      // The browser follows the link, the upstream, and the way back, until a page is shown.
      response = await browser.fetch(new URL(link as string, as.base).href);
      const upstreamAuthorize = new URL(response.headers.get('location') as string);
      expect(upstreamAuthorize.origin).toBe(upstream.issuer);
      expect(upstreamAuthorize.searchParams.get('code_challenge_method')).toBe('S256');
      expect(upstreamAuthorize.searchParams.get('redirect_uri')).toBe(`${as.base}/oauth/federation/callback`);
      while (response.status >= 300 && response.status < 400) response = await browser.fetch(new URL(response.headers.get('location') as string, as.base).href);
      const consent = await response.text();
      expect(consent, consent.slice(0, 600)).toContain('name="decision"');
      expect(consent).toContain('<strong>carol</strong>');
      expect(upstream.tokenRequests).toHaveLength(1);
      expect(as.users.calls).toContain(`upsertFederated:${upstream.issuer}:u-123`);

      response = await browser.post(new URL(actionOf(consent), as.base).href, { csrf: csrfOf(consent), decision: 'allow' });
      while (response.status === 303 && !(response.headers.get('location') as string).startsWith(client.redirect_uri)) {
        response = await browser.fetch(new URL(response.headers.get('location') as string, as.base).href);
      }
      const code = new URL(response.headers.get('location') as string).searchParams.get('code') as string;
      const { body } = await tokenRequest(as.base, { grant_type: 'authorization_code', code, redirect_uri: client.redirect_uri, client_id: client.client_id, code_verifier: verifier, resource: as.resource });
      const claims = claimsOf(body['access_token'] as string);
      expect(claims['sub']).toBe('usr_fed_u-123');
      expect([...(claims['roles'] as string[])].sort()).toEqual(['operator', 'reader', 'writer']);
    } finally {
      await upstream.close();
    }
  });

  it('a disabled federated account gets a refusal page, not an error and not a sign-in', async () => {
    const upstream = await startUpstream({ sub: 'u-9', preferred_username: 'dave' });
    try {
      const disabled = Object.assign(new Error('disabled'), { code: 'disabled' });
      const directory = {
        authenticate: async () => undefined,
        get: async () => undefined,
        upsertFederated: async () => {
          throw disabled;
        },
      };
      const as = await startAs({ directory, config: { federation: { name: 'Corp SSO', issuer: upstream.issuer, clientId: 'warden', clientSecret: 'upstream-secret' } } });
      const client = await registerClient(as.base);
      const browser = new Browser();
      const { challenge } = pkce();
      let response = await browser.fetch(authorizeUrl(as.base, { clientId: client.client_id, redirectUri: client.redirect_uri, resource: as.resource, challenge, challengeMethod: 'S256' }));
      while (response.status === 303) response = await browser.fetch(new URL(response.headers.get('location') as string, as.base).href);
      const link = /<a class="button" href="([^"]+)">Log in with Corp SSO<\/a>/.exec(await response.text())?.[1] as string;
      response = await browser.fetch(new URL(link, as.base).href);
      while (response.status >= 300 && response.status < 400) {
        const location = response.headers.get('location') as string;
        expect(location.startsWith(client.redirect_uri)).toBe(false);
        response = await browser.fetch(new URL(location, as.base).href);
      }
      expect(response.status).toBeLessThan(500);
      expect(await response.text()).toContain('This account is disabled');
    } finally {
      await upstream.close();
    }
  });

  it('a callback with an unknown state is refused with a page, not a redirect', async () => {
    const upstream = await startUpstream({ sub: 'u-1' });
    try {
      const as = await startAs({ config: { federation: { issuer: upstream.issuer, clientId: 'warden', clientSecret: 'upstream-secret' } } });
      const response = await fetch(`${as.base}/oauth/federation/callback?code=x&state=forged`, { redirect: 'manual' });
      expect(response.status).toBe(400);
      expect(response.headers.get('location')).toBeNull();
      expect(upstream.tokenRequests).toHaveLength(0);
    } finally {
      await upstream.close();
    }
  });
});

describe('mapClaimsToRoles', () => {
  const rules: { claim: string; values: Record<string, string[]> }[] = [
    { claim: 'groups', values: { eng: ['writer'], admins: ['admin'] } },
    { claim: 'realm_access.roles', values: { ops: ['operator'] } },
    { claim: 'scp', values: { 'mcp.write': ['writer'] } },
  ];
  it('reads lists, space-separated strings and dotted paths; unknown values grant nothing', () => {
    expect(mapClaimsToRoles({ groups: ['eng', 'x'], realm_access: { roles: ['ops'] }, scp: 'mcp.read mcp.write' }, rules, ['reader']).sort()).toEqual(['operator', 'reader', 'writer']);
    expect(mapClaimsToRoles({ groups: 'admins' }, rules)).toEqual(['admin']);
    expect(mapClaimsToRoles({ groups: [1, null, { eng: true }], realm_access: 'ops' }, rules)).toEqual([]);
    expect(mapClaimsToRoles({ groups: ['constructor', 'toString', '__proto__'] }, rules)).toEqual([]);
  });
});
