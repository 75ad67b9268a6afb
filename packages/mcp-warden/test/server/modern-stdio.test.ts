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
