/**
 * A machine client (no user, no browser): pre-registered in the config with a secret and the
 * `client_credentials` grant, it asks the built-in authorization server for a token bound to the
 * MCP URL (RFC 8707 `resource`) and calls tools through the gateway with the official SDK clients:
 * v1 with the bearer token in its requests, and v2's own `ClientCredentialsProvider`, which starts
 * from the 401 and fetches the token itself.
 */
import { ClientCredentialsProvider, Client as V2Client, StreamableHTTPClientTransport as V2Transport } from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type WireExchange, jwtClaims, recordingFetch } from '../support/oauth-client.js';
import { type OAuthGateway, startOAuthGateway } from '../support/oauth-gateway.js';

/** Each test starts server-everything children through the gateway; generous for a loaded 2-core machine. */
const TEST_TIMEOUT_MS = 60_000;
const MACHINE = { clientId: 'nightly-report', clientSecret: 'nightly-report-secret-0123456789', roles: ['reader'] } as const;

function textOf(result: object): string {
  return ((result as { content?: { type: string; text?: string }[] }).content ?? []).map((c) => c.text ?? '').join('\n');
}

describe('client credentials: a machine client gets a token and calls tools', () => {
  let gw: OAuthGateway;
  let metadata: { issuer: string; token_endpoint: string; grant_types_supported?: string[] };

  beforeAll(async () => {
    gw = await startOAuthGateway({
      clients: [{ clientId: MACHINE.clientId, clientSecret: MACHINE.clientSecret, clientName: 'Nightly report', grantTypes: ['client_credentials'], roles: MACHINE.roles }],
    });
    const prm = (await (await fetch(`${gw.base}/.well-known/oauth-protected-resource/mcp/everything`)).json()) as { authorization_servers: string[] };
    const issuer = new URL(prm.authorization_servers[0] as string);
    const path = issuer.pathname === '/' ? '' : issuer.pathname;
    metadata = (await (await fetch(`${issuer.origin}/.well-known/oauth-authorization-server${path}`)).json()) as typeof metadata;
  }, 60_000);

  afterAll(async () => {
    await gw?.close();
  });

  function tokenRequest(params: Record<string, string>, secret: string = MACHINE.clientSecret): Promise<Response> {
    return fetch(metadata.token_endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(MACHINE.clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
      },
      body: new URLSearchParams(params),
    });
  }

  it('gets a token for the MCP URL and calls a tool with the SDK v1 client; a write stays refused by its roles', async () => {
    expect(metadata.grant_types_supported).toContain('client_credentials');
    const response = await tokenRequest({ grant_type: 'client_credentials', resource: gw.mcpUrl.href, scope: 'mcp:read' });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { access_token: string; token_type: string; expires_in: number; refresh_token?: string };
    expect(body.token_type).toMatch(/^bearer$/i);
    expect(body.refresh_token).toBeUndefined();
    const claims = jwtClaims(body.access_token);
    expect(claims['iss']).toBe(metadata.issuer);
    expect([claims['aud']].flat()).toContain(gw.mcpUrl.href);

    const client = new Client({ name: 'nightly-report', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(gw.mcpUrl, { requestInit: { headers: { Authorization: `Bearer ${body.access_token}` } } }));
    try {
      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names).toContain('echo');
      expect(names).not.toContain('toggle-simulated-logging');
      expect(textOf(await client.callTool({ name: 'echo', arguments: { message: 'from the machine' } }))).toContain('from the machine');
      // No scope could give a reader a write: a JSON-RPC refusal naming the permission, not a step-up challenge.
      await expect(client.callTool({ name: 'toggle-simulated-logging', arguments: {} })).rejects.toMatchObject({ code: -32003 });
    } finally {
      await client.close();
    }
  }, TEST_TIMEOUT_MS);

  it('the SDK v2 ClientCredentialsProvider starts from the 401, fetches its own token with the resource, and calls a tool', async () => {
    const wire: WireExchange[] = [];
    const authProvider = new ClientCredentialsProvider({ clientId: MACHINE.clientId, clientSecret: MACHINE.clientSecret, scope: 'mcp:read', expectedIssuer: metadata.issuer });
    const client = new V2Client({ name: 'nightly-report-v2', version: '1.0.0' });
    await client.connect(new V2Transport(gw.mcpUrl, { authProvider, fetch: recordingFetch(wire) }));
    try {
      expect(textOf(await client.callTool({ name: 'echo', arguments: { message: 'v2 machine' } }))).toContain('v2 machine');
      expect(wire[0]).toMatchObject({ authorization: null, status: 401 });
      const token = wire.find((e) => e.form?.get('grant_type') === 'client_credentials');
      expect(token?.status).toBe(200);
      expect(token?.form?.get('resource')).toBe(gw.mcpUrl.href);
      expect(token?.authorization).toMatch(/^Basic /);
    } finally {
      await client.close();
    }
  }, TEST_TIMEOUT_MS);

  describe('Security', () => {
    it('refuses a wrong secret (401 invalid_client) and an unknown resource (invalid_target)', async () => {
      const wrong = await tokenRequest({ grant_type: 'client_credentials', resource: gw.mcpUrl.href }, 'not-the-secret-not-the-secret-00');
      expect(wrong.status).toBe(401);
      expect(await wrong.json()).toMatchObject({ error: 'invalid_client' });
      const elsewhere = await tokenRequest({ grant_type: 'client_credentials', resource: 'https://other.example/mcp' });
      expect(elsewhere.status).toBe(400);
      expect(await elsewhere.json()).toMatchObject({ error: 'invalid_target' });
    });

    it('refuses the grant it was not registered for (no authorization code for a machine client)', async () => {
      const response = await tokenRequest({ grant_type: 'authorization_code', code: 'made-up', redirect_uri: 'http://127.0.0.1/callback', code_verifier: 'x'.repeat(43) });
      expect(response.status).toBe(400);
      const body = (await response.json()) as { error: string; error_description?: string };
      // RFC 6749 §5.2 names this unauthorized_client; oidc-provider answers invalid_request, naming the grant type.
      expect(body.error).toMatch(/^(unauthorized_client|invalid_request)$/);
      expect(body.error_description).toMatch(/grant type is not allowed/);
    });
  });
});
