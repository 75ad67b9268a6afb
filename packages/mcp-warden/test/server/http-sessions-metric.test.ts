/**
 * `mcp_warden_sessions` for a Streamable HTTP upstream: the gateway does not own those sessions, so
 * it reports the upstream's sessions it saw created and not ended (see HttpUpstream.sessionCount),
 * scraped from its own /metrics while official SDK clients open and end sessions through it.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/server/gateway.js';
import { type SdkHttpServer, startSdkHttpServer } from '../fixtures/sdk-http-server.js';
import { startReaderGateway } from '../support/reader-gateway.js';

describe('mcp_warden_sessions for an HTTP upstream', () => {
  let upstream: SdkHttpServer;
  let gateway: Gateway;
  let reader: string;
  const clients: Client[] = [];

  beforeAll(async () => {
    upstream = await startSdkHttpServer({ look: { readOnlyHint: true } });
    ({ gateway, reader } = await startReaderGateway({ remote: { type: 'http', url: upstream.url } }, 'sessions.yaml'));
  }, 30_000);
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await gateway?.close();
    await upstream?.close();
  });

  async function connect(): Promise<StreamableHTTPClientTransport> {
    const client = new Client({ name: 'sessions-metric', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/remote`), { requestInit: { headers: { Authorization: `Bearer ${reader}` } } });
    await client.connect(transport);
    clients.push(client);
    return transport;
  }

  async function sessions(): Promise<number> {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    const match = /^mcp_warden_sessions\{upstream="remote"\} (\d+)$/m.exec(text);
    expect(match, text).not.toBeNull();
    return Number(match?.[1]);
  }

  it('counts the sessions opened through the gateway, not its own catalog session, and drops one ended by DELETE or forgotten upstream', async () => {
    // The catalog client's session (read at start) was ended by the gateway itself.
    expect(await sessions()).toBe(0);
    const first = await connect();
    const second = await connect();
    expect(upstream.sessions.size).toBe(2);
    expect(await sessions()).toBe(2);

    await first.terminateSession();
    expect(upstream.sessions.size).toBe(1);
    expect(await sessions()).toBe(1);

    // The upstream forgets the other session; the next request through the gateway learns it (404).
    const [remaining] = upstream.sessions.keys();
    await upstream.forget(remaining ?? '');
    const response = await fetch(`${gateway.url}/mcp/remote`, {
      method: 'POST',
      headers: { authorization: `Bearer ${reader}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': second.sessionId ?? '', 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(response.status).toBe(404);
    expect(await sessions()).toBe(0);
  });
});
