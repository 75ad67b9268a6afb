/**
 * End to end, as a user would see it: the official SDK v1 client (`@modelcontextprotocol/sdk`) with
 * an `OAuthClientProvider`, the gateway with its built-in authorization server, and headless
 * Chromium signing in and consenting. The client starts from a bare 401, discovers the protected
 * resource metadata and the authorization server, registers dynamically, runs PKCE, receives a
 * token bound to the MCP URL, lists and calls tools, refreshes on its own when the access token is
 * refused, loses its grant when a refresh token is replayed, and steps up from `mcp:read` to
 * `mcp:write` when the gateway answers 403 `insufficient_scope` (v1's transport only refreshes on
 * that answer, which cannot widen a grant, so the host runs the SDK's `auth()` for the challenged
 * scope; the v2 client re-authorizes by itself, see e2e-sdk-v2.test.ts).
 *
 * Screenshots of every login and consent page land in `artifacts/screenshots/sdk-v1-*.png`.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { UnauthorizedError, auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ChromiumDriver, type FlowResult, launchChromium, requireChromium } from '../support/chromium.js';
import { BrowserOAuthProvider, type CallbackServer, type WireExchange, jwtClaims, recordingFetch, startCallbackServer } from '../support/oauth-client.js';
import { type OAuthGateway, startOAuthGateway } from '../support/oauth-gateway.js';

const WRITER = { username: 'wendy', password: 'wendy-has-a-long-password', roles: ['writer'] } as const;
const FLOW_TIMEOUT_MS = 90_000;

function textOf(result: Awaited<ReturnType<Client['callTool']>>): string {
  return (result.content as { type: string; text?: string }[]).map((c) => c.text ?? '').join('\n');
}

function audienceOf(claims: Record<string, unknown>): string[] {
  const aud = claims['aud'];
  return Array.isArray(aud) ? (aud as string[]) : [String(aud)];
}

describe('SDK v1 client, built-in authorization server, real browser', () => {
  let gw: OAuthGateway;
  let browser: ChromiumDriver;
  let callback: CallbackServer;
  const open: Client[] = [];

  beforeAll(async () => {
    requireChromium();
    // The challenge asks for read access only: clients start least-privileged and step up for writes.
    [gw, browser, callback] = await Promise.all([startOAuthGateway({ challengeScopes: ['mcp:read'] }), launchChromium(), startCallbackServer()]);
    await gw.addUser(WRITER.username, WRITER.password, WRITER.roles);
  }, 120_000);

  afterEach(async () => {
    for (const client of open.splice(0)) await client.close().catch(() => {});
  });

  afterAll(async () => {
    await Promise.allSettled([gw?.close(), browser?.close(), callback?.close()]);
  });

  /** A provider whose user agent is the test's Chromium, signing in as `user`. */
  function provider(name: string, flows: FlowResult[], user: { username: string; password: string } = WRITER): BrowserOAuthProvider {
    return new BrowserOAuthProvider({
      redirectUrl: callback.url,
      clientName: `mcp-warden e2e (${name})`,
      authorize: async (url) => {
        const flow = await browser.loginAndConsent(url, { ...user, name });
        flows.push(flow);
        return flow.callback;
      },
    });
  }

  async function connect(authProvider: BrowserOAuthProvider, wire: WireExchange[]): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
    const transport = new StreamableHTTPClientTransport(gw.mcpUrl, { authProvider, fetch: recordingFetch(wire) });
    const client = new Client({ name: 'mcp-warden-e2e-v1', version: '1.0.0' });
    await client.connect(transport);
    open.push(client);
    return { client, transport };
  }

  /** The interactive sign-in every test starts with: bare 401, discovery, registration, browser, code exchange. */
  async function signIn(name: string, wire: WireExchange[], flows: FlowResult[]) {
    const authProvider = provider(name, flows);
    const first = new StreamableHTTPClientTransport(gw.mcpUrl, { authProvider, fetch: recordingFetch(wire) });
    await expect(new Client({ name: 'mcp-warden-e2e-v1', version: '1.0.0' }).connect(first)).rejects.toBeInstanceOf(UnauthorizedError);
    await first.finishAuth(await authProvider.takeCode());
    await first.close();
    return { authProvider, ...(await connect(authProvider, wire)) };
  }

  it(
    'starts from a bare 401, discovers, registers, runs PKCE through the browser, then lists and calls tools',
    async () => {
      const wire: WireExchange[] = [];
      const flows: FlowResult[] = [];
      const { authProvider, client } = await signIn('sdk-v1', wire, flows);
      const mcp = gw.mcpUrl.href;
      const prmUrl = `${gw.base}/.well-known/oauth-protected-resource/mcp/everything`;

      // 1. The bare request and its challenge (RFC 6750 §3: no error code without a credential).
      const [bare] = wire;
      expect(bare).toMatchObject({ method: 'POST', authorization: null, status: 401 });
      expect(bare?.url.href).toBe(mcp);
      expect(bare?.wwwAuthenticate).toContain(`resource_metadata="${prmUrl}"`);
      expect(bare?.wwwAuthenticate).toMatch(/scope="mcp:read"/);
      expect(bare?.wwwAuthenticate).not.toMatch(/error=|offline_access/);

      // 2. Discovery: the PRM named in the challenge, then the authorization server's metadata.
      const prm = wire.find((e) => e.method === 'GET' && e.url.href === prmUrl);
      expect(prm?.status).toBe(200);
      const asMetadata = wire.find((e) => e.method === 'GET' && /\/\.well-known\/(oauth-authorization-server|openid-configuration)/.test(e.url.pathname) && e.status === 200);
      expect(asMetadata).toBeDefined();
      expect(wire.indexOf(prm as WireExchange)).toBeLessThan(wire.indexOf(asMetadata as WireExchange));
      // An issuer without a path: RFC 8414 metadata is tried first.
      expect(wire.find((e) => e.url.pathname.startsWith('/.well-known/') && !e.url.pathname.includes('protected-resource'))?.url.pathname).toBe('/.well-known/oauth-authorization-server');

      // 3. Dynamic client registration (RFC 7591).
      const registration = wire.find((e) => e.method === 'POST' && (e.json as { redirect_uris?: unknown } | null)?.redirect_uris !== undefined);
      expect(registration?.status).toBe(201);
      const clientId = String(authProvider.registeredClient?.['client_id']);
      expect(clientId).not.toBe('undefined');

      // 4. The authorization request: PKCE S256, the resource indicator, state, the challenged scope.
      expect(authProvider.authorizationUrls).toHaveLength(1);
      const authorize = authProvider.authorizationUrls[0] as URL;
      expect(authorize.searchParams.get('response_type')).toBe('code');
      expect(authorize.searchParams.get('client_id')).toBe(clientId);
      expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
      expect(authorize.searchParams.get('resource')).toBe(mcp);
      expect(authorize.searchParams.get('redirect_uri')).toBe(callback.url);
      expect(authorize.searchParams.get('scope')).toBe('mcp:read');
      expect(authorize.searchParams.get('state')).toMatch(/^[\w-]{16,}$/);

      // 5. The browser: a login page, then a consent page naming the client, its redirect host and the scope.
      expect(flows).toHaveLength(1);
      const pages = flows[0]?.pages ?? [];
      expect(pages.map((p) => p.kind)).toEqual(['login', 'consent']);
      for (const page of pages) {
        expect(existsSync(page.screenshot)).toBe(true);
        expect(page.accessibility.problems).toEqual([]);
        expect(page.text).toContain('mcp-warden e2e (sdk-v1)');
        expect(page.text).toContain('127.0.0.1');
      }
      expect(pages[0]?.accessibility.tabOrder.slice(0, 3)).toEqual(['input[name=username]', 'input[name=password]', 'button "Sign in"']);
      expect(pages[1]?.text).toContain('mcp:read');
      expect(pages[1]?.text).toContain(WRITER.username);
      // RFC 9207: the authorization response names the issuer.
      const issuer = new URL(String(flows[0]?.callback.searchParams.get('iss')));
      expect(issuer.origin).toBe(gw.base);

      // 6. The code exchange: the verifier matches the challenge, and the resource is sent again.
      const exchange = wire.find((e) => e.form?.get('grant_type') === 'authorization_code');
      expect(exchange?.status).toBe(200);
      const verifier = String(exchange?.form?.get('code_verifier'));
      expect(createHash('sha256').update(verifier).digest('base64url')).toBe(authorize.searchParams.get('code_challenge'));
      expect(exchange?.form?.get('resource')).toBe(mcp);

      // 7. The token: a JWT for this MCP URL, the granted scope, and a refresh token.
      const tokens = authProvider.tokens();
      expect(tokens.refresh_token).toEqual(expect.any(String));
      const claims = jwtClaims(tokens.access_token);
      expect(audienceOf(claims)).toContain(mcp);
      expect(String(claims['scope']).split(' ')).toEqual(['mcp:read']);
      expect(claims['iss']).toBe(flows[0]?.callback.searchParams.get('iss'));

      // 8. MCP through the gateway, as the signed-in user: the token carries only mcp:read, so read-only tools are listed.
      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names).toContain('echo');
      expect(names).not.toContain('toggle-simulated-logging');
      expect(textOf(await client.callTool({ name: 'echo', arguments: { message: 'signed in through Chromium' } }))).toContain('signed in through Chromium');
      const mcpCalls = wire.filter((e) => e.url.href === mcp && e.status < 300);
      expect(mcpCalls.every((e) => e.authorization?.startsWith('Bearer '))).toBe(true);
    },
    FLOW_TIMEOUT_MS,
  );

  it(
    'refreshes on its own when the access token is refused, with a rotated refresh token and no new login',
    async () => {
      const wire: WireExchange[] = [];
      const flows: FlowResult[] = [];
      const { authProvider, client } = await signIn('sdk-v1-refresh', wire, flows);
      const before = authProvider.tokens();
      authProvider.expireAccessToken();
      const start = wire.length;

      expect(textOf(await client.callTool({ name: 'echo', arguments: { message: 'after refresh' } }))).toContain('after refresh');

      const after = wire.slice(start);
      const refused = after.find((e) => e.status === 401);
      expect(refused?.wwwAuthenticate).toMatch(/error="invalid_token"/);
      const refresh = after.find((e) => e.form?.get('grant_type') === 'refresh_token');
      expect(refresh?.status).toBe(200);
      expect(refresh?.form?.get('resource')).toBe(gw.mcpUrl.href);
      const now = authProvider.tokens();
      expect(now.refresh_token).toEqual(expect.any(String));
      expect(now.refresh_token).not.toBe(before.refresh_token);
      expect(now.access_token).not.toBe(before.access_token);
      expect(audienceOf(jwtClaims(now.access_token))).toContain(gw.mcpUrl.href);
      expect(authProvider.authorizationUrls).toHaveLength(1);
      expect(flows).toHaveLength(1);
    },
    FLOW_TIMEOUT_MS,
  );

  it(
    'a refresh token used twice revokes the grant: the client is sent back to the browser, and signing in again restores access',
    async () => {
      const wire: WireExchange[] = [];
      const flows: FlowResult[] = [];
      const { authProvider, client, transport } = await signIn('sdk-v1-reuse', wire, flows);
      const stolen = String(authProvider.tokens().refresh_token);
      authProvider.expireAccessToken();
      await client.callTool({ name: 'echo', arguments: { message: 'rotates the refresh token' } });
      expect(authProvider.tokens().refresh_token).not.toBe(stolen);

      // Someone replays the rotated-away refresh token.
      const tokenEndpoint = wire.find((e) => e.form?.get('grant_type') === 'refresh_token')?.url.href as string;
      const replay = await fetch(tokenEndpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: stolen, client_id: String(authProvider.registeredClient?.['client_id']), resource: gw.mcpUrl.href }),
      });
      expect(replay.status).toBe(400);
      expect(await replay.json()).toMatchObject({ error: 'invalid_grant' });

      // The legitimate client's own (newest) refresh token died with the grant: its next refresh
      // fails, the SDK drops its tokens and asks the user again.
      authProvider.expireAccessToken();
      const start = wire.length;
      await expect(client.callTool({ name: 'echo', arguments: { message: 'grant revoked' } })).rejects.toBeInstanceOf(UnauthorizedError);
      const refresh = wire.slice(start).find((e) => e.form?.get('grant_type') === 'refresh_token');
      expect(refresh?.status).toBe(400);
      expect(authProvider.invalidated).toContain('tokens');
      expect(authProvider.authorizationUrls).toHaveLength(2);

      await transport.finishAuth(await authProvider.takeCode());
      expect(textOf(await client.callTool({ name: 'echo', arguments: { message: 'signed in again' } }))).toContain('signed in again');
    },
    FLOW_TIMEOUT_MS,
  );

  it(
    'steps up: a write with an mcp:read token gets 403 insufficient_scope naming mcp:write; v1 only refreshes (which cannot widen scope), so the host re-authorizes with the challenged scope, consents in the browser, and the write succeeds',
    async () => {
      const wire: WireExchange[] = [];
      const flows: FlowResult[] = [];
      const { authProvider, client, transport } = await signIn('sdk-v1-step-up', wire, flows);
      expect(String(jwtClaims(authProvider.tokens().access_token)['scope'])).toBe('mcp:read');
      const start = wire.length;

      // The SDK v1 transport answers a 403 insufficient_scope by calling auth() with the challenged
      // scope, which refreshes when it holds a refresh token; a refresh keeps the granted scope
      // (RFC 6749 §6), so the retry is refused again and the transport gives up.
      await expect(client.callTool({ name: 'toggle-simulated-logging', arguments: {} })).rejects.toThrow(/403 after trying upscoping/);
      const attempt = wire.slice(start);
      const forbidden = attempt.filter((e) => e.status === 403);
      expect(forbidden).toHaveLength(2);
      const challenge = String(forbidden[0]?.wwwAuthenticate);
      expect(challenge).toMatch(/^Bearer /);
      expect(challenge).toMatch(/error="insufficient_scope"/);
      expect(challenge).toMatch(/scope="[^"]*mcp:write[^"]*"/);
      expect(challenge).toContain(`resource_metadata="${gw.base}/.well-known/oauth-protected-resource/mcp/everything"`);
      expect(attempt.find((e) => e.form?.get('grant_type') === 'refresh_token')?.status).toBe(200);
      expect(authProvider.authorizationUrls).toHaveLength(1);

      // The host steps up with the SDK's own auth(): without the tokens (a refresh cannot widen the
      // grant), for the challenged scope, through the browser.
      const scope = /scope="([^"]+)"/.exec(challenge)?.[1] as string;
      authProvider.invalidateCredentials('tokens');
      expect(await auth(authProvider, { serverUrl: gw.mcpUrl, scope, fetchFn: recordingFetch(wire) })).toBe('REDIRECT');
      expect(authProvider.authorizationUrls).toHaveLength(2);
      expect(authProvider.authorizationUrls[1]?.searchParams.get('scope')?.split(' ')).toContain('mcp:write');
      await transport.finishAuth(await authProvider.takeCode());
      expect(String(jwtClaims(authProvider.tokens().access_token)['scope']).split(' ')).toContain('mcp:write');
      // Still signed in at the authorization server: no second login, only consent to the wider scope.
      expect(flows[1]?.pages.map((p) => p.kind)).toEqual(['consent']);
      expect(flows[1]?.pages[0]?.text).toContain('mcp:write');
      expect(flows[1]?.pages[0]?.accessibility.problems).toEqual([]);

      const result = await client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
      expect(result.isError ?? false).toBe(false);
      expect(textOf(result)).toMatch(/logging/i);
    },
    FLOW_TIMEOUT_MS,
  );

  describe('the user says no', () => {
    it(
      'a wrong password is refused on the login page with an alert, and nothing reaches the client',
      async () => {
        await browser.clearCookies();
        let authorizationUrl: URL | undefined;
        const probe = new BrowserOAuthProvider({
          redirectUrl: callback.url,
          clientName: 'mcp-warden e2e (wrong password)',
          authorize: async (url) => {
            authorizationUrl = url;
            return url;
          },
        });
        const transport = new StreamableHTTPClientTransport(gw.mcpUrl, { authProvider: probe });
        await expect(new Client({ name: 'mcp-warden-e2e-v1', version: '1.0.0' }).connect(transport)).rejects.toBeInstanceOf(UnauthorizedError);
        expect(authorizationUrl).toBeDefined();
        const received = callback.received.length;
        const { alert, page } = await browser.failedLogin(authorizationUrl as URL, { username: WRITER.username, password: 'not-the-password-at-all', name: 'sdk-v1-wrong-password' });
        expect(alert).not.toBe('');
        expect(alert).not.toContain('not-the-password-at-all');
        expect(page.accessibility.problems).toEqual([]);
        expect(existsSync(page.screenshot)).toBe(true);
        expect(callback.received.length).toBe(received);
        expect(probe.savedTokens).toHaveLength(0);
      },
      FLOW_TIMEOUT_MS,
    );

    it(
      'Deny on the consent page sends the client access_denied (with iss and its state), and no token is issued',
      async () => {
        await browser.clearCookies();
        const flows: FlowResult[] = [];
        const wire: WireExchange[] = [];
        const authProvider = new BrowserOAuthProvider({
          redirectUrl: callback.url,
          clientName: 'mcp-warden e2e (deny)',
          authorize: async (url) => {
            const flow = await browser.loginAndConsent(url, { ...WRITER, name: 'sdk-v1-deny', decision: 'deny' });
            flows.push(flow);
            return flow.callback;
          },
        });
        const transport = new StreamableHTTPClientTransport(gw.mcpUrl, { authProvider, fetch: recordingFetch(wire) });
        await expect(new Client({ name: 'mcp-warden-e2e-v1', version: '1.0.0' }).connect(transport)).rejects.toBeInstanceOf(UnauthorizedError);
        const params = await authProvider.takeCallback();
        expect(params.get('error')).toBe('access_denied');
        expect(params.get('code')).toBeNull();
        expect(new URL(String(params.get('iss'))).origin).toBe(gw.base);
        expect(flows[0]?.pages.map((p) => p.kind)).toEqual(['login', 'consent']);
        expect(authProvider.savedTokens).toHaveLength(0);
        expect(wire.some((e) => e.form?.get('grant_type') === 'authorization_code')).toBe(false);
      },
      FLOW_TIMEOUT_MS,
    );
  });
});
