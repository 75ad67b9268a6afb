/**
 * `mcp-remote` (the OAuth-capable stdio ↔ Streamable HTTP bridge desktop assistants use) as a child
 * process: its own config directory, stdin kept open, the authorization URL read from what it prints
 * on stderr, and MCP JSON-RPC spoken over its stdio with a bounded wait for every answer.
 *
 * mcp-remote tries to open a browser itself (the `open` package, then xdg-open, gio, x-www-browser,
 * sensible-browser). On this machine x-www-browser is Chromium, so the child gets `BROWSER` and a
 * PATH entry pointing at a stub that succeeds without opening anything: the test's own Chromium is
 * the browser, driven to the URL mcp-remote prints.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';

const proxyScript = join(dirname(createRequire(import.meta.url).resolve('mcp-remote/package.json')), 'dist', 'proxy.js');

/** A port free right now on 127.0.0.1 (mcp-remote needs its callback port on the command line). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface McpRemoteOptions {
  /** The MCP endpoint, e.g. `http://127.0.0.1:1234/mcp/everything`. */
  readonly serverUrl: string;
  readonly callbackPort: number;
  /** Extra command-line flags (after the URL, port and `--host 127.0.0.1`). */
  readonly args?: readonly string[];
  /** How long mcp-remote waits for the OAuth callback (its `--auth-timeout`), in seconds; default 60. */
  readonly authTimeoutSeconds?: number;
  /** Reuse this `MCP_REMOTE_CONFIG_DIR` (the caller removes it); default: a new temporary one, removed on close. */
  readonly configDir?: string;
}

export interface JsonRpcResponse {
  readonly jsonrpc: '2.0';
  readonly id: number;
  readonly result?: any;
  readonly error?: { code: number; message: string; data?: unknown };
}

export interface McpRemote {
  readonly child: ChildProcessWithoutNullStreams;
  /** Its `MCP_REMOTE_CONFIG_DIR` (token cache, client registration). */
  readonly configDir: string;
  /** Everything it printed on stderr so far. */
  stderr(): string;
  /** Resolves with the authorization URL it prints ("Please authorize this client by visiting: …"). */
  authorizationUrl(timeoutMs?: number): Promise<URL>;
  /** Sends a request over its stdin and waits (bounded) for the answer with the same id. */
  request(method: string, params?: Record<string, unknown>, timeoutMs?: number): Promise<JsonRpcResponse>;
  notify(method: string, params?: Record<string, unknown>): void;
  /** Ends the child (SIGTERM, then SIGKILL after 5 s) and removes its config directory if it made it. */
  close(): Promise<void>;
}

export function startMcpRemote(options: McpRemoteOptions): McpRemote {
  const ownsConfigDir = options.configDir === undefined;
  const configDir = options.configDir ?? mkdtempSync(join(tmpdir(), 'mcp-remote-config-'));
  const stubDir = mkdtempSync(join(tmpdir(), 'mcp-remote-bin-'));
  const stub = join(stubDir, 'xdg-open');
  writeFileSync(stub, '#!/bin/sh\nexit 0\n');
  chmodSync(stub, 0o755);
  const child = spawn(
    process.execPath,
    [
      proxyScript,
      options.serverUrl,
      String(options.callbackPort),
      '--host',
      '127.0.0.1',
      '--transport',
      'http-only',
      '--auth-timeout',
      String(options.authTimeoutSeconds ?? 60),
      ...(options.args ?? []),
    ],
    {
      env: {
        PATH: `${stubDir}${delimiter}${process.env['PATH'] ?? ''}`,
        HOME: configDir,
        MCP_REMOTE_CONFIG_DIR: configDir,
        BROWSER: stub,
        NODE_OPTIONS: '',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let err = '';
  let out = '';
  let nextId = 1;
  const waiting = new Map<number, (response: JsonRpcResponse) => void>();
  const stderrListeners = new Set<() => void>();
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    err += chunk;
    for (const listener of stderrListeners) listener();
  });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    out += chunk;
    let newline = out.indexOf('\n');
    while (newline !== -1) {
      const line = out.slice(0, newline).trim();
      out = out.slice(newline + 1);
      newline = out.indexOf('\n');
      if (line === '') continue;
      let message: JsonRpcResponse;
      try {
        message = JSON.parse(line) as JsonRpcResponse;
      } catch {
        continue;
      }
      if (typeof message.id === 'number' && ('result' in message || 'error' in message)) waiting.get(message.id)?.(message);
    }
  });
  // Writes after the child has gone would otherwise surface as an unhandled EPIPE.
  child.stdin.on('error', () => {});
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const describe = (): string => `exit code ${String(child.exitCode)}; stderr:\n${err.slice(-4000)}`;

  return {
    child,
    configDir,
    stderr: () => err,

    authorizationUrl(timeoutMs = 30_000) {
      return new Promise<URL>((resolve, reject) => {
        const check = (): void => {
          const match = /Please authorize this client by visiting:\s*(\S+)/.exec(err);
          if (match?.[1] === undefined) return;
          done();
          resolve(new URL(match[1]));
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`mcp-remote printed no authorization URL within ${timeoutMs} ms; ${describe()}`));
        }, timeoutMs);
        const onExit = (): void => {
          done();
          reject(new Error(`mcp-remote exited before printing an authorization URL; ${describe()}`));
        };
        const done = (): void => {
          clearTimeout(timer);
          stderrListeners.delete(check);
          child.off('exit', onExit);
        };
        stderrListeners.add(check);
        child.once('exit', onExit);
        check();
      });
    },

    request(method, params, timeoutMs = 30_000) {
      const id = nextId++;
      return new Promise<JsonRpcResponse>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`no answer to ${method} (id ${id}) from mcp-remote within ${timeoutMs} ms; ${describe()}`));
        }, timeoutMs);
        waiting.set(id, (response) => {
          clearTimeout(timer);
          waiting.delete(id);
          resolve(response);
        });
        child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) })}\n`);
      });
    },

    notify(method, params) {
      child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method, ...(params === undefined ? {} : { params }) })}\n`);
    },

    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin.end();
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      if (ownsConfigDir) rmSync(configDir, { recursive: true, force: true });
      rmSync(stubDir, { recursive: true, force: true });
    },
  };
}
