/**
 * The gateway in front of the reference MCP server (@modelcontextprotocol/server-everything) over
 * stdio, driven by the official SDK client: filtering, calls with progress, per-session children,
 * the minimal child environment, and sessions bound to principals.
 */
import { createRequire } from 'node:module';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';

const everything = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
const SECRET = 'gateway-env-secret-must-not-leak';
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

function textOf(result: Awaited<ReturnType<Client['callTool']>>): string {
  return (result.content as { type: string; text?: string }[]).map((c) => c.text ?? '').join('\n');
}

describe('gateway in front of server-everything over stdio', () => {
  let gateway: Gateway;
  let endpoint: URL;
  let readerKey: string;
  let adminKey: string;
  const clients: Client[] = [];

  async function connect(key: string): Promise<Client> {
    const client = new Client({ name: 'gateway-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(endpoint, { requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    process.env['MCP_WARDEN_TEST_GATEWAY_SECRET'] = SECRET;
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        server: { port: 0 },
        roles: { admin: ['read', 'write', 'delete'], reader: ['read'] },
        upstreams: { everything: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'], env: { GREETING: 'configured-variable' }, maxSessions: 6 } },
      }),
      'test.yaml',
      {},
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
    endpoint = new URL(`${gateway.url}/mcp/everything`);
    readerKey = (await gateway.services.keys.create({ name: 'reader', roles: ['reader'] })).plaintext;
    adminKey = (await gateway.services.keys.create({ name: 'admin', roles: ['admin'] })).plaintext;
  }, 60_000);

  // Each test ends its sessions (DELETE), so children do not pile up towards the session limit.
  afterEach(async () => {
    for (const client of clients.splice(0)) {
      await (client.transport as StreamableHTTPClientTransport | undefined)?.terminateSession().catch(() => {});
      await client.close().catch(() => {});
    }
  });

  afterAll(async () => {
    await gateway?.close();
    delete process.env['MCP_WARDEN_TEST_GATEWAY_SECRET'];
  });

  it('shows a reader only the read-only tools, and the admin all of them', async () => {
    const reader = await connect(readerKey);
    const names = (await reader.listTools()).tools.map((t) => t.name);
    expect(names).toContain('echo');
    expect(names).toContain('get-env');
    expect(names).not.toContain('toggle-simulated-logging');
    expect(names).not.toContain('gzip-file-as-resource');
    const admin = await connect(adminKey);
    const all = (await admin.listTools()).tools.map((t) => t.name);
    expect(all).toEqual(expect.arrayContaining(['toggle-simulated-logging', 'gzip-file-as-resource', ...names]));
  });

  it('relays calls, and refuses a write tool to a reader with the permission named', async () => {
    const reader = await connect(readerKey);
    expect(textOf(await reader.callTool({ name: 'echo', arguments: { message: 'through the gateway' } }))).toContain('through the gateway');
    await expect(reader.callTool({ name: 'toggle-simulated-logging', arguments: {} })).rejects.toBeInstanceOf(McpError);
    await expect(reader.callTool({ name: 'toggle-simulated-logging', arguments: {} })).rejects.toMatchObject({
      code: -32003,
      message: expect.stringContaining('missing permission: write'),
    });
  });

  it('streams progress notifications of a long-running call back to the caller', async () => {
    const reader = await connect(readerKey);
    const progress: number[] = [];
    const result = await reader.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 3 } }, undefined, {
      onprogress: (p) => progress.push(p.progress),
    });
    expect(textOf(result)).toMatch(/completed/i);
    expect(progress).toEqual([1, 2, 3]);
  });

  it('gives the child PATH, HOME and its configured variables, never the gateway environment', async () => {
    const reader = await connect(readerKey);
    const env = textOf(await reader.callTool({ name: 'get-env', arguments: {} }));
    expect(env).not.toContain(SECRET);
    expect(env).not.toContain('MCP_WARDEN_TEST_GATEWAY_SECRET');
    expect(env).toContain('configured-variable');
    expect(env).toContain('PATH');
  });

  it('runs one child per session: state in one session is not seen by another', async () => {
    const first = await connect(adminKey);
    const second = await connect(adminKey);
    // toggle-subscriber-updates keeps per-process state: turning it on in one session reports "started"
    // there, and the other session (another process) starts from its own initial state.
    const a = textOf(await first.callTool({ name: 'toggle-simulated-logging', arguments: {} }));
    const b = textOf(await second.callTool({ name: 'toggle-simulated-logging', arguments: {} }));
    expect(a).toBe(b);
  });

  describe('Security', () => {
    it('answers 404 to a principal presenting another principal\'s session id', async () => {
      const admin = await connect(adminKey);
      const sessionId = (admin.transport as StreamableHTTPClientTransport).sessionId;
      expect(sessionId).toMatch(/^[\x21-\x7e]+$/);
      const stolen = await fetch(endpoint, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${readerKey}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sessionId ?? '',
          'mcp-protocol-version': '2025-11-25',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      expect(stolen.status).toBe(404);
      // A JSON-RPC error for the request's own id (JSON-RPC 2.0, section 5: null only when the id
      // could not be read), not cached.
      expect(stolen.headers.get('cache-control')).toBe('no-store');
      expect(await stolen.json()).toEqual({ jsonrpc: '2.0', id: 1, error: { code: -32001, message: 'Session not found' } });
      const forged = await fetch(endpoint, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': 'made-up.AAAAAAAAAAAAAAAAAAAAAA' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      expect(forged.status).toBe(404);
      expect(await forged.json()).toEqual({ jsonrpc: '2.0', id: 1, error: { code: -32001, message: 'Session not found' } });
    });

    it('answers 400 to a request of a 2025 client that carries no session id (transport spec, Session Management)', async () => {
      const missing = await fetch(endpoint, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 'list-1', method: 'tools/list' }),
      });
      expect(missing.status).toBe(400);
      expect(await missing.json()).toEqual({ jsonrpc: '2.0', id: 'list-1', error: { code: -32000, message: 'Bad Request: Mcp-Session-Id header is required (initialize first)' } });
    });

    it("ends a cancelled call's stream without an answer, and refuses its id while the child may still answer it", async () => {
      const admin = await connect(adminKey);
      const headers = {
        authorization: `Bearer ${adminKey}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': (admin.transport as StreamableHTTPClientTransport).sessionId ?? '',
        'mcp-protocol-version': '2025-11-25',
      };
      const post = (body: unknown) => fetch(endpoint, { method: 'POST', headers, body: JSON.stringify(body) });
      const long = await post({ jsonrpc: '2.0', id: 'long-1', method: 'tools/call', params: { name: 'trigger-long-running-operation', arguments: { duration: 3, steps: 3 } } });
      expect(long.status).toBe(200);
      const cancel = await post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'long-1', reason: 'test' } });
      expect(cancel.status).toBe(202);
      // The stream ends at once (not after the 3 s operation), with no answer in it.
      const started = Date.now();
      expect(await long.text()).not.toContain('"result"');
      expect(Date.now() - started).toBeLessThan(2500);
      // The child never answers a cancelled request, but might have: the id stays refused.
      const reused = await post({ jsonrpc: '2.0', id: 'long-1', method: 'tools/call', params: { name: 'echo', arguments: { message: 'again' } } });
      expect(reused.status).toBe(400);
      expect(await reused.json()).toMatchObject({ error: { code: -32600, message: expect.stringContaining('in flight') } });
      // The session goes on.
      expect(textOf(await admin.callTool({ name: 'echo', arguments: { message: 'still here' } }))).toContain('still here');
    });

    it('refuses requests without a credential before any child is started', async () => {
      const response = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
      });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
    });

    it('answers 503 once the session limit is reached', async () => {
      const open = (gateway.upstreams.get('everything') as unknown as { sessionCount: number }).sessionCount;
      expect(open).toBe(0);
      for (let i = 0; i < 6; i++) await connect(readerKey);
      await expect(connect(readerKey)).rejects.toThrow(/503|limit/);
    });
  });

  it('serves health and readiness', async () => {
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${gateway.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready' });
    expect((await fetch(`${gateway.url}/mcp/nope`)).status).toBe(404);
  });
});
