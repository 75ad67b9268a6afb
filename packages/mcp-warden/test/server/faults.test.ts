/**
 * Faults of stdio upstreams: a child that crashes mid-session is restarted with backoff and the
 * session goes on (the handshake replayed), until the restart budget is spent; a child that exits at
 * start fails its own initialize cleanly; neither takes the gateway down for other sessions.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';

const crashy = new URL('../fixtures/crashy-server.mjs', import.meta.url).pathname;
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

function textOf(result: Awaited<ReturnType<Client['callTool']>>): string {
  return (result.content as { text?: string }[]).map((c) => c.text ?? '').join('');
}

describe('Security: stdio upstream faults', () => {
  let gateway: Gateway;
  let key: string;
  const clients: Client[] = [];

  async function connect(upstream: string): Promise<Client> {
    const client = new Client({ name: 'faults', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/${upstream}`), { requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        roles: { reader: ['read'] },
        upstreams: {
          crashy: { type: 'stdio', command: process.execPath, args: [crashy], restart: { maxRestarts: 2, backoff: '50ms' } },
          dead: { type: 'stdio', command: process.execPath, args: ['-e', 'process.exit(3)'] },
        },
      }),
      'faults.yaml',
      {},
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
    key = (await gateway.services.keys.create({ name: 'reader', roles: ['reader'] })).plaintext;
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await gateway?.close();
  });

  it('restarts a crashed child with backoff and keeps the session, until the restart budget is spent', async () => {
    const client = await connect('crashy');
    const first = textOf(await client.callTool({ name: 'pid', arguments: {} }));
    await expect(client.callTool({ name: 'crash', arguments: {} })).rejects.toThrow(/exited before answering/);
    const second = textOf(await client.callTool({ name: 'pid', arguments: {} }));
    expect(second).not.toBe(first);
    await expect(client.callTool({ name: 'crash', arguments: {} })).rejects.toThrow(/exited before answering/);
    const third = textOf(await client.callTool({ name: 'pid', arguments: {} }));
    expect(new Set([first, second, third]).size).toBe(3);
    // The budget (2 restarts) is spent: the third crash ends the session.
    await expect(client.callTool({ name: 'crash', arguments: {} })).rejects.toThrow();
    await expect(client.callTool({ name: 'pid', arguments: {} })).rejects.toThrow(/404|Session not found/);
    // Another session is unaffected.
    const other = await connect('crashy');
    expect(Number(textOf(await other.callTool({ name: 'pid', arguments: {} })))).toBeGreaterThan(0);
  }, 30_000);

  it('fails the initialize of a child that exits at start, and keeps serving', async () => {
    await expect(connect('dead')).rejects.toThrow();
    const healthy = await connect('crashy');
    expect(Number(textOf(await healthy.callTool({ name: 'pid', arguments: {} })))).toBeGreaterThan(0);
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
  });
});
