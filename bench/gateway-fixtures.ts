/**
 * What the servers of `bench/gateway.ts` serve and what the runner sends and expects: the `echo`
 * server (an SDK v1 `McpServer`), the 1,000-tool catalog (the SDK's low-level `Server` with the list
 * built once), the request bodies and headers.
 *
 * The catalog is not an `McpServer`: SDK 1.32 converts every tool's zod schema to JSON Schema on
 * every `tools/list` (~28 ms for 1,000 tools) and, stateless, registers all of them again per request
 * (~11 ms): the upstream would take ~40 ms a list and bury what the gateway adds. A server that
 * builds its list once is what makes the gateway's share of a big list visible.
 *
 * Imported by the runner and by both server children (`gateway-upstream.ts`, `gateway-stdio.ts`).
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import { z } from 'zod';

export const PROTOCOL_VERSION = '2025-11-25';
export const ECHO_TEXT = 'hello through the gateway';
/** How many tools the catalog has; half of them are read-only. */
export const CATALOG_SIZE = 1_000;

/** The JSON-RPC bodies the bench sends (fixed ids: answers to one request are byte-identical). */
export const REQUEST_BODIES = {
  call: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: ECHO_TEXT } } }),
  list: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
  wipe: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'wipe', arguments: {} } }),
  initialize: JSON.stringify({
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'mcp-warden-gateway-bench', version: '1.0.0' } },
  }),
  initialized: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
} as const;

/**
 * The `tools/call` echo with the given id. Within a session ids must not be reused (basic/index,
 * "Requests"), so scenario e, whose sessions last the whole run, numbers its requests.
 */
export function callBody(id: number): string {
  return JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { text: ECHO_TEXT } } });
}

/** Headers of every request the bench sends (plus `Authorization` and `Mcp-Session-Id` when given). */
export function requestHeaders(token?: string, session?: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': PROTOCOL_VERSION,
    ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    ...(session === undefined ? {} : { 'mcp-session-id': session }),
  };
}

/** One validator for every server of a process (the SDK builds a fresh Ajv per server otherwise). */
const SHARED_VALIDATOR = new AjvJsonSchemaValidator();
const SERVER_INFO = { name: 'mcp-warden-gateway-bench', version: '1.0.0' };

type Annotations = { readOnlyHint?: boolean; destructiveHint?: boolean; idempotentHint?: boolean; openWorldHint?: boolean };

interface CatalogTool {
  readonly name: string;
  readonly description: string;
  readonly inputSchema: Record<string, unknown>;
  readonly annotations?: Annotations;
}

const INPUT_SCHEMAS: readonly Record<string, unknown>[] = [
  {
    type: 'object',
    properties: { query: { type: 'string', description: 'What to look for' }, limit: { type: 'integer', minimum: 1, maximum: 100 } },
    required: ['query'],
  },
  { type: 'object', properties: { id: { type: 'string' }, fields: { type: 'array', items: { type: 'string' } } }, required: ['id'] },
  {
    type: 'object',
    properties: { path: { type: 'string' }, content: { type: 'string' }, overwrite: { type: 'boolean' } },
    required: ['path', 'content'],
  },
  { type: 'object', properties: { id: { type: 'string' }, reason: { type: 'string' } }, required: ['id'] },
];

/** Half read-only; the rest idempotent writes, destructive, or not annotated (the spec's default: destructive). */
function annotationsFor(i: number): Annotations | undefined {
  switch (i % 8) {
    case 0:
    case 2:
    case 4:
    case 6:
      return { readOnlyHint: true, openWorldHint: false };
    case 1:
    case 5:
      return { readOnlyHint: false, destructiveHint: false, idempotentHint: true };
    case 3:
      return { readOnlyHint: false, destructiveHint: true };
    default:
      return undefined;
  }
}

export const CATALOG: readonly CatalogTool[] = Array.from({ length: CATALOG_SIZE }, (_, i) => {
  const annotations = annotationsFor(i);
  const kind = annotations?.readOnlyHint === true ? 'Reads' : annotations?.destructiveHint === false ? 'Updates' : 'Deletes';
  return {
    name: `tool_${String(i).padStart(4, '0')}`,
    description: `${kind} records of collection ${i} in the bench's imaginary store`,
    inputSchema: INPUT_SCHEMAS[i % INPUT_SCHEMAS.length] as Record<string, unknown>,
    ...(annotations === undefined ? {} : { annotations }),
  };
});

export const CATALOG_NAMES: readonly string[] = CATALOG.map((t) => t.name);
export const READ_ONLY_NAMES: readonly string[] = CATALOG.filter((t) => t.annotations?.readOnlyHint === true).map((t) => t.name);

/** The `echo` server: `echo` (read-only) and `wipe` (destructive, for the reader-refused pre-check). */
export function createEchoServer(): McpServer {
  const server = new McpServer(SERVER_INFO, { jsonSchemaValidator: SHARED_VALIDATOR });
  server.registerTool(
    'echo',
    { description: 'Echo the text back', inputSchema: { text: z.string() }, annotations: { readOnlyHint: true } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );
  server.registerTool(
    'wipe',
    { description: 'Deletes everything (it does not really)', annotations: { readOnlyHint: false, destructiveHint: true } },
    async () => ({ content: [{ type: 'text', text: 'wiped' }] }),
  );
  return server;
}

/** The catalog's `tools/list` result, built once. */
const CATALOG_LIST = { tools: CATALOG };
const CATALOG_BY_NAME = new Set(CATALOG_NAMES);

/** The 1,000-tool server (see the module comment for why it is the low-level `Server`). */
export function createCatalogServer(): Server {
  const server = new Server(SERVER_INFO, { capabilities: { tools: {} }, jsonSchemaValidator: SHARED_VALIDATOR });
  server.setRequestHandler(ListToolsRequestSchema, () => CATALOG_LIST);
  server.setRequestHandler(CallToolRequestSchema, (request) => {
    const name = request.params.name;
    if (!CATALOG_BY_NAME.has(name)) return { content: [{ type: 'text', text: `unknown tool ${name}` }], isError: true };
    return { content: [{ type: 'text', text: name }] };
  });
  return server;
}
