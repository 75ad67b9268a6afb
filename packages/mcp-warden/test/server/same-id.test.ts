/**
 * Two requests of one session with the same JSON-RPC id: the official SDK's Streamable HTTP server
 * transport routes an answer by its id to the stream of the last request that carried that id. A
 * `tools/list` whose answer takes a while, then a slower `tools/call` with the same id, and the list's
 * answer comes back on the call's stream. The gateway must filter it there too.
 */
import { randomUUID } from 'node:crypto';
import { type Server as HttpServer, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const TOOLS = [
  { name: 'look', inputSchema: { type: 'object' as const }, annotations: { readOnlyHint: true } },
  { name: 'secret_wipe', inputSchema: { type: 'object' as const }, annotations: { destructiveHint: true } },
  { name: 'slow', inputSchema: { type: 'object' as const }, annotations: { readOnlyHint: true } },
];

describe('Security: an answer routed to another request with the same id', () => {
  let gateway: Gateway;
  let upstream: HttpServer;
  let reader: string;
  const clients: Client[] = [];

  beforeAll(async () => {
    const transports = new Map<string, StreamableHTTPServerTransport>();
    upstream = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        void (async () => {
          const parsed: unknown = body === '' ? undefined : JSON.parse(body);
          const session = req.headers['mcp-session-id'];
          let transport = typeof session === 'string' ? transports.get(session) : undefined;
          if (transport === undefined) {
            const server = new Server({ name: 'slow-list', version: '1.0.0' }, { capabilities: { tools: {} } });
            // A list that takes a while to make (a server asking a database, say).
            server.setRequestHandler(ListToolsRequestSchema, async () => {
              await new Promise((resolve) => setTimeout(resolve, 300));
              return { tools: TOOLS };
            });
            server.setRequestHandler(CallToolRequestSchema, async () => {
              await new Promise((resolve) => setTimeout(resolve, 1_000));
              return { content: [{ type: 'text', text: 'done' }] };
            });
            const created = new StreamableHTTPServerTransport({ sessionIdGenerator: randomUUID, onsessioninitialized: (id) => void transports.set(id, created) });
            transport = created;
            await server.connect(created);
          }
          await transport.handleRequest(req, res, parsed);
        })();
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        roles: { reader: ['read'] },
        upstreams: { slow: { type: 'http', url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp` } },
      }),
      'same-id.yaml',
      {},
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
    reader = (await gateway.services.keys.create({ name: 'reader', roles: ['reader'] })).plaintext;
  }, 30_000);

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await gateway?.close();
    upstream?.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  it('filters the list answer that comes back on the stream of a call with its id', async () => {
    const client = new Client({ name: 'same-id', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/slow`), { requestInit: { headers: { Authorization: `Bearer ${reader}` } } }));
    clients.push(client);
    const transport = client.transport as StreamableHTTPClientTransport;
    /** What the stream of a POST brings within 2 s (a stream whose answer went elsewhere stays open). */
    const post = async (message: unknown): Promise<string> => {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 2_000);
      let text = '';
      try {
        const response = await fetch(`${gateway.url}/mcp/slow`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${reader}`,
            'mcp-session-id': transport.sessionId ?? '',
            'mcp-protocol-version': transport.protocolVersion ?? '2025-11-25',
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
          },
          body: JSON.stringify(message),
          signal: controller.signal,
        });
        const decoder = new TextDecoder();
        for await (const chunk of response.body ?? []) text += decoder.decode(chunk as Uint8Array, { stream: true });
      } catch {
        // Aborted at the deadline: what came is in `text`.
      } finally {
        clearTimeout(timer);
      }
      return text;
    };
    const list = post({ jsonrpc: '2.0', id: 7, method: 'tools/list' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const call = post({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'slow', arguments: {} } });
    const answers = await Promise.all([list, call]);
    // The list's answer arrived on one of the two streams, and is filtered wherever it did.
    expect(answers.join('\n')).toContain('"look"');
    expect(answers.join('\n')).not.toContain('secret_wipe');
  });
});
