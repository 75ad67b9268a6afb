/**
 * Several upstreams with their own policies, hot reload (in process and through `serve` on SIGHUP
 * and file change), and /metrics.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { ROOT, freePort, stop } from '../cli/run-cli.js';

const everything = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

function configText(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    store: { type: 'memory' },
    server: { port: 0 },
    roles: { admin: ['read', 'write', 'delete'], reader: ['read'] },
    upstreams: {
      everything: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'] },
      locked: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'], policy: { deny: { tools: ['echo'] } } },
      // Its own reader (one more tool allowed) and its own annotations (a read-only tool made destructive).
      tuned: {
        type: 'stdio',
        command: process.execPath,
        args: [everything, 'stdio'],
        policy: {
          roles: { reader: { verbs: ['read'], tools: { allow: ['toggle-simulated-logging'] } } },
          toolAnnotations: { 'get-sum': { readOnlyHint: false, destructiveHint: true } },
        },
      },
    },
    ...extra,
  };
}

async function connect(url: string, key: string): Promise<Client> {
  const client = new Client({ name: 'reload-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
  return client;
}

describe('several upstreams, reload and metrics (in process)', () => {
  let gateway: Gateway;
  let reader: string;
  const clients: Client[] = [];

  beforeAll(async () => {
    gateway = await startGateway({ config: parseConfig(JSON.stringify(configText()), 'test.yaml', {}), logger: quiet, port: 0 });
    await gateway.ready;
    reader = (await gateway.services.keys.create({ name: 'reader', roles: ['reader'] })).plaintext;
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await gateway?.close();
  });

  it('applies each upstream\'s own policy on top of the global roles', async () => {
    const open = await connect(`${gateway.url}/mcp/everything`, reader);
    const locked = await connect(`${gateway.url}/mcp/locked`, reader);
    clients.push(open, locked);
    expect((await open.listTools()).tools.map((t) => t.name)).toContain('echo');
    expect((await locked.listTools()).tools.map((t) => t.name)).not.toContain('echo');
    await expect(locked.callTool({ name: 'echo', arguments: { message: 'x' } })).rejects.toMatchObject({ code: -32003 });

    // An upstream's own role definition replaces the global one there, and its annotations override the server's.
    const tuned = await connect(`${gateway.url}/mcp/tuned`, reader);
    clients.push(tuned);
    await expect(open.callTool({ name: 'toggle-simulated-logging', arguments: {} })).rejects.toMatchObject({ code: -32003 });
    await expect(tuned.callTool({ name: 'toggle-simulated-logging', arguments: {} })).resolves.toMatchObject({ content: [{ type: 'text' }] });
    await expect(open.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } })).resolves.toMatchObject({ content: [{ type: 'text' }] });
    await expect(tuned.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } })).rejects.toMatchObject({ code: -32003, message: expect.stringContaining('missing permission: delete') });
    const tunedNames = (await tuned.listTools()).tools.map((t) => t.name);
    expect(tunedNames).toContain('toggle-simulated-logging');
    expect(tunedNames).not.toContain('get-sum');
  });

  it('swaps a valid configuration without dropping a stream in progress, and refuses one that needs a restart', async () => {
    const client = await connect(`${gateway.url}/mcp/everything`, reader);
    clients.push(client);
    const progress: number[] = [];
    const running = client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 3, steps: 6 } }, undefined, {
      onprogress: (p) => progress.push(p.progress),
      timeout: 30_000,
    });
    await new Promise((r) => setTimeout(r, 500));
    await gateway.reload(parseConfig(JSON.stringify(configText({ deny: { tools: ['get-sum'] } })), 'test.yaml', {}));
    await expect(client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } })).rejects.toMatchObject({ code: -32003 });
    const result = await running;
    expect(JSON.stringify(result.content)).toMatch(/completed/i);
    expect(progress).toEqual([1, 2, 3, 4, 5, 6]);

    const storeChange = parseConfig(JSON.stringify(configText({ store: { type: 'sqlite', path: ':memory:' } })), 'test.yaml', {});
    await expect(gateway.reload(storeChange)).rejects.toBeInstanceOf(ConfigError);
    // Moving the brute-force counters to Redis needs a restart too (one connection per process).
    const redisChange = parseConfig(JSON.stringify(configText({ auth: { rateLimit: { redis: { url: 'redis://127.0.0.1:6379' } } } })), 'test.yaml', {});
    await expect(gateway.reload(redisChange)).rejects.toThrow(/auth\.rateLimit\.redis need a restart/);
    await expect(client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } })).rejects.toMatchObject({ code: -32003 });
  }, 60_000);

  it('a reload refused while it is built touches nothing running: tool-change and error callbacks, and the brute-force blocks, stay as they were', async () => {
    // A valid reload first, with a brute-force limit of 2 failures per address.
    const limited = (extra: Record<string, unknown> = {}) =>
      parseConfig(JSON.stringify(configText({ auth: { rateLimit: { perAddress: { attempts: 2, window: '10m', block: '10m' } } }, ...extra })), 'test.yaml', {});
    await gateway.reload(limited());
    const running = gateway.upstreams.get('everything');
    const callbacks = { toolsChanged: running?.onToolsChanged, error: running?.onError };
    expect(callbacks.toolsChanged).toBeTypeOf('function');
    // This address fails twice: blocked.
    const post = (key: string) =>
      fetch(`${gateway.url}/mcp/everything`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${key}` },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
      });
    for (let i = 0; i < 2; i++) expect((await post(`mcpw_guess${i}`)).status).toBe(401);
    expect((await post(reader)).status).toBe(429);
    // Refused while built: the last upstream's policy is invalid (an empty pattern), and the limit is
    // another one (so a build that went through would make new counters).
    const broken = parseConfig(
      JSON.stringify(
        configText({
          auth: { rateLimit: { perAddress: { attempts: 5, window: '10m', block: '10m' } } },
          upstreams: { ...(configText()['upstreams'] as Record<string, unknown>), zzz: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'], policy: { deny: { tools: [''] } } } },
        }),
      ),
      'test.yaml',
      {},
    );
    await expect(gateway.reload(broken)).rejects.toBeInstanceOf(ConfigError);
    expect(gateway.upstreams.get('everything')?.onToolsChanged).toBe(callbacks.toolsChanged);
    expect(gateway.upstreams.get('everything')?.onError).toBe(callbacks.error);
    expect(gateway.upstreams.has('zzz')).toBe(false);
    // The same valid configuration again: the block it earned still holds.
    await gateway.reload(limited());
    expect((await post(reader)).status).toBe(429);
    // Back to the configuration the other tests use (no limit change needed: the test file's own
    // requests come from this address, so it is lifted by a new limit).
    await gateway.reload(parseConfig(JSON.stringify(configText({ auth: { rateLimit: { perAddress: { attempts: 100, window: '1m', block: '1s' } } } })), 'test.yaml', {}));
    // Past authentication now (a ping outside a session is the bridge's 400, not the limiter's 429).
    expect((await post(reader)).status).toBe(400);
  }, 60_000);

  it('exposes Prometheus metrics: requests, decisions by rule, sessions, audit queue', async () => {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(text).toMatch(/mcp_warden_requests_total\{upstream="everything",status="200"\} \d+/);
    expect(text).toMatch(/mcp_warden_decisions_total\{upstream="locked",decision="deny",rule="policy\.deny\.tools \\"echo\\""\} [1-9]/);
    expect(text).toMatch(/mcp_warden_request_duration_seconds_bucket\{le="0\.1",upstream="everything"\} \d+/);
    expect(text).toMatch(/mcp_warden_sessions\{upstream="everything"\} \d+/);
    expect(text).toContain('mcp_warden_audit_pending_events');
  });

  it('a reload that removes an upstream lets the calls in flight to it finish, refuses new ones, then ends it', async () => {
    const client = await connect(`${gateway.url}/mcp/locked`, reader);
    clients.push(client);
    const removed = gateway.upstreams.get('locked');
    const running = client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 2, steps: 4 } }, undefined, { timeout: 30_000 });
    await new Promise((r) => setTimeout(r, 300));
    const { locked: _locked, ...kept } = configText()['upstreams'] as Record<string, unknown>;
    await gateway.reload(parseConfig(JSON.stringify(configText({ upstreams: kept })), 'test.yaml', {}));
    expect(gateway.upstreams.has('locked')).toBe(false);
    // New requests find no route…
    const refused = await fetch(`${gateway.url}/mcp/locked`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${reader}` }, body: '{}' });
    expect(refused.status).toBe(404);
    // …while the call under way gets its answer from the retired upstream,
    expect(JSON.stringify((await running).content)).toMatch(/completed/i);
    // which is then closed: its session and process end.
    const deadline = Date.now() + 5_000;
    while ((removed?.sessionCount ?? 0) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(removed?.sessionCount).toBe(0);
  }, 60_000);
});

describe('shutdown after a reload retired an upstream', () => {
  it('waits for the retired upstream\'s close: its child, which only SIGKILL ends, is gone when close() resolves', async () => {
    const stubborn = new URL('../fixtures/stubborn-server.mjs', import.meta.url).pathname;
    const pids: number[] = [];
    const logger = { info: (fields: object, message?: string) => void (message === 'session opened' && pids.push((fields as { pid: number }).pid)), warn: () => {}, error: () => {} };
    const config = (upstreams: Record<string, unknown>) =>
      parseConfig(JSON.stringify({ store: { type: 'memory' }, server: { port: 0 }, roles: { admin: ['read', 'write', 'delete'] }, upstreams }), 'test.yaml', {});
    const stub = { type: 'stdio', command: process.execPath, args: [stubborn] };
    const gateway = await startGateway({ config: config({ gone: stub, kept: stub }), logger, port: 0 });
    try {
      await gateway.ready;
      const key = (await gateway.services.keys.create({ name: 'admin', roles: ['admin'] })).plaintext;
      const opened = await fetch(`${gateway.url}/mcp/gone`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'test', version: '1' } } }),
      });
      expect(opened.status).toBe(200);
      await opened.text();
      expect(pids).toHaveLength(1);
      // `gone` is retired with nothing in flight: its close begins at once, and shutdown follows.
      await gateway.reload(config({ kept: stub }));
    } finally {
      await gateway.close();
    }
    const alive = pids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
  }, 30_000);
});

describe('mcp-warden serve reloads on SIGHUP and on file change', () => {
  let dir: string | undefined;
  let child: ChildProcess | undefined;
  afterAll(async () => {
    if (child !== undefined) await stop(child);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('applies a valid change (written in place or renamed over the file, or on SIGHUP), and keeps the running configuration when the new one is invalid', async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-warden-reload-'));
    const file = join(dir, 'mcp-warden.yaml');
    const port = await freePort();
    const write = (extra: Record<string, unknown>) => writeFileSync(file, JSON.stringify({ ...configText(extra), store: { type: 'sqlite', path: 'warden.db' }, server: { port } }));
    write({});
    child = spawn(process.execPath, [`${ROOT}packages/mcp-warden/dist/cli/main.js`, '--config', file, 'serve'], {
      env: { PATH: process.env['PATH'] ?? '', HOME: dir, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    const waitFor = async (pattern: RegExp, count = 1) => {
      const deadline = Date.now() + 30_000;
      while ((output.match(new RegExp(pattern, 'g')) ?? []).length < count) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}: ${output}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await waitFor(/reader +mcpw_\S+\n/);
    const reader = /reader (mcpw_\S+)/.exec(output)?.[1] ?? '';
    const client = await connect(`http://127.0.0.1:${port}/mcp/everything`, reader);
    try {
      expect((await client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } })).content).toBeDefined();
      write({ deny: { tools: ['get-sum'] } });
      await waitFor(/"msg":"configuration reloaded"/);
      await expect(client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } })).rejects.toMatchObject({ code: -32003 });

      writeFileSync(file, 'roles: { reader: [reed] }\n');
      await waitFor(/"msg":"configuration reload refused; the running configuration is kept"/);
      expect(output).toContain('roles.reader[0]: expected one of');
      await expect(client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } })).rejects.toMatchObject({ code: -32003 });
      expect((await client.callTool({ name: 'echo', arguments: { message: 'still served' } })).content).toBeDefined();

      // Saved as many editors save (and as a ConfigMap changes): a new file renamed over the old
      // one, a new inode each time. A watch on the file itself saw the first at most.
      const replace = (extra: Record<string, unknown>) => {
        const text = JSON.stringify({ ...configText(extra), store: { type: 'sqlite', path: 'warden.db' }, server: { port } });
        writeFileSync(`${file}.tmp`, text);
        renameSync(`${file}.tmp`, file);
      };
      replace({});
      await waitFor(/"msg":"configuration reloaded"/, 2);
      expect((await client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } })).content).toBeDefined();
      replace({ deny: { tools: ['get-sum'] } });
      await waitFor(/"msg":"configuration reloaded"/, 3);
      await expect(client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } })).rejects.toMatchObject({ code: -32003 });

      // SIGHUP reloads by itself, the file unchanged.
      child.kill('SIGHUP');
      await waitFor(/"msg":"configuration reloaded"/, 4);
      expect(output).toMatch(/"why":"SIGHUP"[^\n]*"msg":"configuration reloaded"/);
      expect((output.match(/"why":"file changed"[^\n]*"msg":"configuration reloaded"/g) ?? []).length).toBe(3);
    } finally {
      await client.close();
    }
  }, 90_000);

  it('a SIGHUP while the gateway starts does not end it: the reload waits until it runs', async () => {
    const startDir = mkdtempSync(join(tmpdir(), 'mcp-warden-hup-'));
    const file = join(startDir, 'mcp-warden.yaml');
    const port = await freePort();
    // `slow` answers its first message 3 s late, so the gateway is still learning tools when `fast` is done.
    const slow = `setTimeout(() => { process.argv = [process.argv[0], 'everything', 'stdio']; import(${JSON.stringify(everything)}); }, 3000);`;
    writeFileSync(
      file,
      JSON.stringify({
        store: { type: 'sqlite', path: 'warden.db' },
        server: { port },
        roles: { reader: ['read'] },
        upstreams: { fast: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'] }, slow: { type: 'stdio', command: process.execPath, args: ['-e', slow] } },
      }),
    );
    const started = spawn(process.execPath, [`${ROOT}packages/mcp-warden/dist/cli/main.js`, '--config', file, 'serve'], {
      env: { PATH: process.env['PATH'] ?? '', HOME: startDir, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    started.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    started.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    const waitFor = async (pattern: RegExp) => {
      const deadline = Date.now() + 30_000;
      while (!pattern.test(output)) {
        if (started.exitCode !== null || started.signalCode !== null) throw new Error(`the gateway ended (${started.exitCode ?? started.signalCode}): ${output}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}: ${output}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      await waitFor(/"upstream":"fast"[^\n]*"msg":"tool annotations loaded"/);
      expect(output).not.toContain('listening on');
      started.kill('SIGHUP');
      await waitFor(/listening on/);
      await waitFor(/"why":"SIGHUP while starting"[^\n]*"msg":"configuration reloaded"/);
      expect(started.exitCode).toBeNull();
    } finally {
      await stop(started);
      rmSync(startDir, { recursive: true, force: true });
    }
  }, 60_000);
});
