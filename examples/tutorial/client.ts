/**
 * The tutorial's client: connects with an Authorization header and lists the tools it may see.
 * Usage: tsx examples/tutorial/client.ts [token] (URL from MCP_URL, default http://127.0.0.1:8080/mcp).
 * In tutorial mode the raw token is sent (`Authorization: secret123`); with TUTORIAL_MODE=0, `Bearer <token>`.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

/** Connects, lists tool names, and closes. */
export async function listToolsWith(url: string, authorization: string): Promise<string[]> {
  const client = new Client({ name: 'mcp-warden-tutorial-client', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: authorization } } }));
  try {
    const { tools } = await client.listTools();
    return tools.map((t) => t.name);
  } finally {
    await client.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const token = process.argv[2] ?? 'secret123';
  const url = process.env['MCP_URL'] ?? 'http://127.0.0.1:8080/mcp';
  const authorization = process.env['TUTORIAL_MODE'] === '0' ? `Bearer ${token}` : token;
  const names = await listToolsWith(url, authorization);
  process.stdout.write(`${names.join('\n')}\n`);
}
