/**
 * `npm run example:sdk-v2`: the SDK v2 note server on 127.0.0.1:PORT (default 8080) at /mcp.
 * Try it with any MCP client and `Authorization: Bearer reader-token` (read) or `Bearer admin-token`.
 */
import { createSdkV2App } from './app.js';

const port = Number(process.env['PORT'] ?? 8080);
const { app, handler } = createSdkV2App();
const server = app.listen(port, '127.0.0.1', () => {
  const address = server.address();
  const actual = typeof address === 'object' && address !== null ? address.port : port;
  process.stdout.write(
    `mcp-warden SDK v2 example listening on http://127.0.0.1:${actual}/mcp\n` +
      `Tokens: secret123, another-token, admin-token (read/write/delete), reader-token (read)\n`,
  );
});
const stop = (): void => {
  void handler.close();
  server.close(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
