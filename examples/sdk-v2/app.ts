/**
 * The tutorial's note server on the MCP TypeScript SDK v2: one `McpServer` factory served by
 * `createMcpHandler` (2026-07-28 requests, plus 2025-era clients through its stateless fallback),
 * mounted on Express with `toNodeHandler`, behind mcp-warden with the tutorial's tokens and roles.
 * Tool handlers see the caller at `ctx.http.authInfo`.
 */
import { toNodeHandler } from '@modelcontextprotocol/node';
import { type McpHttpHandler, McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import express, { type Express } from 'express';
import { z } from 'zod';
import { type StaticTokenEntry } from '@mcp-warden/core';
import { warden } from '@mcp-warden/core/express';

/** The tutorial's tokens (examples/tutorial): secret123, another-token and admin-token are admins, reader-token reads. */
export const SDK_V2_TOKENS: readonly StaticTokenEntry[] = [
  { id: 'user-secret123', token: 'secret123', roles: ['admin'] },
  { id: 'user-another-token', token: 'another-token', roles: ['admin'] },
  { id: 'admin', token: 'admin-token', roles: ['admin'] },
  { id: 'reader', token: 'reader-token', roles: ['reader'] },
];

/** The tutorial's role table: admin → read/write/delete, reader → read. */
export const SDK_V2_ROLES = {
  admin: ['read', 'write', 'delete'],
  reader: ['read'],
} as const;

/** Builds the MCP server over a note store: one tool per verb, annotated honestly, plus `whoami`. */
export function createNotesServer(notes: Map<string, string>): McpServer {
  const server = new McpServer({ name: 'mcp-warden-sdk-v2', version: '1.0.0' });
  server.registerTool(
    'list_notes',
    { description: 'List the names of all notes', annotations: { readOnlyHint: true } },
    async () => ({ content: [{ type: 'text', text: [...notes.keys()].join('\n') }] }),
  );
  server.registerTool(
    'whoami',
    { description: 'Tell who is calling, as the server sees it', annotations: { readOnlyHint: true } },
    async (ctx) => {
      const auth = ctx.http?.authInfo;
      return { content: [{ type: 'text', text: JSON.stringify({ clientId: auth?.clientId, roles: auth?.extra?.['roles'] }) }] };
    },
  );
  server.registerTool(
    'add_note',
    {
      description: 'Add or replace a note',
      inputSchema: z.object({ name: z.string(), text: z.string() }),
      annotations: { readOnlyHint: false, destructiveHint: false },
    },
    async ({ name, text }) => {
      notes.set(name, text);
      return { content: [{ type: 'text', text: `saved ${name}` }] };
    },
  );
  server.registerTool(
    'delete_note',
    {
      description: 'Delete a note',
      inputSchema: z.object({ name: z.string() }),
      annotations: { readOnlyHint: false, destructiveHint: true },
    },
    async ({ name }) => ({ content: [{ type: 'text', text: notes.delete(name) ? `deleted ${name}` : `no note named ${name}` }] }),
  );
  return server;
}

/** The Express app and the MCP handler behind it (close the handler when the server stops). */
export interface SdkV2App {
  readonly app: Express;
  readonly handler: McpHttpHandler;
}

/** Builds the app: mcp-warden on `/mcp`, then the SDK v2 handler with the caller in `req.auth`. */
export function createSdkV2App(): SdkV2App {
  const notes = new Map([['welcome', 'Hello from mcp-warden and the MCP SDK v2']]);
  const handler = createMcpHandler(() => createNotesServer(notes));
  const serve = toNodeHandler(handler);
  const app = express();
  // createMcpHandler builds a server per request, so the policy reads annotations from a reference instance.
  app.use('/mcp', warden({ tokens: SDK_V2_TOKENS, policy: { roles: SDK_V2_ROLES }, server: createNotesServer(notes) }));
  app.all('/mcp', (req, res) => serve(req, res, req.body));
  return { app, handler };
}
