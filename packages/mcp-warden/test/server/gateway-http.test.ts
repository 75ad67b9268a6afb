/**
 * The gateway in front of Streamable HTTP upstreams: server-everything over HTTP through the SDK
 * client, and a recording upstream proving what arrives there (never the caller's credential; the
 * configured one; the gateway's signed identity, checkable against its JWKS).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { freePort } from '../cli/run-cli.js';

const everything = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const UPSTREAM_TOKEN = 'upstream-credential-from-env';

describe('gateway in front of Streamable HTTP upstreams', () => {
  let gateway: Gateway;
  let everythingProcess: ChildProcess;
  let recorder: Server;
  let recorderUrl: string;
  const recorded: IncomingHttpHeaders[] = [];
  let reader: string;
  let admin: string;
  const clients: Client[] = [];

  beforeAll(async () => {
    const port = await freePort();
    everythingProcess = spawn(process.execPath, [everything, 'streamableHttp'], { env: { PATH: process.env['PATH'] ?? '', PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const collect = (chunk: Buffer): void => {
        output += chunk.toString();
        if (output.includes('listening on port')) resolve();
      };
      everythingProcess.stdout?.on('data', collect);
      everythingProcess.stderr?.on('data', collect);
      everythingProcess.once('exit', (code) => reject(new Error(`server-everything exited (${code}): ${output}`)));
    });
    // A recording upstream: answers initialize and tools/list, and keeps every request's headers.
    recorder = createServer((req, res) => {
      recorded.push(req.headers);
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const message = body === '' ? {} : (JSON.parse(body) as { id?: number; method?: string });
        if (message.id === undefined) return void res.writeHead(202).end();
        const result =
          message.method === 'initialize'
            ? { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'recorder', version: '1' } }
            : message.method === 'tools/list'
              ? { tools: [{ name: 'look', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } }] }
              : {};
        res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'recorder-session' }).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
      });
    }).listen(0, '127.0.0.1');
    await once(recorder, 'listening');
    recorderUrl = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/mcp`;
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        roles: { admin: ['read', 'write', 'delete'], reader: ['read'] },
        upstreams: {
          everything: { type: 'http', url: `http://127.0.0.1:${port}/mcp` },
          recorder: { type: 'http', url: recorderUrl, headers: { Authorization: 'Bearer ${UPSTREAM_TOKEN}' }, identity: { header: 'X-MCP-Identity', ttl: '2m' } },
        },
      }),
      'http.yaml',
      { UPSTREAM_TOKEN },
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
    reader = (await gateway.services.keys.create({ name: 'reader', roles: ['reader'] })).plaintext;
    admin = (await gateway.services.keys.create({ name: 'admin', roles: ['admin'] })).plaintext;
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await gateway?.close();
    everythingProcess?.kill();
    recorder?.close();
  });

  async function connect(upstream: string, key: string): Promise<Client> {
    const client = new Client({ name: 'gateway-http', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/${upstream}`), { requestInit: { headers: { Authorization: `Bearer ${key}`, Cookie: 'session=caller-cookie' } } }));
    clients.push(client);
    return client;
  }

  it('serves server-everything over HTTP: filtered for a reader, everything for the admin, progress streamed', async () => {
    const r = await connect('everything', reader);
    const names = (await r.listTools()).tools.map((t) => t.name);
    expect(names).toContain('echo');
    expect(names).not.toContain('toggle-simulated-logging');
    await expect(r.callTool({ name: 'toggle-simulated-logging', arguments: {} })).rejects.toMatchObject({ code: -32003 });
    const progress: number[] = [];
    await r.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 2 } }, undefined, { onprogress: (p) => progress.push(p.progress) });
    expect(progress).toEqual([1, 2]);
    const a = await connect('everything', admin);
    expect((await a.listTools()).tools.map((t) => t.name)).toContain('toggle-simulated-logging');
  });

  describe('Security', () => {
    it('never forwards the caller\'s credential or cookie; sends the configured credential and a verifiable identity', async () => {
      recorded.length = 0;
      const client = await connect('recorder', reader);
      await client.listTools();
      expect(recorded.length).toBeGreaterThan(0);
      for (const headers of recorded) {
        expect(headers.authorization).toBe(`Bearer ${UPSTREAM_TOKEN}`);
        expect(JSON.stringify(headers)).not.toContain(reader);
        expect(headers.cookie).toBeUndefined();
        expect(headers['x-api-key']).toBeUndefined();
      }
      const identity = recorded.at(-1)?.['x-mcp-identity'];
      expect(typeof identity).toBe('string');
      const jwks = createRemoteJWKSet(new URL(`${gateway.url}/.well-known/jwks.json`));
      const { payload } = await jwtVerify(identity as string, jwks, { issuer: gateway.url, audience: recorderUrl, algorithms: ['ES256'] });
      expect(payload).toMatchObject({ sub: 'reader', roles: ['reader'], principal_kind: 'api-key' });
      expect((payload.exp as number) - (payload.iat as number)).toBe(120);
    });

    it('refuses (400) a message with members that differ only in case, without asking the upstream', async () => {
      // For the policy a list; for a server parsing as Go's encoding/json does, a call of `wipe`.
      recorded.length = 0;
      const smuggled = '{"jsonrpc":"2.0","id":7,"method":"tools/list","Method":"tools/call","params":{},"Params":{"name":"wipe"}}';
      const response = await fetch(`${gateway.url}/mcp/recorder`, {
        method: 'POST',
        headers: { authorization: `Bearer ${reader}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' },
        body: smuggled,
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32600, message: expect.stringContaining('"method" and "Method"') } });
      expect(recorded).toHaveLength(0);
    });

    it('refuses (400) a number that would reach the upstream changed, without asking it', async () => {
      // JSON.parse then JSON.stringify (what the gateway relays) would send 12345678901234567000.
      recorded.length = 0;
      const response = await fetch(`${gateway.url}/mcp/recorder`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' },
        body: '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"look","arguments":{"account":12345678901234567890}}}',
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32600, message: expect.stringContaining('12345678901234567890') } });
      expect(recorded).toHaveLength(0);
    });

    it('answers 404 to another principal presenting a session id, without asking the upstream', async () => {
      const a = await connect('everything', admin);
      const sessionId = (a.transport as StreamableHTTPClientTransport).sessionId ?? '';
      const response = await fetch(`${gateway.url}/mcp/everything`, {
        method: 'POST',
        headers: { authorization: `Bearer ${reader}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      expect(response.status).toBe(404);
    });

    it('filters a list the upstream replays when a reader resumes its stream (GET with Last-Event-ID)', async () => {
      const r = await connect('everything', reader);
      const transport = r.transport as StreamableHTTPClientTransport;
      const headers = {
        authorization: `Bearer ${reader}`,
        'mcp-session-id': transport.sessionId ?? '',
        'mcp-protocol-version': transport.protocolVersion ?? '2025-11-25',
      };
      const posted = await fetch(`${gateway.url}/mcp/everything`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 41, method: 'tools/list' }),
      });
      const text = await posted.text();
      expect(text).toContain('"echo"');
      expect(text).not.toContain('toggle-simulated-logging');
      // The first event of the answer (the priming event of a resumable stream): resuming after it
      // asks the upstream to send the answer again, on a GET no list request came with.
      const first = /^id: (.+)$/m.exec(text)?.[1];
      expect(first).toBeDefined();
      const controller = new AbortController();
      const resumed = await fetch(`${gateway.url}/mcp/everything`, { headers: { ...headers, accept: 'text/event-stream', 'last-event-id': first ?? '' }, signal: controller.signal });
      expect(resumed.status).toBe(200);
      let replayed = '';
      const reader2 = resumed.body?.getReader();
      const decoder = new TextDecoder();
      const until = Date.now() + 3_000;
      while (Date.now() < until && !replayed.includes('"id":41')) {
        const next = await Promise.race([reader2?.read(), new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 500))]);
        if (next === undefined || next.done === true) continue;
        replayed += decoder.decode(next.value, { stream: true });
      }
      controller.abort();
      // The replayed answer arrived, filtered as the first one was.
      expect(replayed).toContain('"id":41');
      expect(replayed).toContain('"echo"');
      expect(replayed).not.toContain('toggle-simulated-logging');
    });

    it("Security: a Last-Event-ID resumes only the caller's own events: another principal's, or the upstream's raw id, is refused", async () => {
      // The upstream's event ids reach the client sealed to the principal; an upstream whose event
      // store spans sessions would otherwise replay A's events to B (found by an adversarial probe).
      const r = await connect('everything', reader);
      const transport = r.transport as StreamableHTTPClientTransport;
      const posted = await fetch(`${gateway.url}/mcp/everything`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${reader}`,
          'mcp-session-id': transport.sessionId ?? '',
          'mcp-protocol-version': '2025-11-25',
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 42, method: 'ping' }),
      });
      const sealed = /^id: (.+)$/m.exec(await posted.text())?.[1] ?? '';
      expect(sealed).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
      // server-everything's own id, as the upstream sent it.
      const raw = Buffer.from(sealed.split('.')[0] ?? '', 'base64url').toString('utf8');
      expect(raw).not.toBe(sealed);
      const a = await connect('everything', admin);
      const adminSession = (a.transport as StreamableHTTPClientTransport).sessionId ?? '';
      for (const [key, session, lastEventId] of [
        [admin, adminSession, sealed],
        [reader, transport.sessionId ?? '', raw],
        [reader, transport.sessionId ?? '', `${sealed}x`],
      ] as const) {
        const resumed = await fetch(`${gateway.url}/mcp/everything`, {
          headers: { authorization: `Bearer ${key}`, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25', accept: 'text/event-stream', 'last-event-id': lastEventId },
        });
        expect(resumed.status, lastEventId).toBe(400);
        expect(await resumed.text()).toContain('Last-Event-ID is not an event id this gateway sent this caller');
      }
    });
  });
});
