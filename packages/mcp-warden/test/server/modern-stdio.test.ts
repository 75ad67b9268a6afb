/**
 * MCP 2026-07-28 clients (session-less: server/discover, a `_meta` envelope per request,
 * Mcp-Method/Mcp-Name headers) through the gateway to stdio upstreams, which speak the 2025
 * handshake: the SDK v2 client pinned to 2026-07-28.
 */
import { createRequire } from 'node:module';
import { Client, ProtocolError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { postModern } from '../support/modern-request.js';

const everything = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
const crashy = new URL('../fixtures/crashy-server.mjs', import.meta.url).pathname;
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

describe('2026-07-28 clients in front of stdio upstreams', () => {
  let gateway: Gateway;
  let reader: string;
  let admin: string;
  const clients: Client[] = [];

  async function connect(upstream: string, key: string, wire?: string[]): Promise<Client> {
    const client = new Client({ name: 'modern', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/${upstream}`), {
        requestInit: { headers: { Authorization: `Bearer ${key}` } },
        fetch: async (url, init) => {
          const headers = new Headers(init?.headers);
          wire?.push(`${headers.get('mcp-method')}|${headers.get('mcp-session-id') ?? '-'}|${headers.get('mcp-protocol-version')}`);
          return fetch(url, init);
        },
      }),
    );
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        roles: { admin: ['read', 'write', 'delete'], reader: ['read'] },
        upstreams: {
          everything: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'] },
          crashy: { type: 'stdio', command: process.execPath, args: [crashy] },
        },
      }),
      'modern.yaml',
      {},
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
    reader = (await gateway.services.keys.create({ name: 'reader', roles: ['reader'] })).plaintext;
    admin = (await gateway.services.keys.create({ name: 'admin', roles: ['admin'] })).plaintext;
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await gateway?.close();
  });

  it('discovers, lists (filtered), calls with progress, and is refused what the role does not allow, without sessions', async () => {
    const wire: string[] = [];
    const client = await connect('everything', reader, wire);
    expect(client.getNegotiatedProtocolVersion()).toBe('2026-07-28');
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names).toContain('echo');
    expect(names).not.toContain('toggle-simulated-logging');
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'modern through the gateway' } });
    expect(JSON.stringify(echo.content)).toContain('modern through the gateway');
    const progress: number[] = [];
    await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 2 } }, { onprogress: (p: { progress: number }) => progress.push(p.progress) } as never);
    expect(progress).toEqual([1, 2]);
    const denied = client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
    await expect(denied).rejects.toBeInstanceOf(ProtocolError);
    await expect(denied).rejects.toMatchObject({ code: -32003 });
    expect(wire[0]).toBe('server/discover|-|2026-07-28');
    expect(wire.every((w) => w.split('|')[1] === '-')).toBe(true);
    expect(wire).toContain('tools/call|-|2026-07-28');
  });

  it('gives each principal its own process', async () => {
    const pidOf = async (key: string) => {
      const client = await connect('crashy', key);
      const result = await client.callTool({ name: 'pid', arguments: {} });
      return (result.content as { text: string }[])[0]?.text;
    };
    const readerPid = await pidOf(reader);
    expect(await pidOf(reader)).toBe(readerPid);
    const adminPid = await pidOf(admin);
    expect(adminPid).not.toBe(readerPid);
  });
});

describe('2026-07-28 clients in front of stdio upstreams: the limits hold for their processes too', () => {
  let gateway: Gateway;
  const keys: Record<string, string> = {};

  /** A 2026-07-28 tools/call, raw: the status, the Retry-After and the JSON-RPC answer. */
  async function call(upstream: string, key: string, name: string): Promise<{ status: number; retryAfter: string | null; message: Record<string, unknown> }> {
    const response = await postModern(`${gateway.url}/mcp/${upstream}`, key, 'tools/call', { name, arguments: {} }, name);
    const text = await response.text();
    const data = text.startsWith('{') ? text : (/^data: (.*)$/m.exec(text)?.[1] ?? '{}');
    return { status: response.status, retryAfter: response.headers.get('retry-after'), message: JSON.parse(data) as Record<string, unknown> };
  }

  beforeAll(async () => {
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        roles: { admin: ['read', 'write', 'delete'] },
        upstreams: {
          one: { type: 'stdio', command: process.execPath, args: [crashy], maxSessions: 1 },
          // Long enough that the request right after the crash comes within it, even on a busy machine.
          crashy: { type: 'stdio', command: process.execPath, args: [crashy], restart: { maxRestarts: 3, backoff: '3s' } },
        },
      }),
      'limits.yaml',
      {},
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
    for (const name of ['first', 'second']) keys[name] = (await gateway.services.keys.create({ name, roles: ['admin'] })).plaintext;
  }, 60_000);
  afterAll(async () => {
    await gateway?.close();
  });

  it("counts a principal's child against maxSessions, for new principals and for 2025 sessions alike", async () => {
    const first = await call('one', keys['first'] as string, 'pid');
    expect(first.status).toBe(200);
    expect(first.message).toMatchObject({ result: { content: [{ type: 'text' }] } });
    // The same principal goes on with its child.
    expect((await call('one', keys['first'] as string, 'pid')).message).toEqual(first.message);
    const other = await call('one', keys['second'] as string, 'pid');
    expect(other.status).toBe(503);
    expect(other.retryAfter).toBe('5');
    expect(other.message).toMatchObject({ id: 1, error: { code: -32000, message: 'Service Unavailable: upstream one has reached its limit of 1 processes' } });
    const session = await fetch(`${gateway.url}/mcp/one`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys['second']}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'old', version: '1' } } }),
    });
    expect(session.status).toBe(503);
    expect(await session.json()).toMatchObject({ id: 2, error: { message: /limit of 1 sessions/ } });
  });

  it("starts a principal's child that exited again only after the backoff, answering 503 with Retry-After meanwhile", async () => {
    const key = keys['first'] as string;
    const before = await call('crashy', key, 'pid');
    expect(before.status).toBe(200);
    const pid = JSON.stringify(before.message);
    // The child exits without answering: the call fails.
    expect((await call('crashy', key, 'crash')).message).toMatchObject({ error: { code: -32603 } });
    const waiting = await call('crashy', key, 'pid');
    expect(waiting.status).toBe(503);
    expect(waiting.retryAfter).toMatch(/^[1-3]$/);
    expect(waiting.message).toMatchObject({ id: 1, error: { code: -32000, message: new RegExp(`^Service Unavailable: the process of upstream crashy exited; it is started again in ${waiting.retryAfter} s$`) } });
    // Another principal is not held back by it.
    expect((await call('crashy', keys['second'] as string, 'pid')).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 3100));
    const after = await call('crashy', key, 'pid');
    expect(after.status).toBe(200);
    expect(JSON.stringify(after.message)).not.toBe(pid);
  });
});
