/**
 * Faults of stdio upstreams: a child that crashes mid-session is restarted with backoff (doubled per
 * attempt) and the session goes on (the handshake replayed), until the restart budget is spent; a
 * child that exits at start fails its own initialize cleanly; a call the child never answers is
 * answered with an error after `timeout`; none takes the gateway down for other sessions. Also what
 * a child gets and gives: its `cwd`, and its stderr in the gateway's log.
 */
import { realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { postMcp } from './mcp-session.js';

const crashy = new URL('../fixtures/crashy-server.mjs', import.meta.url).pathname;
interface Line {
  readonly message: string | undefined;
  readonly fields: Record<string, unknown>;
}
const lines: Line[] = [];
const record = (fields: object, message?: string): void => void lines.push({ message, fields: fields as Record<string, unknown> });
const logger = { info: record, warn: record, error: record };

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
          crashy: { type: 'stdio', command: process.execPath, args: [crashy], restart: { maxRestarts: 2, backoff: '150ms' } },
          dead: { type: 'stdio', command: process.execPath, args: ['-e', 'process.exit(3)'] },
          // The timeout covers initialize too, which waits for the process to start (a few hundred
          // ms here, more on a busy machine): long enough for that, short enough for a test.
          slow: { type: 'stdio', command: process.execPath, args: [crashy], timeout: '3s' },
          rooted: { type: 'stdio', command: process.execPath, args: [crashy], cwd: tmpdir() },
        },
      }),
      'faults.yaml',
      {},
    );
    gateway = await startGateway({ config, logger, port: 0 });
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
    // The next call waits for the restarted child: not before the backoff (150 ms)…
    let since = performance.now();
    const second = textOf(await client.callTool({ name: 'pid', arguments: {} }));
    expect(performance.now() - since).toBeGreaterThanOrEqual(140);
    expect(second).not.toBe(first);
    await expect(client.callTool({ name: 'crash', arguments: {} })).rejects.toThrow(/exited before answering/);
    // …and the second restart not before twice that.
    since = performance.now();
    const third = textOf(await client.callTool({ name: 'pid', arguments: {} }));
    expect(performance.now() - since).toBeGreaterThanOrEqual(290);
    expect(new Set([first, second, third]).size).toBe(3);
    expect(lines.filter((l) => l.message === 'restarting the upstream process').map((l) => [l.fields['attempt'], l.fields['delayMs']])).toEqual([
      [1, 150],
      [2, 300],
    ]);
    // The budget (2 restarts) is spent: the third crash ends the session.
    await expect(client.callTool({ name: 'crash', arguments: {} })).rejects.toThrow();
    await expect(client.callTool({ name: 'pid', arguments: {} })).rejects.toThrow(/404|Session not found/);
    // Another session is unaffected.
    const other = await connect('crashy');
    expect(Number(textOf(await other.callTool({ name: 'pid', arguments: {} })))).toBeGreaterThan(0);
  }, 30_000);

  it("answers a client's request whatever its id after a restart: the replayed handshake's id is not one a client could be using", async () => {
    // Before, the restarted child's handshake had the id `mcp-warden-replay-<attempt>`, and the
    // child's answer to a client request with that id was taken for the handshake's and dropped.
    const url = `${gateway.url}/mcp/crashy`;
    const init = await postMcp(url, key, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
    expect(init.status).toBe(200);
    await init.text();
    const headers = { 'mcp-session-id': init.headers.get('mcp-session-id') ?? '', 'mcp-protocol-version': '2025-11-25' };
    await (await postMcp(url, key, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers)).text();
    expect(await (await postMcp(url, key, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'crash', arguments: {} } }, headers)).text()).toMatch(/exited before answering/);
    for (const id of ['mcp-warden-replay-1', 2]) {
      const answer = await postMcp(url, key, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'pid', arguments: {} } }, headers);
      expect(answer.status).toBe(200);
      const data = /^data: (.*)$/m.exec(await answer.text())?.[1];
      expect(JSON.parse(data ?? '{}')).toMatchObject({ id, result: { content: [{ type: 'text', text: expect.stringMatching(/^\d+$/) }] } });
    }
    await fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${key}`, ...headers } });
  }, 30_000);

  it('drops JSON lines from a child that are no message (null, a number), logs them, and goes on: the gateway does not fall over', async () => {
    const client = await connect('crashy');
    expect(textOf(await client.callTool({ name: 'garbage', arguments: {} }))).toBe('still here');
    expect(textOf(await client.callTool({ name: 'pid', arguments: {} }))).toMatch(/^\d+$/);
    expect(lines.some((l) => JSON.stringify(l.fields).includes('not a JSON-RPC message (4 bytes of JSON null)'))).toBe(true);
  });

  it('answers a call the child never answers with an error after the timeout, and the session goes on', async () => {
    const client = await connect('slow');
    const since = performance.now();
    await expect(client.callTool({ name: 'hang', arguments: {} })).rejects.toThrow(/upstream slow did not answer within 3000 ms/);
    expect(performance.now() - since).toBeGreaterThanOrEqual(2990);
    expect(Number(textOf(await client.callTool({ name: 'pid', arguments: {} })))).toBeGreaterThan(0);
  });

  it("starts the child in its configured cwd, and logs each line of the child's stderr with its pid", async () => {
    const client = await connect('rooted');
    expect(realpathSync(textOf(await client.callTool({ name: 'cwd', arguments: {} })))).toBe(realpathSync(tmpdir()));
    const pid = Number(textOf(await client.callTool({ name: 'pid', arguments: {} })));
    const stderr = lines.filter((l) => l.message === 'upstream stderr' && l.fields['upstream'] === 'rooted');
    expect(stderr.map((l) => l.fields)).toContainEqual({ upstream: 'rooted', pid, stderr: `crashy: started as ${pid}` });
    // The child the gateway asks for the tools at start (outside any session) is heard too.
    expect(stderr.some((l) => l.fields['catalog'] === true && String(l.fields['stderr']).startsWith('crashy: started as '))).toBe(true);
  });

  it('fails the initialize of a child that exits at start, and keeps serving', async () => {
    await expect(connect('dead')).rejects.toThrow();
    const healthy = await connect('crashy');
    expect(Number(textOf(await healthy.callTool({ name: 'pid', arguments: {} })))).toBeGreaterThan(0);
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
  });
});
