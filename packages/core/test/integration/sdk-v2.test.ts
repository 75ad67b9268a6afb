/**
 * The SDK v2 example (examples/sdk-v2) end to end: a real Express server on 127.0.0.1, driven by the
 * official clients (v2 in its default legacy mode, v2 pinned to 2026-07-28, and v1), plus raw
 * requests for the refusals no well-behaved client sends.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Client, type FetchLike, ProtocolError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SdkV2App, createSdkV2App } from '../../../../examples/sdk-v2/app.js';

/** What a test needs from a connected client, whichever SDK it comes from. */
interface ConnectedClient {
  listToolNames(): Promise<string[]>;
  callText(name: string, args?: Record<string, unknown>): Promise<string>;
  readonly protocolVersion: string | undefined;
  close(): Promise<void>;
}

/** One request as the client put it on the wire. */
interface WireRequest {
  readonly httpMethod: string;
  readonly mcpMethod: string | null;
  readonly mcpName: string | null;
  readonly protocolVersion: string | null;
}

function recordingFetch(log: WireRequest[]): FetchLike {
  return async (input, init) => {
    const request = new Request(input, init);
    log.push({
      httpMethod: request.method,
      mcpMethod: request.headers.get('mcp-method'),
      mcpName: request.headers.get('mcp-name'),
      protocolVersion: request.headers.get('mcp-protocol-version'),
    });
    return fetch(request);
  };
}

function textOf(result: object): string {
  const first = ((result as { content?: unknown }).content as { type: string; text?: string }[] | undefined)?.[0];
  if (first?.type !== 'text' || first.text === undefined) throw new Error(`expected text content, got ${JSON.stringify(result)}`);
  return first.text;
}

type Pinning = 'default' | 'pinned';

async function connectV2(url: URL, token: string, pinning: Pinning, wire: WireRequest[] = []): Promise<ConnectedClient> {
  const client = new Client(
    { name: 'sdk-v2-test', version: '1.0.0' },
    pinning === 'pinned' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {},
  );
  await client.connect(
    new StreamableHTTPClientTransport(url, { requestInit: { headers: { Authorization: `Bearer ${token}` } }, fetch: recordingFetch(wire) }),
  );
  return {
    listToolNames: async () => (await client.listTools()).tools.map((t) => t.name).sort(),
    callText: async (name, args = {}) => textOf(await client.callTool({ name, arguments: args })),
    protocolVersion: client.getNegotiatedProtocolVersion(),
    close: () => client.close(),
  };
}

async function connectV1(url: URL, token: string): Promise<ConnectedClient> {
  const client = new V1Client({ name: 'sdk-v1-test', version: '1.0.0' });
  const transport = new V1Transport(url, { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  await client.connect(transport);
  return {
    listToolNames: async () => (await client.listTools()).tools.map((t) => t.name).sort(),
    callText: async (name, args = {}) => textOf(await client.callTool({ name, arguments: args })),
    protocolVersion: transport.protocolVersion,
    close: () => client.close(),
  };
}

interface ClientKind {
  readonly name: string;
  /** Short name for the notes a test writes, so the kinds never touch each other's. */
  readonly tag: string;
  readonly connect: (url: URL, token: string) => Promise<ConnectedClient>;
  readonly protocolVersion: string;
  /** The error class the client raises for a JSON-RPC error answer. */
  readonly errorClass: new (...args: never[]) => Error;
}

const CLIENT_KINDS: readonly ClientKind[] = [
  { name: 'v2 client, default (legacy) negotiation', tag: 'v2-default', connect: (u, t) => connectV2(u, t, 'default'), protocolVersion: '2025-11-25', errorClass: ProtocolError },
  { name: 'v2 client pinned to 2026-07-28', tag: 'v2-pinned', connect: (u, t) => connectV2(u, t, 'pinned'), protocolVersion: '2026-07-28', errorClass: ProtocolError },
  { name: 'v1 client', tag: 'v1', connect: connectV1, protocolVersion: '2025-11-25', errorClass: McpError },
];

const ALL_TOOLS = ['add_note', 'delete_note', 'list_notes', 'whoami'];
const READ_ONLY_TOOLS = ['list_notes', 'whoami'];

let server: Server;
let url: URL;
let example: SdkV2App;

beforeAll(async () => {
  example = createSdkV2App();
  const { app } = example;
  server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`);
});

afterAll(async () => {
  await example.handler.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Opens a client for one test and always closes it. */
async function withClient<T>(kind: ClientKind, token: string, use: (client: ConnectedClient) => Promise<T>): Promise<T> {
  const client = await kind.connect(url, token);
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}

async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: unknown }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: unknown };
  }
  throw new Error('expected the call to be refused, but it succeeded');
}

describe.each(CLIENT_KINDS)('$name', (kind) => {
  it('negotiates the expected protocol revision', async () => {
    await withClient(kind, 'reader-token', async (client) => {
      expect(client.protocolVersion).toBe(kind.protocolVersion);
    });
  });

  it('shows a reader only the read-only tools', async () => {
    await withClient(kind, 'reader-token', async (client) => {
      expect(await client.listToolNames()).toEqual(READ_ONLY_TOOLS);
    });
  });

  it('lets a reader call a read-only tool', async () => {
    await withClient(kind, 'reader-token', async (client) => {
      expect((await client.callText('list_notes')).split('\n')).toContain('welcome');
    });
  });

  it.each([
    ['add_note', { name: 'n', text: 't' }, 'write'],
    ['delete_note', { name: 'welcome' }, 'delete'],
  ])('refuses a reader calling %s with -32003 naming the missing %s permission', async (tool, args, permission) => {
    await withClient(kind, 'reader-token', async (client) => {
      const error = await rejectionOf(client.callText(tool, args));
      expect(error).toBeInstanceOf(kind.errorClass);
      expect(error.code).toBe(-32003);
      expect(error.message).toContain('Forbidden:');
      expect(error.message).toContain(`(missing permission: ${permission})`);
      // The refusal happened before the tool ran: the note store is untouched.
      expect((await client.callText('list_notes')).split('\n')).toContain('welcome');
    });
  });

  it('shows an admin every tool and lets it write and delete', async () => {
    const note = `note-${kind.tag}`;
    await withClient(kind, 'admin-token', async (client) => {
      expect(await client.listToolNames()).toEqual(ALL_TOOLS);
      expect(await client.callText('add_note', { name: note, text: 'x' })).toBe(`saved ${note}`);
      expect((await client.callText('list_notes')).split('\n')).toContain(note);
      expect(await client.callText('delete_note', { name: note })).toBe(`deleted ${note}`);
      expect((await client.callText('list_notes')).split('\n')).not.toContain(note);
    });
  });

  it.each([
    ['reader-token', { clientId: 'reader', roles: ['reader'] }],
    ['secret123', { clientId: 'user-secret123', roles: ['admin'] }],
  ])('passes the caller of %s to the tool handler as ctx.http.authInfo', async (token, expected) => {
    await withClient(kind, token, async (client) => {
      expect(JSON.parse(await client.callText('whoami'))).toEqual(expected);
    });
  });
});

describe('the pinned v2 client on the wire', () => {
  it('sends 2026-07-28 requests with Mcp-Method and Mcp-Name, and no initialize', async () => {
    const wire: WireRequest[] = [];
    const client = await connectV2(url, 'reader-token', 'pinned', wire);
    try {
      expect(JSON.parse(await client.callText('whoami'))).toEqual({ clientId: 'reader', roles: ['reader'] });
    } finally {
      await client.close();
    }
    expect(wire.map((r) => r.mcpMethod)).toEqual(['server/discover', 'tools/call']);
    expect(wire.every((r) => r.httpMethod === 'POST' && r.protocolVersion === '2026-07-28')).toBe(true);
    expect(wire[1]).toMatchObject({ mcpMethod: 'tools/call', mcpName: 'whoami' });
  });

  it('sends no Mcp-Method in default mode (the legacy leg)', async () => {
    const wire: WireRequest[] = [];
    const client = await connectV2(url, 'reader-token', 'default', wire);
    try {
      await client.callText('whoami');
    } finally {
      await client.close();
    }
    expect(wire.length).toBeGreaterThan(0);
    expect(wire.every((r) => r.mcpMethod === null)).toBe(true);
  });
});

describe('Security: requests no well-behaved client sends', () => {
  const headers = (token: string, extra: Record<string, string> = {}): Record<string, string> => ({
    authorization: `Bearer ${token}`,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    ...extra,
  });
  const call = (id: number, name: string, args: Record<string, unknown>): string =>
    JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

  async function noteNames(): Promise<string[]> {
    return withClient(CLIENT_KINDS[0] as ClientKind, 'admin-token', async (client) => (await client.callText('list_notes')).split('\n'));
  }

  it('refuses a foreign Origin with 403 before anything runs', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: headers('admin-token', { origin: 'http://evil.example' }),
      body: call(1, 'add_note', { name: 'from-evil', text: 'x' }),
    });
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32000 } });
    expect(await noteNames()).not.toContain('from-evil');
  });

  it('accepts a loopback Origin', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: headers('reader-token', { origin: 'http://localhost:5173' }),
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    expect(response.status).toBe(200);
  });

  it('refuses Mcp-Method naming another method than the body with 400 / -32020', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: headers('admin-token', { 'mcp-method': 'tools/list', 'mcp-protocol-version': '2026-07-28' }),
      body: call(7, 'add_note', { name: 'smuggled', text: 'x' }),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: number; message: string } };
    expect(body.error.code).toBe(-32020);
    expect(body.error.message).toContain('Mcp-Method');
    expect(await noteNames()).not.toContain('smuggled');
  });

  it('refuses Mcp-Name naming another tool than the body with 400 / -32020', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: headers('reader-token', { 'mcp-method': 'tools/call', 'mcp-name': 'list_notes', 'mcp-protocol-version': '2026-07-28' }),
      body: call(8, 'delete_note', { name: 'welcome' }),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: number; message: string } };
    expect(body.error.code).toBe(-32020);
    expect(body.error.message).toContain('Mcp-Name');
    expect(await noteNames()).toContain('welcome');
  });

  it('answers a missing credential with 401 and a bare Bearer challenge', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('answers an unknown token with 401 invalid_token', async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: headers('not-a-token'),
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);
  });
});
