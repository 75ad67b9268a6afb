/**
 * `npm run example:tutorial`: the tutorial server on 127.0.0.1:PORT (default 8080) at /mcp, in
 * tutorial mode; `TUTORIAL_MODE=0` gives mcp-warden's default (RFC 6750 / MCP spec) answers.
 * With `MCP_WARDEN_CONFIG` set (see `mcp-warden init`), it also accepts the managed API keys of that
 * configuration, uses its roles, and writes the hash-chained audit log to its store.
 */
import { loadConfig, openServices, type Services } from 'mcp-warden';
import { createTutorialApp } from './app.js';

const port = Number(process.env['PORT'] ?? 8080);
const tutorialMode = process.env['TUTORIAL_MODE'] !== '0';
const configFile = process.env['MCP_WARDEN_CONFIG'];
let services: Services | undefined;
if (configFile !== undefined) {
  services = await openServices(loadConfig(configFile), {
    configFile,
    onError: (error, where) => process.stderr.write(`mcp-warden: ${where}: ${(error as Error).message}\n`),
  });
}
const app = createTutorialApp({ tutorialMode, ...(services === undefined ? {} : { managed: services.wardenOptions }) });
const server = app.listen(port, '127.0.0.1', () => {
  const address = server.address();
  const actual = typeof address === 'object' && address !== null ? address.port : port;
  process.stdout.write(
    `mcp-warden tutorial listening on http://127.0.0.1:${actual}/mcp (${tutorialMode ? 'tutorial mode' : 'default mode'})\n` +
      `Tokens: secret123, another-token, admin-token (read/write/delete), reader-token (read)\n` +
      (configFile === undefined ? '' : `Managed API keys and audit log: ${configFile}\n`) +
      `Try: PORT=${actual} TUTORIAL_MODE=${tutorialMode ? 1 : 0} bash examples/tutorial/curl.sh\n`,
  );
});
const stop = (): void => {
  server.close(() => {
    void (services?.close() ?? Promise.resolve()).finally(() => process.exit(0));
  });
  server.closeAllConnections();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
