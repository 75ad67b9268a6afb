/**
 * One id per MCP request through the gateway: sent back as `X-Request-Id`, carried by the request's
 * audit events and by the log lines about it (an upstream failure, a stdio session opened, the
 * debug-level line per request), so a log line, an audit event and what a client reports can be
 * joined.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';

const everything = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface Line {
  readonly level: string;
  readonly message: string | undefined;
  readonly fields: Record<string, unknown>;
}

/** A logger that keeps every line; `debug` on or off as a pino logger at that level would be. */
function recordingLogger(debug: boolean) {
  const lines: Line[] = [];
  const at =
    (level: string) =>
    (fields: object, message?: string): void =>
      void lines.push({ level, message, fields: fields as Record<string, unknown> });
  return { lines, logger: { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug'), isLevelEnabled: (level: string) => level !== 'debug' || debug } };
}

const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } };

describe('request ids', () => {
  const gateways: Gateway[] = [];
  afterEach(async () => {
    for (const g of gateways.splice(0)) await g.close();
  });

  async function start(upstreams: Record<string, unknown>, debug: boolean) {
    const { lines, logger } = recordingLogger(debug);
    const config = parseConfig(JSON.stringify({ store: { type: 'memory' }, roles: { admin: ['read', 'write', 'delete'] }, upstreams }), 'ids.yaml', {});
    const gateway = await startGateway({ config, logger, port: 0 });
    gateways.push(gateway);
    await gateway.ready;
    const key = (await gateway.services.keys.create({ name: 'admin', roles: ['admin'] })).plaintext;
    const post = (name: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${gateway.url}/mcp/${name}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
        body: JSON.stringify(body),
      });
    /** The audit events of a request id, once the queue has written them. */
    const audited = async (requestId: string) => {
      for (let i = 0; i < 100; i++) {
        const events = (await gateway.services.store.audit.query({})).filter((e) => e.requestId === requestId);
        if (events.length > 0) return events;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return [];
    };
    return { gateway, lines, post, audited };
  }

  it('sends one back, audits under it, and names it in the log line of an upstream failure', async () => {
    // An upstream that is gone by the time it is called: every call is a 502 and a warning.
    const gone = createServer();
    gone.listen(0, '127.0.0.1');
    await once(gone, 'listening');
    const url = `http://127.0.0.1:${(gone.address() as AddressInfo).port}/mcp`;
    await new Promise((resolve) => gone.close(resolve));
    const { lines, post, audited } = await start({ gone: { type: 'http', url } }, false);

    const first = await post('gone', { jsonrpc: '2.0', id: 5, method: 'ping' });
    const second = await post('gone', { jsonrpc: '2.0', id: 6, method: 'ping' });
    expect(first.status).toBe(502);
    const id = first.headers.get('x-request-id') ?? '';
    expect(id).toMatch(UUID);
    expect(second.headers.get('x-request-id')).toMatch(UUID);
    expect(second.headers.get('x-request-id')).not.toBe(id);

    const events = await audited(id);
    expect(events.map((e) => e.method)).toEqual(['ping']);
    const warning = lines.find((l) => l.message === 'upstream unreachable' && l.fields['id'] === 5);
    expect(warning?.fields['requestId']).toBe(id);
    // No line per request at info level.
    expect(lines.filter((l) => l.message === 'request')).toEqual([]);
  });

  it('sends one with a refusal too, the id of its audit event', async () => {
    const { gateway, audited } = await start({ everything: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'] } }, false);
    const refused = await fetch(`${gateway.url}/mcp/everything`, { method: 'POST', headers: { authorization: 'Bearer mcpw_not_a_key', 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
    expect(refused.status).toBe(401);
    const id = refused.headers.get('x-request-id') ?? '';
    expect(id).toMatch(UUID);
    expect((await audited(id)).map((e) => e.decision)).toEqual(['deny']);
  });

  it('names the request that opened a stdio session, and logs a line per request at debug level', async () => {
    const { lines, post, audited } = await start({ everything: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'] } }, true);
    const answer = await post('everything', initialize);
    expect(answer.status).toBe(200);
    await answer.text();
    const id = answer.headers.get('x-request-id') ?? '';
    expect(id).toMatch(UUID);
    expect(lines.find((l) => l.message === 'session opened')?.fields['requestId']).toBe(id);
    expect((await audited(id)).map((e) => e.method)).toEqual(['initialize']);
    await expect.poll(() => lines.find((l) => l.message === 'request' && l.fields['requestId'] === id)?.fields).toMatchObject({ upstream: 'everything', method: 'POST', status: 200, completed: true });
  });
});
