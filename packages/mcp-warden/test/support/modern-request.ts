/**
 * A raw MCP 2026-07-28 request, as a session-less client sends it: the `_meta` envelope in the body,
 * and `Mcp-Method` (and `Mcp-Name`) headers beside `MCP-Protocol-Version`.
 */
export const MODERN_ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
} as const;

/** POSTs `method` with `params` (the envelope added) to an MCP endpoint, with the caller's key. */
export function postModern(endpoint: string, key: string, method: string, params: Record<string, unknown>, name?: string): Promise<Response> {
  return fetch(endpoint, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      ...(name === undefined ? {} : { 'mcp-name': name }),
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: MODERN_ENVELOPE } }),
  });
}
