/**
 * Child process of `bench/gateway.ts`: the yardstick of ANCHORS.md, a plain reverse-proxy hop
 * (node:http + one keep-alive undici `Pool`) with no auth, no parsing and no audit. It passes the MCP
 * headers and the body of `/mcp/<name>` to the upstream's `/<name>` (`/echo` for f, `/catalog` for g) and
 * pipes the answer back. Its CPU per request on this machine is what "a plain hop" costs here; the
 * gateway's target is that plus 20 µs.
 *
 * Usage (by the runner only): node <transpiled copy of this file> <upstream origin>
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

export type HopMessage = { type: 'ready'; port: number };

const origin = process.argv[2];
if (origin === undefined || process.send === undefined) {
  console.error('gateway-hop: must be started by bench/gateway.ts with the upstream origin (and an IPC channel)');
  process.exit(2);
}

const FORWARDED = ['content-type', 'accept', 'mcp-protocol-version', 'mcp-session-id', 'last-event-id'];
const RETURNED = ['content-type', 'cache-control', 'mcp-session-id'];
const pool = new Pool(origin);

const server = createServer((req, res) => {
  const headers: Record<string, string> = {};
  for (const name of FORWARDED) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  const length = req.headers['content-length'];
  if (length !== undefined) headers['content-length'] = length;
  // `/mcp/<name>` → the upstream's `/<name>` (`/echo`, `/catalog`).
  const path = req.url?.startsWith('/mcp/') === true ? req.url.slice(4) : undefined;
  if (path === undefined) {
    res.writeHead(404).end();
    return;
  }
  pool.request({ path, method: req.method as 'POST', headers, body: req.method === 'POST' ? req : null }).then(
    ({ statusCode, headers: answer, body }) => {
      const out: Record<string, string> = {};
      for (const name of RETURNED) {
        const value = answer[name];
        if (typeof value === 'string') out[name] = value;
      }
      res.writeHead(statusCode, out);
      body.pipe(res);
    },
    () => {
      res.writeHead(502, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Bad Gateway"}}');
    },
  );
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => {
  const message: HopMessage = { type: 'ready', port: (server.address() as AddressInfo).port };
  if (process.connected) process.send?.(message);
});

let closing = false;
function close(): void {
  if (closing) return;
  closing = true;
  server.close(() => process.exit(0));
  server.closeAllConnections();
  void pool.destroy();
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('message', (message) => {
  if (message === 'stop') close();
});
process.on('disconnect', close);
process.on('SIGTERM', close);
process.on('SIGINT', close);
