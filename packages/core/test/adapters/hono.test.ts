/**
 * The Hono adapter in front of an SDK v2 `createMcpHandler`: over a real `@hono/node-server` for the
 * official client (JSON answers in 2026-07-28, SSE answers on the legacy leg), and through
 * `app.request()` for refusals that need no socket.
 */
import { serve } from '@hono/node-server';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, type FetchLike, ProtocolError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { type McpHttpHandler, McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import { Hono } from 'hono';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type WardenVariables, warden } from '@mcp-warden/core/hono';

const MAX_BODY_BYTES = 1024;

/** One tool per verb, plus `whoami`; `ran` records the tools that actually ran. */
function createToolServer(ran: string[]): McpServer {
  const server = new McpServer({ name: 'hono-adapter', version: '1.0.0' });
  const tools = [
    ['read_data', { readOnlyHint: true }],
    ['write_data', { readOnlyHint: false, destructiveHint: false }],
    ['drop_data', { readOnlyHint: false, destructiveHint: true }],
  ] as const;
  for (const [name, annotations] of tools) {
    server.registerTool(name, { annotations }, async () => {
      ran.push(name);
      return { content: [{ type: 'text', text: `${name} ran` }] };
    });
  }
  server.registerTool('whoami', { annotations: { readOnlyHint: true } }, async (ctx) => {
    const auth = ctx.http?.authInfo;
    return { content: [{ type: 'text', text: JSON.stringify({ clientId: auth?.clientId, roles: auth?.extra?.['roles'] }) }] };
  });
  return server;
}

const ran: string[] = [];
/** How many requests got past the middleware to the MCP route. */
let reachedHandler = 0;
let handler: McpHttpHandler;
let app: Hono<{ Variables: WardenVariables }>;
let server: Server;
let url: URL;

beforeAll(async () => {
  handler = createMcpHandler(() => createToolServer(ran));
  app = new Hono<{ Variables: WardenVariables }>();
  app.use(
    '/mcp',
    warden({
      tokens: [
        { id: 'admin', token: 'admin-token', roles: ['admin'] },
        { id: 'reader', token: 'reader-token', roles: ['reader'] },
      ],
      policy: { roles: { admin: ['read', 'write', 'delete'], reader: ['read'] } },
      server: createToolServer(ran),
      maxBodyBytes: MAX_BODY_BYTES,
    }),
  );
  app.all('/mcp', (c) => {
    reachedHandler++;
    return handler.fetch(c.req.raw, { authInfo: c.get('auth'), parsedBody: c.get('parsedBody') });
  });
  server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
  await once(server, 'listening');
  url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`);
});

afterAll(async () => {
  await handler.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  ran.length = 0;
});

/** One exchange as the client saw it: the JSON-RPC method it sent and the media type of the answer. */
interface Exchange {
  readonly rpcMethod: string | undefined;
  readonly contentType: string;
}

function recordingFetch(log: Exchange[]): FetchLike {
  return async (input, init) => {
    const body = typeof init?.body === 'string' ? (JSON.parse(init.body) as { method?: string }) : undefined;
    const response = await fetch(input, init);
    log.push({ rpcMethod: body?.method, contentType: response.headers.get('content-type') ?? '' });
    return response;
  };
}

type Pinning = 'default' | 'pinned';

async function withClient(token: string, mode: Pinning, use: (client: Client) => Promise<void>, log: Exchange[] = []): Promise<void> {
  const client = new Client({ name: 'hono-adapter-test', version: '1.0.0' }, mode === 'pinned' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {});
  await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers: { Authorization: `Bearer ${token}` } }, fetch: recordingFetch(log) }));
  try {
    await use(client);
  } finally {
    await client.close();
  }
}

const textOf = (result: { content?: unknown }): string => (result.content as { text: string }[])[0]?.text ?? '';

describe.each([
  ['default', 'text/event-stream'],
  ['pinned', 'application/json'],
] as const)('with the v2 client in %s negotiation (answers as %s)', (mode, mediaType) => {
  it('filters tools/list to the read-only tools for a reader', async () => {
    const log: Exchange[] = [];
    await withClient(
      'reader-token',
      mode,
      async (client) => {
        expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['read_data', 'whoami']);
      },
      log,
    );
    expect(log.find((e) => e.rpcMethod === 'tools/list')?.contentType).toContain(mediaType);
  });

  it('shows an admin every tool', async () => {
    await withClient('admin-token', mode, async (client) => {
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['drop_data', 'read_data', 'whoami', 'write_data']);
    });
  });

  it.each([
    ['write_data', 'write'],
    ['drop_data', 'delete'],
  ])('refuses a reader calling %s with -32003 (missing permission: %s) and never runs it', async (tool, permission) => {
    await withClient('reader-token', mode, async (client) => {
      const error = await client.callTool({ name: tool, arguments: {} }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ProtocolError);
      expect((error as ProtocolError).code).toBe(-32003);
      expect((error as ProtocolError).message).toContain(`(missing permission: ${permission})`);
    });
    expect(ran).toEqual([]);
  });

  it('lets a reader call a read-only tool and an admin the destructive one', async () => {
    await withClient('reader-token', mode, async (client) => {
      expect(textOf(await client.callTool({ name: 'read_data', arguments: {} }))).toBe('read_data ran');
    });
    await withClient('admin-token', mode, async (client) => {
      expect(textOf(await client.callTool({ name: 'drop_data', arguments: {} }))).toBe('drop_data ran');
    });
    expect(ran).toEqual(['read_data', 'drop_data']);
  });

  it('hands the tool handler the caller as ctx.http.authInfo', async () => {
    await withClient('reader-token', mode, async (client) => {
      expect(JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} })))).toEqual({ clientId: 'reader', roles: ['reader'] });
    });
  });
});

describe('Security: refusals before the MCP handler', () => {
  // app.request() builds a bare web Request, which has no Host header; a real client always sends one,
  // and the loopback guard requires it.
  const webHeaders = (extra: Record<string, string> = {}): Record<string, string> => ({
    host: '127.0.0.1',
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    ...extra,
  });
  const listBody = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });

  it('answers a missing credential with 401 and exactly `WWW-Authenticate: Bearer`', async () => {
    const before = reachedHandler;
    const response = await app.request('http://127.0.0.1/mcp', { method: 'POST', headers: webHeaders(), body: listBody });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    expect(await response.json()).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32001 } });
    expect(reachedHandler).toBe(before);
  });

  it('answers an unknown token with 401 and error="invalid_token"', async () => {
    const response = await app.request('http://127.0.0.1/mcp', { method: 'POST', headers: webHeaders({ authorization: 'Bearer nope' }), body: listBody });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);
  });

  /** A tools/call whose serialised form is `size` bytes or more. */
  const oversizedCall = (size: number): string =>
    JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_data', arguments: { pad: 'x'.repeat(size) } } });

  it('refuses a body over maxBodyBytes declared by Content-Length with 413, over a real socket', async () => {
    const before = reachedHandler;
    const response = await fetch(url, {
      method: 'POST',
      headers: { authorization: 'Bearer admin-token', 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: oversizedCall(MAX_BODY_BYTES),
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32000 } });
    expect(reachedHandler).toBe(before);
    expect(ran).toEqual([]);
  });

  it('refuses a streamed body (no Content-Length) once it passes maxBodyBytes with 413', async () => {
    const before = reachedHandler;
    const bytes = new TextEncoder().encode(oversizedCall(MAX_BODY_BYTES));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 256) controller.enqueue(bytes.subarray(i, i + 256));
        controller.close();
      },
    });
    const response = await app.request('http://127.0.0.1/mcp', {
      method: 'POST',
      headers: webHeaders({ authorization: 'Bearer admin-token' }),
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(response.status).toBe(413);
    expect(reachedHandler).toBe(before);
    expect(ran).toEqual([]);
  });

  it('accepts a body just under the limit', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { _pad: 'x'.repeat(MAX_BODY_BYTES - 80) } });
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(MAX_BODY_BYTES);
    const response = await app.request('http://127.0.0.1/mcp', { method: 'POST', headers: webHeaders({ authorization: 'Bearer reader-token' }), body });
    expect(response.status).toBe(200);
  });
});
