/**
 * The gateway's lifecycle at its ends. Start: until the upstreams' tool annotations are known, MCP
 * requests get 503 (a read-only tool would look destructive). Graceful shutdown (`gateway.close()`,
 * what SIGINT and SIGTERM run): the requests in flight are answered, within `server.shutdownGrace`,
 * before the upstreams and their processes are ended; streams that only listen do not hold it up;
 * what is still in flight when the grace is over is ended with a clean error.
 */
import { once } from 'node:events';
import { type IncomingMessage, type Server, type ServerResponse, createServer, request } from 'node:http';
import { createRequire } from 'node:module';
import { type AddressInfo, connect } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { postModern } from '../support/modern-request.js';

const everything = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/**
 * A Streamable HTTP upstream whose `tools/call` of `slow` is answered (as SSE) only when the test
 * releases it; a GET opens a stream that stays open until the connection closes.
 */
async function slowUpstream(): Promise<{ server: Server; url: string; calls: (() => void)[]; streams: ServerResponse[] }> {
  const calls: (() => void)[] = [];
  const streams: ServerResponse[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      streams.push(res);
      return;
    }
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    req.on('end', () => {
      const message = text === '' ? {} : (JSON.parse(text) as { id?: number | string; method?: string });
      if (message.id === undefined) return void res.writeHead(req.method === 'DELETE' ? 200 : 202).end();
      const answer = (result: unknown): void => {
        res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'slow-session' }).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
      };
      if (message.method === 'initialize') return answer({ protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'slow', version: '1' } });
      if (message.method === 'tools/list') return answer({ tools: [{ name: 'slow', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } }] });
      if (message.method === 'tools/call') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': 'slow-session' });
        res.flushHeaders();
        calls.push(() => res.end(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { content: [{ type: 'text', text: 'done' }] } })}\n\n`));
        return;
      }
      answer({});
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, calls, streams };
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly text: string;
}

/** A request on a connection of its own; resolves once the answer has ended. */
function send(url: string, key: string, options: { method?: string; body?: unknown; session?: string; onHeaders?: () => void } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: options.method ?? 'POST',
      agent: false,
      headers: {
        authorization: `Bearer ${key}`,
        accept: 'application/json, text/event-stream',
        ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(options.session === undefined ? {} : { 'mcp-session-id': options.session }),
      },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      options.onHeaders?.();
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.end(options.body === undefined ? undefined : JSON.stringify(options.body));
  });
}

async function waitFor(condition: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const call = (id: number): unknown => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'slow', arguments: {} } });

describe('graceful shutdown', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  async function gatewayFor(url: string, grace: string): Promise<{ gateway: Gateway; key: string; endpoint: string; config: ReturnType<typeof parseConfig> }> {
    const config = parseConfig(
      JSON.stringify({ store: { type: 'memory' }, server: { shutdownGrace: grace }, roles: { admin: ['read', 'write', 'delete'] }, upstreams: { slow: { type: 'http', url } } }),
      'shutdown.yaml',
      {},
    );
    const gateway = await startGateway({ config, logger: quiet, port: 0 });
    cleanup.push(() => gateway.close());
    await gateway.ready;
    const key = (await gateway.services.keys.create({ name: 'admin', roles: ['admin'] })).plaintext;
    return { gateway, key, endpoint: `${gateway.url}/mcp/slow`, config };
  }

  /** A gateway in front of server-everything over stdio, with a 60 s grace, and an admin key. */
  async function everythingGateway(): Promise<{ gateway: Gateway; key: string }> {
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        server: { shutdownGrace: '60s' },
        roles: { admin: ['read', 'write', 'delete'] },
        upstreams: { everything: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'] } },
      }),
      'shutdown.yaml',
      {},
    );
    const gateway = await startGateway({ config, logger: quiet, port: 0 });
    cleanup.push(() => gateway.close());
    await gateway.ready;
    return { gateway, key: (await gateway.services.keys.create({ name: 'admin', roles: ['admin'] })).plaintext };
  }

  it('answers a call in flight before it closes, without waiting for a stream that only listens', async () => {
    const upstream = await slowUpstream();
    cleanup.push(async () => {
      upstream.server.closeAllConnections();
      await new Promise((resolve) => upstream.server.close(resolve));
    });
    // A grace far longer than the test's timeout: a shutdown that waited for the GET stream would
    // fail the test by timing out.
    const { gateway, key, endpoint, config } = await gatewayFor(upstream.url, '60s');
    const init = await send(endpoint, key, { body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } } });
    expect(init.status).toBe(200);
    const session = init.headers['mcp-session-id'] as string;
    let listening = false;
    const stream = send(endpoint, key, { method: 'GET', session, onHeaders: () => (listening = true) });
    await waitFor(() => listening && upstream.streams.length === 1);
    const inFlight = send(endpoint, key, { body: call(2), session });
    await waitFor(() => upstream.calls.length === 1);

    let closed = false;
    const closing = gateway.close().then(() => (closed = true));
    // New connections are refused at once, and a reload would start upstreams nobody closes: refused.
    await expect(send(endpoint, key, { body: call(3), session })).rejects.toThrow(/ECONNREFUSED/);
    await expect(gateway.reload(config)).rejects.toThrow('the gateway is shutting down');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(closed).toBe(false);
    (upstream.calls[0] as () => void)();
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('"text":"done"');
    await closing;
    // The listening stream was ended with its upstream, cleanly.
    expect((await stream).status).toBe(200);
  });

  it.each([
    ['a new request', JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'ping' }), 7],
    // Without an id it is no notification: it is new work all the same.
    ['a request method without an id', JSON.stringify({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'slow', arguments: {} } }), null],
  ])('serves what finishes the work in flight during the drain (a notification), and answers %s 503, closing the connection', async (_what, ping, pingId) => {
    const upstream = await slowUpstream();
    cleanup.push(async () => {
      upstream.server.closeAllConnections();
      await new Promise((resolve) => upstream.server.close(resolve));
    });
    const { gateway, key, endpoint } = await gatewayFor(upstream.url, '60s');
    const { port, pathname } = new URL(endpoint);
    // Two requests on one connection: the first is in flight when the drain starts, the second is
    // sent after it started (pipelined: Node reads it at once, and answers it after the first).
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    const ended = once(socket, 'close');
    const head = (body: string): string =>
      `POST ${pathname} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${key}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    socket.write(head(JSON.stringify({ jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'slow', arguments: {} } })));
    await waitFor(() => upstream.calls.length === 1);
    const closing = gateway.close();
    // A client's notification (a cancellation, an answer to the server) lets work finish: served.
    socket.write(head(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 't', progress: 1 } })) + head(ping));
    await new Promise((resolve) => setTimeout(resolve, 100));
    (upstream.calls[0] as () => void)();
    await ended;
    await closing;
    const answers = received.split(/(?=HTTP\/1\.1 )/);
    expect(answers).toHaveLength(3);
    expect(answers[0]).toMatch(/^HTTP\/1\.1 200 /);
    expect(answers[0]).toContain('"text":"done"');
    expect(answers[1]).toMatch(/^HTTP\/1\.1 202 /);
    expect(answers[2]).toMatch(/^HTTP\/1\.1 503 /);
    expect(answers[2]).toMatch(/\r\nconnection: close\r\n/i);
    expect(answers[2]).toMatch(/\r\nretry-after: 1\r\n/i);
    expect(answers[2]).toContain(`{"jsonrpc":"2.0","id":${JSON.stringify(pingId)},"error":{"code":-32000,"message":"Service Unavailable: the gateway is shutting down"}}`);
  });

  it('ends the stream of a call still in flight when the grace is over', async () => {
    const upstream = await slowUpstream();
    cleanup.push(async () => {
      upstream.server.closeAllConnections();
      await new Promise((resolve) => upstream.server.close(resolve));
    });
    // This upstream sends the call's headers at once: the client gets the end of its stream (one
    // that has not begun to answer gives it a 503, next test).
    const { gateway, key, endpoint } = await gatewayFor(upstream.url, '300ms');
    const init = await send(endpoint, key, { body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } } });
    const session = init.headers['mcp-session-id'] as string;
    const inFlight = send(endpoint, key, { body: call(2), session });
    await waitFor(() => upstream.calls.length === 1);
    const started = Date.now();
    await gateway.close();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    const answer = await inFlight;
    // The headers had gone out: the stream ends, without the answer that never came.
    expect(answer.status).toBe(200);
    expect(answer.text).not.toContain('done');
  });

  it('answers 503 to a call the upstream had not begun to answer when the grace is over', async () => {
    let received = false;
    const silent = createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      req.on('end', () => {
        const message = JSON.parse(text || '{}') as { id?: number; method?: string };
        if (message.method === 'tools/call') {
          received = true;
          return;
        }
        if (message.id === undefined) return void res.writeHead(202).end();
        const result = message.method === 'initialize' ? { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 's', version: '1' } } : { tools: [] };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
      });
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    cleanup.push(async () => {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    });
    const { gateway, key, endpoint } = await gatewayFor(`http://127.0.0.1:${(silent.address() as AddressInfo).port}/mcp`, '300ms');
    const inFlight = send(endpoint, key, { body: { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'anything', arguments: {} } } });
    await waitFor(() => received);
    await gateway.close();
    const answer = await inFlight;
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.text)).toMatchObject({ id: 9, error: { code: -32000, message: /shutting down/ } });
  });

  it('keeps a stdio child running until its call in flight is answered, progress included', async () => {
    const { gateway, key } = await everythingGateway();
    const client = new Client({ name: 'shutdown-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/everything`), { requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
    cleanup.push(() => client.close());
    const progress: number[] = [];
    let closing: Promise<void> | undefined;
    const result = await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1.5, steps: 3 } }, undefined, {
      onprogress: (p) => {
        progress.push(p.progress);
        // Shutdown begins after the first step.
        closing ??= gateway.close();
      },
    });
    expect(closing).toBeDefined();
    expect(progress).toEqual([1, 2, 3]);
    expect(JSON.stringify(result.content)).toContain('Long running operation completed');
    await closing;
    expect(gateway.upstreams.get('everything')?.sessionCount).toBe(0);
  });

  it("does not wait for a 2026-07-28 client's subscriptions/listen, and ends it", async () => {
    // The grace is longer than the test's timeout: a shutdown waiting for the listen would fail the test.
    const { gateway, key } = await everythingGateway();
    const response = await postModern(`${gateway.url}/mcp/everything`, key, 'subscriptions/listen', { notifications: { toolsListChanged: true } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const body = response.text();
    await gateway.close();
    // The stream ended (whatever it carried): the client knows to listen again elsewhere.
    await expect(body).resolves.toEqual(expect.any(String));
  });

  it('answers 503 with Retry-After, and /readyz 503, until the tool annotations are known', async () => {
    // An upstream that holds its tools/list answer until released.
    let release: (() => void) | undefined;
    const holding = createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      req.on('end', () => {
        const message = JSON.parse(text || '{}') as { id?: number; method?: string };
        if (message.id === undefined) return void res.writeHead(req.method === 'DELETE' ? 200 : 202).end();
        const answer = (result: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
        if (message.method === 'initialize') return answer({ protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'h', version: '1' } });
        if (message.method === 'tools/list') {
          release = () => answer({ tools: [{ name: 'look', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } }] });
          return;
        }
        answer({});
      });
    });
    holding.listen(0, '127.0.0.1');
    await once(holding, 'listening');
    cleanup.push(async () => {
      holding.closeAllConnections();
      await new Promise((resolve) => holding.close(resolve));
    });
    const config = parseConfig(
      JSON.stringify({ store: { type: 'memory' }, roles: { admin: ['read', 'write', 'delete'] }, upstreams: { held: { type: 'http', url: `http://127.0.0.1:${(holding.address() as AddressInfo).port}/mcp` } } }),
      'starting.yaml',
      {},
    );
    const gateway = await startGateway({ config, logger: quiet, port: 0 });
    cleanup.push(() => gateway.close());
    const key = (await gateway.services.keys.create({ name: 'admin', roles: ['admin'] })).plaintext;
    await waitFor(() => release !== undefined);
    const early = await send(`${gateway.url}/mcp/held`, key, { body: { jsonrpc: '2.0', id: 1, method: 'ping' } });
    expect(early.status).toBe(503);
    expect(early.headers['retry-after']).toBe('1');
    expect(early.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(early.text)).toMatchObject({ error: { code: -32000, message: 'Service Unavailable: the gateway is starting' } });
    const readyz = await fetch(`${gateway.url}/readyz`);
    expect(readyz.status).toBe(503);
    expect(await readyz.json()).toMatchObject({ status: 'starting' });
    (release as () => void)();
    await gateway.ready;
    expect((await fetch(`${gateway.url}/readyz`)).status).toBe(200);
  });
});
