/**
 * Through an HTTP upstream, end to end: lists that come in pages are filtered page by page with
 * their cursors intact (the HTTP path filters the bytes it relays, not parsed messages), and a
 * session id one gateway instance signed is honoured by another on the same store, for the same
 * principal only.
 *
 * The paginating upstream is the stdio test server behind a first gateway (admin key in its
 * configured header): the second gateway sees an ordinary Streamable HTTP server that pages.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { type Listing, listEverything } from '../transparency/session-script.js';

const pagedServer = fileURLToPath(new URL('../transparency/paged-server.ts', import.meta.url));
const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const isReadOnly = (tool: Record<string, unknown>): boolean => (tool['annotations'] as { readOnlyHint?: boolean } | undefined)?.readOnlyHint === true;

/** A listing cut into its pages. */
function pagesOf(listing: Listing): Record<string, unknown>[][] {
  const pages: Record<string, unknown>[][] = [];
  let at = 0;
  for (const size of listing.pageSizes) {
    pages.push(listing.items.slice(at, at + size) as Record<string, unknown>[]);
    at += size;
  }
  return pages;
}

describe('an HTTP upstream that pages its lists, and sessions across gateway instances', () => {
  let origin: Gateway;
  const front: Gateway[] = [];
  const clients: Client[] = [];
  let dir: string;
  let admin: string;
  let reader: string;

  async function connect(gateway: Gateway, key: string, session?: string): Promise<Client> {
    const client = new Client({ name: 'http-paging', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/paged`), {
        requestInit: { headers: { Authorization: `Bearer ${key}` } },
        ...(session === undefined ? {} : { sessionId: session }),
      }),
    );
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    const originConfig = parseConfig(
      JSON.stringify({ store: { type: 'memory' }, roles: { admin: ['read', 'write', 'delete'] }, upstreams: { paged: { type: 'stdio', command: process.execPath, args: ['--import', 'tsx', pagedServer] } } }),
      'origin.yaml',
      {},
    );
    origin = await startGateway({ config: originConfig, logger: quiet, port: 0 });
    await origin.ready;
    const originKey = (await origin.services.keys.create({ name: 'front', roles: ['admin'] })).plaintext;
    // Two instances on one SQLite store: the same keys, and the same session signing key.
    dir = mkdtempSync(join(tmpdir(), 'warden-http-paging-'));
    const frontConfig = parseConfig(
      JSON.stringify({
        store: { type: 'sqlite', path: join(dir, 'shared.db') },
        roles: { admin: ['read', 'write', 'delete'], reader: ['read'] },
        upstreams: { paged: { type: 'http', url: `${origin.url}/mcp/paged`, headers: { Authorization: 'Bearer ${ORIGIN_KEY}' } } },
      }),
      'front.yaml',
      { ORIGIN_KEY: originKey },
    );
    for (let i = 0; i < 2; i++) {
      const gateway = await startGateway({ config: frontConfig, logger: quiet, port: 0 });
      front.push(gateway);
      await gateway.ready;
    }
    admin = (await (front[0] as Gateway).services.keys.create({ name: 'admin', roles: ['admin'] })).plaintext;
    reader = (await (front[0] as Gateway).services.keys.create({ name: 'reader', roles: ['reader'] })).plaintext;
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    for (const g of front) await g.close();
    await origin?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('relays every page to an admin unchanged, and gives a reader every page filtered, cursors intact', async () => {
    const [first] = front as [Gateway];
    const all = await listEverything(await connect(first, admin));
    expect(all.tools.pageSizes).toEqual([3, 3, 3, 1]);
    const filtered = await listEverything(await connect(first, reader));
    // The first and last pages hold no read-only tool: they arrive empty, and the cursor still leads on.
    expect(filtered.tools.pageSizes).toEqual([0, 2, 3, 0]);
    expect(pagesOf(filtered.tools)).toEqual(pagesOf(all.tools).map((page) => page.filter(isReadOnly)));
    expect(filtered.tools.items.map((t) => t['name'])).toEqual(['read-d', 'read-f', 'read-g', 'read-h', 'read-i']);
    expect(filtered.prompts).toEqual(all.prompts);
    expect(filtered.resources).toEqual(all.resources);
  });

  it('honours a session id signed by another instance for the same principal, and no other', async () => {
    const [first, second] = front as [Gateway, Gateway];
    const client = await connect(first, reader);
    const session = (client.transport as StreamableHTTPClientTransport).sessionId as string;
    expect(session).toMatch(/\./);
    const post = (gateway: Gateway, key: string) =>
      fetch(`${gateway.url}/mcp/paged`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }),
      });
    const elsewhere = await post(second, reader);
    expect(elsewhere.status).toBe(200);
    const text = await elsewhere.text();
    expect(text).toContain('"id":7');
    expect(text).not.toContain('"error"');
    // Another principal presenting it, on either instance: unknown.
    for (const gateway of [first, second]) {
      const stranger = await post(gateway, admin);
      expect(stranger.status).toBe(404);
      expect(await stranger.json()).toMatchObject({ id: 7, error: { code: -32001, message: 'Session not found' } });
    }
  });
});
