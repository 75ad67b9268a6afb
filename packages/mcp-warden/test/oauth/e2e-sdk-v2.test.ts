/**
 * End to end with the official SDK v2 client (`@modelcontextprotocol/client`): the gateway's
 * built-in authorization server and headless Chromium for the user's part.
 * - legacy connect (2025-11-25): dynamic registration, PKCE, browser, tools, refresh;
 * - pinned to 2026-07-28: a client ID metadata document instead of registration (the document is
 *   served to the authorization server through its `fetch` hook: its URL is https and the server's
 *   own fetches refuse loopback), `iss` checked before the code is redeemed, tools, refresh;
 * - RFC 9207: a callback naming another issuer is refused before the code is redeemed;
 * - step-up: a 403 `insufficient_scope` makes the transport re-authorize with the union of the
 *   scopes held and challenged; after consent in the browser the write succeeds.
 *
 * Screenshots land in `artifacts/screenshots/sdk-v2-*.png`.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Client, IssuerMismatchError, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ChromiumDriver, type FlowResult, launchChromium, requireChromium } from '../support/chromium.js';
import { BrowserOAuthProvider, type CallbackServer, type WireExchange, jwtClaims, recordingFetch, startCallbackServer } from '../support/oauth-client.js';
import { type OAuthGateway, startOAuthGateway } from '../support/oauth-gateway.js';

const WRITER = { username: 'vera', password: 'vera-has-a-long-password', roles: ['writer'] } as const;
const MODERN = '2026-07-28';
const FLOW_TIMEOUT_MS = 90_000;
/** The client's metadata document URL (reserved `.test` TLD: never resolvable, served by the fetch hook). */
const CLIENT_ID_URL = 'https://client.mcp-warden.test/e2e/sdk-v2-cimd.json';

type ClientOptions = ConstructorParameters<typeof Client>[1];

function textOf(result: object): string {
  return ((result as { content?: { type: string; text?: string }[] }).content ?? []).map((c) => c.text ?? '').join('\n');
}

function audienceOf(token: string): string[] {
  const aud = jwtClaims(token)['aud'];
  return Array.isArray(aud) ? (aud as string[]) : [String(aud)];
}

describe('SDK v2 client, built-in authorization server, real browser', () => {
  let gw: OAuthGateway;
  let browser: ChromiumDriver;
  let callback: CallbackServer;
  const documents = new Map<string, Record<string, unknown>>();
  const open: Client[] = [];

  beforeAll(async () => {
    requireChromium();
    [browser, callback] = await Promise.all([launchChromium(), startCallbackServer()]);
    documents.set(CLIENT_ID_URL, {
      client_id: CLIENT_ID_URL,
      client_name: 'mcp-warden e2e (metadata document)',
      redirect_uris: [callback.url],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
    });
    gw = await startOAuthGateway({ challengeScopes: ['mcp:read'], clientMetadataDocuments: documents });
    await gw.addUser(WRITER.username, WRITER.password, WRITER.roles);
  }, 120_000);

  afterEach(async () => {
    for (const client of open.splice(0)) await client.close().catch(() => {});
  });

  afterAll(async () => {
    await Promise.allSettled([gw?.close(), browser?.close(), callback?.close()]);
  });

  function provider(name: string, flows: FlowResult[], clientMetadataUrl?: string): BrowserOAuthProvider {
    return new BrowserOAuthProvider({
      redirectUrl: callback.url,
      clientName: `mcp-warden e2e (${name})`,
      ...(clientMetadataUrl === undefined ? {} : { clientMetadataUrl }),
      authorize: async (url) => {
        const flow = await browser.loginAndConsent(url, { ...WRITER, name });
        flows.push(flow);
        return flow.callback;
      },
    });
  }

  async function connect(authProvider: BrowserOAuthProvider, wire: WireExchange[], options?: ClientOptions) {
    const transport = new StreamableHTTPClientTransport(gw.mcpUrl, { authProvider, fetch: recordingFetch(wire) });
    const client = new Client({ name: 'mcp-warden-e2e-v2', version: '1.0.0' }, options);
    await client.connect(transport);
    open.push(client);
    return { client, transport };
  }

  /** Bare 401 → discovery → registration (or metadata document) → browser → code exchange (with `iss` checked) → connected. */
  async function signIn(authProvider: BrowserOAuthProvider, wire: WireExchange[], options?: ClientOptions) {
    const first = new StreamableHTTPClientTransport(gw.mcpUrl, { authProvider, fetch: recordingFetch(wire) });
    await expect(new Client({ name: 'mcp-warden-e2e-v2', version: '1.0.0' }, options).connect(first)).rejects.toBeInstanceOf(UnauthorizedError);
    await first.finishAuth(await authProvider.takeCallback());
    await first.close();
    return connect(authProvider, wire, options);
  }

  /** The client-side rules every flow must follow (MCP authorization, client requirements). */
  function expectSpecClient(authProvider: BrowserOAuthProvider, wire: WireExchange[]): void {
    const [bare] = wire;
    expect(bare).toMatchObject({ method: 'POST', authorization: null, status: 401 });
    expect(bare?.wwwAuthenticate).toContain(`resource_metadata="${gw.base}/.well-known/oauth-protected-resource/mcp/everything"`);
    const authorize = authProvider.authorizationUrls[0] as URL;
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('resource')).toBe(gw.mcpUrl.href);
    expect(authorize.searchParams.get('state')).toMatch(/^[\w-]{16,}$/);
    const exchange = wire.find((e) => e.form?.get('grant_type') === 'authorization_code');
    expect(exchange?.status).toBe(200);
    expect(exchange?.form?.get('resource')).toBe(gw.mcpUrl.href);
    expect(createHash('sha256').update(String(exchange?.form?.get('code_verifier'))).digest('base64url')).toBe(authorize.searchParams.get('code_challenge'));
    expect(audienceOf(authProvider.tokens().access_token)).toContain(gw.mcpUrl.href);
  }

  /** Makes the gateway refuse the access token; the transport must refresh by itself and carry on. */
  async function expectSilentRefresh(authProvider: BrowserOAuthProvider, client: Client, wire: WireExchange[]): Promise<void> {
    const before = authProvider.tokens();
    const logins = authProvider.authorizationUrls.length;
    authProvider.expireAccessToken();
    const start = wire.length;
    expect(textOf(await client.callTool({ name: 'echo', arguments: { message: 'after refresh' } }))).toContain('after refresh');
    const after = wire.slice(start);
    expect(after.find((e) => e.status === 401)?.wwwAuthenticate).toMatch(/error="invalid_token"/);
    const refresh = after.find((e) => e.form?.get('grant_type') === 'refresh_token');
    expect(refresh?.status).toBe(200);
    expect(refresh?.form?.get('resource')).toBe(gw.mcpUrl.href);
    expect(authProvider.tokens().refresh_token).not.toBe(before.refresh_token);
    expect(audienceOf(authProvider.tokens().access_token)).toContain(gw.mcpUrl.href);
    expect(authProvider.authorizationUrls).toHaveLength(logins);
  }

  it(
    'legacy connect (2025-11-25): bare 401, discovery, dynamic registration, PKCE in the browser, tools, then a silent refresh',
    async () => {
      const wire: WireExchange[] = [];
      const flows: FlowResult[] = [];
      const authProvider = provider('sdk-v2', flows);
      const { client, transport } = await signIn(authProvider, wire);
      expect(transport.sessionId).toEqual(expect.any(String));

      expectSpecClient(authProvider, wire);
      expect(wire.some((e) => e.method === 'POST' && e.status === 201 && (e.json as { redirect_uris?: unknown } | null)?.redirect_uris !== undefined)).toBe(true);
      expect(flows[0]?.pages.map((p) => p.kind)).toEqual(['login', 'consent']);
      for (const page of flows[0]?.pages ?? []) {
        expect(existsSync(page.screenshot)).toBe(true);
        expect(page.accessibility.problems).toEqual([]);
      }

      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names).toContain('echo');
      expect(textOf(await client.callTool({ name: 'echo', arguments: { message: 'v2 through the gateway' } }))).toContain('v2 through the gateway');
      await expectSilentRefresh(authProvider, client, wire);
    },
    FLOW_TIMEOUT_MS,
  );

  it(
    `pinned to ${MODERN}: registers through a client ID metadata document, not registration, and works through refresh`,
    async () => {
      const wire: WireExchange[] = [];
      const flows: FlowResult[] = [];
      const authProvider = provider('sdk-v2-cimd', flows, CLIENT_ID_URL);
      const options: ClientOptions = { versionNegotiation: { mode: { pin: MODERN } } };
      const { client, transport } = await signIn(authProvider, wire, options);

      expectSpecClient(authProvider, wire);
      // The metadata advertises document support, the client id is the document's URL, and there was no registration request.
      const asMetadata = wire.find((e) => /\/\.well-known\/(oauth-authorization-server|openid-configuration)/.test(e.url.pathname) && e.status === 200);
      expect(asMetadata).toBeDefined();
      expect(authProvider.registeredClient?.['client_id']).toBe(CLIENT_ID_URL);
      expect(authProvider.authorizationUrls[0]?.searchParams.get('client_id')).toBe(CLIENT_ID_URL);
      expect(wire.some((e) => e.method === 'POST' && (e.json as { redirect_uris?: unknown } | null)?.redirect_uris !== undefined)).toBe(false);
      expect(gw.documentRequests).toContain(CLIENT_ID_URL);
      // The pages name the client as its document does and show where the browser goes next.
      const consent = flows[0]?.pages.find((p) => p.kind === 'consent');
      expect(consent?.text).toContain('mcp-warden e2e (metadata document)');
      expect(consent?.text).toContain('127.0.0.1');
      // A document whose redirect URIs are all loopback could be claimed by any local program: the page says so, naming the document.
      expect(consent?.text).toContain(CLIENT_ID_URL);
      expect(consent?.accessibility.problems).toEqual([]);

      // 2026-07-28: no sessions; every request is enveloped and carries the bearer token.
      expect(transport.sessionId).toBeUndefined();
      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names).toContain('echo');
      expect(textOf(await client.callTool({ name: 'echo', arguments: { message: 'modern and signed in' } }))).toContain('modern and signed in');
      await expectSilentRefresh(authProvider, client, wire);
    },
    FLOW_TIMEOUT_MS,
  );

  it(
    'refuses a callback whose iss is not the authorization server before redeeming the code (RFC 9207 mix-up defence)',
    async () => {
      const wire: WireExchange[] = [];
      const flows: FlowResult[] = [];
      const authProvider = new BrowserOAuthProvider({
        redirectUrl: callback.url,
        clientName: 'mcp-warden e2e (mix-up)',
        authorize: async (url) => {
          const flow = await browser.loginAndConsent(url, { ...WRITER, name: 'sdk-v2-mix-up' });
          flows.push(flow);
          // An attacker's authorization server answering in its own name.
          const forged = new URL(flow.callback);
          forged.searchParams.set('iss', 'https://attacker.example');
          return forged;
        },
      });
      const transport = new StreamableHTTPClientTransport(gw.mcpUrl, { authProvider, fetch: recordingFetch(wire) });
      await expect(new Client({ name: 'mcp-warden-e2e-v2', version: '1.0.0' }).connect(transport)).rejects.toBeInstanceOf(UnauthorizedError);
      const params = await authProvider.takeCallback();
      expect(flows[0]?.callback.searchParams.get('iss')).toBe(gw.base);
      await expect(transport.finishAuth(params)).rejects.toBeInstanceOf(IssuerMismatchError);
      expect(wire.some((e) => e.form?.get('grant_type') === 'authorization_code')).toBe(false);
      expect(authProvider.savedTokens).toHaveLength(0);
      await transport.close();
    },
    FLOW_TIMEOUT_MS,
  );

  describe.each([
    { era: 'legacy connect', options: undefined as ClientOptions },
    { era: `pinned to ${MODERN}`, options: { versionNegotiation: { mode: { pin: MODERN } } } as ClientOptions },
  ])('step-up ($era)', ({ era, options }) => {
    it(
      'a writer holding mcp:read gets 403 insufficient_scope on a write tool; the transport re-authorizes for the union of scopes, and the write succeeds',
      async () => {
        const wire: WireExchange[] = [];
        const flows: FlowResult[] = [];
        const name = `sdk-v2-step-up-${era.startsWith('legacy') ? 'legacy' : 'modern'}`;
        const authProvider = provider(name, flows);
        const { client, transport } = await signIn(authProvider, wire, options);
        expect(String(jwtClaims(authProvider.tokens().access_token)['scope'])).toBe('mcp:read');
        const start = wire.length;

        await expect(client.callTool({ name: 'toggle-simulated-logging', arguments: {} })).rejects.toBeInstanceOf(UnauthorizedError);
        const forbidden = wire.slice(start).find((e) => e.status === 403);
        expect(forbidden?.wwwAuthenticate).toMatch(/error="insufficient_scope"/);
        expect(forbidden?.wwwAuthenticate).toMatch(/scope="[^"]*mcp:write[^"]*"/);
        // No refresh attempt: a refresh cannot widen scope (RFC 6749 §6), so the SDK goes straight to the browser.
        expect(wire.slice(start).some((e) => e.form?.get('grant_type') === 'refresh_token')).toBe(false);
        expect(authProvider.authorizationUrls).toHaveLength(2);
        // The SDK may add offline_access when the authorization server lists it; the union is what matters.
        expect(authProvider.authorizationUrls[1]?.searchParams.get('scope')?.split(' ')).toEqual(expect.arrayContaining(['mcp:read', 'mcp:write']));

        await transport.finishAuth(await authProvider.takeCallback());
        expect(String(jwtClaims(authProvider.tokens().access_token)['scope']).split(' ')).toEqual(expect.arrayContaining(['mcp:read', 'mcp:write']));
        const consent = flows[1]?.pages.find((p) => p.kind === 'consent');
        expect(consent?.text).toContain('mcp:write');
        expect(consent?.accessibility.problems).toEqual([]);

        const result = await client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
        expect((result as { isError?: boolean }).isError ?? false).toBe(false);
        expect(textOf(result)).toMatch(/logging/i);
        // And the tool list now shows the write tools too.
        expect((await client.listTools()).tools.map((t) => t.name)).toContain('toggle-simulated-logging');
      },
      FLOW_TIMEOUT_MS,
    );
  });
});
