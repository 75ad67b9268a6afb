/**
 * The Streamable HTTP upstream behind a tiny node:http server that calls `upstream.handle` (and,
 * for the SDK session, the real pipeline via `withWarden`): header allow-lists in both directions,
 * principal-bound session ids, a full official-SDK session to server-everything with progress
 * streamed through, the catalog client, and faults that must end in clean JSON-RPC errors.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse, createServer, request } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { Policy, type Principal, createWarden } from '@mcp-warden/core';
import { withWarden } from '@mcp-warden/core/node';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { HttpUpstreamConfig } from '../../src/config/schema.js';
import { SessionSigner } from '../../src/server/sessions.js';
import { HttpUpstream, ToolsChangedWatch, indexOfToolsChanged } from '../../src/upstream/http.js';

const everything = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
const signer = new SessionSigner('a-test-session-signing-key-of-32-bytes-or-more');

interface Logged {
  readonly level: string;
  readonly object: object;
  readonly message: string | undefined;
}
const logged: Logged[] = [];
const logger = {
  info: (object: object, message?: string) => logged.push({ level: 'info', object, message }),
  warn: (object: object, message?: string) => logged.push({ level: 'warn', object, message }),
  error: (object: object, message?: string) => logged.push({ level: 'error', object, message }),
};

const principal = (id: string): Principal => ({ id, kind: 'api-key', subject: `${id}@example.test`, roles: ['admin'], scopes: [], claims: {} });
const alice = principal('alice');
const bob = principal('bob');

// A rejection nobody handled is a bug in the proxy even when every assertion passed.
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

function config(url: string, extra: Partial<HttpUpstreamConfig> = {}): HttpUpstreamConfig {
  return { type: 'http', url, headers: {}, timeout: 5_000, ...extra };
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; url: string; port: number }> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return { server, url: `http://127.0.0.1:${port}`, port };
}

async function stop(server: Server | undefined): Promise<void> {
  if (server === undefined || !server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

async function readText(req: IncomingMessage): Promise<string> {
  let text = '';
  req.setEncoding('utf8');
  for await (const chunk of req) text += chunk as string;
  return text;
}

/**
 * The test's gateway: `/<name>` routes to an upstream; the principal is picked by `X-Test-Principal`
 * (a header the upstream must never see either, being off the allow-list).
 */
async function proxy(routes: Map<string, HttpUpstream>): Promise<{ server: Server; url: string }> {
  return listen((req, res) => {
    const upstream = routes.get((req.url ?? '/').slice(1));
    const who = req.headers['x-test-principal'] === 'bob' ? bob : alice;
    void (async () => {
      const text = await readText(req);
      if (upstream === undefined) return void res.writeHead(404).end();
      await upstream.handle(req, res, req.method === 'POST' ? JSON.parse(text) : undefined, who);
    })();
  });
}

interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** Whether the body ended normally (a chunked stream with its last chunk), not by a reset. */
  readonly complete: boolean;
}

/** A plain node:http request, so any header (hop-by-hop ones included) can be sent as is. */
function raw(url: string, options: { method?: string; headers?: Record<string, string>; body?: unknown; onChunk?: (text: string, req: ReturnType<typeof request>) => void } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = request(url, {
      method: options.method ?? (payload === undefined ? 'GET' : 'POST'),
      agent: false,
      headers: { accept: 'application/json, text/event-stream', ...(payload === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      res.on('error', reject);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        options.onChunk?.(text, req);
      });
      res.on('close', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, complete: res.complete }));
    });
    req.end(payload);
  });
}

const rpc = (id: number, method: string, params: Record<string, unknown> = {}) => ({ jsonrpc: '2.0', id, method, params });

describe('HttpUpstream: headers and sessions', () => {
  interface Recorded {
    readonly method: string;
    readonly headers: IncomingHttpHeaders;
    readonly body: string;
  }
  const recorded: Recorded[] = [];
  const RAW_SESSION = 'upstream.session/with+dots=';
  let upstreamServer: Server;
  let gateway: { server: Server; url: string };
  let upstream: HttpUpstream;
  let bare: HttpUpstream;

  beforeAll(async () => {
    const backend = await listen((req, res) => {
      void readText(req).then((body) => {
        recorded.push({ method: req.method ?? '', headers: req.headers, body });
        const headers = {
          'content-type': 'application/json',
          'cache-control': 'no-cache',
          'set-cookie': 'upstream-cookie=1',
          'x-upstream-internal': 'leaks-topology',
          'proxy-authenticate': 'Basic realm="upstream"',
          'keep-alive': 'timeout=77',
          'mcp-session-id': RAW_SESSION,
        };
        if (req.method === 'DELETE') return void res.writeHead(200, { 'mcp-session-id': RAW_SESSION }).end();
        if (req.method === 'GET') {
          res.writeHead(200, { ...headers, 'content-type': 'text/event-stream' });
          return void res.end('id: 7\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}\n\n');
        }
        const message = JSON.parse(body) as { id: number };
        res.writeHead(200, headers).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { ok: true } }));
      });
    });
    upstreamServer = backend.server;
    upstream = new HttpUpstream('recorder', config(`${backend.url}/mcp?tenant=t1`, { headers: { Authorization: 'Bearer upstream-own-token', 'X-Upstream-Tenant': 't1' } }), signer, logger);
    bare = new HttpUpstream('bare', config(`${backend.url}/mcp`), signer, logger);
    gateway = await proxy(new Map([['recorder', upstream], ['bare', bare]]));
  });

  afterAll(async () => {
    await stop(gateway?.server);
    await upstream?.close();
    await bare?.close();
    await stop(upstreamServer);
  });

  afterEach(() => {
    recorded.length = 0;
  });

  describe('Security: the caller credential never reaches the upstream', () => {
    it("drops Authorization, Cookie, X-API-Key and every header off the allow-list, and sends the configured ones", async () => {
      const response = await raw(`${gateway.url}/recorder`, {
        body: rpc(1, 'tools/list'),
        headers: {
          authorization: 'Bearer caller-secret',
          cookie: 'session=caller-cookie',
          'x-api-key': 'caller-api-key',
          'x-forwarded-for': '203.0.113.9',
          'user-agent': 'caller-agent',
          'x-test-principal': 'alice',
          'mcp-protocol-version': '2025-11-25',
          'mcp-method': 'tools/list',
          'mcp-param-region': 'eu',
          'last-event-id': 'evt-1',
        },
      });
      expect(response.status).toBe(200);
      expect(recorded).toHaveLength(1);
      const seen = recorded[0]!;
      expect(seen.headers['authorization']).toBe('Bearer upstream-own-token');
      expect(seen.headers['x-upstream-tenant']).toBe('t1');
      for (const name of ['cookie', 'x-api-key', 'x-forwarded-for', 'user-agent', 'x-test-principal']) expect(seen.headers[name], name).toBeUndefined();
      expect(JSON.stringify(seen.headers)).not.toMatch(/caller-/);
      // Last-Event-ID resumes a GET stream only (transports, 2025-11-25): not sent on a POST.
      expect(seen.headers['last-event-id']).toBeUndefined();
      expect(seen.headers).toMatchObject({
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-11-25',
        'mcp-method': 'tools/list',
        'mcp-param-region': 'eu',
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(seen.body)),
      });
      expect(JSON.parse(seen.body)).toEqual(rpc(1, 'tools/list'));
    });

    it('sends no Authorization at all when none is configured', async () => {
      const response = await raw(`${gateway.url}/bare`, { body: rpc(1, 'ping'), headers: { authorization: 'Bearer caller-secret', 'x-api-key': 'caller-api-key' } });
      expect(response.status).toBe(200);
      expect(recorded[0]!.headers['authorization']).toBeUndefined();
      expect(recorded[0]!.headers['x-api-key']).toBeUndefined();
    });

    it('drops hop-by-hop headers, and those the Connection header names, in both directions', async () => {
      const response = await raw(`${gateway.url}/recorder`, {
        body: rpc(2, 'ping'),
        headers: {
          connection: 'keep-alive, mcp-name',
          'keep-alive': 'timeout=30',
          te: 'trailers',
          trailer: 'x-checksum',
          'proxy-authorization': 'Basic Y2FsbGVyOnNlY3JldA==',
          'mcp-name': 'dropped-because-connection-names-it',
        },
      });
      const seen = recorded[0]!.headers;
      for (const name of ['te', 'trailer', 'proxy-authorization', 'mcp-name']) expect(seen[name], name).toBeUndefined();
      // undici's own keep-alive, not the caller's value.
      expect(seen['keep-alive']).toBeUndefined();
      expect(response.status).toBe(200);
      expect(response.headers['set-cookie']).toBeUndefined();
      expect(response.headers['x-upstream-internal']).toBeUndefined();
      expect(response.headers['proxy-authenticate']).toBeUndefined();
      expect(response.headers['keep-alive']).not.toBe('timeout=77');
      expect(response.headers['content-type']).toBe('application/json');
      expect(response.headers['cache-control']).toBe('no-cache');
      expect(JSON.parse(response.text)).toEqual({ jsonrpc: '2.0', id: 2, result: { ok: true } });
    });
  });

  describe('Security: session ids are signed and bound to the principal', () => {
    it('hands out the upstream session signed, and forwards the raw id on POST, GET and DELETE', async () => {
      const first = await raw(`${gateway.url}/recorder`, { body: rpc(1, 'initialize') });
      const signed = first.headers['mcp-session-id'] as string;
      expect(signed).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
      expect(signed).not.toContain(RAW_SESSION);
      expect(Buffer.from(signed.split('.')[0]!, 'base64url').toString('utf8')).toBe(RAW_SESSION);
      expect(recorded[0]!.headers['mcp-session-id']).toBeUndefined();

      const second = await raw(`${gateway.url}/recorder`, { body: rpc(2, 'tools/list'), headers: { 'mcp-session-id': signed } });
      expect(second.status).toBe(200);
      expect(second.headers['mcp-session-id']).toBe(signed);
      const stream = await raw(`${gateway.url}/recorder`, { headers: { 'mcp-session-id': signed, accept: 'text/event-stream', 'last-event-id': '6' } });
      expect(stream.headers['content-type']).toBe('text/event-stream');
      expect(stream.text).toContain('data: {"jsonrpc":"2.0","method":"notifications/message"');
      const ended = await raw(`${gateway.url}/recorder`, { method: 'DELETE', headers: { 'mcp-session-id': signed } });
      expect(ended.status).toBe(200);
      expect(ended.text).toBe('');

      expect(recorded.map((r) => [r.method, r.headers['mcp-session-id']])).toEqual([
        ['POST', undefined],
        ['POST', RAW_SESSION],
        ['GET', RAW_SESSION],
        ['DELETE', RAW_SESSION],
      ]);
      expect(recorded[2]!.headers['last-event-id']).toBe('6');
    });

    it("answers 404 to principal B presenting principal A's session id, without contacting the upstream", async () => {
      const first = await raw(`${gateway.url}/recorder`, { body: rpc(1, 'initialize') });
      const signed = first.headers['mcp-session-id'] as string;
      recorded.length = 0;
      for (const method of ['POST', 'GET', 'DELETE']) {
        const stolen = await raw(`${gateway.url}/recorder`, { method, body: method === 'POST' ? rpc(9, 'tools/list') : undefined, headers: { 'mcp-session-id': signed, 'x-test-principal': 'bob' } });
        expect(stolen.status, method).toBe(404);
        expect(JSON.parse(stolen.text)).toEqual({ jsonrpc: '2.0', id: method === 'POST' ? 9 : null, error: { code: -32001, message: 'Session not found' } });
      }
      expect(recorded).toEqual([]);
    });

    it('answers 404 to a forged or tampered session id, without contacting the upstream', async () => {
      const forged = `${Buffer.from('someone-elses-session').toString('base64url')}.AAAAAAAAAAAAAAAAAAAAAA`;
      const unsigned = Buffer.from(RAW_SESSION).toString('base64url');
      for (const id of [forged, unsigned, RAW_SESSION, `${signer.sign('other-upstream', alice.id, unsigned)}`]) {
        const response = await raw(`${gateway.url}/recorder`, { body: rpc(3, 'tools/list'), headers: { 'mcp-session-id': id } });
        expect(response.status, id).toBe(404);
      }
      expect(recorded).toEqual([]);
    });
  });

  it('refuses a configured header that the proxy must control, naming it', () => {
    expect(() => new HttpUpstream('bad', config('http://127.0.0.1:1/mcp', { headers: { Connection: 'close' } }), signer, logger)).toThrow(/upstreams\.bad\.headers\.Connection/);
    expect(() => new HttpUpstream('bad', config('http://127.0.0.1:1/mcp', { headers: { 'Mcp-Session-Id': 'x' } }), signer, logger)).toThrow(/upstreams\.bad\.headers\.Mcp-Session-Id/);
    expect(() => new HttpUpstream('bad', config('http://127.0.0.1:1/mcp', { headers: { 'X-Token': 'a\r\nInjected: 1' } }), signer, logger)).toThrow(/control character/);
  });
});

describe('HttpUpstream: tools/list_changed in relayed SSE streams', () => {
  let backend: { server: Server; url: string };
  let gateway: { server: Server; url: string };
  let upstream: HttpUpstream;
  let announced = 0;
  /** What the backend answers next: SSE parts, each written once the client got the one before. */
  let parts: string[] = [];
  let answering: ServerResponse | undefined;

  beforeAll(async () => {
    backend = await listen((req, res) => {
      void readText(req).then(() => {
        if (req.headers['accept'] === 'application/json') {
          return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'notifications/tools/list_changed' }] } }));
        }
        answering = res;
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(parts[0]);
      });
    });
    upstream = new HttpUpstream('watched', config(`${backend.url}/mcp`), signer, logger);
    upstream.onToolsChanged = () => {
      announced += 1;
    };
    gateway = await proxy(new Map([['watched', upstream]]));
  });

  afterAll(async () => {
    await stop(gateway?.server);
    await upstream?.close();
    await stop(backend?.server);
  });

  /**
   * Relays `chunks` as separate reads: the backend writes the next part only when the client has
   * everything before it, so the proxy has seen (and searched) the previous chunk on its own.
   */
  async function relay(chunks: string[]): Promise<number> {
    announced = 0;
    parts = chunks;
    let sent = 1;
    const response = await raw(`${gateway.url}/watched`, {
      body: rpc(1, 'tools/call', { name: 'any' }),
      onChunk: (text) => {
        if (text !== chunks.slice(0, sent).join('')) return;
        if (sent < chunks.length) answering?.write(chunks[sent++]);
        else answering?.end();
      },
    });
    expect(response.text).toBe(chunks.join(''));
    return announced;
  }

  const notice = 'data: {"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n\n';
  const quoting = 'data: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"see notifications/tools/list_changed"}]}}\n\n';

  it('reports an announcement that came whole, cut in two, or cut into pieces shorter than the method', async () => {
    expect(await relay([`event: message\n${notice}`])).toBe(1);
    expect(await relay(['event: message\ndata: {"jsonrpc":"2.0","method":"notifications/tools/list_', 'changed"}\n\n'])).toBe(1);
    expect(await relay(['event: message\ndata: {"jsonrpc":"2.0","method":"notifications/to', 'ols/li', 'st_', 'chan', 'ged"}\n\n'])).toBe(1);
    expect(await relay(['data: {"jsonrpc":"2.0","method":"n', 'otifications/tools/list_changed"}\n\n'])).toBe(1);
  });

  it('does not report a message quoting the method on a line it can read whole, but still one announcing it after', async () => {
    expect(await relay([`event: message\n${quoting}`])).toBe(0);
    // The quoting line starts its chunk, after a chunk that ended a line.
    expect(await relay(['event: message\n', quoting])).toBe(0);
    expect(await relay([`${quoting}event: message\n${notice}`])).toBe(1);
  });

  it('reports an announcement whose slashes are escaped (\\/, as PHP writes JSON), whole or cut', async () => {
    const escaped = 'data: {"jsonrpc":"2.0","method":"notifications\\/tools\\/list_changed"}\n\n';
    expect(JSON.parse(escaped.slice(6))).toEqual({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
    expect(await relay([`event: message\n${escaped}`])).toBe(1);
    expect(await relay(['event: message\ndata: {"jsonrpc":"2.0","method":"notifications\\/tools\\/list_', 'changed"}\n\n'])).toBe(1);
  });

  it("does not report the prompts' or resources' list changes on a line it can read whole", async () => {
    for (const family of ['prompts', 'resources']) {
      expect(await relay([`event: message\ndata: {"jsonrpc":"2.0","method":"notifications/${family}/list_changed"}\n\n`])).toBe(0);
    }
  });

  it('reports an announcement cut by a chunk boundary right after a chunk that held one', async () => {
    // The second is cut across the boundary: the bytes kept from the first chunk must be its own.
    expect(await relay([`event: message\n${notice}event: message\ndata: {"jsonrpc":"2.0","method":"notifications/tools/li`, 'st_changed"}\n\n'])).toBe(2);
  });

  it('takes no near miss for the method, even where a match could not be confirmed', async () => {
    // The watch finds `_change` first and compares the bytes around it. This line is cut by a chunk
    // boundary, so a match in it would count unconfirmed: each decoy below lacks a byte of the method.
    const decoys = 'a_change b_changed list_changes lis_changed xist_changed list-changed list_chang';
    expect(await relay([`event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"${decoys}`, '"}]}}\n\n'])).toBe(0);
    expect(await relay([`event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"${decoys} list_changed`, '"}]}}\n\n'])).toBe(1);
  });

  it('finds the method at the very start and the very end of a chunk', async () => {
    expect(await relay(['event: message\ndata: {"jsonrpc":"2.0","method":"notifications/tools/', 'list_changed"}\n\n'])).toBe(1);
    expect(await relay(['event: message\ndata: {"jsonrpc":"2.0","method":"notifications/tools/list_changed', '"}\n\n'])).toBe(1);
  });

  it('goes on searching after a line it read whole, in the same chunk', async () => {
    // The quoting line holds the method twice; the notice follows it in the same chunk.
    const twice = 'data: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"list_changed and notifications/tools/list_changed"}]}}\n\n';
    expect(await relay([`event: message\n${twice}`])).toBe(0);
    expect(await relay([`event: message\n${twice}event: message\n${notice}`])).toBe(1);
  });

  it('does not search JSON answers, which cannot carry notifications', async () => {
    announced = 0;
    const response = await raw(`${gateway.url}/watched`, { body: rpc(1, 'tools/call', { name: 'any' }), headers: { accept: 'application/json' } });
    expect(response.text).toContain('notifications/tools/list_changed');
    expect(announced).toBe(0);
  });
});

describe('indexOfToolsChanged: property', () => {
  it('finds what Buffer#indexOf finds, from any position, in text dense with near misses', () => {
    const text = fc
      .array(fc.oneof(fc.constantFrom(...'list_changed\n:"{}'.split('')), fc.constantFrom('list_changed', '_change', '_changed', 'st_changed', 'list_chang', 'data: ')), { maxLength: 40 })
      .map((parts) => Buffer.from(parts.join(''), 'latin1'));
    fc.assert(
      fc.property(text, fc.integer({ min: -2, max: 200 }), (chunk, from) => {
        expect(indexOfToolsChanged(chunk, from)).toBe(chunk.indexOf('list_changed', Math.max(0, from)));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('ToolsChangedWatch: property', () => {
  it('reports a stream cut anywhere exactly when it holds `list_changed` on no line it can confirm (here: none)', () => {
    // Text of the method's own letters, line feeds and no colon: no line is a `data:` line, so every
    // whole match counts, and near misses abound. Chunks of any size, down to single bytes.
    const text = fc
      .array(fc.oneof(fc.constantFrom(...'list_changed\n'.split('')), fc.constantFrom('list_changed', '_change', 'st_changed', 'list_chang')), { maxLength: 60 })
      .map((parts) => parts.join(''));
    fc.assert(
      fc.property(text, fc.array(fc.nat(), { maxLength: 8 }), (whole, cuts) => {
        const bytes = Buffer.from(whole, 'latin1');
        const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const watch = new ToolsChangedWatch();
        let seen = false;
        let from = 0;
        for (const to of [...at, bytes.length]) {
          if (to === from) continue;
          if (watch.seen(bytes.subarray(from, to))) seen = true;
          from = to;
        }
        expect(seen).toBe(whole.includes('list_changed'));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('HttpUpstream.sessionCount: the sessions the gauge reports', () => {
  it('counts sessions created through it, until ended by DELETE or 404, or idle for 30 minutes', async () => {
    let created = 0;
    const ended = new Set<string>();
    const backend = await listen((req, res) => {
      void readText(req).then(() => {
        const session = req.headers['mcp-session-id'];
        if (typeof session === 'string' && ended.has(session)) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}');
        if (req.method === 'DELETE') return void res.writeHead(200).end();
        const headers = { 'content-type': 'application/json', 'mcp-session-id': typeof session === 'string' ? session : `session-${++created}` };
        res.writeHead(200, headers).end('{"jsonrpc":"2.0","id":1,"result":{}}');
      });
    });
    let clock = 1_000_000;
    const upstream = new HttpUpstream('counted', config(`${backend.url}/mcp`), signer, logger, { now: () => clock });
    const gateway = await proxy(new Map([['counted', upstream]]));
    const send = async (method: string, session?: string): Promise<RawResponse> =>
      raw(`${gateway.url}/counted`, { method, body: method === 'POST' ? rpc(1, 'ping') : undefined, headers: session === undefined ? {} : { 'mcp-session-id': session } });
    try {
      expect(upstream.sessionCount).toBe(0);
      const first = (await send('POST')).headers['mcp-session-id'] as string;
      const second = (await send('POST')).headers['mcp-session-id'] as string;
      expect(upstream.sessionCount).toBe(2);
      expect((await send('DELETE', first)).status).toBe(200);
      expect(upstream.sessionCount).toBe(1);

      clock += 29 * 60_000;
      await send('POST', second);
      clock += 29 * 60_000;
      expect(upstream.sessionCount).toBe(1);
      clock += 2 * 60_000;
      expect(upstream.sessionCount).toBe(0);
      // Used again after the pause (or after a gateway restart), the session counts again.
      await send('POST', second);
      expect(upstream.sessionCount).toBe(1);

      ended.add('session-2');
      expect((await send('POST', second)).status).toBe(404);
      expect(upstream.sessionCount).toBe(0);
      // The gateway's own 404 (an id signed for someone else) says nothing about the session.
      expect((await raw(`${gateway.url}/counted`, { body: rpc(1, 'ping'), headers: { 'mcp-session-id': 'forged.AAAAAAAAAAAAAAAAAAAAAA' } })).status).toBe(404);
      expect(upstream.sessionCount).toBe(0);
    } finally {
      await stop(gateway.server);
      await upstream.close();
      await stop(backend.server);
    }
  });
});

describe('HttpUpstream.listTools: the catalog client', () => {
  it('initializes, follows nextCursor over JSON answers, sends only the configured headers, and ends its session', async () => {
    const seen: { method: string; rpc: string | undefined; headers: IncomingHttpHeaders }[] = [];
    const pages: Record<string, { tools: { name: string }[]; nextCursor?: string }> = {
      '': { tools: [{ name: 'a' }, { name: 'b' }], nextCursor: 'page-2' },
      'page-2': { tools: [{ name: 'c' }], nextCursor: 'page-3' },
      'page-3': { tools: [{ name: 'd' }] },
    };
    const backend = await listen((req, res) => {
      void readText(req).then((text) => {
        const message = text === '' ? undefined : (JSON.parse(text) as { id?: number; method: string; params?: { cursor?: string } });
        seen.push({ method: req.method ?? '', rpc: message?.method, headers: req.headers });
        if (message === undefined || message.id === undefined) return void res.writeHead(req.method === 'DELETE' ? 200 : 202).end();
        const result = message.method === 'initialize' ? { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'paged', version: '1' } } : pages[message.params?.cursor ?? ''];
        res.writeHead(200, { 'content-type': 'application/json', ...(message.method === 'initialize' ? { 'mcp-session-id': 'paged-session' } : {}) }).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
      });
    });
    const upstream = new HttpUpstream('paged', config(`${backend.url}/mcp`, { headers: { 'X-Upstream-Key': 'configured' } }), signer, logger);
    try {
      const tools = (await upstream.listTools()) as { name: string }[];
      expect(tools.map((t) => t.name)).toEqual(['a', 'b', 'c', 'd']);
      expect(seen.map((s) => `${s.method} ${s.rpc ?? ''}`.trim())).toEqual(['POST initialize', 'POST notifications/initialized', 'POST tools/list', 'POST tools/list', 'POST tools/list', 'DELETE']);
      for (const request of seen) expect(request.headers['x-upstream-key']).toBe('configured');
      for (const request of seen.slice(1)) {
        expect(request.headers['mcp-session-id']).toBe('paged-session');
        // The version the server chose in initialize, as the spec asks of later requests.
        expect(request.headers['mcp-protocol-version']).toBe('2025-06-18');
      }
    } finally {
      await upstream.close();
      await stop(backend.server);
    }
  });

  it('reads answers opened by a byte order mark, JSON and SSE', async () => {
    const backend = await listen((req, res) => {
      void readText(req).then((text) => {
        const message = text === '' ? undefined : (JSON.parse(text) as { id?: number; method: string });
        if (message === undefined || message.id === undefined) return void res.writeHead(req.method === 'DELETE' ? 200 : 202).end();
        if (message.method === 'initialize') {
          const result = { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'bom', version: '1' } };
          return void res.writeHead(200, { 'content-type': 'application/json' }).end(`\uFEFF${JSON.stringify({ jsonrpc: '2.0', id: message.id, result })}`);
        }
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        // The mark in a chunk of its own, so the stream's first decoded text is the mark alone.
        res.write(Buffer.from([0xef, 0xbb, 0xbf]));
        setTimeout(() => res.end(`data: ${JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { tools: [{ name: 'marked' }] } })}\n\n`), 20);
      });
    });
    const upstream = new HttpUpstream('bom', config(`${backend.url}/mcp`), signer, logger);
    try {
      expect(((await upstream.listTools()) as { name: string }[]).map((t) => t.name)).toEqual(['marked']);
    } finally {
      await upstream.close();
      await stop(backend.server);
    }
  });

  it('fails with the reason when the upstream refuses initialize or does not answer in time', async () => {
    const backend = await listen((req, res) => {
      if (req.url === '/refuses') res.writeHead(500, { 'content-type': 'application/json' }).end('{}');
    });
    const refusing = new HttpUpstream('refusing', config(`${backend.url}/refuses`), signer, logger);
    const silent = new HttpUpstream('silent', config(`${backend.url}/silent`, { timeout: 200 }), signer, logger);
    try {
      await expect(refusing.listTools()).rejects.toThrow('initialize answered HTTP 500');
      await expect(silent.listTools()).rejects.toThrow('initialize timed out after 200 ms');
    } finally {
      await refusing.close();
      await silent.close();
      await stop(backend.server);
    }
  });
});

describe('HttpUpstream: the official SDK client through the pipeline to server-everything (Streamable HTTP)', () => {
  let child: ChildProcess;
  let output = '';
  let upstream: HttpUpstream;
  let gateway: { server: Server; url: string };
  const clients: Client[] = [];

  async function connect(token: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
    const client = new Client({ name: 'http-upstream-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/everything`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
    await client.connect(transport);
    clients.push(client);
    return { client, transport };
  }

  beforeAll(async () => {
    // server-everything reads its port from PORT and serves /mcp; it cannot be given port 0 and
    // report the port it got, so a port is reserved here and released just before it starts.
    const probe = await listen(() => {});
    const port = probe.port;
    await stop(probe.server);
    child = spawn(process.execPath, [everything, 'streamableHttp'], { env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
    const started = new Promise<void>((resolve, reject) => {
      const collect = (chunk: Buffer): void => {
        output += chunk.toString('utf8');
        if (output.includes('listening on port')) resolve();
      };
      child.stdout?.on('data', collect);
      child.stderr?.on('data', collect);
      child.once('exit', (code) => reject(new Error(`server-everything exited (${code}): ${output}`)));
    });
    await started;

    upstream = new HttpUpstream('everything', config(`http://127.0.0.1:${port}/mcp`), signer, logger);
    const policy = new Policy({ roles: { admin: ['read', 'write', 'delete'], reader: ['read'] } });
    policy.annotations.learn(await upstream.listTools());
    const warden = createWarden({
      tokens: [
        { id: 'alice', token: 'alice-token', roles: ['admin'] },
        { id: 'bob', token: 'bob-token', roles: ['reader'] },
      ],
      policy,
    });
    const handler = withWarden(warden, (req, res, body, who) => upstream.handle(req, res, body, who));
    gateway = await listen((req, res) => handler(req, res));
  }, 30_000);

  afterEach(async () => {
    for (const client of clients.splice(0)) {
      await (client.transport as StreamableHTTPClientTransport | undefined)?.terminateSession().catch(() => {});
      await client.close().catch(() => {});
    }
  });

  afterAll(async () => {
    await stop(gateway?.server);
    await upstream?.close();
    if (child !== undefined && child.exitCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('listTools() returns the 13 tools with their annotations, and ends its own session', async () => {
    const tools = (await upstream.listTools()) as { name: string; annotations?: Record<string, unknown> }[];
    expect(tools).toHaveLength(13);
    for (const tool of tools) expect(tool.annotations, tool.name).toBeTypeOf('object');
    expect(tools.find((t) => t.name === 'echo')?.annotations).toMatchObject({ readOnlyHint: true });
    expect(tools.map((t) => t.name)).toContain('trigger-long-running-operation');
    await expect.poll(() => output.match(/Received session termination request/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
  });

  it('runs a session: signed session id, tools, echo, a resource, and termination', async () => {
    const { client, transport } = await connect('alice-token');
    const signed = transport.sessionId ?? '';
    expect(signed).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    // The upstream's own id is a UUID; the client only ever sees it encoded and signed.
    expect(Buffer.from(signed.split('.')[0]!, 'base64url').toString('utf8')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-/);
    expect(output).toContain(`Session initialized with ID: ${Buffer.from(signed.split('.')[0]!, 'base64url').toString('utf8')}`);

    expect((await client.listTools()).tools).toHaveLength(13);
    const echoed = await client.callTool({ name: 'echo', arguments: { message: 'through the proxy' } });
    expect(echoed.content).toEqual([{ type: 'text', text: 'Echo: through the proxy' }]);
    const resource = await client.readResource({ uri: 'demo://resource/static/document/architecture.md' });
    expect(resource.contents[0]).toMatchObject({ uri: 'demo://resource/static/document/architecture.md', mimeType: 'text/markdown' });
    expect((resource.contents[0] as { text: string }).text.length).toBeGreaterThan(100);

    await transport.terminateSession();
    const after = await raw(`${gateway.url}/mcp/everything`, { body: rpc(5, 'tools/list'), headers: { authorization: 'Bearer alice-token', 'mcp-session-id': signed, 'mcp-protocol-version': '2025-11-25' } });
    // The upstream forgot the session; its own answer is relayed.
    expect(after.status).toBeGreaterThanOrEqual(400);
    expect(after.status).toBeLessThan(500);
  });

  it('streams progress notifications as they happen (SSE, not buffered)', async () => {
    const { client } = await connect('alice-token');
    const progress: { progress: number; at: number }[] = [];
    const started = Date.now();
    const result = await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 0.9, steps: 3 } }, undefined, {
      onprogress: (p) => progress.push({ progress: p.progress, at: Date.now() - started }),
    });
    const finished = Date.now() - started;
    expect(progress.map((p) => p.progress)).toEqual([1, 2, 3]);
    expect((result.content as { text: string }[])[0]?.text).toMatch(/Long running operation completed/);
    // The first step's notification arrives about 300 ms in, long before the result at about 900 ms.
    expect(finished - progress[0]!.at).toBeGreaterThan(350);
  });

  it('filters tools/list through the pipeline, and keeps a session to its principal', async () => {
    const { client: reader, transport } = await connect('bob-token');
    const names = (await reader.listTools()).tools.map((t) => t.name);
    expect(names).toContain('echo');
    expect(names).not.toContain('toggle-simulated-logging');
    const { transport: alicesTransport } = await connect('alice-token');
    const stolen = await raw(`${gateway.url}/mcp/everything`, { body: rpc(6, 'tools/list'), headers: { authorization: 'Bearer bob-token', 'mcp-session-id': alicesTransport.sessionId ?? '', 'mcp-protocol-version': '2025-11-25' } });
    expect(stolen.status).toBe(404);
    expect(transport.sessionId).not.toBe(alicesTransport.sessionId);
  });
});

describe('HttpUpstream: faults end in clean JSON-RPC errors and the proxy keeps serving', () => {
  let healthyServer: Server;
  let healthy: HttpUpstream;
  const faults = new Map<string, HttpUpstream>();
  const servers: Server[] = [];
  let gateway: { server: Server; url: string };
  const upstreamClosed: string[] = [];
  /** What the fault upstreams reported to `onError` (for the metric), as `name:kind`. */
  const reported: string[] = [];

  async function fault(name: string, handler: (req: IncomingMessage, res: ServerResponse) => void, extra: Partial<HttpUpstreamConfig> = {}): Promise<{ server: Server; upstream: HttpUpstream }> {
    const backend = await listen(handler);
    servers.push(backend.server);
    const upstream = new HttpUpstream(name, config(`${backend.url}/mcp`, extra), signer, logger);
    upstream.onError = (kind) => reported.push(`${name}:${kind}`);
    faults.set(name, upstream);
    return { server: backend.server, upstream };
  }

  async function expectHealthy(): Promise<void> {
    const response = await raw(`${gateway.url}/healthy`, { body: rpc(42, 'ping') });
    expect(response.status).toBe(200);
    expect(JSON.parse(response.text)).toEqual({ jsonrpc: '2.0', id: 42, result: {} });
  }

  function expectJsonRpcError(response: RawResponse, status: number, id: number | null, message: RegExp): void {
    expect(response.status).toBe(status);
    expect(response.headers['content-type']).toBe('application/json');
    const body = JSON.parse(response.text) as { jsonrpc: string; id: unknown; error: { code: number; message: string } };
    expect(body).toMatchObject({ jsonrpc: '2.0', id, error: { code: -32603 } });
    expect(body.error.message).toMatch(message);
  }

  beforeAll(async () => {
    const backend = await listen((req, res) => {
      void readText(req).then((body) => {
        const id = (JSON.parse(body) as { id: number }).id;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id, result: {} }));
      });
    });
    healthyServer = backend.server;
    healthy = new HttpUpstream('healthy', config(`${backend.url}/mcp`), signer, logger);
    faults.set('healthy', healthy);
    gateway = await proxy(faults);
  });

  afterAll(async () => {
    await stop(gateway?.server);
    for (const upstream of faults.values()) await upstream.close();
    for (const server of servers) await stop(server);
    await stop(healthyServer);
  });

  it('ends the client stream when the upstream dies mid-stream, then answers 502 while it is down', async () => {
    const { server } = await fault('dies', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}\n\n', () => {
        setTimeout(() => {
          req.socket.destroy();
          void stop(server);
        }, 50);
      });
    });
    const response = await raw(`${gateway.url}/dies`, { body: rpc(1, 'tools/call', { name: 'slow' }) });
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('text/event-stream');
    expect(response.text).toContain('"method":"notifications/progress"');
    // The stream could not be resumed (no event ids): the call gets an error rather than no answer.
    expect(response.text).toMatch(/\n\nevent: message\ndata: \{"jsonrpc":"2\.0","id":1,"error":\{"code":-32603,"message":"Bad Gateway: upstream dies broke off its answer \([A-Z_]+\)"\}\}\n\n$/);
    expect(response.complete).toBe(true);
    await expectHealthy();

    const next = await raw(`${gateway.url}/dies`, { body: rpc(2, 'tools/call', { name: 'slow' }) });
    expectJsonRpcError(next, 502, 2, /^Bad Gateway: upstream dies is unreachable \(ECONNREFUSED\)$/);
    await expectHealthy();
    // Both are the upstream's failures: the stream cut off after its 200, then no connection.
    expect(reported.filter((r) => r.startsWith('dies:'))).toEqual(['dies:broken', 'dies:unreachable']);
  });

  it('adds no error to a stream that breaks off after its answer went by', async () => {
    const answer = 'event: message\ndata: {"jsonrpc": "2.0", "id": 1, "result": {"content": []}}\n\n';
    await fault('answered', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // The answer, then the connection is cut before the stream's end.
      res.write(answer, () => setTimeout(() => req.socket.destroy(), 50));
    });
    const response = await raw(`${gateway.url}/answered`, { body: rpc(1, 'tools/call', { name: 'slow' }) });
    expect(response.status).toBe(200);
    expect(response.text).toBe(answer);
    await expectHealthy();
  });

  it('adds no error to a stream that breaks off when its events have ids (the client resumes it)', async () => {
    await fault('resumable', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('id: e1\nevent: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}\n\n', () => {
        setTimeout(() => req.socket.destroy(), 50);
      });
    });
    const response = await raw(`${gateway.url}/resumable`, { body: rpc(1, 'tools/call', { name: 'slow' }) });
    expect(response.status).toBe(200);
    expect(response.text).toBe('id: e1\nevent: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}\n\n');
    expect(reported).toContain('resumable:broken');
    await expectHealthy();
  });

  it('answers 504 when no response headers come within the timeout, and serves again once they do', async () => {
    let answer = false;
    await fault(
      'silent',
      (req, res) => {
        if (answer) void readText(req).then(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":2,"result":{}}'));
        else req.on('close', () => upstreamClosed.push('silent'));
      },
      { timeout: 300 },
    );
    const started = Date.now();
    const response = await raw(`${gateway.url}/silent`, { body: rpc(1, 'tools/call', { name: 'slow' }) });
    const elapsed = Date.now() - started;
    expectJsonRpcError(response, 504, 1, /^Gateway Timeout: upstream silent did not answer within 300 ms$/);
    expect(reported.filter((r) => r.startsWith('silent:'))).toEqual(['silent:timeout']);
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(3_000);
    // The abandoned request is aborted, not left hanging on the upstream.
    await expect.poll(() => upstreamClosed).toContain('silent');
    await expectHealthy();
    answer = true;
    const next = await raw(`${gateway.url}/silent`, { body: rpc(2, 'ping') });
    expect(next.status).toBe(200);
  });

  it('answers 504 when a JSON body stalls after its headers', async () => {
    await fault(
      'stalls',
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"jsonrpc":"2.0",');
      },
      { timeout: 300 },
    );
    expectJsonRpcError(await raw(`${gateway.url}/stalls`, { body: rpc(1, 'ping') }), 504, 1, /did not answer within 300 ms/);
    await expectHealthy();
  });

  it('answers 502 to a body that is not JSON under a JSON content type, and to an unexpected content type', async () => {
    let type = 'application/json';
    await fault('garbage', (_req, res) => {
      res.writeHead(200, { 'content-type': type }).end('<html><body>502 from a load balancer</body></html>');
    });
    expectJsonRpcError(await raw(`${gateway.url}/garbage`, { body: rpc(1, 'ping') }), 502, 1, /^Bad Gateway: upstream garbage answered a body that is not JSON$/);
    await expectHealthy();
    type = 'text/html';
    expectJsonRpcError(await raw(`${gateway.url}/garbage`, { body: rpc(2, 'ping') }), 502, 2, /unexpected content type \(text\/html\)/);
    expect(reported.filter((r) => r.startsWith('garbage:'))).toEqual(['garbage:bad_answer', 'garbage:bad_answer']);
    await expectHealthy();
  });

  it('relays a JSON answer opened by a byte order mark as sent, as a client reading it with fetch would accept it', async () => {
    const answer = '\uFEFF{"jsonrpc":"2.0","id":1,"result":{}}';
    await fault('bom', (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' }).end(answer);
    });
    const response = await raw(`${gateway.url}/bom`, { body: rpc(1, 'ping') });
    expect(response.status).toBe(200);
    expect(response.text).toBe(answer);
    // A mark anywhere else is no JSON.
    await fault('latebom', (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' }).end(' \uFEFF{"jsonrpc":"2.0","id":1,"result":{}}');
    });
    expectJsonRpcError(await raw(`${gateway.url}/latebom`, { body: rpc(1, 'ping') }), 502, 1, /not JSON/);
    await expectHealthy();
  });

  it('answers 502 when the connection is refused or reset before any answer', async () => {
    const { server } = await fault('refused', () => {});
    await stop(server);
    expectJsonRpcError(await raw(`${gateway.url}/refused`, { body: rpc(1, 'ping') }), 502, 1, /unreachable \(ECONNREFUSED\)/);
    await expectHealthy();
    await fault('resets', (req) => req.socket.destroy());
    expectJsonRpcError(await raw(`${gateway.url}/resets`, { body: rpc(2, 'ping') }), 502, 2, /^Bad Gateway: upstream resets is unreachable/);
    await expectHealthy();
  });

  it('answers 502 when a JSON answer breaks off before its end (nothing was sent yet)', async () => {
    await fault('breaks', (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"jsonrpc":"2.0",', () => setTimeout(() => req.socket.destroy(), 20));
    });
    expectJsonRpcError(await raw(`${gateway.url}/breaks`, { body: rpc(1, 'ping') }), 502, 1, /^Bad Gateway: upstream breaks broke off its answer \(/);
    await expectHealthy();
  });

  it("answers 502, not 401, when the upstream refuses the gateway's own credential", async () => {
    await fault('refuses', (_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"' }).end('{"error":"invalid_token"}');
    });
    const response = await raw(`${gateway.url}/refuses`, { body: rpc(1, 'ping') });
    expectJsonRpcError(response, 502, 1, /refused the configured credentials/);
    expect(response.headers['www-authenticate']).toBeUndefined();
  });

  it('relays a big JSON answer byte for byte, whatever chunks it came in, and still refuses a big broken one', async () => {
    const tools = Array.from({ length: 800 }, (_, i) => ({ name: `tool_${i}`, description: `é😀 ${'x'.repeat(i % 50)}`, inputSchema: { type: 'object' } }));
    const answer = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools } }), 'utf8');
    const broken = Buffer.concat([answer.subarray(0, answer.length - 1), Buffer.from('!')]);
    for (const [name, bytes] of [['big', answer], ['bigbroken', broken]] as const) {
      await fault(name, (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json' });
        // Odd-sized chunks, so multi-byte characters are cut in two.
        for (let at = 0; at < bytes.length; at += 7001) res.write(bytes.subarray(at, at + 7001));
        res.end();
      });
    }
    expect(answer.length).toBeGreaterThan(64 * 1024);
    const response = await raw(`${gateway.url}/big`, { body: rpc(1, 'tools/list') });
    expect(response.status).toBe(200);
    expect(response.headers['content-length']).toBe(String(answer.length));
    expect(response.text).toBe(answer.toString('utf8'));
    expectJsonRpcError(await raw(`${gateway.url}/bigbroken`, { body: rpc(1, 'tools/list') }), 502, 1, /not JSON/);
    await expectHealthy();
  });

  it('sends the headers of a silent stream at once, and an event that came with them without waiting for more', async () => {
    const release: (() => void)[] = [];
    for (const [name, eager] of [['quiet', false], ['eager', true]] as const) {
      await fault(name, (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        if (eager) res.write('data: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n');
        else res.flushHeaders();
        release.push(() => res.end());
      });
    }
    const open = (name: string, firstChunk: boolean): Promise<{ status: number | undefined; first: string }> =>
      new Promise((resolve, reject) => {
        const req = request(`${gateway.url}/${name}`, { method: 'GET', headers: { accept: 'text/event-stream' } }, (res) => {
          if (!firstChunk) resolve({ status: res.statusCode, first: '' });
          else res.once('data', (chunk: Buffer) => resolve({ status: res.statusCode, first: chunk.toString('utf8') }));
        });
        req.on('error', reject);
        req.end();
      });
    // Both upstream streams stay open: what the client gets came before any end.
    expect(await open('quiet', false)).toEqual({ status: 200, first: '' });
    const eager = await open('eager', true);
    expect(eager.status).toBe(200);
    expect(eager.first).toContain('notifications/message');
    for (const end of release) end();
    await expectHealthy();
  });

  it('aborts the upstream request when the client goes away', async () => {
    const closed = new Promise<void>((resolve) => {
      void fault('abandoned', (req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': waiting\n\n');
        res.on('close', () => resolve());
      });
    });
    await raw(`${gateway.url}/abandoned`, { body: rpc(1, 'tools/call'), onChunk: (_text, req) => req.destroy() }).catch(() => undefined);
    await closed;
    await expectHealthy();
  });

  it('close() ends streams in flight, and later requests get 503', async () => {
    const { upstream } = await fault('closing', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n');
    });
    const stream = raw(`${gateway.url}/closing`, {
      headers: { accept: 'text/event-stream' },
      onChunk: (text) => {
        if (text.includes('notifications/message')) void upstream.close();
      },
    });
    const response = await stream;
    expect(response.status).toBe(200);
    expect(response.complete).toBe(true);
    const after = await raw(`${gateway.url}/closing`, { body: rpc(3, 'ping') });
    expect(after.status).toBe(503);
    expect(JSON.parse(after.text)).toMatchObject({ id: 3, error: { message: /shutting down/ } });
    await expectHealthy();
  });

  it('logs failures without the caller credential', () => {
    expect(logged.filter((l) => l.level === 'warn').length).toBeGreaterThan(0);
    expect(JSON.stringify(logged)).not.toMatch(/caller-secret|alice-token|upstream-own-token/);
  });
});
