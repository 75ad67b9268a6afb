/**
 * `mcp-warden serve` as a user runs it (the command behind `npm start`), on a copy of the demo config
 * with its state in a temporary directory: first run creates and prints keys, the reader key works,
 * a second run reuses the keys.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, freePort, stop } from './run-cli.js';

const running: ChildProcess[] = [];
afterEach(async () => {
  for (const child of running.splice(0)) await stop(child);
});

async function serve(config: string, port: number): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, [`${ROOT}packages/mcp-warden/dist/cli/main.js`, '--config', config, 'serve'], {
    cwd: ROOT,
    env: { PATH: `${ROOT}node_modules/.bin:${process.env['PATH'] ?? ''}`, HOME: tmpdir(), PORT: String(port), NO_COLOR: '1', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.push(child);
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const deadline = Date.now() + 30_000;
  // Until the last line the first run prints (the SDK snippet after the keys and the curl line), or
  // a later run's: the output comes in pipe chunks, and the reader key can arrive before the rest.
  while (!/StreamableHTTPClientTransport\(.*\n|Using the keys created earlier.*\n|No key created.*\n/.test(output)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`serve did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, output: () => output };
}

/** The demo config (`npm start`'s) copied into `dir`, its store there too; returns its path. */
function demoConfig(dir: string): string {
  const demo = readFileSync(`${ROOT}examples/gateway/mcp-warden.yaml`, 'utf8').replace('path: ../../.warden/warden.db', `path: ${join(dir, 'warden.db')}`);
  const config = join(dir, 'mcp-warden.yaml');
  writeFileSync(config, demo);
  return config;
}

describe('mcp-warden serve (npm start)', () => {
  it('creates and prints keys on the first run, serves the demo upstream, and reuses the keys later', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-serve-'));
    try {
      const config = demoConfig(dir);
      const port = await freePort();
      const first = await serve(config, port);
      expect(first.output()).toContain(`mcp-warden gateway listening on http://127.0.0.1:${port}`);
      const reader = /reader (mcpw_\S+)/.exec(first.output())?.[1] ?? '';
      expect(reader).toMatch(/^mcpw_/);
      expect(first.output()).toContain(`curl -s http://127.0.0.1:${port}/mcp/everything -H "Authorization: Bearer ${reader}"`);
      const response = await fetch(`http://127.0.0.1:${port}/mcp/everything`, {
        method: 'POST',
        headers: { authorization: `Bearer ${reader}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'test', version: '1' } } }),
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('mcp-session-id')).toMatch(/^[\x21-\x7e]+\.[\x21-\x7e]+$/);
      expect(await response.text()).toContain('"serverInfo"');
      await stop(first.child);

      const second = await serve(config, await freePort());
      expect(second.output()).toContain('Using the keys created earlier');
      expect(second.output()).not.toMatch(/mcpw_/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('on SIGTERM answers the call in flight and then exits 0; a second signal exits at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-serve-'));
    try {
      const config = demoConfig(dir);
      const port = await freePort();
      const endpoint = `http://127.0.0.1:${port}/mcp/everything`;
      const started = await serve(config, port);
      const admin = /admin\s+(mcpw_\S+)/.exec(started.output())?.[1] ?? '';
      expect(admin).toMatch(/^mcpw_/);
      const headers = { authorization: `Bearer ${admin}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
      /** A long-running call in a session of its own; resolves with the whole answer. */
      const longCall = async (seconds: number): Promise<{ status: number; text: Promise<string> }> => {
        const init = await fetch(endpoint, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'test', version: '1' } } }) });
        await init.text();
        const session = { ...headers, 'mcp-session-id': init.headers.get('mcp-session-id') ?? '' };
        await (await fetch(endpoint, { method: 'POST', headers: session, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })).text();
        const call = await fetch(endpoint, {
          method: 'POST',
          headers: session,
          body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'trigger-long-running-operation', arguments: { duration: seconds, steps: 2 }, _meta: { progressToken: 'p' } } }),
        });
        return { status: call.status, text: call.text() };
      };

      const call = await longCall(1.5);
      expect(call.status).toBe(200);
      const exited = new Promise<number | null>((resolve) => started.child.once('exit', resolve));
      started.child.kill('SIGTERM');
      expect(await call.text).toContain('Long running operation completed');
      expect(await exited).toBe(0);

      const again = await serve(config, port);
      const stuck = await longCall(60);
      expect(stuck.status).toBe(200);
      void stuck.text.catch(() => {});
      const forced = new Promise<number | null>((resolve) => again.child.once('exit', resolve));
      again.child.kill('SIGTERM');
      // Still draining (the grace is 10 s): then the second signal.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(again.child.exitCode).toBeNull();
      again.child.kill('SIGTERM');
      expect(await forced).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says so when the config has no admin or reader role to create a first key for', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-serve-'));
    try {
      const config = join(dir, 'mcp-warden.yaml');
      writeFileSync(config, `store: { type: sqlite, path: ${JSON.stringify(join(dir, 'warden.db'))} }\nroles: { operator: [read, write] }\nupstreams:\n  crashy: { type: stdio, command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(`${ROOT}packages/mcp-warden/test/fixtures/crashy-server.mjs`)}] }\n`);
      const run = await serve(config, await freePort());
      expect(run.output()).toContain('No key created: the config defines neither an admin nor a reader role. Create one with: mcp-warden keys create --name NAME --role ROLE');
      expect(run.output()).not.toMatch(/mcpw_/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a configured upstream header the gateway must control, with exit code 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-serve-'));
    try {
      const config = join(dir, 'mcp-warden.yaml');
      writeFileSync(config, 'store: { type: memory }\nupstreams:\n  remote: { type: http, url: "http://127.0.0.1:9/mcp", headers: { Connection: close } }\n');
      const child = spawn(process.execPath, [`${ROOT}packages/mcp-warden/dist/cli/main.js`, '--config', config, 'serve'], { env: { PATH: process.env['PATH'] ?? '' } });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(2);
      expect(stderr).toContain('upstreams.remote.headers.Connection: this header is set by the gateway');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
