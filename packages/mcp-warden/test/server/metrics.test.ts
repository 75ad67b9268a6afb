/**
 * `/metrics` counts what it says: decisions by outcome and rule (allowed ones too), and the
 * upstreams' own failures by kind (unreachable, a process that exited), not the gateway's refusals.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { postModern } from '../support/modern-request.js';

const crashy = new URL('../fixtures/crashy-server.mjs', import.meta.url).pathname;
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

describe('/metrics', () => {
  let gateway: Gateway;
  let admin: string;
  let other: string;

  beforeAll(async () => {
    // An upstream that is gone by the time it is called.
    const gone = createServer();
    gone.listen(0, '127.0.0.1');
    await once(gone, 'listening');
    const url = `http://127.0.0.1:${(gone.address() as AddressInfo).port}/mcp`;
    await new Promise((resolve) => gone.close(resolve));
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        roles: { admin: ['read', 'write', 'delete'] },
        upstreams: {
          gone: { type: 'http', url },
          crashy: { type: 'stdio', command: process.execPath, args: [crashy], maxSessions: 1 },
          missing: { type: 'stdio', command: '/nonexistent/mcp-server' },
        },
      }),
      'metrics.yaml',
      {},
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
    admin = (await gateway.services.keys.create({ name: 'admin', roles: ['admin'] })).plaintext;
    other = (await gateway.services.keys.create({ name: 'other', roles: ['admin'] })).plaintext;
  }, 60_000);
  afterAll(async () => {
    await gateway?.close();
  });

  const metric = async (pattern: RegExp): Promise<number | undefined> => {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    const match = new RegExp(`^${pattern.source} (\\d+)$`, 'm').exec(text);
    return match === null ? undefined : Number(match[1]);
  };
  const post = (upstream: string, key: string, body: unknown) =>
    fetch(`${gateway.url}/mcp/${upstream}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify(body),
    });

  it("counts the upstreams' failures by kind, and allowed decisions by rule, but not the gateway's own refusals", async () => {
    for (const id of [1, 2]) expect((await post('gone', admin, { jsonrpc: '2.0', id, method: 'ping' })).status).toBe(502);
    expect(await metric(/mcp_warden_upstream_errors_total\{upstream="gone",kind="unreachable"\}/)).toBe(2);
    expect(await metric(/mcp_warden_requests_total\{upstream="gone",status="502"\}/)).toBe(2);

    const client = new Client({ name: 'metrics-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/crashy`), { requestInit: { headers: { Authorization: `Bearer ${admin}` } } }));
    try {
      await client.callTool({ name: 'pid', arguments: {} });
      expect(await metric(/mcp_warden_decisions_total\{upstream="crashy",decision="allow",rule="role:admin verb:delete"\}/)).toBe(1);
      // The session's one process: a second principal's session is the gateway's refusal (503), not the upstream's failure.
      expect((await post('crashy', other, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } })).status).toBe(503);
      expect(await metric(/mcp_warden_requests_total\{upstream="crashy",status="503"\}/)).toBe(1);
      expect(await metric(/mcp_warden_upstream_errors_total\{upstream="crashy",kind="[a-z_]+"\}/)).toBeUndefined();
      // The process exits without answering: the call fails, and the upstream's failure is counted.
      await expect(client.callTool({ name: 'crash', arguments: {} })).rejects.toThrow(/exited before answering/);
      expect(await metric(/mcp_warden_upstream_errors_total\{upstream="crashy",kind="exited"\}/)).toBe(1);
    } finally {
      await client.close();
    }
  });

  it('counts a process that cannot start once, as start_failed, not as an exit', async () => {
    const answer = await post('missing', admin, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
    expect(answer.status).toBe(502);
    expect(await metric(/mcp_warden_upstream_errors_total\{upstream="missing",kind="start_failed"\}/)).toBe(1);
    expect(await metric(/mcp_warden_upstream_errors_total\{upstream="missing",kind="exited"\}/)).toBeUndefined();
    // A 2026-07-28 client's child (one per principal) that cannot start counts the same way.
    const modern = await postModern(`${gateway.url}/mcp/missing`, admin, 'tools/list', {});
    expect(await modern.text()).toMatch(/-32603/);
    expect(await metric(/mcp_warden_upstream_errors_total\{upstream="missing",kind="start_failed"\}/)).toBe(2);
    expect(await metric(/mcp_warden_upstream_errors_total\{upstream="missing",kind="exited"\}/)).toBeUndefined();
  });
});
