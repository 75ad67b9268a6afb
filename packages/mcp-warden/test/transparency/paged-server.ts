/**
 * A stdio MCP server that paginates every list in small pages (server-everything sends each list in
 * one page), so tests can check that the gateway's list filtering keeps pagination intact. Tools mix
 * read-only, write and unannotated ones so some pages filter down to nothing for a reader. Run as
 * `node --import tsx paged-server.ts`.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';

const readOnly = { readOnlyHint: true };
const write = { readOnlyHint: false, destructiveHint: false };
const destructive = { readOnlyHint: false, destructiveHint: true };
const schema = { type: 'object' as const, properties: {} };

/** Pages of three: the first and the last page hold no read-only tool at all. */
const PAGED_TOOLS: readonly Tool[] = [
  { name: 'write-a', inputSchema: schema, annotations: write },
  { name: 'write-b', inputSchema: schema, annotations: write },
  { name: 'destroy-c', inputSchema: schema, annotations: destructive },
  { name: 'read-d', inputSchema: schema, annotations: readOnly },
  { name: 'unannotated-e', inputSchema: schema },
  { name: 'read-f', inputSchema: schema, annotations: readOnly },
  { name: 'read-g', inputSchema: schema, annotations: readOnly },
  { name: 'read-h', inputSchema: schema, annotations: readOnly },
  { name: 'read-i', inputSchema: schema, annotations: readOnly },
  { name: 'write-j', inputSchema: schema, annotations: write },
];
const TOOLS_PAGE_SIZE = 3;
const PAGE_SIZE = 2;

const prompts = ['p1', 'p2', 'p3', 'p4', 'p5'].map((name) => ({ name, description: `prompt ${name}` }));
const resources = [1, 2, 3, 4, 5].map((n) => ({ uri: `paged://resource/${n}`, name: `resource ${n}`, mimeType: 'text/plain' }));
const templates = ['a', 'b', 'c'].map((t) => ({ uriTemplate: `paged://template/${t}/{id}`, name: `template ${t}` }));

/** Opaque cursors: the offset, base64url-encoded; anything else is refused as invalid params. */
function page<T>(items: readonly T[], cursor: string | undefined, size: number): { items: T[]; nextCursor?: string } {
  const offset = cursor === undefined ? 0 : Number(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!Number.isInteger(offset) || offset < 0 || offset >= items.length) throw new McpError(ErrorCode.InvalidParams, `invalid cursor ${JSON.stringify(cursor)}`);
  const end = offset + size;
  return end < items.length ? { items: items.slice(offset, end), nextCursor: Buffer.from(String(end)).toString('base64url') } : { items: items.slice(offset, end) };
}

const server = new Server({ name: 'paged-server', version: '1.0.0' }, { capabilities: { tools: {}, prompts: {}, resources: {} } });
server.setRequestHandler(ListToolsRequestSchema, (request) => {
  const { items, nextCursor } = page(PAGED_TOOLS, request.params?.cursor, TOOLS_PAGE_SIZE);
  return nextCursor === undefined ? { tools: items } : { tools: items, nextCursor };
});
server.setRequestHandler(ListPromptsRequestSchema, (request) => {
  const { items, nextCursor } = page(prompts, request.params?.cursor, PAGE_SIZE);
  return nextCursor === undefined ? { prompts: items } : { prompts: items, nextCursor };
});
server.setRequestHandler(ListResourcesRequestSchema, (request) => {
  const { items, nextCursor } = page(resources, request.params?.cursor, PAGE_SIZE);
  return nextCursor === undefined ? { resources: items } : { resources: items, nextCursor };
});
server.setRequestHandler(ListResourceTemplatesRequestSchema, (request) => {
  const { items, nextCursor } = page(templates, request.params?.cursor, PAGE_SIZE);
  return nextCursor === undefined ? { resourceTemplates: items } : { resourceTemplates: items, nextCursor };
});
server.setRequestHandler(CallToolRequestSchema, (request) => ({ content: [{ type: 'text', text: `called ${request.params.name}` }] }));
server.setRequestHandler(GetPromptRequestSchema, (request) => ({ messages: [{ role: 'user', content: { type: 'text', text: `prompt ${request.params.name}` } }] }));
server.setRequestHandler(ReadResourceRequestSchema, (request) => ({ contents: [{ uri: request.params.uri, mimeType: 'text/plain', text: `content of ${request.params.uri}` }] }));
await server.connect(new StdioServerTransport());
