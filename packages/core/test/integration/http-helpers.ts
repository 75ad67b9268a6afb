import { once } from 'node:events';
import type { Server } from 'node:http';
import { connect } from 'node:net';

/** Listens on 127.0.0.1 at a free port; returns the base URL. */
export async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no address');
  return `http://127.0.0.1:${address.port}`;
}

export async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

export const MCP_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-11-25',
} as const;

/** POSTs a JSON-RPC body with fetch; returns status, headers and the parsed JSON (or SSE data). */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, { method: 'POST', headers: { ...MCP_HEADERS, ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await response.text();
  let json: unknown;
  const type = response.headers.get('content-type') ?? '';
  if (type.includes('text/event-stream')) {
    const data = text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
    json = data.length === 1 ? JSON.parse(data[0] as string) : data.map((d) => JSON.parse(d));
  } else {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: response.status, headers: response.headers, text, json: json as any };
}

/** Sends bytes as they are over a raw socket (for what fetch refuses to send); returns the status line's code and the raw answer. */
export async function rawRequest(baseUrl: string, raw: string | Buffer, timeoutMs = 5000): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(baseUrl);
  const socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.write(raw);
  await Promise.race([
    once(socket, 'close'),
    new Promise((resolve) => setTimeout(resolve, timeoutMs)),
  ]);
  socket.destroy();
  const text = Buffer.concat(chunks).toString('utf8');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  return { status, text };
}
