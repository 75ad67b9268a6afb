/**
 * `npm run example:tutorial`: the tutorial server on 127.0.0.1:PORT (default 8080) at /mcp, in
 * tutorial mode; `TUTORIAL_MODE=0` gives mcp-warden's default (RFC 6750 / MCP spec) answers.
 */
import { createTutorialApp } from './app.js';

const port = Number(process.env['PORT'] ?? 8080);
const tutorialMode = process.env['TUTORIAL_MODE'] !== '0';
const app = createTutorialApp({ tutorialMode });
const server = app.listen(port, '127.0.0.1', () => {
  const address = server.address();
  const actual = typeof address === 'object' && address !== null ? address.port : port;
  process.stdout.write(
    `mcp-warden tutorial listening on http://127.0.0.1:${actual}/mcp (${tutorialMode ? 'tutorial mode' : 'default mode'})\n` +
      `Tokens: secret123, another-token, admin-token (read/write/delete), reader-token (read)\n` +
      `Try: PORT=${actual} TUTORIAL_MODE=${tutorialMode ? 1 : 0} bash examples/tutorial/curl.sh\n`,
  );
});
const stop = (): void => {
  server.close(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
