/** JSON-RPC answers the upstream proxies write themselves (errors before or instead of the upstream's). */
import type { ServerResponse } from 'node:http';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';

export type JsonRpcId = string | number | null;

/** The id of a single JSON-RPC request body, or null (a batch, a notification, no body). */
export function requestIdOf(body: unknown): JsonRpcId {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null;
  const id = (body as { id?: unknown }).id;
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

/** Ends `res` with a JSON-RPC error, or just ends it once headers are out (nothing else is possible then). */
export function jsonRpcError(res: ServerResponse, status: number, id: JsonRpcId, code: number, message: string): void {
  if (res.headersSent || res.writableEnded) {
    if (!res.writableEnded && !res.destroyed) res.end();
    return;
  }
  const body = JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) }).end(body);
}

/** A request: a method and an id. */
export function isRequest(m: JSONRPCMessage): m is JSONRPCMessage & { id: RequestId; method: string; params?: Record<string, unknown> } {
  return 'method' in m && 'id' in m && m.id !== undefined;
}

/** A response (a result or an error): an id and no method. */
export function isResponse(m: JSONRPCMessage): m is JSONRPCMessage & { id: RequestId } {
  return !('method' in m) && 'id' in m;
}
