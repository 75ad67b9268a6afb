/**
 * `mcp-remote` (0.15, from npm: the stdio bridge desktop assistants use for remote MCP servers)
 * through its own OAuth flow: it meets the gateway's 401, discovers and registers with the built-in
 * authorization server, prints the authorization URL and waits on its loopback callback port; the
 * test's Chromium opens that URL, signs in and consents; mcp-remote redeems the code and then
 * relays MCP JSON-RPC spoken over its stdio. A second mcp-remote on the same config directory reuses
 * the cached tokens without a browser.
 *
 * Screenshots land in `artifacts/screenshots/mcp-remote-*.png`.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChromiumDriver, launchChromium, requireChromium } from '../support/chromium.js';
import { type McpRemote, freePort, startMcpRemote } from '../support/mcp-remote.js';
import { jwtClaims } from '../support/oauth-client.js';
import { type OAuthGateway, startOAuthGateway } from '../support/oauth-gateway.js';

const USER = { username: 'remy', password: 'remy-has-a-long-password' } as const;
const INITIALIZE = { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'e2e-desktop-assistant', version: '1.0.0' } };

function textOf(result: { content?: { type: string; text?: string }[] }): string {
  return (result.content ?? []).map((c) => c.text ?? '').join('\n');
}

/** The token file mcp-remote keeps under its config directory (`<version>/<server hash>_tokens.json`). */
function cachedTokens(configDir: string): { access_token: string; refresh_token?: string } {
  const file = readdirSync(configDir, { recursive: true, encoding: 'utf8' }).find((f) => f.endsWith('_tokens.json') || f.endsWith('/tokens.json'));
  if (file === undefined) throw new Error(`mcp-remote stored no tokens under ${configDir}: ${readdirSync(configDir, { recursive: true, encoding: 'utf8' }).join(', ')}`);
  return JSON.parse(readFileSync(join(configDir, file), 'utf8')) as { access_token: string; refresh_token?: string };
}

describe('mcp-remote through its own browser flow', () => {
  let gw: OAuthGateway;
  let browser: ChromiumDriver;
  let configDir: string;
  const remotes: McpRemote[] = [];

  beforeAll(async () => {
    requireChromium();
    [gw, browser] = await Promise.all([startOAuthGateway(), launchChromium()]);
    await gw.addUser(USER.username, USER.password, ['writer']);
    configDir = mkdtempSync(join(tmpdir(), 'mcp-remote-e2e-'));
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled(remotes.map((r) => r.close()));
    await Promise.allSettled([gw?.close(), browser?.close()]);
    if (configDir !== undefined) rmSync(configDir, { recursive: true, force: true });
  });

  it('prints the authorization URL; after login and consent in Chromium it lists and calls tools over stdio', async () => {
    const port = await freePort();
    const remote = startMcpRemote({ serverUrl: gw.mcpUrl.href, callbackPort: port, configDir });
    remotes.push(remote);

    const url = await remote.authorizationUrl();
    expect(url.origin).toBe(gw.base);
    expect(url.searchParams.get('redirect_uri')).toBe(`http://127.0.0.1:${port}/oauth/callback`);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('resource')).toBe(gw.mcpUrl.href);

    const flow = await browser.loginAndConsent(url, { ...USER, name: 'mcp-remote' });
    expect(flow.callback.searchParams.get('code')).toEqual(expect.any(String));
    expect(flow.pages.map((p) => p.kind)).toEqual(['login', 'consent']);
    for (const page of flow.pages) expect(page.accessibility.problems).toEqual([]);

    const init = await remote.request('initialize', INITIALIZE, 60_000);
    expect(init.error).toBeUndefined();
    expect(init.result.protocolVersion).toEqual(expect.any(String));
    remote.notify('notifications/initialized');
    const list = await remote.request('tools/list', {});
    const names = (list.result.tools as { name: string }[]).map((t) => t.name);
    expect(names).toContain('echo');
    expect(names).toContain('toggle-simulated-logging');
    const echo = await remote.request('tools/call', { name: 'echo', arguments: { message: 'via mcp-remote' } });
    expect(textOf(echo.result)).toContain('via mcp-remote');
    const write = await remote.request('tools/call', { name: 'toggle-simulated-logging', arguments: {} });
    expect(write.error).toBeUndefined();
    expect(write.result.isError ?? false).toBe(false);

    const tokens = cachedTokens(configDir);
    expect([jwtClaims(tokens.access_token)['aud']].flat()).toContain(gw.mcpUrl.href);
    expect(tokens.refresh_token).toEqual(expect.any(String));
    await remote.close();
  }, 120_000);

  it('a second mcp-remote on the same config directory connects with the cached tokens, no browser', async () => {
    const remote = startMcpRemote({ serverUrl: gw.mcpUrl.href, callbackPort: await freePort(), configDir });
    remotes.push(remote);
    const init = await remote.request('initialize', INITIALIZE, 60_000);
    expect(init.error).toBeUndefined();
    remote.notify('notifications/initialized');
    const echo = await remote.request('tools/call', { name: 'echo', arguments: { message: 'cached' } });
    expect(textOf(echo.result)).toContain('cached');
    expect(remote.stderr()).not.toContain('Please authorize this client');
    await remote.close();
  }, 90_000);
});
