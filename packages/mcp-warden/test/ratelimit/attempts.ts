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
