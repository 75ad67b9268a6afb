/**
 * An HTTP upstream that dies in the middle of a `tools/list` answer sent as an SSE event: the event
 * never ends, so clients discard it; the gateway must not relay its raw text either, since that text
 * holds the tools the policy hides from the caller.
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

describe('Security: a list answer cut off by the upstream', () => {
  let gateway: Gateway;
  let upstream: Server;
  let reader: string;

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const { id, method } = JSON.parse(body) as { id?: number; method?: string };
        if (method !== 'tools/list') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id, result: {} }));
        const tools = [
          { name: 'look', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } },
          { name: 'secret_wipe', inputSchema: { type: 'object' } },
          { name: 'look_again', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } },
        ];
        const data = JSON.stringify({ jsonrpc: '2.0', id, result: { tools } });
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        // A progress event, then the list cut off after the hidden tool: the process "dies".
        res.write('event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"listing"}}\n\n');
        res.write(`event: message\ndata: ${data.slice(0, data.indexOf('look_again'))}`, () => setTimeout(() => req.socket.destroy(), 20));
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        roles: { reader: ['read'] },
        upstreams: { dying: { type: 'http', url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp` } },
      }),
      'cut-off.yaml',
      {},
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
    reader = (await gateway.services.keys.create({ name: 'reader', roles: ['reader'] })).plaintext;
  }, 30_000);

  afterAll(async () => {
    await gateway?.close();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  it('relays the events that ended and nothing of the one cut off', async () => {
    const response = await fetch(`${gateway.url}/mcp/dying`, {
      method: 'POST',
      headers: { authorization: `Bearer ${reader}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    expect(response.status).toBe(200);
    const text = await response.text().catch((error: unknown) => `(broken: ${String(error)})`);
    expect(text).toContain('"data":"listing"');
    expect(text).not.toContain('secret_wipe');
    expect(text).not.toContain('"look"');
  });
});
