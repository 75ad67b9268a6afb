/**
 * The classic "protect your MCP server with a token" lesson, rebuilt on mcp-warden: an Express app
 * with an official SDK v1 server, static tokens, and the read/write/delete role table, where the
 * verbs now follow the tools' annotations instead of the HTTP method.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import express, { type Express } from 'express';
import { z } from 'zod';
import { type AuditSink, type StaticTokenEntry, type WardenOptions, staticTokens } from '@mcp-warden/core';
import { warden } from '@mcp-warden/core/express';

/** The tutorial's tokens. Real deployments take them from the environment (`tokenEnv`) or use hashes. */
export const TUTORIAL_TOKENS: readonly StaticTokenEntry[] = [
  { id: 'user-secret123', token: 'secret123', roles: ['admin'] },
  { id: 'user-another-token', token: 'another-token', roles: ['admin'] },
  { id: 'admin', token: 'admin-token', roles: ['admin'] },
  { id: 'reader', token: 'reader-token', roles: ['reader'] },
];

/** The role table: admin-token → read/write/delete, reader-token → read. */
export const TUTORIAL_ROLES = {
  admin: ['read', 'write', 'delete'],
  reader: ['read'],
} as const;

/** A tiny note store shared by every request. */
const notes = new Map<string, string>([['welcome', 'Hello from the mcp-warden tutorial']]);

/** Builds the MCP server: tools with honest annotations, one per verb. */
export function createTutorialServer(): McpServer {
  const server = new McpServer({ name: 'mcp-warden-tutorial', version: '1.0.0' });
  server.registerTool(
    'list_notes',
    { description: 'List the names of all notes', annotations: { readOnlyHint: true } },
    async () => ({ content: [{ type: 'text', text: [...notes.keys()].join('\n') }] }),
  );
  server.registerTool(
    'read_note',
    { description: 'Read one note', inputSchema: { name: z.string() }, annotations: { readOnlyHint: true } },
    async ({ name }) => ({ content: [{ type: 'text', text: notes.get(name) ?? `no note named ${name}` }] }),
  );
  server.registerTool(
    'whoami',
    { description: 'Tell who is calling, as the server sees it', annotations: { readOnlyHint: true } },
    async (extra) => ({
      content: [{ type: 'text', text: JSON.stringify({ clientId: extra.authInfo?.clientId, roles: extra.authInfo?.extra?.['roles'] }) }],
    }),
  );
  server.registerTool(
    'add_note',
    {
      description: 'Add or replace a note',
      inputSchema: { name: z.string(), text: z.string() },
      annotations: { readOnlyHint: false, destructiveHint: false },
    },
    async ({ name, text }) => {
      notes.set(name, text);
      return { content: [{ type: 'text', text: `saved ${name}` }] };
    },
  );
  server.registerTool(
    'delete_note',
    { description: 'Delete a note', inputSchema: { name: z.string() }, annotations: { readOnlyHint: false, destructiveHint: true } },
    async ({ name }) => ({ content: [{ type: 'text', text: notes.delete(name) ? `deleted ${name}` : `no note named ${name}` }] }),
  );
  return server;
}

export interface TutorialAppOptions {
  /** Tutorial mode: raw `Authorization: secret123` accepted and a wrong secret answered 403. */
  readonly tutorialMode: boolean;
  readonly audit?: AuditSink;
  /**
   * Pipeline options from mcp-warden's services (managed API keys, the audit queue, the limiter,
   * the config's roles): their verifiers are tried before the tutorial's static tokens.
   */
  readonly managed?: WardenOptions;
}

function listOf<T>(value: T | readonly T[] | undefined): T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? [...(value as readonly T[])] : [value as T];
}

/** The Express app: mcp-warden in front of `/mcp`, a stateless SDK server per request behind it. */
export function createTutorialApp(options: TutorialAppOptions): Express {
  const app = express();
  app.use(
    '/mcp',
    warden({
      policy: { roles: TUTORIAL_ROLES },
      ...options.managed,
      verifiers: [...(options.managed?.verifiers ?? []), staticTokens(TUTORIAL_TOKENS)],
      // Annotations are read from a reference instance, so calls are decided before any tools/list.
      server: createTutorialServer(),
      rawAuthorization: options.tutorialMode,
      invalidCredentialStatus: options.tutorialMode ? 403 : 401,
      audit: [...listOf(options.managed?.audit), ...listOf(options.audit)],
    }),
  );
  app.all('/mcp', async (req, res) => {
    const server = createTutorialServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  return app;
}
