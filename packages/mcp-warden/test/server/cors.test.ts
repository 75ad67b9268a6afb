/**
 * Browser clients of `server.allowedOrigins`, in a real Chromium: a page on an allowed origin runs
 * an MCP session through the gateway (the CORS preflight is answered without a credential, and the
 * page can read `Mcp-Session-Id` and send it back with `Mcp-Protocol-Version`); a page on another
 * origin cannot call at all.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { type SdkHttpServer, startSdkHttpServer } from '../fixtures/sdk-http-server.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH, requireChromium } from '../support/chromium.js';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/** What the page's script reports of the session it tried to run. */
interface PageSession {
  readonly error?: string;
  readonly initialize?: number;
  readonly session?: string | null;
  readonly requestId?: string | null;
  readonly initialized?: number;
  readonly tools?: string[];
}

describe('CORS: browser clients of the allowed origins', () => {
  let upstream: SdkHttpServer;
  let gateway: Gateway;
  let pages: Server;
  let pagePort: number;
  let browser: Browser;
  let key: string;

  beforeAll(async () => {
    requireChromium();
    upstream = await startSdkHttpServer({ look: { readOnlyHint: true } });
    pages = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>client</title>'));
    pages.listen(0, '127.0.0.1');
    await once(pages, 'listening');
    pagePort = (pages.address() as AddressInfo).port;
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        server: { host: '127.0.0.1', allowedOrigins: [`http://app.test:${pagePort}`] },
        roles: { reader: ['read'] },
        upstreams: { remote: { type: 'http', url: upstream.url } },
      }),
      'cors.yaml',
      {},
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
    key = (await gateway.services.keys.create({ name: 'browser', roles: ['reader'] })).plaintext;
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      // Two origins that are not loopback names, both served from here.
      args: [...CHROMIUM_ARGS, '--host-resolver-rules=MAP app.test 127.0.0.1, MAP other.test 127.0.0.1'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
    await upstream?.close();
    pages?.closeAllConnections();
    await new Promise((resolve) => pages?.close(resolve));
  });

  /** Opens a page on `origin` and runs initialize, notifications/initialized and tools/list from it. */
  async function sessionFrom(origin: string): Promise<PageSession> {
    const page = await browser.newPage();
    try {
      await page.goto(`${origin}/`);
      return await page.evaluate(
        async ({ endpoint, token }): Promise<PageSession> => {
          const base = { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
          const messages = async (response: Response) => {
            const text = await response.text();
            return text.startsWith('{') ? [JSON.parse(text)] : text.split('\n').filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5)));
          };
          try {
            const init = await fetch(endpoint, {
              method: 'POST',
              headers: base,
              body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'page', version: '1' } } }),
            });
            const session = init.headers.get('mcp-session-id');
            const requestId = init.headers.get('x-request-id');
            await init.text();
            const next = { ...base, 'mcp-session-id': session ?? '', 'mcp-protocol-version': '2025-11-25' };
            const initialized = await fetch(endpoint, { method: 'POST', headers: next, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
            const list = await fetch(endpoint, { method: 'POST', headers: next, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }) });
            const [answer] = await messages(list);
            return { initialize: init.status, session, requestId, initialized: initialized.status, tools: (answer?.result?.tools ?? []).map((t: { name: string }) => t.name) };
          } catch (error) {
            return { error: String(error) };
          }
        },
        { endpoint: `${gateway.url}/mcp/remote`, token: key },
      );
    } finally {
      await page.close();
    }
  }

  it('lets a page on an allowed origin run a session: preflights answered, Mcp-Session-Id readable', async () => {
    const result = await sessionFrom(`http://app.test:${pagePort}`);
    expect(result.error).toBeUndefined();
    expect(result.initialize).toBe(200);
    expect(result.session).toMatch(/\./);
    expect(result.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.initialized).toBe(202);
    expect(result.tools).toEqual(['look']);
  });

  it('lets a page on a loopback origin call a gateway bound to loopback, as the guard does', async () => {
    const result = await sessionFrom(`http://localhost:${pagePort}`);
    expect(result.error).toBeUndefined();
    expect(result.tools).toEqual(['look']);
  });

  describe('Security', () => {
    it('refuses the preflight of a page on another origin, so its request is never sent', async () => {
      const before = upstream.sessions.size;
      const result = await sessionFrom(`http://other.test:${pagePort}`);
      expect(result.error).toMatch(/Failed to fetch/);
      expect(upstream.sessions.size).toBe(before);
      // The preflight, as the browser sent it: 403, nothing allowed.
      const preflight = await fetch(`${gateway.url}/mcp/remote`, {
        method: 'OPTIONS',
        headers: { origin: `http://other.test:${pagePort}`, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
      });
      expect(preflight.status).toBe(403);
      expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    });

    it('answers an allowed preflight without a credential, allowing only the MCP headers asked for', async () => {
      const preflight = await fetch(`${gateway.url}/mcp/remote`, {
        method: 'OPTIONS',
        headers: { origin: `http://app.test:${pagePort}`, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, mcp-param-region, x-custom' },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(`http://app.test:${pagePort}`);
      expect(preflight.headers.get('access-control-allow-methods')).toBe('GET, POST, DELETE');
      const allowed = (preflight.headers.get('access-control-allow-headers') ?? '').split(', ');
      expect(allowed).toContain('mcp-session-id');
      expect(allowed).toContain('mcp-param-region');
      expect(allowed).not.toContain('x-custom');
      expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();
    });
  });
});
