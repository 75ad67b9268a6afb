/**
 * Security: the header that carried the caller's credential never reaches the MCP server's tool
 * handlers unless `exposeCredentialToHandlers` is set. The handlers are real SDK servers behind
 * each adapter, and they look wherever an SDK lets them look:
 * - SDK v1 behind Express: `extra.requestInfo.headers` and the request's raw headers;
 * - SDK v2 behind node:http (`toNodeHandler`): `ctx.http.req.headers`;
 * - SDK v2 behind Hono on `@hono/node-server`: the Web request and the Node request under it.
 */
import { serve } from '@hono/node-server';
import { once } from 'node:events';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { McpServer as McpServerV1 } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import express from 'express';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { warden as expressWarden } from '@mcp-warden/core/express';
import { type WardenVariables, warden as honoWarden } from '@mcp-warden/core/hono';
import { withWarden } from '@mcp-warden/core/node';
import { MCP_HEADERS, close, listen } from './http-helpers.js';

const SECRET = 'reader-secret-value-1234';
const options = (expose: boolean) => ({
  tokens: [{ id: 'reader', token: SECRET, roles: ['reader'] }],
  policy: { roles: { reader: ['read' as const] }, toolAnnotations: { peek: { readOnlyHint: true } } },
  ...(expose ? { exposeCredentialToHandlers: true } : {}),
});

/** What a handler can see of the two credential headers, wherever it looks, as one string. */
type Seen = Record<string, unknown>;

function v1Server(look: (extra: { requestInfo?: { headers?: Record<string, unknown> }; authInfo?: { token?: string } }) => Seen): McpServerV1 {
  const server = new McpServerV1({ name: 'v1', version: '1.0.0' });
  server.registerTool('peek', { annotations: { readOnlyHint: true } }, async (extra) => ({ content: [{ type: 'text', text: JSON.stringify(look(extra as never)) }] }));
  return server;
}

function v2Server(look: (ctx: { http?: { req?: Request; authInfo?: { token?: string } } }) => Seen): McpServer {
  const server = new McpServer({ name: 'v2', version: '1.0.0' });
  server.registerTool('peek', { annotations: { readOnlyHint: true } }, async (ctx) => ({ content: [{ type: 'text', text: JSON.stringify(look(ctx as never)) }] }));
  return server;
}

const webHeaders = (req: Request | undefined): Seen => ({ authorization: req?.headers.get('authorization'), apiKey: req?.headers.get('x-api-key') });
const nodeHeaders = (req: IncomingMessage | undefined): Seen => ({
  nodeAuthorization: req?.headers.authorization,
  nodeApiKey: req?.headers['x-api-key'],
  raw: req?.rawHeaders.join('\n'),
  distinct: JSON.stringify(req?.headersDistinct),
});

/** Servers for one setting of `exposeCredentialToHandlers`, at `/express-v1`, `/node-v2` and (another server) `/hono-v2`. */
async function start(expose: boolean): Promise<{ base: string; hono: string; stop(): Promise<void> }> {
  // The Node request the v1 handler's transport is given, for its raw headers.
  let lastExpressRequest: IncomingMessage | undefined;
  const app = express();
  app.use('/express-v1', expressWarden(options(expose)));
  app.all('/express-v1', async (req, res) => {
    lastExpressRequest = req;
    const server = v1Server((extra) => ({
      token: extra.authInfo?.token,
      authorization: extra.requestInfo?.headers?.['authorization'],
      apiKey: extra.requestInfo?.headers?.['x-api-key'],
      ...nodeHeaders(lastExpressRequest),
    }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  const nodeV2 = toNodeHandler(createMcpHandler(() => v2Server((ctx) => ({ token: ctx.http?.authInfo?.token, ...webHeaders(ctx.http?.req) }))));
  const nodeRoute = withWarden(options(expose), (req, res, body) => {
    void nodeV2(req, res, body);
  });
  const server = createServer((req, res) => {
    if (req.url === '/node-v2') return nodeRoute(req, res);
    app(req, res);
  });
  const base = await listen(server);

  let lastIncoming: IncomingMessage | undefined;
  const hono = new Hono<{ Variables: WardenVariables; Bindings: { incoming: IncomingMessage } }>();
  const honoV2 = createMcpHandler(() => v2Server((ctx) => ({ token: ctx.http?.authInfo?.token, ...webHeaders(ctx.http?.req), ...nodeHeaders(lastIncoming) })));
  hono.use('/hono-v2', honoWarden(options(expose)));
  hono.all('/hono-v2', (c) => {
    lastIncoming = c.env.incoming;
    return honoV2.fetch(c.req.raw, { authInfo: c.get('auth'), parsedBody: c.get('parsedBody') });
  });
  const honoServer = serve({ fetch: hono.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
  await once(honoServer, 'listening');
  return {
    base,
    hono: `http://127.0.0.1:${(honoServer.address() as AddressInfo).port}`,
    async stop() {
      await close(server);
      await close(honoServer);
    },
  };
}

async function peek(url: string, credential: Record<string, string>): Promise<Seen> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { ...MCP_HEADERS, ...credential },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'peek', arguments: {} } }),
  });
  const text = await response.text();
  expect(response.status, text).toBe(200);
  const json = text.startsWith('{') ? JSON.parse(text) : JSON.parse(text.split('\n').find((l) => l.startsWith('data: '))?.slice(6) ?? 'null');
  return JSON.parse(json.result.content[0].text) as Seen;
}

const CREDENTIALS: Record<string, string>[] = [{ authorization: `Bearer ${SECRET}` }, { 'x-api-key': SECRET }];

describe('Security: the credential header never reaches tool handlers', () => {
  let servers: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    servers = await start(false);
  });
  afterAll(() => servers.stop());

  for (const credential of CREDENTIALS) {
    const header = Object.keys(credential)[0] as string;
    for (const route of ['express-v1', 'node-v2', 'hono-v2']) {
      it(`${route}, credential in ${header}: the handler sees a fingerprint and no trace of the secret`, async () => {
        const seen = await peek(`${route === 'hono-v2' ? servers.hono : servers.base}/${route}`, credential);
        expect(seen['token']).toMatch(/^sha256:[0-9a-f]{16}$/);
        expect(JSON.stringify(seen)).not.toContain(SECRET);
        // The handler did see the request's other headers: the check looked in the right places.
        expect(seen['raw'] ?? 'no node request').not.toBe('');
        if (seen['raw'] !== undefined) expect(String(seen['raw']).toLowerCase()).toContain('mcp-protocol-version');
      });
    }
  }
});

describe('exposeCredentialToHandlers: true leaves the credential where the handler can read it', () => {
  let servers: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    servers = await start(true);
  });
  afterAll(() => servers.stop());

  for (const route of ['express-v1', 'node-v2', 'hono-v2']) {
    it(`${route}`, async () => {
      const seen = await peek(`${route === 'hono-v2' ? servers.hono : servers.base}/${route}`, { authorization: `Bearer ${SECRET}` });
      expect(seen['token']).toBe(SECRET);
      expect(seen['authorization']).toBe(`Bearer ${SECRET}`);
    });
  }
});

describe('Hono: taking the credential header off keeps what else the request carries', () => {
  it('a DELETE with a body reaches the handler with its body, without the credential', async () => {
    const hono = new Hono<{ Variables: WardenVariables }>();
    hono.use('/mcp', honoWarden(options(false)));
    hono.all('/mcp', async (c) => c.json({ method: c.req.method, body: await c.req.raw.text(), authorization: c.req.raw.headers.get('authorization') }));
    const response = await hono.request('http://127.0.0.1/mcp', {
      method: 'DELETE',
      headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'text/plain', 'mcp-protocol-version': '2025-11-25' },
      body: 'the body',
    });
    expect(await response.json()).toEqual({ method: 'DELETE', body: 'the body', authorization: null });
  });
});
