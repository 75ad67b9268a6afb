import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const core = (path: string): string => fileURLToPath(new URL(`./packages/core/src/${path}`, import.meta.url));

export default defineConfig({
  // Tests (and the examples they import) run against the sources, so coverage and stack traces point there.
  resolve: {
    alias: [
      { find: /^@mcp-warden\/core$/, replacement: core('index.ts') },
      { find: /^@mcp-warden\/core\/(express|hono|node)$/, replacement: core('adapters/$1.ts') },
      { find: /^mcp-warden$/, replacement: fileURLToPath(new URL('./packages/mcp-warden/src/index.ts', import.meta.url)) },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration tests start real servers on 127.0.0.1; two workers keep this 2-core machine responsive.
    maxWorkers: 2,
    coverage: {
      provider: 'v8',
      include: ['packages/*/src/**/*.ts'],
      reporter: ['text-summary'],
    },
  },
});
