/**
 * Clients of every protocol revision through the gateway to an SDK v2 upstream (modern-server.ts):
 * the v1 SDK client (2025-11-25, and 2025-06-18 forced on its wire), the v2 client in its default
 * legacy mode, and the v2 client pinned to 2026-07-28 (session-less: `server/discover`, then every
 * request enveloped, with `Mcp-Method` / `Mcp-Name` headers). Each one, as a reader, sees only the
 * read-only tools and is refused the writing one with -32003; as an admin it may write. A modern
 * request whose headers disagree with its body is refused (400, -32020) before the upstream hears
 * of it. Last, the pinned client against a stdio upstream (src/upstream/modern-stdio.ts).
 */
import { createRequire } from 'node:module';
import { Client, type FetchLike, ProtocolError, SdkHttpError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { type ModernUpstream, type WhoAmI, startModernUpstream } from './modern-server.js';

const everything = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const MODERN = '2026-07-28';

/** One request as the client put it on the wire. */
interface WireRequest {
  readonly httpMethod: string;
  readonly rpcMethod: string | null;
  readonly mcpMethod: string | null;
  readonly mcpName: string | null;
  readonly protocolVersion: string | null;
  readonly sessionId: string | null;
}

/**
 * A `fetch` that records each request (through the transports' `fetch` option) and may rewrite a
 * POST body first: the v1 client offers no way to choose its protocol revision, so forcing
 * 2025-06-18 means rewriting its `initialize` on the way out.
 */
function recordingFetch(log: WireRequest[], rewrite?: (body: Record<string, unknown>) => void): FetchLike {
  return async (input, init) => {
    let request = new Request(input, init);
    let rpcMethod: string | null = null;
    if (request.method === 'POST') {
      const body = JSON.parse(await request.clone().text()) as Record<string, unknown>;
      rpcMethod = typeof body['method'] === 'string' ? body['method'] : null;
      if (rewrite !== undefined) {
        rewrite(body);
        request = new Request(request, { body: JSON.stringify(body) });
      }
    }
    log.push({
      httpMethod: request.method,
      rpcMethod,
      mcpMethod: request.headers.get('mcp-method'),
      mcpName: request.headers.get('mcp-name'),
      protocolVersion: request.headers.get('mcp-protocol-version'),
      sessionId: request.headers.get('mcp-session-id'),
    });
    return fetch(request);
  };
}

/** What a test needs from a connected client, whichever SDK it comes from. */
interface ConnectedClient {
  listToolNames(): Promise<string[]>;
  callText(name: string, args?: Record<string, unknown>): Promise<string>;
  readonly protocolVersion: string | undefined;
  readonly wire: readonly WireRequest[];
  close(): Promise<void>;
}

function textOf(result: object): string {
  const first = ((result as { content?: unknown }).content as { type: string; text?: string }[] | undefined)?.[0];
  if (first?.type !== 'text' || first.text === undefined) throw new Error(`expected text content, got ${JSON.stringify(result)}`);
  return first.text;
}

async function connectV1(url: URL, key: string, version?: string): Promise<ConnectedClient> {
  const wire: WireRequest[] = [];
  const rewrite =
    version === undefined
      ? undefined
      : (body: Record<string, unknown>) => {
          if (body['method'] === 'initialize') (body['params'] as Record<string, unknown>)['protocolVersion'] = version;
        };
  const client = new V1Client({ name: 'modern-test-v1', version: '1.0.0' });
  const transport = new V1Transport(url, { requestInit: { headers: { Authorization: `Bearer ${key}` } }, fetch: recordingFetch(wire, rewrite) });
  await client.connect(transport);
  return {
    listToolNames: async () => (await client.listTools()).tools.map((t) => t.name).sort(),
    callText: async (name, args = {}) => textOf(await client.callTool({ name, arguments: args })),
    protocolVersion: transport.protocolVersion,
    wire,
    close: async () => {
      if (transport.sessionId !== undefined) await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

async function connectV2(url: URL, key: string, pinned: boolean): Promise<ConnectedClient> {
  const wire: WireRequest[] = [];
  const client = new Client({ name: 'modern-test-v2', version: '1.0.0' }, pinned ? { versionNegotiation: { mode: { pin: MODERN } } } : {});
  const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers: { Authorization: `Bearer ${key}` } }, fetch: recordingFetch(wire) });
  await client.connect(transport);
  return {
    listToolNames: async () => (await client.listTools()).tools.map((t) => t.name).sort(),
    callText: async (name, args = {}) => textOf(await client.callTool({ name, arguments: args })),
    protocolVersion: client.getNegotiatedProtocolVersion(),
    wire,
    close: async () => {
      if (transport.sessionId !== undefined) await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

interface ClientKind {
  readonly name: string;
  readonly tag: string;
  readonly connect: (url: URL, key: string) => Promise<ConnectedClient>;
  /** The revision the client ends up speaking. */
  readonly protocolVersion: string;
  /** The era the upstream's factory was asked to build for (from `whoami`). */
  readonly era: WhoAmI['era'];
  /** The error class the client raises for a JSON-RPC error answer. */
  readonly errorClass: new (...args: never[]) => Error;
}

const CLIENT_KINDS: readonly ClientKind[] = [
  { name: 'v1 client (2025-11-25)', tag: 'v1', connect: (u, k) => connectV1(u, k), protocolVersion: '2025-11-25', era: 'legacy', errorClass: McpError },
  { name: 'v1 client forced to 2025-06-18', tag: 'v1-0618', connect: (u, k) => connectV1(u, k, '2025-06-18'), protocolVersion: '2025-06-18', era: 'legacy', errorClass: McpError },
  { name: 'v2 client, default (legacy) negotiation', tag: 'v2-default', connect: (u, k) => connectV2(u, k, false), protocolVersion: '2025-11-25', era: 'legacy', errorClass: ProtocolError },
  { name: 'v2 client pinned to 2026-07-28', tag: 'v2-pinned', connect: (u, k) => connectV2(u, k, true), protocolVersion: MODERN, era: 'modern', errorClass: ProtocolError },
];

async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: unknown; data?: unknown }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: unknown; data?: unknown };
  }
  throw new Error('expected a refusal, but the call succeeded');
}

describe('an SDK v2 upstream over HTTP through the gateway, for clients of every revision', () => {
  let upstream: ModernUpstream;
  let gateway: Gateway;
  let adminKey: string;
  let readerKey: string;
  let url: URL;
  const open: ConnectedClient[] = [];

  beforeAll(async () => {
    upstream = await startModernUpstream();
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        roles: { admin: ['read', 'write', 'delete'], reader: ['read'] },
        deny: { resources: ['secret://**'] },
        upstreams: {
          modern: { type: 'http', url: upstream.url, timeout: '10s' },
          everything: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'] },
        },
      }),
      'modern.yaml',
      {},
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
    adminKey = (await gateway.services.keys.create({ name: 'admin', roles: ['admin'] })).plaintext;
    readerKey = (await gateway.services.keys.create({ name: 'reader', roles: ['reader'] })).plaintext;
    url = new URL(`${gateway.url}/mcp/modern`);
  }, 30_000);

  afterAll(async () => {
    for (const c of open.splice(0)) await c.close().catch(() => {});
    await gateway?.close();
    await upstream?.close();
  });

  /** Opens a client for one test and always closes it. */
  async function withClient<T>(kind: ClientKind, key: string, use: (client: ConnectedClient) => Promise<T>): Promise<T> {
    const client = await kind.connect(url, key);
    open.push(client);
    try {
      return await use(client);
    } finally {
      open.splice(open.indexOf(client), 1);
      await client.close();
    }
  }

  describe.each(CLIENT_KINDS)('$name', (kind) => {
    it('negotiates its revision through the gateway, and the upstream serves it in the same era', async () => {
      await withClient(kind, readerKey, async (client) => {
        expect(client.protocolVersion).toBe(kind.protocolVersion);
        const seen = JSON.parse(await client.callText('whoami')) as WhoAmI;
        expect(seen).toMatchObject({ era: kind.era, protocolVersion: kind.protocolVersion, sessionId: null });
        if (kind.era === 'modern') expect(seen).toMatchObject({ mcpMethod: 'tools/call', mcpName: 'whoami' });
        else expect(seen).toMatchObject({ mcpMethod: null, mcpName: null });
        // Every request after the handshake names the negotiated revision on the wire.
        const after = client.wire.filter((w) => w.httpMethod === 'POST' && w.rpcMethod !== 'initialize' && w.rpcMethod !== 'server/discover');
        expect(after.length).toBeGreaterThan(0);
        for (const request of after) expect(request.protocolVersion).toBe(kind.protocolVersion);
      });
    });

    it('gives a reader only the read-only tools, echo working and write_thing refused with -32003 before the upstream', async () => {
      await withClient(kind, readerKey, async (client) => {
        expect(await client.listToolNames()).toEqual(['echo', 'whoami']);
        expect(await client.callText('echo', { message: `from ${kind.tag}` })).toBe(`echo: from ${kind.tag}`);
        const before = upstream.hits.length;
        const writtenBefore = upstream.written.length;
        const error = await rejectionOf(client.callText('write_thing', { value: `reader ${kind.tag}` }));
        expect(error).toBeInstanceOf(kind.errorClass);
        expect(error.code).toBe(-32003);
        expect(error.message).toContain('missing permission: write');
        expect(upstream.hits.slice(before).filter((h) => h.rpcName === 'write_thing')).toEqual([]);
        expect(upstream.written.length).toBe(writtenBefore);
      });
    });

    it('lets an admin list every tool and call write_thing', async () => {
      await withClient(kind, adminKey, async (client) => {
        expect(await client.listToolNames()).toEqual(['echo', 'whoami', 'write_thing']);
        expect(await client.callText('write_thing', { value: `admin ${kind.tag}` })).toBe(`wrote admin ${kind.tag}`);
        expect(upstream.written).toContain(`admin ${kind.tag}`);
      });
    });
  });

  describe('the pinned 2026-07-28 client on the wire', () => {
    it('is session-less end to end: server/discover first, Mcp-Method (and Mcp-Name) on every request, no session id', async () => {
      const kind = CLIENT_KINDS.find((k) => k.tag === 'v2-pinned') as ClientKind;
      const hitsBefore = upstream.hits.length;
      const wire = await withClient(kind, readerKey, async (client) => {
        await client.listToolNames();
        await client.callText('echo', { message: 'on the wire' });
        return [...client.wire];
      });
      expect(wire.map((w) => w.rpcMethod)).toEqual(['server/discover', 'tools/list', 'tools/call']);
      for (const request of wire) {
        expect(request).toMatchObject({ httpMethod: 'POST', mcpMethod: request.rpcMethod, protocolVersion: MODERN, sessionId: null });
      }
      expect(wire[2]?.mcpName).toBe('echo');
      // What the gateway forwarded: the same requests, headers intact, the configured credential only.
      const hits = upstream.hits.slice(hitsBefore);
      expect(hits.map((h) => h.rpcMethod)).toEqual(['server/discover', 'tools/list', 'tools/call']);
      for (const hit of hits) {
        expect(hit).toMatchObject({ httpMethod: 'POST', mcpMethod: hit.rpcMethod, protocolVersion: MODERN, sessionId: null, authorization: null });
      }
      expect(hits[2]?.mcpName).toBe('echo');
    });
  });

  describe('a modern request whose headers disagree with its body', () => {
    async function post(key: string, headers: Record<string, string>, body: unknown): Promise<{ status: number; body: { id?: unknown; error?: { code?: number; message?: string } } }> {
      const response = await fetch(url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': MODERN,
          ...headers,
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(5000),
      });
      return { status: response.status, body: (await response.json()) as { error?: { code?: number; message?: string } } };
    }

    const envelope = { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': {} };
    const call = (name: string) => ({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name, arguments: { value: 'smuggled', message: 'x' }, _meta: envelope } });

    it('is answered 400 with -32020 (HEADER_MISMATCH) and never reaches the upstream: Mcp-Name naming another tool', async () => {
      const before = upstream.hits.length;
      const writtenBefore = upstream.written.length;
      // An admin could call write_thing; the refusal is about the headers, not the policy.
      for (const key of [adminKey, readerKey]) {
        const answer = await post(key, { 'mcp-method': 'tools/call', 'mcp-name': 'echo' }, call('write_thing'));
        expect(answer.status).toBe(400);
        expect(answer.body).toMatchObject({ error: { code: -32020, message: expect.stringContaining('Mcp-Name') } });
      }
      expect(upstream.hits.length).toBe(before);
      expect(upstream.written.length).toBe(writtenBefore);
    });

    it('is answered 400 with -32020 for an Mcp-Method naming another method, without reaching the upstream', async () => {
      const before = upstream.hits.length;
      const answer = await post(adminKey, { 'mcp-method': 'tools/list' }, call('echo'));
      expect(answer.status).toBe(400);
      expect(answer.body).toMatchObject({ error: { code: -32020, message: expect.stringContaining('Mcp-Method') } });
      expect(upstream.hits.length).toBe(before);
    });

    /** A pinned client whose `Mcp-Name` is rewritten on the way out (a broken intermediary, or a forger). */
    async function tamperedPinnedCall(target: URL): Promise<Error & { code?: unknown; data?: unknown }> {
      const tamper: FetchLike = (input, init) => {
        const request = new Request(input, init);
        if (request.headers.get('mcp-method') === 'tools/call') request.headers.set('mcp-name', 'echo');
        return fetch(request);
      };
      const client = new Client({ name: 'modern-tamper', version: '1.0.0' }, { versionNegotiation: { mode: { pin: MODERN } } });
      await client.connect(new StreamableHTTPClientTransport(target, { requestInit: { headers: { Authorization: `Bearer ${adminKey}` } }, fetch: tamper }));
      try {
        return await rejectionOf(client.callTool({ name: 'write_thing', arguments: { value: 'tampered' } }));
      } finally {
        await client.close().catch(() => {});
      }
    }

    it('directly, the SDK v2 upstream answers it with the request id, so the pinned client raises ProtocolError -32020 (control)', async () => {
      const error = await tamperedPinnedCall(new URL(upstream.url));
      expect(error).toBeInstanceOf(ProtocolError);
      expect(error.code).toBe(-32020);
      expect(upstream.written).not.toContain('tampered');
    });

    it('through the gateway, the refusal carries the request id like the upstream\'s, so the pinned client raises ProtocolError -32020', async () => {
      const answer = await post(adminKey, { 'mcp-method': 'tools/call', 'mcp-name': 'echo' }, call('write_thing'));
      expect(answer.body).toMatchObject({ id: 7, error: { code: -32020 } });
      const error = await tamperedPinnedCall(url);
      expect(error).not.toBeInstanceOf(SdkHttpError);
      expect(error).toBeInstanceOf(ProtocolError);
      expect(error.code).toBe(-32020);
    });

    it('Security: a subscriptions/listen following a denied resource is refused (-32003) before the upstream', async () => {
      const before = upstream.hits.length;
      const listen = (resourceSubscriptions: string[]) => ({
        jsonrpc: '2.0',
        id: 9,
        method: 'subscriptions/listen',
        params: { notifications: { toolsListChanged: true, resourceSubscriptions }, _meta: envelope },
      });
      for (const uris of [['secret://keys'], ['file:///docs/a.md', 'SECRET://keys'], ['secret://public/../keys']]) {
        const answer = await post(readerKey, { 'mcp-method': 'subscriptions/listen' }, listen(uris));
        // A policy refusal is a JSON-RPC error in a 200 answer (the status table in core's errors.ts).
        expect(answer.status, JSON.stringify(uris)).toBe(200);
        expect(answer.body, JSON.stringify(uris)).toMatchObject({ id: 9, error: { code: -32003, message: expect.stringContaining('subscriptions/listen: resource') } });
      }
      // The snake_case name some servers accept, and a field the gateway does not know, are refused too.
      for (const notifications of [{ resource_subscriptions: ['secret://keys'] }, { toolsListChanged: true, resourceUris: ['secret://keys'] }]) {
        const answer = await post(readerKey, { 'mcp-method': 'subscriptions/listen' }, { jsonrpc: '2.0', id: 9, method: 'subscriptions/listen', params: { notifications, _meta: envelope } });
        expect(answer.body, JSON.stringify(notifications)).toMatchObject({ id: 9, error: { code: -32003 } });
      }
      expect(upstream.hits.length).toBe(before);

      // The control: following an allowed resource opens the stream at the upstream (its acknowledgement arrives).
      const controller = new AbortController();
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${readerKey}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': 'subscriptions/listen' },
          body: JSON.stringify(listen(['file:///docs/a.md'])),
          signal: controller.signal,
        });
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toContain('text/event-stream');
        const reader = (response.body as ReadableStream<Uint8Array>).getReader();
        let text = '';
        const decoder = new TextDecoder();
        while (!text.includes('notifications/subscriptions/acknowledged')) {
          const { value, done } = await reader.read();
          if (done) break;
          text += decoder.decode(value, { stream: true });
        }
        expect(text).toContain('notifications/subscriptions/acknowledged');
        expect(upstream.hits.length).toBe(before + 1);
      } finally {
        controller.abort();
      }
    });

    it('goes through when the headers agree (the control case): the upstream is hit once', async () => {
      const before = upstream.hits.length;
      const answer = await post(readerKey, { 'mcp-method': 'tools/call', 'mcp-name': 'echo' }, call('echo'));
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({ id: 7, result: { content: [{ text: 'echo: x' }] } });
      expect(upstream.hits.length).toBe(before + 1);
    });
  });

  describe.each(CLIENT_KINDS.filter((k) => k.era === 'legacy'))('$name against a stdio upstream', (kind) => {
    it('negotiates its revision with the child through the gateway, sees only the read-only tools as a reader, and calls echo', async () => {
      const client = await kind.connect(new URL(`${gateway.url}/mcp/everything`), readerKey);
      open.push(client);
      try {
        // The child answered the client's own initialize (the bridge relays it): the same revision.
        expect(client.protocolVersion).toBe(kind.protocolVersion);
        const names = await client.listToolNames();
        expect(names).toContain('echo');
        expect(names).not.toContain('toggle-simulated-logging');
        expect(await client.callText('echo', { message: `stdio ${kind.tag}` })).toBe(`Echo: stdio ${kind.tag}`);
        const after = client.wire.filter((w) => w.httpMethod === 'POST' && w.rpcMethod !== 'initialize');
        for (const request of after) expect(request.protocolVersion).toBe(kind.protocolVersion);
      } finally {
        open.splice(open.indexOf(client), 1);
        await client.close();
      }
    });
  });

  describe('the pinned 2026-07-28 client against a stdio upstream', () => {
    // Expected not to work when this suite was written (the stdio bridge was the SDK v1 Streamable
    // HTTP server transport, which answers the session-less `server/discover` with 400, so the
    // pinned client's connect() rejected with SdkError ERA_NEGOTIATION_FAILED). It works since
    // src/upstream/modern-stdio.ts serves 2026-07-28 requests through the SDK v2 createMcpHandler,
    // so these are plain tests.
    async function connectPinnedToStdio(key: string, wire: WireRequest[]): Promise<Client> {
      const client = new Client({ name: 'modern-stdio', version: '1.0.0' }, { versionNegotiation: { mode: { pin: MODERN } } });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/everything`), { requestInit: { headers: { Authorization: `Bearer ${key}` } }, fetch: recordingFetch(wire) }),
      );
      return client;
    }

    it('connects session-less, lists only the read-only tools for a reader, calls echo, and is refused a writing tool with -32003', async () => {
      const wire: WireRequest[] = [];
      const client = await connectPinnedToStdio(readerKey, wire);
      try {
        expect(client.getNegotiatedProtocolVersion()).toBe(MODERN);
        const tools = (await client.listTools()).tools;
        expect(tools.map((t) => t.name)).toContain('echo');
        expect(tools.map((t) => t.name)).not.toContain('toggle-simulated-logging');
        expect(tools.every((t) => t.annotations?.readOnlyHint === true)).toBe(true);
        expect(textOf(await client.callTool({ name: 'echo', arguments: { message: 'modern over stdio' } }))).toBe('Echo: modern over stdio');
        const error = await rejectionOf(client.callTool({ name: 'toggle-simulated-logging', arguments: {} }));
        expect(error).toBeInstanceOf(ProtocolError);
        expect(error.code).toBe(-32003);
        expect(wire[0]?.rpcMethod).toBe('server/discover');
        for (const request of wire) expect(request).toMatchObject({ httpMethod: 'POST', mcpMethod: request.rpcMethod, protocolVersion: MODERN, sessionId: null });
      } finally {
        await client.close().catch(() => {});
      }
    });

    it('lets an admin call a writing tool', async () => {
      const client = await connectPinnedToStdio(adminKey, []);
      try {
        expect((await client.listTools()).tools.map((t) => t.name)).toContain('toggle-simulated-logging');
        expect(textOf(await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } }))).toBe('The sum of 2 and 40 is 42.');
        await expect(client.callTool({ name: 'toggle-simulated-logging', arguments: {} })).resolves.toMatchObject({ content: [{ type: 'text' }] });
        await expect(client.callTool({ name: 'toggle-simulated-logging', arguments: {} })).resolves.toMatchObject({ content: [{ type: 'text' }] });
      } finally {
        await client.close().catch(() => {});
      }
    });

    describe('subscriptions/listen, bridged to the child per principal', () => {
      const staticUri = 'demo://resource/static/document/architecture.md';
      const envelope = { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': {} };
      const headersFor = (key: string, method: string, name?: string): Record<string, string> => ({
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': MODERN,
        'mcp-method': method,
        ...(name === undefined ? {} : { 'mcp-name': name }),
      });

      /** Opens a listen stream and keeps reading it into `text` until `stop`. */
      async function listen(key: string, id: number, notifications: Record<string, unknown>): Promise<{ text: () => string; until: (needle: string, ms: number) => Promise<boolean>; stop: () => void }> {
        const controller = new AbortController();
        const response = await fetch(`${gateway.url}/mcp/everything`, {
          method: 'POST',
          headers: headersFor(key, 'subscriptions/listen'),
          body: JSON.stringify({ jsonrpc: '2.0', id, method: 'subscriptions/listen', params: { notifications, _meta: envelope } }),
          signal: controller.signal,
        });
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toContain('text/event-stream');
        let text = '';
        const decoder = new TextDecoder();
        const reader = (response.body as ReadableStream<Uint8Array>).getReader();
        void (async () => {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return;
            text += decoder.decode(value, { stream: true });
          }
        })().catch(() => {});
        const until = async (needle: string, ms: number): Promise<boolean> => {
          const deadline = Date.now() + ms;
          while (!text.includes(needle) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
          return text.includes(needle);
        };
        return { text: () => text, until, stop: () => controller.abort() };
      }

      /** The JSON-RPC messages of an SSE text. */
      const messagesOf = (text: string): Record<string, unknown>[] =>
        text
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => JSON.parse(line.slice(5)) as Record<string, unknown>);

      it("delivers the child's resource updates to its principal's listen, stamped with the subscription id, and to no other principal's", async () => {
        const admin = await listen(adminKey, 41, { resourceSubscriptions: [staticUri], toolsListChanged: true });
        const reader = await listen(readerKey, 42, { resourceSubscriptions: [staticUri] });
        try {
          expect(await admin.until('notifications/subscriptions/acknowledged', 10_000)).toBe(true);
          expect(await reader.until('notifications/subscriptions/acknowledged', 10_000)).toBe(true);
          const ack = messagesOf(admin.text()).find((m) => m['method'] === 'notifications/subscriptions/acknowledged') as { params: Record<string, unknown> };
          // What the child offers is honoured: server-everything subscribes and announces tool changes.
          expect(ack.params).toMatchObject({ notifications: { resourceSubscriptions: [staticUri], toolsListChanged: true } });
          // The reader's listen really follows the same resource (so the absence below means something).
          const readerAck = messagesOf(reader.text()).find((m) => m['method'] === 'notifications/subscriptions/acknowledged') as { params: Record<string, unknown> };
          expect(readerAck.params).toMatchObject({ notifications: { resourceSubscriptions: [staticUri] } });

          // server-everything sends updates of subscribed resources once this tool is called (then every 5 s).
          const call = await fetch(`${gateway.url}/mcp/everything`, {
            method: 'POST',
            headers: headersFor(adminKey, 'tools/call', 'toggle-subscriber-updates'),
            body: JSON.stringify({ jsonrpc: '2.0', id: 43, method: 'tools/call', params: { name: 'toggle-subscriber-updates', arguments: {}, _meta: envelope } }),
            signal: AbortSignal.timeout(10_000),
          });
          expect(call.status).toBe(200);
          await call.text();

          expect(await admin.until('notifications/resources/updated', 10_000)).toBe(true);
          const updated = messagesOf(admin.text()).find((m) => m['method'] === 'notifications/resources/updated') as { params: Record<string, unknown> };
          expect(updated.params).toMatchObject({ uri: staticUri, _meta: { 'io.modelcontextprotocol/subscriptionId': 41 } });
          // The reader's child was never asked for updates: its stream carries none of the admin's.
          await new Promise((resolve) => setTimeout(resolve, 300));
          expect(reader.text()).not.toContain('notifications/resources/updated');
          expect(reader.text()).not.toContain('"resultType":"complete"');
        } finally {
          admin.stop();
          reader.stop();
        }
      });

      it('keeps a resource subscribed at the child while another listen of the principal still follows it', async () => {
        // A principal of its own, so its child starts with updates off.
        const key = (await gateway.services.keys.create({ name: 'listener', roles: ['admin'] })).plaintext;
        const first = await listen(key, 51, { resourceSubscriptions: [staticUri] });
        const second = await listen(key, 52, { resourceSubscriptions: [staticUri] });
        try {
          expect(await first.until('notifications/subscriptions/acknowledged', 10_000)).toBe(true);
          expect(await second.until('notifications/subscriptions/acknowledged', 10_000)).toBe(true);
          const call = await fetch(`${gateway.url}/mcp/everything`, {
            method: 'POST',
            headers: headersFor(key, 'tools/call', 'toggle-subscriber-updates'),
            body: JSON.stringify({ jsonrpc: '2.0', id: 53, method: 'tools/call', params: { name: 'toggle-subscriber-updates', arguments: {}, _meta: envelope } }),
            signal: AbortSignal.timeout(10_000),
          });
          await call.text();
          expect(await first.until('notifications/resources/updated', 10_000)).toBe(true);
          expect(await second.until('notifications/resources/updated', 10_000)).toBe(true);
          const updatesOf = (text: string): number => messagesOf(text).filter((m) => m['method'] === 'notifications/resources/updated').length;
          const before = updatesOf(second.text());
          // Closing one listen must not unsubscribe the child: server-everything sends the next update 5 s later.
          first.stop();
          const deadline = Date.now() + 8000;
          while (updatesOf(second.text()) === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
          expect(updatesOf(second.text())).toBeGreaterThan(before);
        } finally {
          first.stop();
          second.stop();
        }
      }, 30_000);
    });
  });
});
