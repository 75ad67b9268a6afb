/**
 * The stdio upstream of `bench/gateway.ts`: the `echo` McpServer over stdio, one process per gateway
 * session (the gateway spawns it; the runner gives the gateway the transpiled copy of this file).
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createEchoServer } from './gateway-fixtures.js';

await createEchoServer().connect(new StdioServerTransport());
