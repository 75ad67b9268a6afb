/**
 * The node:http adapter (`withWarden`) in front of both official server SDKs on a real server:
 * SDK v2 `createMcpHandler` through `toNodeHandler`, and an SDK v1 stateless
 * `StreamableHTTPServerTransport` that receives the parsed body from the adapter.
 */
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { type Server, type ServerResponse, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, ProtocolError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { McpServer as V1McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport as V1ServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent, WardenOptions } from '@mcp-warden/core';
import { type AuthenticatedRequest, withWarden } from '@mcp-warden/core/node';

/** One tool per verb; each records that it ran, so a refusal can be shown to stop before the server. */
const TOOLS = [
  { name: 'read_data', annotations: { readOnlyHint: true } },
  { name: 'write_data', annotations: { readOnlyHint: false, destructiveHint: false } },
  { name: 'drop_data', annotations: { readOnlyHint: false, destructiveHint: true } },
] as const;

interface CallerView {
  readonly token?: string;
  readonly clientId?: string;
  readonly extra?: Record<string, unknown>;
}

const describeCaller = (auth: CallerView | undefined): string =>
  JSON.stringify({ token: auth?.token, clientId: auth?.clientId, roles: auth?.extra?.['roles'] });

function createV2Server(ran: string[]): McpServer {
  const server = new McpServer({ name: 'node-adapter-v2', version: '1.0.0' });
  for (const tool of TOOLS) {
    server.registerTool(tool.name, { annotations: tool.annotations }, async () => {
      ran.push(tool.name);
      return { content: [{ type: 'text', text: `${tool.name} ran` }] };
    });
  }
  server.registerTool('whoami', { annotations: { readOnlyHint: true } }, async (ctx) => ({
    content: [{ type: 'text', text: describeCaller(ctx.http?.authInfo) }],
  }));
  return server;
}

function createV1Server(ran: string[]): V1McpServer {
  const server = new V1McpServer({ name: 'node-adapter-v1', version: '1.0.0' });
  for (const tool of TOOLS) {
    server.registerTool(tool.name, { annotations: tool.annotations }, async () => {
      ran.push(tool.name);
      return { content: [{ type: 'text', text: `${tool.name} ran` }] };
    });
  }
  server.registerTool('whoami', { annotations: { readOnlyHint: true } }, async (extra) => ({
    content: [{ type: 'text', text: describeCaller(extra.authInfo) }],
  }));
  return server;
}

const wardenOptions = (server: object): WardenOptions => ({
  tokens: [
    { id: 'admin', token: 'admin-token', roles: ['admin'] },
    { id: 'reader', token: 'reader-token', roles: ['reader'] },
  ],
  policy: { roles: { admin: ['read', 'write', 'delete'], reader: ['read'] } },
  server,
});

type Pinning = 'default' | 'pinned';

interface Backend {
  readonly name: string;
  /** The client negotiation modes this server speaks (SDK v1 servers have no 2026-07-28). */
  readonly modes: readonly Pinning[];
  /** Builds the node:http listener; `ran` collects the tools that actually ran. */
  readonly listen: (ran: string[]) => { listener: (req: AuthenticatedRequest, res: ServerResponse) => void; close: () => Promise<void> };
}

const BACKENDS: readonly Backend[] = [
  {
    name: 'SDK v2 createMcpHandler via toNodeHandler',
    modes: ['default', 'pinned'],
    listen(ran) {
      const handler = createMcpHandler(() => createV2Server(ran));
      const serve = toNodeHandler(handler);
      return {
        listener: withWarden(wardenOptions(createV2Server(ran)), (req, res, body) => serve(req, res, body)),
        close: () => handler.close(),
      };
    },
  },
  ...[false, true].map(
    (enableJsonResponse): Backend => ({
      name: `SDK v1 stateless StreamableHTTPServerTransport (${enableJsonResponse ? 'JSON' : 'SSE'} responses)`,
      modes: ['default'],
      listen(ran) {
        const listener = withWarden(wardenOptions(createV1Server(ran)), async (req, res, body) => {
          const server = createV1Server(ran);
          const transport = new V1ServerTransport({ sessionIdGenerator: undefined, enableJsonResponse });
          res.on('close', () => {
            void transport.close();
            void server.close();
          });
          await server.connect(transport);
          await transport.handleRequest(req, res, body);
        });
        return { listener, close: async () => {} };
      },
    }),
  ),
];

describe.each(BACKENDS)('withWarden in front of $name', (backend) => {
  const ran: string[] = [];
  let server: Server;
  let url: URL;
  let closeBackend: () => Promise<void>;

  beforeAll(async () => {
    const { listener, close } = backend.listen(ran);
    closeBackend = close;
    server = createServer(listener).listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`);
  });

  afterAll(async () => {
    await closeBackend();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  async function withClient(token: string, mode: Pinning, use: (client: Client) => Promise<void>): Promise<void> {
    const client = new Client({ name: 'node-adapter-test', version: '1.0.0' }, mode === 'pinned' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {});
    await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
    try {
      await use(client);
    } finally {
      await client.close();
    }
  }

  const textOf = (result: { content?: unknown }): string => (result.content as { text: string }[])[0]?.text ?? '';

  describe.each(backend.modes)('with the v2 client in %s negotiation', (mode) => {
    it('lets a reader call a read-only tool, annotations read from the server option before any list', async () => {
      await withClient('reader-token', mode, async (client) => {
        expect(textOf(await client.callTool({ name: 'read_data', arguments: {} }))).toBe('read_data ran');
      });
    });

    it('filters tools/list to the read-only tools for a reader, and shows an admin everything', async () => {
      await withClient('reader-token', mode, async (client) => {
        expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['read_data', 'whoami']);
      });
      await withClient('admin-token', mode, async (client) => {
        expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['drop_data', 'read_data', 'whoami', 'write_data']);
      });
    });

    it.each([
      ['write_data', 'write'],
      ['drop_data', 'delete'],
    ])('refuses a reader calling %s with -32003 (missing permission: %s) and never runs it', async (tool, permission) => {
      ran.length = 0;
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

    it('lets an admin call the destructive tool', async () => {
      ran.length = 0;
      await withClient('admin-token', mode, async (client) => {
        expect(textOf(await client.callTool({ name: 'drop_data', arguments: {} }))).toBe('drop_data ran');
      });
      expect(ran).toEqual(['drop_data']);
    });

    it('hands the tool handler the caller, with a fingerprint instead of the token', async () => {
      await withClient('reader-token', mode, async (client) => {
        const seen = JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} }))) as Record<string, unknown>;
        expect(seen).toEqual({ token: expect.stringMatching(/^sha256:[0-9a-f]{16}$/), clientId: 'reader', roles: ['reader'] });
      });
    });
  });

  it('answers a request without a credential with 401 and exactly `WWW-Authenticate: Bearer`', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_data', arguments: {} } }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    expect(await response.json()).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32001 } });
  });

  it('answers an unknown token with 401 and error="invalid_token"', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { authorization: 'Bearer nope', 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);
  });
});

/** What a client streaming an endless body (chunked, no Content-Length) gets back. */
interface OversizedOutcome {
  readonly status: number | undefined;
  readonly connection: string | undefined;
  /** Whether the server closed the connection within a second of answering. */
  readonly socketClosed: boolean;
}

/** Streams up to 16 MiB in chunks until the server answers, then watches the connection for a second. */
function streamOversizedBody(url: URL, token: string): Promise<OversizedOutcome> {
  return new Promise((resolve) => {
    const req = request(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    });
    // EPIPE / ECONNRESET once the server stops reading is the expected end of the upload.
    req.on('error', () => {});
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let sent = 0;
    const pump = (): void => {
      while (sent < 16 * 1024 * 1024 && !req.destroyed) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      if (!req.destroyed) req.end();
    };
    req.on('response', (res) => {
      res.resume();
      res.on('end', async () => {
        // Not events.once: it rejects on the socket's EPIPE, which is the expected end of the upload.
        const socket = req.socket;
        const socketClosed = socket === null || socket.destroyed || (await Promise.race([new Promise<boolean>((closed) => socket.once('close', () => closed(true))), delay(1000, false)]));
        req.destroy();
        resolve({ status: res.statusCode, connection: res.headers.connection, socketClosed });
      });
    });
    req.write('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"');
    pump();
  });
}

describe('Security: oversized bodies through withWarden', () => {
  let reachedHandler = 0;
  let server: Server;
  let url: URL;
  let handler: ReturnType<typeof createMcpHandler>;

  beforeAll(async () => {
    const ran: string[] = [];
    handler = createMcpHandler(() => createV2Server(ran));
    const serve = toNodeHandler(handler);
    const listener = withWarden({ ...wardenOptions(createV2Server(ran)), maxBodyBytes: 1024 }, (req, res, body) => {
      reachedHandler++;
      return serve(req, res, body);
    });
    server = createServer(listener).listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`);
  });

  afterAll(async () => {
    await handler.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('refuses a body over maxBodyBytes declared by Content-Length with 413', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { authorization: 'Bearer reader-token', 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(2048) } }),
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32000 } });
    expect(reachedHandler).toBe(0);
  });

  it('refuses a streamed body with 413 as soon as it passes maxBodyBytes', async () => {
    const outcome = await streamOversizedBody(url, 'reader-token');
    expect(outcome.status).toBe(413);
    expect(reachedHandler).toBe(0);
  });

  // readNodeBody stops reading an oversized body, so the 413 must close the connection (not stall it).
  it('closes the connection after refusing a streamed oversized body', async () => {
    const outcome = await streamOversizedBody(url, 'reader-token');
    expect(outcome).toEqual({ status: 413, connection: 'close', socketClosed: true });
  });
});

describe("withWarden: the host's request id", () => {
  it('names the audit events of a request with the id the host gave it, and makes one otherwise', async () => {
    const events: AuditEvent[] = [];
    const options: WardenOptions = { ...wardenOptions(createV2Server([])), audit: (event) => void events.push(event) };
    const given = withWarden(options, (_req, res) => void res.writeHead(202).end(), { requestId: (req) => req.headers['x-test-id'] as string | undefined });
    const server = createServer(given).listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
      const send = (token: string, id?: string) =>
        fetch(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(id === undefined ? {} : { 'x-test-id': id }) },
          body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
        });
      expect((await send('reader-token', 'host-id-1')).status).toBe(202);
      expect((await send('wrong-token', 'host-id-2')).status).toBe(401);
      expect((await send('reader-token')).status).toBe(202);
      expect(events.map((e) => e.requestId.slice(0, 9))).toEqual(['host-id-1', 'host-id-2', expect.stringMatching(/^[0-9a-f]{8}-$/)]);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('withWarden: a handler that fails', () => {
  const options: WardenOptions = { tokens: [{ id: 'reader', token: 'reader-token', roles: ['reader'] }], policy: { roles: { reader: ['read'] } } };
  const ping = (port: number) =>
    fetch(`http://127.0.0.1:${port}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: 'Bearer reader-token' },
      body: '{"jsonrpc":"2.0","id":5,"method":"ping"}',
    });

  async function serve(handler: (res: ServerResponse) => Promise<void>, run: (port: number) => Promise<void>): Promise<void> {
    const server = createServer(withWarden(options, (_req, res) => handler(res)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      await run((server.address() as AddressInfo).port);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  it('answers 500 with a JSON-RPC error when it failed before writing anything', async () => {
    await serve(
      async () => {
        throw new Error('db went away');
      },
      async (port) => {
        const response = await ping(port);
        expect(response.status).toBe(500);
        expect(JSON.parse(await response.text())).toMatchObject({ jsonrpc: '2.0', error: { code: -32603 } });
      },
    );
  });

  it('ends the connection when it failed after beginning a JSON answer (held by the filter), as without mcp-warden: no error written into the answer', async () => {
    await serve(
      async (res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"jsonrpc":"2.0","id":5,');
        throw new Error('db went away');
      },
      async (port) => {
        const outcome = await ping(port).then(
          async (response) => `answered ${response.status}: ${await response.text()}`,
          (error: unknown) => `failed: ${String((error as Error).message)}`,
        );
        expect(outcome).toMatch(/^failed: /);
      },
    );
  });
});
