/** A POST to /mcp from `address` with the given Authorization, as the pipeline sees it (shared by the limiter tests). */
export function request(authorization: string, address = '10.0.0.7') {
  const headers: Record<string, string> = { host: 'localhost', 'content-type': 'application/json', authorization };
  return {
    method: 'POST',
    url: '/mcp',
    header: (name: string) => headers[name],
    headerCount: (name: string) => (headers[name] === undefined ? 0 : 1),
    remoteAddress: address,
  };
}

export const body = { read: async () => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) };

/**
 * A 2026-07-28 `server/discover` to a gateway endpoint: it needs no session, so each one is a
 * complete exchange with the upstream (what the request-rate tests count). Answers the status.
 */
export async function discover(url: string, token: string): Promise<number> {
  const response = await discoverResponse(url, token);
  await response.arrayBuffer();
  return response.status;
}

/** {@link discover}, answering the whole response. */
export function discoverResponse(url: string, token: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'server/discover' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'server/discover',
      params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} } },
    }),
  });
}
