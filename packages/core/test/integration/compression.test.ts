/**
 * Security: a compression middleware registered inside mcp-warden's (after it in Express, after it in
 * Hono) compresses the MCP server's answer before the list filter sees it. Passed on as it came, the
 * client's fetch would decode it and read every tool. The filter decodes what it can read and
 * refuses what it cannot. Real middleware on both sides: `compression` (Express, the node filter)
 * and `hono/compress` (the web filter), with the official SDK clients.
 */
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer as McpServerV1 } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import compression from 'compression';
import express from 'express';
import { Hono } from 'hono';
import { compress } from 'hono/compress';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { warden } from '@mcp-warden/core/express';
import { type WardenVariables, warden as honoWarden } from '@mcp-warden/core/hono';
import { close } from './http-helpers.js';

const TOKENS = [{ id: 'reader', token: 'reader-token', roles: ['reader'] }];
const POLICY = { roles: { reader: ['read' as const] } };
/** Enough tools that the answer is over the compressors' thresholds (1 KB). */
const TOOLS = Array.from({ length: 12 }, (_, i) => ({ name: i % 2 === 0 ? `read_${i}` : `drop_${i}`, readOnly: i % 2 === 0 }));
const READ_ONLY = TOOLS.filter((t) => t.readOnly).map((t) => t.name).sort();

function v1Server(): McpServerV1 {
  const server = new McpServerV1({ name: 'compressed', version: '1.0.0' });
  for (const tool of TOOLS) {
    server.registerTool(tool.name, { description: `${tool.name}: ${'a tool with a long description. '.repeat(4)}`, annotations: tool.readOnly ? { readOnlyHint: true } : { destructiveHint: true } }, async () => ({ content: [] }));
  }
  return server;
}

function v2Server(): McpServer {
  const server = new McpServer({ name: 'compressed', version: '1.0.0' });
  for (const tool of TOOLS) {
    server.registerTool(tool.name, { description: `${tool.name}: ${'a tool with a long description. '.repeat(4)}`, annotations: tool.readOnly ? { readOnlyHint: true } : { destructiveHint: true } }, async () => ({ content: [] }));
  }
  return server;
}

/** The content codings of the answers a client got. */
function recording(codings: string[]): typeof fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    codings.push(response.headers.get('content-encoding') ?? 'identity');
    return response;
  };
}

describe('Security: compression inside the middleware (Express + compression, SDK v1)', () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    const app = express();
    // Every answer compressed that compression may compress: the JSON ones (`?json=1`). The SDK's SSE
    // answers say `Cache-Control: no-transform`, which compression honours (filter-node.test.ts
    // covers compressed SSE).
    app.use('/mcp', warden({ tokens: TOKENS, policy: POLICY, server: v1Server() }), compression({ threshold: 0 }));
    app.all('/mcp', async (req, res) => {
      const mcp = v1Server();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: req.query['json'] === '1' });
      res.on('close', () => void transport.close());
      await mcp.connect(transport);
      await transport.handleRequest(req, res, req.body);
    });
    // The same compression on a route of its own: it does compress here.
    app.get('/plain', compression({ threshold: 0 }), (_req, res) => void res.json({ tools: TOOLS }));
    server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => close(server));

  it('shows the reader only the read-only tools, from SSE and from JSON answers, decoded', async () => {
    expect((await fetch(`${base}/plain`)).headers.get('content-encoding')).toBe('gzip');
    for (const json of [false, true]) {
      const codings: string[] = [];
      const client = new Client({ name: 'compressed', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp${json ? '?json=1' : ''}`), { requestInit: { headers: { Authorization: 'Bearer reader-token' } }, fetch: recording(codings) }));
      try {
        expect((await client.listTools()).tools.map((t) => t.name).sort(), json ? 'JSON' : 'SSE').toEqual(READ_ONLY);
      } finally {
        await client.close();
      }
      // The filter sent what it read without the coding.
      expect(codings.every((c) => c === 'identity'), codings.join()).toBe(true);
    }
  });
});

describe('Security: compression inside the middleware (Hono + hono/compress, SDK v2)', () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    const handler = createMcpHandler(() => v2Server());
    const app = new Hono<{ Variables: WardenVariables }>();
    app.use('/mcp', honoWarden({ tokens: TOKENS, policy: POLICY, server: v2Server() }));
    app.use('/mcp', compress({ threshold: 0 }));
    app.all('/mcp', (c) => handler.fetch(c.req.raw, { authInfo: c.get('auth'), parsedBody: c.get('parsedBody') }));
    app.use('/plain', compress({ threshold: 0 }));
    app.get('/plain', (c) => c.json({ tools: TOOLS }));
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => close(server));

  it('shows the reader only the read-only tools in JSON answers (2026-07-28), decoded', async () => {
    expect((await fetch(`${base}/plain`)).headers.get('content-encoding')).toBe('gzip');
    const codings: string[] = [];
    const client = new ClientV2({ name: 'compressed', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await client.connect(new TransportV2(new URL(`${base}/mcp`), { requestInit: { headers: { Authorization: 'Bearer reader-token' } }, fetch: recording(codings) }));
    try {
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(READ_ONLY);
    } finally {
      await client.close();
    }
    expect(codings.every((c) => c === 'identity'), codings.join()).toBe(true);
  });
});
