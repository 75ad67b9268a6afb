/**
 * A Streamable HTTP upstream built on the MCP TypeScript SDK v2, for the modern-era transparency
 * tests: `createMcpHandler` with a factory building a fresh `McpServer` per request (2026-07-28
 * requests session-less, 2025-era clients through its stateless legacy fallback), served by a plain
 * node:http server on 127.0.0.1 through `toNodeHandler`. Every request that reaches it is recorded,
 * so a test can prove what the gateway forwarded, and what it did not.
 */
import { once } from 'node:events';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { McpServer, type McpRequestContext, createMcpHandler } from '@modelcontextprotocol/server';
import { z } from 'zod';

/** One request as it arrived at the upstream. */
export interface UpstreamHit {
  readonly httpMethod: string;
  /** The JSON-RPC method of a POST body (the first one of a batch), or null. */
  readonly rpcMethod: string | null;
  /** `params.name` of the body, when it has one (tools/call, prompts/get). */
  readonly rpcName: string | null;
  readonly mcpMethod: string | null;
  readonly mcpName: string | null;
  readonly protocolVersion: string | null;
  readonly sessionId: string | null;
  readonly authorization: string | null;
}

/** What `whoami` answers: how the upstream saw the call that asked. */
export interface WhoAmI {
  readonly era: McpRequestContext['era'];
  readonly mcpMethod: string | null;
  readonly mcpName: string | null;
  readonly protocolVersion: string | null;
  readonly sessionId: string | null;
}

export interface ModernUpstream {
  /** The MCP endpoint, `http://127.0.0.1:<port>/mcp`. */
  readonly url: string;
  /** Every request received, in order (the tests reset it with `hits.length = 0`). */
  readonly hits: UpstreamHit[];
  /** The values `write_thing` was called with (it is the only tool with a side effect). */
  readonly written: string[];
  close(): Promise<void>;
}

/** The tools, with the annotations the gateway's policy reads: one read-only, one that writes, `whoami`. */
export function buildModernServer(context: McpRequestContext, written: string[]): McpServer {
  const server = new McpServer({ name: 'modern-upstream', version: '2.0.0' });
  server.registerTool(
    'echo',
    { description: 'Echo a message', inputSchema: z.object({ message: z.string() }), annotations: { readOnlyHint: true } },
    async ({ message }) => ({ content: [{ type: 'text', text: `echo: ${message}` }] }),
  );
  server.registerTool(
    'write_thing',
    { description: 'Store a value', inputSchema: z.object({ value: z.string() }), annotations: { readOnlyHint: false, destructiveHint: false } },
    async ({ value }) => {
      written.push(value);
      return { content: [{ type: 'text', text: `wrote ${value}` }] };
    },
  );
  server.registerTool(
    'whoami',
    { description: 'How the upstream saw this call', annotations: { readOnlyHint: true } },
    async (ctx) => {
      const headers = ctx.http?.req?.headers;
      const seen: WhoAmI = {
        era: context.era,
        mcpMethod: headers?.get('mcp-method') ?? null,
        mcpName: headers?.get('mcp-name') ?? null,
        protocolVersion: headers?.get('mcp-protocol-version') ?? null,
        sessionId: headers?.get('mcp-session-id') ?? null,
      };
      return { content: [{ type: 'text', text: JSON.stringify(seen) }] };
    },
  );
  return server;
}

function header(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Starts the upstream on 127.0.0.1 (a free port). */
export async function startModernUpstream(): Promise<ModernUpstream> {
  const hits: UpstreamHit[] = [];
  const written: string[] = [];
  const handler = createMcpHandler((context) => buildModernServer(context, written));
  const serve = toNodeHandler(handler);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        body = undefined;
      }
      const first = (Array.isArray(body) ? body[0] : body) as { method?: unknown; params?: { name?: unknown } } | undefined;
      hits.push({
        httpMethod: req.method ?? '',
        rpcMethod: typeof first?.method === 'string' ? first.method : null,
        rpcName: typeof first?.params?.name === 'string' ? first.params.name : null,
        mcpMethod: header(req.headers['mcp-method']),
        mcpName: header(req.headers['mcp-name']),
        protocolVersion: header(req.headers['mcp-protocol-version']),
        sessionId: header(req.headers['mcp-session-id']),
        authorization: header(req.headers.authorization),
      });
      // The body was consumed here, so it goes to the SDK already parsed.
      void serve(req, res, body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  return {
    url,
    hits,
    written,
    async close() {
      await handler.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
