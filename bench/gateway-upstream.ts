/**
 * Child process of `bench/gateway.ts`: the upstream MCP server over Streamable HTTP on 127.0.0.1 (a
 * random port), an Express app as in the SDK's stateless example (a new server and transport per
 * request, `express.json()`), with two endpoints: `/echo` (the `echo` McpServer) and `/catalog`
 * (the 1,000-tool server). Reports its port over IPC and closes when told to, or when the runner goes.
 *
 * Usage (by the runner only): node <transpiled copy of this file>
 */
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import express, { type Request, type Response } from 'express';
import { createCatalogServer, createEchoServer } from './gateway-fixtures.js';

export type UpstreamMessage = { type: 'ready'; port: number };

interface Connectable {
  connect(transport: StreamableHTTPServerTransport): Promise<void>;
  close(): Promise<void>;
}

/** The SDK's stateless handler: a new server and transport per request. */
function statelessHandler(createServer: () => Connectable) {
  return async function mcpHandler(req: Request, res: Response): Promise<void> {
    const server = createServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(req, res, req.body);
    } catch {
      if (!res.headersSent) res.status(500).json({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal server error' }, id: null });
    }
  };
}

if (process.send === undefined) {
  console.error('gateway-upstream: must be started by bench/gateway.ts (with an IPC channel)');
  process.exit(2);
}

const app = express();
app.use(express.json({ limit: '4mb' }));
app.all('/echo', statelessHandler(createEchoServer));
app.all('/catalog', statelessHandler(createCatalogServer));

const server = app.listen(0, '127.0.0.1', () => {
  const message: UpstreamMessage = { type: 'ready', port: (server.address() as AddressInfo).port };
  if (process.connected) process.send?.(message);
});
server.keepAliveTimeout = 30_000;

let closing = false;
function close(): void {
  if (closing) return;
  closing = true;
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('message', (message) => {
  if (message === 'stop') close();
});
process.on('disconnect', close);
process.on('SIGTERM', close);
process.on('SIGINT', close);
