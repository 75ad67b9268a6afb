/**
 * Server-to-client requests of a stdio upstream that speaks 2025-11-25 (server-everything's
 * sampling, elicitation and roots tools), relayed to MCP 2026-07-28 clients as Multi Round-Trip
 * Requests (spec: basic/patterns/mrtr): the real SDK v2 client, pinned to 2026-07-28, answers the
 * embedded requests with its registered handlers and retries through the gateway.
 */
import { type Server as HttpServer, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { Client, type ClientCapabilities, ProtocolError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { ModernStdioFace } from '../../src/upstream/modern-stdio.js';
import { StdioChild } from '../../src/upstream/stdio-child.js';

const everything = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

interface InputRequiredAnswer {
  resultType?: string;
  inputRequests?: Record<string, { method: string; params?: Record<string, unknown> }>;
  requestState?: string;
}

type CallResult = Awaited<ReturnType<Client['callTool']>>;

function textOf(result: CallResult): string {
  return (result.content as { type: string; text?: string }[]).map((c) => c.text ?? '').join('\n');
}

const sampled = (text: string) => ({ model: 'test-model', role: 'assistant' as const, content: { type: 'text' as const, text }, stopReason: 'endTurn' });

interface ClientSetup {
  capabilities?: ClientCapabilities;
  /** Answers `sampling/createMessage`; records each request's params. */
  sample?: (params: Record<string, unknown>) => ReturnType<typeof sampled>;
  elicit?: (params: Record<string, unknown>) => { action: 'accept' | 'decline' | 'cancel'; content?: Record<string, unknown> };
  roots?: { uri: string; name?: string }[];
}

async function connectTo(url: string, key: string, setup: ClientSetup = {}): Promise<Client> {
  const client = new Client({ name: 'modern-bridge', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } }, capabilities: setup.capabilities ?? {} });
  const { sample, elicit, roots } = setup;
  if (sample !== undefined) client.setRequestHandler('sampling/createMessage', async (request) => sample(request.params as Record<string, unknown>) as never);
  if (elicit !== undefined) client.setRequestHandler('elicitation/create', async (request) => elicit(request.params as Record<string, unknown>) as never);
  if (roots !== undefined) client.setRequestHandler('roots/list', async () => ({ roots }));
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
  return client;
}

/** A `tools/call` that hands an `input_required` answer back instead of fulfilling it. */
function callManually(client: Client, params: Record<string, unknown>): Promise<InputRequiredAnswer & CallResult> {
  return client.request({ method: 'tools/call', params: params as never }, { allowInputRequired: true }) as Promise<InputRequiredAnswer & CallResult>;
}

describe('2026-07-28 clients answer the sampling, elicitation and roots requests of stdio upstreams', () => {
  let gateway: Gateway;
  let url: string;
  const clients: Client[] = [];

  /** Each test gets its own principal, so its own child: no test sees another's call in flight. */
  async function connect(setup: ClientSetup = {}, key?: string): Promise<Client> {
    const client = await connectTo(url, key ?? (await newKey()), setup);
    clients.push(client);
    return client;
  }

  async function newKey(): Promise<string> {
    return (await gateway.services.keys.create({ name: `principal-${clients.length}-${Date.now()}`, roles: ['admin'] })).plaintext;
  }

  beforeAll(async () => {
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        roles: { admin: ['read', 'write', 'delete'] },
        upstreams: { everything: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'] } },
      }),
      'modern-bridge.yaml',
      {},
    );
    gateway = await startGateway({ config, logger: quiet, port: 0 });
    await gateway.ready;
    url = `${gateway.url}/mcp/everything`;
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await gateway?.close();
  });

  it('relays sampling/createMessage to the client and returns the tool result built from its answer', async () => {
    const seen: Record<string, unknown>[] = [];
    const client = await connect({
      capabilities: { sampling: {} },
      sample: (params) => {
        seen.push(params);
        return sampled('a haiku from the modern client');
      },
    });
    const result = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'write a haiku', maxTokens: 20 } });
    expect(result.isError).toBeFalsy();
    expect(textOf(result)).toContain('LLM sampling result');
    expect(textOf(result)).toContain('a haiku from the modern client');
    expect(textOf(result)).toContain('test-model');
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ maxTokens: 20, systemPrompt: 'You are a helpful test server.' });
    expect(JSON.stringify(seen[0]?.['messages'])).toContain('write a haiku');
    expect(seen[0]).not.toHaveProperty('task');
  }, 20_000);

  it('relays a form elicitation and the content the client accepted', async () => {
    const messages: string[] = [];
    const client = await connect({
      capabilities: { elicitation: { form: {} } },
      elicit: (params) => {
        messages.push(String(params['message']));
        return { action: 'accept', content: { name: 'Ada Lovelace', check: true, integer: 7 } };
      },
    });
    const result = await client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
    expect(result.isError).toBeFalsy();
    expect(messages).toEqual(['Please provide inputs for the following fields:']);
    expect(textOf(result)).toContain('Ada Lovelace');
    expect(textOf(result)).toContain('Favorite Integer: 7');
  }, 20_000);

  it('relays a URL elicitation without its elicitationId, and refuses it to a client that declared only form mode', async () => {
    const seen: Record<string, unknown>[] = [];
    const elicit = (params: Record<string, unknown>) => (seen.push(params), { action: 'accept' as const });
    const both = await connect({ capabilities: { elicitation: { form: {}, url: {} } }, elicit });
    const accepted = await both.callTool({ name: 'trigger-url-elicitation', arguments: { url: 'https://example.com/consent', message: 'Open the consent page' } });
    expect(textOf(accepted)).toContain('User completed the URL elicitation flow');
    expect(seen).toEqual([{ mode: 'url', url: 'https://example.com/consent', message: 'Open the consent page' }]);
    const formOnly = await connect({ capabilities: { elicitation: { form: {} } }, elicit });
    const refused = await formOnly.callTool({ name: 'trigger-url-elicitation', arguments: { url: 'https://example.com/consent' } });
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toContain('did not declare the elicitation.url capability');
    expect(seen).toHaveLength(1);
  }, 20_000);

  it('relays roots/list', async () => {
    const client = await connect({ capabilities: { roots: {} }, roots: [{ uri: 'file:///projects/warden', name: 'warden' }] });
    const result = await client.callTool({ name: 'get-roots-list', arguments: {} });
    expect(textOf(result)).toContain('file:///projects/warden');
  }, 20_000);

  it('answers the child with an error when the client did not declare sampling: the call ends in a tool error, not a hang', async () => {
    const client = await connect({ capabilities: { elicitation: { form: {} } } });
    const result = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'unanswerable' } }, { timeout: 10_000 });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toContain('did not declare the sampling capability');
  }, 20_000);

  it('refuses a request the child sends while two calls of the principal are in flight (it cannot tell whose it is), and relays it once a call runs alone', async () => {
    const asked: string[] = [];
    const client = await connect({ capabilities: { sampling: {} }, sample: () => (asked.push('sampled'), sampled('answered alone')) });
    const long = client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1.5, steps: 3 } });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const amid = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'amid another call' } });
    expect(amid.isError).toBe(true);
    expect(textOf(amid)).toContain('2 calls are in flight');
    expect(asked).toEqual([]);
    expect(textOf(await long)).toContain('Long running operation completed');
    const alone = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'alone' } });
    expect(textOf(alone)).toContain('answered alone');
    expect(asked).toEqual(['sampled']);
  }, 20_000);

  it('serves the principal’s other calls while one waits for its client', async () => {
    const client = await connect({ capabilities: { sampling: {} } });
    const first = await callManually(client, { name: 'trigger-sampling-request', arguments: { prompt: 'parked' } });
    expect(first.resultType).toBe('input_required');
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'still served' } });
    expect(textOf(echo)).toContain('still served');
  }, 20_000);

  describe('Security: requestState', () => {
    it('refuses a requestState replayed by another principal, and the child never gets that principal’s answer', async () => {
      const alice = await connect({ capabilities: { sampling: {} } });
      const bob = await connect({ capabilities: { sampling: {} } });
      const params = { name: 'trigger-sampling-request', arguments: { prompt: 'alice asks' } };
      const first = await callManually(alice, params);
      expect(first.resultType).toBe('input_required');
      const [key, request] = Object.entries(first.inputRequests ?? {})[0] ?? [];
      expect(request?.method).toBe('sampling/createMessage');
      expect(request?.params).not.toHaveProperty('_meta');
      expect(typeof first.requestState).toBe('string');

      const replay = callManually(bob, { ...params, inputResponses: { [key as string]: sampled('bob injected this') }, requestState: first.requestState });
      await expect(replay).rejects.toBeInstanceOf(ProtocolError);
      await expect(replay).rejects.toMatchObject({ code: -32602 });

      const retried = await callManually(alice, { ...params, inputResponses: { [key as string]: sampled('alice answered') }, requestState: first.requestState });
      expect(textOf(retried)).toContain('alice answered');
      expect(textOf(retried)).not.toContain('bob injected this');
    }, 20_000);

    it('refuses a tampered requestState, one presented for another tool, and the state of a finished round', async () => {
      const client = await connect({ capabilities: { sampling: {} } });
      const params = { name: 'trigger-sampling-request', arguments: { prompt: 'bound' } };
      const first = await callManually(client, params);
      const state = first.requestState as string;
      const key = Object.keys(first.inputRequests ?? {})[0] as string;
      const answer = { [key]: sampled('the real answer') };
      const tampered = `${state.slice(0, -2)}${state.endsWith('AA') ? 'BB' : 'AA'}`;
      await expect(callManually(client, { ...params, inputResponses: answer, requestState: tampered })).rejects.toMatchObject({ code: -32602 });
      await expect(callManually(client, { name: 'echo', arguments: { message: 'x' }, inputResponses: answer, requestState: state })).rejects.toMatchObject({ code: -32602 });
      await expect(callManually(client, { ...params, arguments: { prompt: 'other arguments' }, inputResponses: answer, requestState: state })).rejects.toMatchObject({ code: -32602 });
      const done = await callManually(client, { ...params, inputResponses: answer, requestState: state });
      expect(textOf(done)).toContain('the real answer');
      await expect(callManually(client, { ...params, inputResponses: answer, requestState: state })).rejects.toMatchObject({ code: -32602 });
    }, 20_000);
  });
});

/** The modern face alone, behind a plain node:http server in the warden pipeline's place: it hands the principal on as the SDK's authInfo. */
async function serveFace(face: ModernStdioFace, principalId: string): Promise<{ url: string; close(): Promise<void> }> {
  const http: HttpServer = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const principal = { id: principalId, kind: 'api_key', roles: ['admin'], scopes: [] };
      Object.assign(req, { auth: { token: 'test', clientId: principal.id, scopes: [], extra: { principal } } });
      const body: unknown = chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8'));
      void face.handle(req, res, body, principal as never);
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    close: async () => {
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
      await face.close();
    },
  };
}

/** A 2025-11-25 stdio server (SDK v1) whose tools ping their client and ask it for a sample, reporting on stderr what became of each. */
const ASKING_SERVER = `
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
const server = new McpServer({ name: 'asking', version: '1.0.0' });
server.registerTool('ping-client', { description: 'pings its client' }, async () => {
  await server.server.ping();
  return { content: [{ type: 'text', text: 'the client answered ping' }] };
});
server.registerTool('ask', { description: 'asks its client for a sample' }, async (extra) => {
  extra.signal.addEventListener('abort', () => console.error('ask: call cancelled'));
  try {
    const result = await server.server.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'hello' } }], maxTokens: 5 });
    return { content: [{ type: 'text', text: 'sampled: ' + JSON.stringify(result.content) }] };
  } catch (error) {
    console.error('ask: sampling failed: ' + error.message);
    throw error;
  }
});
await server.connect(new StdioServerTransport());
`;

describe('calls served by the modern face alone', () => {
  const clients: Client[] = [];
  const closers: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    for (const close of closers) await close();
  });

  async function start(spawn: () => StdioChild, principalId: string, setup: ClientSetup): Promise<{ face: ModernStdioFace; client: Client }> {
    const face = new ModernStdioFace('test', spawn, quiet, 60_000, { inputTimeoutMs: 400 });
    const served = await serveFace(face, principalId);
    closers.push(served.close);
    const client = await connectTo(served.url, 'unused', setup);
    clients.push(client);
    return { face, client };
  }

  it('ends a call whose client never retries after inputTimeoutMs, and refuses the late retry; the next call is relayed', async () => {
    const asked: string[] = [];
    const { face, client } = await start(() => new StdioChild({ command: process.execPath, args: [everything, 'stdio'], env: {} }), 'principal-1', {
      capabilities: { sampling: {} },
      sample: (params) => (asked.push(JSON.stringify(params['messages'])), sampled('answered in time')),
    });
    const params = { name: 'trigger-sampling-request', arguments: { prompt: 'abandoned' } };
    const first = await callManually(client, params);
    expect(first.resultType).toBe('input_required');
    expect(face.flowCount).toBe(1);
    await expect.poll(() => face.flowCount, { timeout: 3_000, interval: 50 }).toBe(0);
    const key = Object.keys(first.inputRequests ?? {})[0] as string;
    const late = callManually(client, { ...params, inputResponses: { [key]: sampled('too late') }, requestState: first.requestState });
    await expect(late).rejects.toMatchObject({ code: -32602 });
    // The abandoned call no longer counts as in flight: the next one is relayed.
    const next = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'next' } });
    expect(textOf(next)).toContain('answered in time');
    expect(asked).toHaveLength(1);
    expect(face.flowCount).toBe(0);
  }, 20_000);

  it('answers the child’s ping itself, and answers an abandoned request of the child with an error and cancels its call', async () => {
    const stderr: string[] = [];
    const spawn = (): StdioChild => new StdioChild({ command: process.execPath, args: ['--input-type=module', '-e', ASKING_SERVER], env: {}, cwd: process.cwd(), onStderr: (line) => stderr.push(line) });
    const { face, client } = await start(spawn, 'principal-2', { capabilities: { sampling: {} } });
    expect(textOf(await client.callTool({ name: 'ping-client', arguments: {} }))).toBe('the client answered ping');
    const first = await callManually(client, { name: 'ask', arguments: {} });
    expect(Object.values(first.inputRequests ?? {}).map((r) => r.method)).toEqual(['sampling/createMessage']);
    await expect.poll(() => face.flowCount, { timeout: 3_000, interval: 50 }).toBe(0);
    await expect.poll(() => stderr.join('\n'), { timeout: 3_000, interval: 50 }).toContain('ask: sampling failed');
    expect(stderr.join('\n')).toContain('did not answer within 400 ms');
    await expect.poll(() => stderr.join('\n'), { timeout: 3_000, interval: 50 }).toContain('ask: call cancelled');
  }, 20_000);
});

describe('upstreams.<name>.inputTimeout reaches the modern face', () => {
  let gateway: Gateway | undefined;
  let client: Client | undefined;
  afterAll(async () => {
    await client?.close().catch(() => {});
    await gateway?.close();
  });

  it('ends a call whose client does not retry within the configured inputTimeout (1.5s, not the 5m default) and refuses the late retry', async () => {
    const logged: string[] = [];
    const recording = { info: (_o: object, message?: string) => void logged.push(message ?? ''), warn: () => {}, error: () => {} };
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        roles: { admin: ['read', 'write', 'delete'] },
        // 1.5s: the requestState the face signs lives ceil(1.5) = 2 s, so the refusal below is the face's, not the state's expiry.
        upstreams: { everything: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'], inputTimeout: '1500ms' } },
      }),
      'input-timeout.yaml',
      {},
    );
    expect(config.upstreams['everything']).toMatchObject({ inputTimeout: 1500 });
    gateway = await startGateway({ config, logger: recording, port: 0 });
    await gateway.ready;
    const key = (await gateway.services.keys.create({ name: 'input-timeout', roles: ['admin'] })).plaintext;
    client = await connectTo(`${gateway.url}/mcp/everything`, key, { capabilities: { sampling: {} } });

    const params = { name: 'trigger-sampling-request', arguments: { prompt: 'abandoned' } };
    const first = await callManually(client, params);
    const asked = Date.now();
    expect(first.resultType).toBe('input_required');
    const abandoned = 'a 2026-07-28 client did not answer the input requests of its call in time';
    expect(logged).not.toContain(abandoned);
    await expect.poll(() => logged, { timeout: 6_000, interval: 25 }).toContain(abandoned);
    // The face parked the call before its answer was sent, so at most the 1.5 s have passed since then.
    expect(Date.now() - asked).toBeGreaterThanOrEqual(1_200);
    const inputKey = Object.keys(first.inputRequests ?? {})[0] as string;
    const late = callManually(client, { ...params, inputResponses: { [inputKey]: sampled('too late') }, requestState: first.requestState });
    await expect(late).rejects.toBeInstanceOf(ProtocolError);
    await expect(late).rejects.toMatchObject({ code: -32602, message: expect.stringContaining('holds no such call waiting for input (it timed out') });
  }, 30_000);
});
