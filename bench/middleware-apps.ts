/**
 * The servers of `bench/middleware.ts`: one Express app per scenario, each an official SDK v1
 * (`@modelcontextprotocol/sdk`) stateless Streamable HTTP server, with a new `McpServer` and
 * transport per request as the SDK's stateless example does, and one JSON-schema validator shared by
 * every `McpServer` (the SDK builds a fresh Ajv per server otherwise, which halves throughput).
 *
 * Imported by the runner (for the fixtures and expected answers) and by `middleware-server.ts` (the
 * child process that serves one scenario).
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import { TrustedIssuer, jwtVerifier } from '@mcp-warden/core';
import { warden } from '@mcp-warden/core/express';

/** The scenarios, in the order of the first round. */
export const SCENARIOS = ['noauth-call', 'tutorial-call', 'warden-call', 'noauth-list', 'warden-list'] as const;
/**
 * JWT access-token scenarios (`npm run bench:jwt`, which mints the key and token and passes them in
 * BENCH_JWT_PUBLIC_JWK / BENCH_JWT_TOKEN): verified tokens cached by hash, and verified on every request,
 * against their own no-auth baseline, which receives the very same request (the JWT is sent and ignored),
 * so the ratio is what the middleware costs. A JWT is ~450 bytes of header where the static token
 * is 11: the HTTP stack and the SDK's request conversion pay for the bytes whether or not anything
 * checks them, and scenario 1 (short header) would charge that to the middleware.
 */
export const JWT_SCENARIOS = ['noauth-jwt-call', 'warden-jwt-call', 'warden-jwt-nocache-call'] as const;
export type ScenarioId = (typeof SCENARIOS)[number] | (typeof JWT_SCENARIOS)[number];

/** The JWT scenarios' issuer and audience (the resource's canonical URI). */
export const JWT_ISSUER = 'https://idp.bench.example';
export const JWT_AUDIENCE = 'https://mcp.bench.example/mcp';

export interface ScenarioInfo {
  readonly title: string;
  /** The scenario its ratio is taken against (itself for a baseline). */
  readonly baseline: ScenarioId;
  /** Which request it measures. */
  readonly request: 'call' | 'list';
  /** The bearer token it sends (every scenario sends the same headers; the no-auth ones ignore it). */
  readonly token: string;
}

export const SCENARIO_INFO: Readonly<Record<ScenarioId, ScenarioInfo>> = {
  'noauth-call': { title: '1 no auth, tools/call echo', baseline: 'noauth-call', request: 'call', token: 'admin-token' },
  'tutorial-call': { title: '2 tutorial Set lookup, tools/call echo', baseline: 'noauth-call', request: 'call', token: 'admin-token' },
  'warden-call': { title: '3 mcp-warden (admin), tools/call echo', baseline: 'noauth-call', request: 'call', token: 'admin-token' },
  'noauth-list': { title: '4 no auth, tools/list (100 tools)', baseline: 'noauth-list', request: 'list', token: 'reader-token' },
  'warden-list': { title: '5 mcp-warden (reader), filtered tools/list', baseline: 'noauth-list', request: 'list', token: 'reader-token' },
  'noauth-jwt-call': {
    title: '1j no auth, tools/call echo, JWT sent (ignored)',
    baseline: 'noauth-jwt-call',
    request: 'call',
    get token() {
      return jwtToken();
    },
  },
  'warden-jwt-call': {
    title: '6 mcp-warden JWT (cached), tools/call echo',
    baseline: 'noauth-jwt-call',
    request: 'call',
    get token() {
      return jwtToken();
    },
  },
  'warden-jwt-nocache-call': {
    title: '7 mcp-warden JWT (verified each time), tools/call',
    baseline: 'noauth-jwt-call',
    request: 'call',
    get token() {
      return jwtToken();
    },
  },
};

function jwtToken(): string {
  const token = process.env['BENCH_JWT_TOKEN'];
  if (token === undefined) throw new Error('the JWT scenarios need BENCH_JWT_TOKEN: run them with npm run bench:jwt');
  return token;
}

export const PROTOCOL_VERSION = '2025-11-25';
export const ECHO_TEXT = 'hello from the bench';

/** The JSON-RPC bodies the bench sends (one request each, fixed id: responses are byte-identical). */
export const REQUEST_BODIES = {
  call: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: ECHO_TEXT } } }),
  list: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
} as const;

/** Headers of every benchmarked request (plus `authorization`). */
export function requestHeaders(token: string | undefined): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': PROTOCOL_VERSION,
    ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
  };
}

export const WARDEN_TOKENS = [
  { id: 'admin', token: 'admin-token', roles: ['admin'] },
  { id: 'reader', token: 'reader-token', roles: ['reader'] },
];
export const WARDEN_POLICY = { roles: { admin: ['read', 'write', 'delete'], reader: ['read'] } } as const;

/** The tutorial pattern: the raw `Authorization` value looked up in a set of strings. */
const TUTORIAL_KEYS = new Set(['Bearer admin-token', 'Bearer reader-token']);

/** One validator for every `McpServer` of the process (see the module comment). */
const SHARED_VALIDATOR = new AjvJsonSchemaValidator();

const SERVER_INFO = { name: 'mcp-warden-bench', version: '1.0.0' };

type Annotations = { readOnlyHint?: boolean; destructiveHint?: boolean; idempotentHint?: boolean; openWorldHint?: boolean };

/** The 100 tools of the list scenarios: half read-only, the rest write, destructive, or not annotated. */
interface CatalogTool {
  readonly name: string;
  readonly description: string;
  readonly annotations: Annotations | undefined;
  readonly shape: z.ZodRawShape;
}

const SHAPES: readonly z.ZodRawShape[] = [
  { query: z.string().describe('What to look for'), limit: z.number().int().min(1).max(100).optional() },
  { id: z.string(), fields: z.array(z.string()).optional() },
  { path: z.string(), content: z.string(), overwrite: z.boolean().optional() },
  { id: z.string(), reason: z.string().optional() },
];

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
      return undefined; // the spec's defaults: destructive
  }
}

export const CATALOG: readonly CatalogTool[] = Array.from({ length: 100 }, (_, i) => {
  const annotations = annotationsFor(i);
  const kind = annotations?.readOnlyHint === true ? 'Reads' : annotations?.destructiveHint === false ? 'Updates' : 'Deletes';
  return {
    name: `tool_${String(i).padStart(3, '0')}`,
    description: `${kind} records of collection ${i} in the bench's imaginary store`,
    annotations,
    shape: SHAPES[i % SHAPES.length] as z.ZodRawShape,
  };
});

export const CATALOG_NAMES: readonly string[] = CATALOG.map((t) => t.name);
export const READ_ONLY_NAMES: readonly string[] = CATALOG.filter((t) => t.annotations?.readOnlyHint === true).map((t) => t.name);

/** The server of the tools/call scenarios: `echo` (read-only) and `whoami` (for the pre-checks). */
export function createEchoServer(): McpServer {
  const server = new McpServer(SERVER_INFO, { jsonSchemaValidator: SHARED_VALIDATOR });
  server.registerTool(
    'echo',
    { description: 'Echo the text back', inputSchema: { text: z.string() }, annotations: { readOnlyHint: true } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );
  server.registerTool(
    'whoami',
    { description: 'Who the server thinks is calling', annotations: { readOnlyHint: true } },
    // No inputSchema: SDK v1 calls the handler with `extra` only.
    async (extra) => ({ content: [{ type: 'text', text: extra.authInfo?.clientId ?? 'anonymous' }] }),
  );
  server.registerTool(
    'wipe',
    { description: 'Destructive tool, for the reader-denied pre-check', annotations: { readOnlyHint: false, destructiveHint: true } },
    async () => ({ content: [{ type: 'text', text: 'wiped' }] }),
  );
  return server;
}

/** The server of the tools/list scenarios: the 100-tool catalog. */
export function createCatalogServer(): McpServer {
  const server = new McpServer(SERVER_INFO, { jsonSchemaValidator: SHARED_VALIDATOR });
  for (const tool of CATALOG) {
    server.registerTool(
      tool.name,
      { description: tool.description, inputSchema: tool.shape, ...(tool.annotations === undefined ? {} : { annotations: tool.annotations }) },
      async () => ({ content: [{ type: 'text', text: tool.name }] }),
    );
  }
  return server;
}

/** The SDK's stateless handler: a new server and transport per request. */
function statelessHandler(createServer: () => McpServer) {
  return async function mcpHandler(req: Request, res: Response): Promise<void> {
    const server = createServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(req, res, req.body);
    } catch {
      if (!res.headersSent) res.status(500).json({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal server error' }, id: null });
    }
  };
}

function tutorialAuth(req: Request, res: Response, next: NextFunction): void {
  const key = req.headers.authorization;
  if (key === undefined) {
    res.status(401).json({ error: 'Unauthorized' });
    return;
  }
  if (!TUTORIAL_KEYS.has(key)) {
    res.status(403).json({ error: 'Forbidden' });
    return;
  }
  next();
}

/** The Express app of one scenario. */
export function createScenarioApp(id: ScenarioId): Express {
  const app = express();
  const createServer = SCENARIO_INFO[id].request === 'call' ? createEchoServer : createCatalogServer;
  switch (id) {
    case 'noauth-call':
    case 'noauth-jwt-call':
    case 'noauth-list':
      app.use(express.json());
      break;
    case 'tutorial-call':
      app.use(express.json());
      app.use('/mcp', tutorialAuth);
      break;
    case 'warden-call':
    case 'warden-list':
      // No express.json(): the middleware reads and parses the body itself and sets req.body.
      app.use('/mcp', warden({ tokens: WARDEN_TOKENS, policy: WARDEN_POLICY, server: createServer() }));
      break;
    case 'warden-jwt-call':
    case 'warden-jwt-nocache-call': {
      const jwk = process.env['BENCH_JWT_PUBLIC_JWK'];
      if (jwk === undefined) throw new Error('the JWT scenarios need BENCH_JWT_PUBLIC_JWK: run them with npm run bench:jwt');
      // The issuer's keys given in-process: the bench measures verification, not a JWKS fetch (which happens once per key anyway).
      const issuer = new TrustedIssuer({ name: 'bench', issuer: JWT_ISSUER, jwks: { keys: [JSON.parse(jwk) as JsonWebKey] }, claims: { roles: [{ claim: 'roles' }] } });
      const verifier = jwtVerifier({ issuers: [issuer], audience: JWT_AUDIENCE, ...(id === 'warden-jwt-nocache-call' ? { cache: false as const } : {}) });
      app.use('/mcp', warden({ verifiers: [verifier], policy: { ...WARDEN_POLICY, scopes: { 'mcp:read': ['reader'], 'mcp:admin': ['admin'] } }, server: createServer() }));
      break;
    }
  }
  app.all('/mcp', statelessHandler(createServer));
  return app;
}
