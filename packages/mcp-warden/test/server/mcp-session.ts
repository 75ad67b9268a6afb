/** Raw MCP requests for gateway tests that assert HTTP statuses and challenges (an SDK client would hide them). */

/** POSTs a JSON-RPC body to an MCP endpoint with a bearer token (or none). */
export function postMcp(url: string, token: string | undefined, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

/**
 * A tools/call in a 2025-11-25 session that `sessionToken` opened (a stdio upstream keeps a child
 * per session); answers the initialize response itself when that was refused.
 */
export async function callToolInSession(url: string, token: string, name: string, sessionToken = token): Promise<Response> {
  const init = await postMcp(url, sessionToken, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'test', version: '1' } },
  });
  if (init.status !== 200) return init;
  const session = init.headers.get('mcp-session-id') ?? '';
  return postMcp(url, token, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: {} } }, { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' });
}
