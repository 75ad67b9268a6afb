/**
 * When an upstream announces notifications/tools/list_changed, the gateway reads its tools again, so
 * a tool added upstream is decided by its real annotations without anyone listing tools first: a
 * stdio upstream (a child the gateway reads), and a Streamable HTTP one (the announcement travels on
 * a client's GET stream that the gateway relays).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/server/gateway.js';
import { type SdkHttpServer, startSdkHttpServer } from '../fixtures/sdk-http-server.js';
import { startReaderGateway } from '../support/reader-gateway.js';

const catalogServer = new URL('../fixtures/catalog-server.mjs', import.meta.url).pathname;
/**
 * Calls `name` until the gateway stops refusing it (-32003, the policy's refusal; anything else
 * fails), for at most 10 s: the annotations are re-read a moment after the announcement.
 */
async function callOnceAllowed(client: Client, name: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const result = await client.callTool({ name, arguments: {} });
      expect(JSON.stringify(result.content)).toContain(name);
      return;
    } catch (error) {
      expect((error as { code?: number }).code).toBe(-32003);
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe('tools/list_changed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-catalog-'));
  const file = join(dir, 'catalog.json');
  let gateway: Gateway;
  let reader: string;
  const clients: Client[] = [];

  beforeAll(async () => {
    writeFileSync(file, JSON.stringify([{ name: 'alpha', annotations: { readOnlyHint: true } }]));
    ({ gateway, reader } = await startReaderGateway({ catalog: { type: 'stdio', command: process.execPath, args: [catalogServer], env: { CATALOG_FILE: file } } }, 'catalog.yaml'));
  }, 30_000);
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await gateway?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function connect(): Promise<Client> {
    const client = new Client({ name: 'list-changed', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/catalog`), { requestInit: { headers: { Authorization: `Bearer ${reader}` } } }));
    clients.push(client);
    return client;
  }

  it('re-reads annotations after the upstream announces a change', async () => {
    const before = await connect();
    // beta is unknown to the policy: a tool nobody described needs the delete verb.
    await expect(before.callTool({ name: 'beta', arguments: {} })).rejects.toMatchObject({ code: -32003, message: expect.stringContaining('missing permission: delete') });
    writeFileSync(file, JSON.stringify([{ name: 'alpha', annotations: { readOnlyHint: true } }, { name: 'beta', annotations: { readOnlyHint: true } }]));
    await before.callTool({ name: 'announce', arguments: {} });
    await callOnceAllowed(await connect(), 'beta');
  });
});

describe('tools/list_changed from a Streamable HTTP upstream', () => {
  let upstream: SdkHttpServer;
  let gateway: Gateway;
  let reader: string;
  let client: Client | undefined;

  beforeAll(async () => {
    upstream = await startSdkHttpServer({ alpha: { readOnlyHint: true } });
    ({ gateway, reader } = await startReaderGateway({ catalog: { type: 'http', url: upstream.url } }, 'catalog.yaml'));
  }, 30_000);
  afterAll(async () => {
    await client?.close().catch(() => {});
    await gateway?.close();
    await upstream?.close();
  });

  it('re-reads annotations when the announcement arrives on a GET stream it relays, before anyone lists tools', async () => {
    client = new Client({ name: 'list-changed-http', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/catalog`), { requestInit: { headers: { Authorization: `Bearer ${reader}` } } }));
    await expect(client.callTool({ name: 'beta', arguments: {} })).rejects.toMatchObject({ code: -32003, message: expect.stringContaining('missing permission: delete') });
    // The SDK client opens its GET stream after initializing; the server notifies on it once it is open.
    await expect.poll(() => [...upstream.sessions.keys()].some((session) => upstream.listening(session)), { timeout: 5_000 }).toBe(true);
    upstream.addTool('beta', { readOnlyHint: true });
    await callOnceAllowed(client, 'beta');
  });
});
