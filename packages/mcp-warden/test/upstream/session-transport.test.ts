/**
 * `SessionTransport`, the HTTP face of a stdio session. Each scripted exchange runs against it and
 * against the official SDK's `StreamableHTTPServerTransport` (v1) in the same harness (one session,
 * every request answered with its method), and what a client sees must be the same: status,
 * content type, session header, error codes and messages, and the messages of each SSE stream. Then
 * what only this transport does: a request id still in flight refused, a cancelled request's stream
 * ended, headers sent before a slow answer, answers after the client left dropped, keep-alives.
 */
import { once } from 'node:events';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SessionTransport } from '../../src/upstream/session-transport.js';

const SESSION = 'session-one';
const ACCEPT = 'application/json, text/event-stream';
const VERSION = '2025-11-25';

interface Harness {
  readonly url: string;
  /** Messages the transport handed on, in order. */
  readonly received: JSONRPCMessage[];
  /** Sends a message to the client as the bridge would. */
  send(message: JSONRPCMessage, related?: string | number): void;
  /** When false, requests are not answered by themselves. */
  autoAnswer: boolean;
  close(): Promise<void>;
  /** This transport itself (not the SDK's). */
  readonly transport?: SessionTransport;
}

const servers: Server[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? undefined : JSON.parse(text);
}

async function serve(handler: (req: IncomingMessage, res: ServerResponse, body: unknown) => void | Promise<void>): Promise<string> {
  const server = createServer((req, res) => {
    readJson(req).then(
      (body) => handler(req, res, body),
      () => res.writeHead(400).end(),
    );
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
}

function isRequest(message: JSONRPCMessage): message is JSONRPCMessage & { id: string | number; method: string } {
  return 'method' in message && 'id' in message;
}

async function ours(): Promise<Harness> {
  const received: JSONRPCMessage[] = [];
  const transport = new SessionTransport({ sessionId: () => SESSION });
  const harness: Harness = {
    url: '',
    received,
    autoAnswer: true,
    send: (message, related) => transport.send(message, related),
    close: async () => transport.close(),
    transport,
  };
  transport.onmessage = (message) => {
    received.push(message);
    if (harness.autoAnswer && isRequest(message)) transport.send({ jsonrpc: '2.0', id: message.id, result: { method: message.method } });
  };
  return Object.assign(harness, { url: await serve((req, res, body) => transport.handle(req, res, body)) });
}

async function sdk(): Promise<Harness> {
  const received: JSONRPCMessage[] = [];
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => SESSION });
  await transport.start();
  const harness: Harness = {
    url: '',
    received,
    autoAnswer: true,
    send: (message, related) => void transport.send(message, related === undefined ? {} : { relatedRequestId: related }).catch(() => {}),
    close: () => transport.close(),
  };
  transport.onmessage = (message) => {
    received.push(message);
    if (harness.autoAnswer && isRequest(message)) void transport.send({ jsonrpc: '2.0', id: message.id, result: { method: message.method } });
  };
  return Object.assign(harness, { url: await serve((req, res, body) => transport.handleRequest(req, res, body)) });
}

/** What a client sees of one answer. */
interface Seen {
  status: number;
  type: string | null;
  session: string | null;
  allow: string | null;
  /** A JSON body as parsed; an SSE body as the messages of its events; otherwise the text. */
  body: unknown;
}

function eventsOf(text: string): unknown[] {
  return text
    .split('\n\n')
    .filter((event) => event.trim() !== '')
    .map((event) => {
      const data = event
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      return data === '' ? { comment: event } : JSON.parse(data);
    });
}

async function call(url: string, init: { method?: string; body?: unknown; headers?: Record<string, string>; session?: boolean; version?: string | null } = {}): Promise<Seen> {
  const headers: Record<string, string> = { accept: ACCEPT, ...init.headers };
  if (init.version !== null) headers['mcp-protocol-version'] = init.version ?? VERSION;
  if (init.session !== false) headers['mcp-session-id'] = SESSION;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(url, { method: init.method ?? 'POST', headers, ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }) });
  const type = response.headers.get('content-type');
  const text = await response.text();
  let body: unknown = text;
  if (type?.startsWith('application/json') === true) body = JSON.parse(text);
  else if (type?.startsWith('text/event-stream') === true) body = eventsOf(text);
  return { status: response.status, type, session: response.headers.get('mcp-session-id'), allow: response.headers.get('allow'), body };
}

/** Headers of a request in the open session. */
const inSession = (accept: string): Record<string, string> => ({ accept, 'mcp-session-id': SESSION, 'mcp-protocol-version': VERSION });

/** A POST in the open session whose answer is read by the caller (fetch resolves on its headers). */
function postRaw(url: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { ...inSession(ACCEPT), 'content-type': 'application/json' }, body: JSON.stringify(body), ...(signal === undefined ? {} : { signal }) });
}

/** The session's GET stream. */
function getStream(url: string, signal: AbortSignal): Promise<Response> {
  return fetch(url, { headers: inSession('text/event-stream'), signal });
}

const initialize = (id: number | string = 0): JSONRPCMessage => ({
  jsonrpc: '2.0',
  id,
  method: 'initialize',
  params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'test', version: '1' } },
});
const ping = (id: number | string): JSONRPCMessage => ({ jsonrpc: '2.0', id, method: 'ping' });
const initialized: JSONRPCMessage = { jsonrpc: '2.0', method: 'notifications/initialized' };

/** Opens the session (initialize, initialized) and returns what the client saw. */
async function open(url: string): Promise<Seen[]> {
  return [await call(url, { body: initialize(), session: false }), await call(url, { body: initialized })];
}

type Script = (url: string, harness: Harness) => Promise<unknown>;

const scripts: Record<string, Script> = {
  'initialize, initialized, a request, a batch of two requests and a notification': async (url) => [
    ...(await open(url)),
    await call(url, { body: ping(1) }),
    await call(url, { body: [ping(2), ping('three'), { jsonrpc: '2.0', method: 'notifications/roots/list_changed' }] }),
  ],
  'a second initialize on the session': async (url) => [...(await open(url)), await call(url, { body: initialize(5) })],
  'initialize batched with another request': async (url) => [await call(url, { body: [initialize(), ping(1)], session: false })],
  'a request before initialize': async (url) => [await call(url, { body: ping(1), session: false })],
  'a GET before initialize': async (url) => [await call(url, { method: 'GET', session: false })],
  'an Accept without text/event-stream on POST': async (url) => [await call(url, { body: initialize(), session: false, headers: { accept: 'application/json' } })],
  'an Accept without application/json on POST': async (url) => [await call(url, { body: initialize(), session: false, headers: { accept: 'text/event-stream' } })],
  'an Accept without text/event-stream on GET': async (url) => [...(await open(url)), await call(url, { method: 'GET', headers: { accept: 'application/json' } })],
  'an unsupported MCP-Protocol-Version on POST, GET and DELETE': async (url) => [
    ...(await open(url)),
    await call(url, { body: ping(1), version: '1999-01-01' }),
    await call(url, { method: 'GET', version: '1999-01-01' }),
    await call(url, { method: 'DELETE', version: '1999-01-01' }),
    await call(url, { body: ping(2), version: '' }),
  ],
  'every supported MCP-Protocol-Version, and none': async (url) => [
    ...(await open(url)),
    ...(await Promise.all(['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05', '2024-10-07'].map((v, i) => call(url, { body: ping(10 + i), version: v })))),
    await call(url, { body: ping(20), version: null }),
    await call(url, { method: 'DELETE', version: null }),
  ],
  'an initialize whose params the SDK does not accept, then a good one': async (url) => [
    await call(url, { body: { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: VERSION } }, session: false }),
    await call(url, { body: { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'x' } } }, session: false }),
    await call(url, { body: { jsonrpc: '2.0', id: 0, method: 'initialize' }, session: false }),
    await call(url, { body: initialize(), session: false }),
  ],
  'a batch of 101 messages': async (url) => [...(await open(url)), await call(url, { body: Array.from({ length: 101 }, (_, i) => ping(i + 1)) })],
  'a batch of exactly 100 requests': async (url) => [...(await open(url)), await call(url, { body: Array.from({ length: 100 }, (_, i) => ping(i + 1)) })],
  'messages of the wrong shape': async (url) => [
    ...(await open(url)),
    await call(url, { body: { jsonrpc: '2.0', id: 1, result: 5 } }),
    await call(url, { body: { jsonrpc: '2.0', id: 2, error: { code: 'x', message: 'y' } } }),
    await call(url, { body: { jsonrpc: '2.0', id: 3, method: 'ping', params: [1, 2] } }),
    await call(url, { body: { jsonrpc: '2.0', id: 4.5, method: 'ping' } }),
    await call(url, { body: { jsonrpc: '2.0', method: 'notifications/x', params: 'p' } }),
    await call(url, { body: { jsonrpc: '2.0', id: 5, method: 'ping', extra: true } }),
    await call(url, { body: { jsonrpc: '2.0', method: 'notifications/x', result: {} } }),
    await call(url, { body: { jsonrpc: '2.0', id: 6, result: {}, error: { code: 1, message: 'm' } } }),
    await call(url, { body: { jsonrpc: '2.0', id: 7, error: { code: 1.5, message: 'm' } } }),
    await call(url, { body: { jsonrpc: '2.0', id: 8, method: 'ping', params: null } }),
    await call(url, { body: [ping(9), { jsonrpc: '2.0', id: 10, result: [] }] }),
    await call(url, { body: ping(2 ** 53 + 2) }),
    await call(url, { body: { jsonrpc: '2.0', id: 11, error: { code: 2 ** 60, message: 'm' } } }),
    await call(url, { body: { jsonrpc: '2.0', id: 12, method: 'ping', params: { _meta: 'x' } } }),
    await call(url, { body: { jsonrpc: '2.0', id: 13, method: 'ping', params: { _meta: { progressToken: 1.5 } } } }),
    await call(url, { body: { jsonrpc: '2.0', id: 14, method: 'ping', params: { _meta: { progressToken: 't', other: 1 } } } }),
    await call(url, { body: { jsonrpc: '2.0', id: 15, method: 'ping', params: { _meta: { 'io.modelcontextprotocol/related-task': {} } } } }),
    await call(url, { body: { jsonrpc: '2.0', id: 16, result: { _meta: { progressToken: [] } } } }),
    await call(url, { body: { jsonrpc: '2.0', method: 'notifications/x', params: { _meta: { progressToken: {} } } } }),
  ],
  'responses only (a client answering the server)': async (url) => [
    ...(await open(url)),
    await call(url, { body: { jsonrpc: '2.0', id: 'srv-1', result: { roots: [] } } }),
    await call(url, { body: { jsonrpc: '2.0', id: 'srv-2', error: { code: -32601, message: 'no' } } }),
  ],
  'a GET stream, a second GET, DELETE, then requests after it': async (url, harness) => {
    const seen: unknown[] = [...(await open(url))];
    const controller = new AbortController();
    const response = await getStream(url, controller.signal);
    seen.push({ status: response.status, type: response.headers.get('content-type'), session: response.headers.get('mcp-session-id') });
    seen.push(await call(url, { method: 'GET' }));
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    harness.send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'to the GET stream' } });
    const chunk = await reader.read();
    seen.push(eventsOf(Buffer.from(chunk.value ?? []).toString('utf8')));
    seen.push(await call(url, { method: 'DELETE' }));
    // The session's streams end with it.
    seen.push((await reader.read()).done);
    controller.abort();
    seen.push(await call(url, { body: ping(9) }), await call(url, { method: 'GET' }));
    return seen;
  },
  'a PUT': async (url) => [...(await open(url)), await call(url, { method: 'PUT', body: ping(1) })],
  'server messages related to a request in flight, then its answer': async (url, harness) => {
    const seen: unknown[] = [...(await open(url))];
    harness.autoAnswer = false;
    const pending = call(url, { body: ping(7) });
    await vi.waitFor(() => expect(harness.received.at(-1)).toMatchObject({ id: 7 }));
    harness.send({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 't', progress: 1 } }, 7);
    harness.send({ jsonrpc: '2.0', id: 's1', method: 'sampling/createMessage', params: { messages: [], maxTokens: 1 } }, 7);
    harness.send({ jsonrpc: '2.0', id: 7, result: { done: true } });
    seen.push(await pending);
    // With no GET stream, a message related to nothing goes nowhere; the session goes on.
    harness.send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'nowhere' } });
    harness.autoAnswer = true;
    seen.push(await call(url, { body: ping(8) }));
    return seen;
  },
};

describe('SessionTransport answers as the SDK transport does', () => {
  for (const [name, script] of Object.entries(scripts)) {
    it(name, async () => {
      const reference = await sdk();
      const candidate = await ours();
      const expected = await script(reference.url, reference);
      const actual = await script(candidate.url, candidate);
      expect(actual).toEqual(expected);
      expect(candidate.received).toEqual(reference.received);
      await reference.close();
      await candidate.close();
    });
  }

  it('(the scripts see what they claim: a refusal is a refusal, a stream holds its answers)', async () => {
    const harness = await ours();
    const seen = (await scripts['initialize, initialized, a request, a batch of two requests and a notification']?.(harness.url, harness)) as Seen[];
    expect(seen.map((s) => s.status)).toEqual([200, 202, 200, 200]);
    expect(seen[0]?.session).toBe(SESSION);
    expect(seen[3]?.body).toEqual([
      { jsonrpc: '2.0', id: 2, result: { method: 'ping' } },
      { jsonrpc: '2.0', id: 'three', result: { method: 'ping' } },
    ]);
    const refused = (await scripts['a second initialize on the session']?.(harness.url, harness)) as Seen[];
    expect(refused.at(-1)).toMatchObject({ status: 400, body: { error: { code: -32600 } } });
  });
});

describe('SessionTransport beyond the SDK transport', () => {
  it('refuses a request whose id is still in flight in the session (400), and takes the id again once answered', async () => {
    const harness = await ours();
    await open(harness.url);
    harness.autoAnswer = false;
    const first = call(harness.url, { body: ping(1) });
    await vi.waitFor(() => expect(harness.received.at(-1)).toMatchObject({ id: 1 }));
    const again = await call(harness.url, { body: ping(1) });
    expect(again).toMatchObject({ status: 400, body: { error: { code: -32600, message: expect.stringContaining('in flight') } } });
    const batch = await call(harness.url, { body: [ping(2), ping(2)] });
    expect(batch).toMatchObject({ status: 400, body: { error: { code: -32600, message: expect.stringContaining('twice') } } });
    // Neither refused request reached the child.
    expect(harness.received.filter((m) => 'id' in m && m.id === 1)).toHaveLength(1);
    expect(harness.received.some((m) => 'id' in m && m.id === 2)).toBe(false);
    harness.send({ jsonrpc: '2.0', id: 1, result: {} });
    expect((await first).body).toEqual([{ jsonrpc: '2.0', id: 1, result: {} }]);
    harness.autoAnswer = true;
    expect((await call(harness.url, { body: ping(1) })).body).toEqual([{ jsonrpc: '2.0', id: 1, result: { method: 'ping' } }]);
  });

  it('ends the stream of a retired (cancelled) request once it waits for nothing else, and refuses its id until the late answer', async () => {
    const harness = await ours();
    await open(harness.url);
    harness.autoAnswer = false;
    const pending = call(harness.url, { body: [ping(1), ping(2)] });
    await vi.waitFor(() => expect(harness.received.at(-1)).toMatchObject({ id: 2 }));
    harness.send({ jsonrpc: '2.0', id: 1, result: { first: true } });
    // The bridge's call when the client cancels request 2 (see stdio.ts): without it the stream stays open.
    harness.transport?.retire(2, 60_000);
    expect((await pending).body).toEqual([{ jsonrpc: '2.0', id: 1, result: { first: true } }]);
    // Until the child's late answer to 2 comes, a new request 2 is refused: that answer would be taken for its own.
    expect(await call(harness.url, { body: ping(2) })).toMatchObject({ status: 400, body: { error: { code: -32600 } } });
    harness.send({ jsonrpc: '2.0', id: 2, result: { late: true } });
    harness.transport?.release(2);
    harness.autoAnswer = true;
    expect((await call(harness.url, { body: ping(2) })).body).toEqual([{ jsonrpc: '2.0', id: 2, result: { method: 'ping' } }]);
  });

  it('takes a retired id again once its hold is over, without a late answer', async () => {
    const harness = await ours();
    await open(harness.url);
    harness.autoAnswer = false;
    const pending = call(harness.url, { body: ping(3) });
    await vi.waitFor(() => expect(harness.received.at(-1)).toMatchObject({ id: 3 }));
    harness.transport?.retire(3, 100);
    expect((await pending).body).toEqual([]);
    expect((await call(harness.url, { body: ping(3) })).status).toBe(400);
    await new Promise((resolve) => setTimeout(resolve, 150));
    harness.autoAnswer = true;
    expect((await call(harness.url, { body: ping(3) })).body).toEqual([{ jsonrpc: '2.0', id: 3, result: { method: 'ping' } }]);
  });

  it('sends the headers of a stream whose answer is slow before the answer, and the answer in the same body', async () => {
    const harness = await ours();
    await open(harness.url);
    harness.autoAnswer = false;
    const response = await postRaw(harness.url, ping(3));
    // fetch resolved on the headers alone: the answer is not sent yet.
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    expect(harness.received.at(-1)).toMatchObject({ id: 3 });
    harness.send({ jsonrpc: '2.0', id: 3, result: { late: true } });
    expect(eventsOf(await response.text())).toEqual([{ jsonrpc: '2.0', id: 3, result: { late: true } }]);
  });

  it('drops the answer of a request whose client went away (not to the GET stream)', async () => {
    const harness = await ours();
    await open(harness.url);
    const get = new AbortController();
    const stream = await getStream(harness.url, get.signal);
    const chunks: string[] = [];
    void (async () => {
      for await (const chunk of stream.body as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(chunk).toString('utf8'));
    })().catch(() => {});
    harness.autoAnswer = false;
    const controller = new AbortController();
    const response = await postRaw(harness.url, ping(4), controller.signal);
    expect(response.status).toBe(200);
    controller.abort();
    await new Promise((resolve) => setTimeout(resolve, 50));
    harness.send({ jsonrpc: '2.0', id: 4, result: { lost: true } });
    harness.send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'marker' } });
    await vi.waitFor(() => expect(chunks.join('')).toContain('marker'));
    expect(chunks.join('')).not.toContain('lost');
    harness.autoAnswer = true;
    expect((await call(harness.url, { body: ping(4) })).body).toEqual([{ jsonrpc: '2.0', id: 4, result: { method: 'ping' } }]);
    get.abort();
  });

  it('takes the id of a request whose client went away again at once (a resend after a dropped connection), as the SDK does', async () => {
    const harness = await ours();
    await open(harness.url);
    harness.autoAnswer = false;
    const controller = new AbortController();
    expect((await postRaw(harness.url, ping(5), controller.signal)).status).toBe(200);
    controller.abort();
    await new Promise((resolve) => setTimeout(resolve, 50));
    // The child has not answered the first yet; the resend is accepted, not refused as in flight.
    const resent = postRaw(harness.url, ping(5));
    await vi.waitFor(() => expect(harness.received.filter((m) => 'id' in m && m.id === 5)).toHaveLength(2));
    harness.send({ jsonrpc: '2.0', id: 5, result: { first: true } });
    expect(eventsOf(await (await resent).text())).toEqual([{ jsonrpc: '2.0', id: 5, result: { first: true } }]);
    // While a stream waits for the id, it stays refused.
    const open2 = postRaw(harness.url, ping(6));
    await vi.waitFor(() => expect(harness.received.at(-1)).toMatchObject({ id: 6 }));
    expect((await call(harness.url, { body: ping(6) })).status).toBe(400);
    harness.send({ jsonrpc: '2.0', id: 6, result: {} });
    expect((await open2).status).toBe(200);
  });

  it('forgets a stream whose client left before the request reached the transport (a GET slot is not kept by a dead stream)', async () => {
    const transport = new SessionTransport({ sessionId: () => SESSION });
    transport.onmessage = (message) => {
      if (isRequest(message)) transport.send({ jsonrpc: '2.0', id: message.id, result: {} });
    };
    let waiting: (() => void) | undefined;
    const url = await serve(async (req, res, body) => {
      // As the pipeline may: wait (a verifier, a limiter) before handing the request on.
      if (req.method === 'GET' && waiting === undefined) await new Promise<void>((resolve) => (waiting = resolve));
      transport.handle(req, res, body);
    });
    await open(url);
    const gone = new AbortController();
    const first = getStream(url, gone.signal).catch(() => undefined);
    await vi.waitFor(() => expect(waiting).toBeDefined());
    gone.abort();
    await first;
    await new Promise((resolve) => setTimeout(resolve, 50));
    waiting?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = new AbortController();
    const next = await getStream(url, second.signal);
    expect(next.status).toBe(200);
    second.abort();
    transport.close();
  });

  it('sends a message as the JSON text it was read from (a child\'s line), unless that text holds a CR', async () => {
    const harness = await ours();
    await open(harness.url);
    harness.autoAnswer = false;
    const response = await postRaw(harness.url, [ping(1), ping(2)]);
    await vi.waitFor(() => expect(harness.received.at(-1)).toMatchObject({ id: 2 }));
    // As a child wrote them: spacing and key order of their own.
    const first = '{ "result": {"z": 1, "a": 2}, "id": 1, "jsonrpc": "2.0" }';
    const second = '{"jsonrpc":"2.0",\r"id":2,"result":{}}';
    harness.transport?.send(JSON.parse(first), undefined, first);
    harness.transport?.send(JSON.parse(second.replace('\r', '')), undefined, second);
    const text = await response.text();
    expect(text).toBe(`event: message\ndata: ${first}\n\nevent: message\ndata: {"jsonrpc":"2.0","id":2,"result":{}}\n\n`);
  });

  it('writes a keep-alive comment on a stream silent for a whole tick, and none on one that spoke', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const harness = await ours();
    await open(harness.url);
    harness.autoAnswer = false;
    const response = await postRaw(harness.url, ping(6));
    await vi.waitFor(() => expect(harness.received.at(-1)).toMatchObject({ id: 6 }));
    vi.advanceTimersByTime(7_500); // the stream is new: marked quiet, nothing written
    harness.send({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p', progress: 1 } }, 6);
    vi.advanceTimersByTime(7_500); // it spoke since: marked quiet again, nothing written
    vi.advanceTimersByTime(7_500); // silent for a whole tick: a comment
    harness.send({ jsonrpc: '2.0', id: 6, result: {} });
    expect(eventsOf(await response.text())).toEqual([
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p', progress: 1 } },
      { comment: ': keepalive' },
      { jsonrpc: '2.0', id: 6, result: {} },
    ]);
  });
});
