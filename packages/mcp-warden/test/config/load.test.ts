import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';

function problems(text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(text, '/etc/mcp-warden.yaml', env);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  return [];
}

describe('parseConfig', () => {
  it('fills every default from an empty file', () => {
    const config = parseConfig('', '/srv/app/mcp-warden.yaml', {});
    expect(config.store).toEqual({ type: 'sqlite', path: '/srv/app/.warden/warden.db' });
    expect(config.auth.apiKeys).toEqual({ enabled: true, cacheTtl: 30_000 });
    expect(config.auth.rateLimit.perAddress).toEqual({ attempts: 20, window: 60_000, block: 300_000 });
    expect(config.audit.queue).toEqual({ capacity: 10_000, batchSize: 500, flushInterval: 50, onFull: 'reject' });
    expect(config.audit.sinks).toEqual(['database']);
    expect(config.server).toMatchObject({ host: '127.0.0.1', port: 8080, shutdownGrace: 10_000, maxBodyBytes: 1024 * 1024 });
  });

  it('parses durations and expands ${ENV} references', () => {
    const config = parseConfig('store: { type: postgres, url: "${DATABASE_URL}" }\naudit: { retention: 90d, queue: { flushInterval: 100ms } }\n', 'f.yaml', {
      DATABASE_URL: 'postgres://db/x',
    });
    expect(config.store).toEqual({ type: 'postgres', url: 'postgres://db/x' });
    expect(config.audit.retention).toBe(90 * 86_400_000);
    expect(config.audit.queue.flushInterval).toBe(100);
  });

  it('names the file, the key path, what was expected and what was found', () => {
    expect(problems('audit:\n  queue:\n    capacity: lots\n')).toEqual([
      '/etc/mcp-warden.yaml: audit.queue.capacity: expected number, found string "lots"',
    ]);
    expect(problems('auth:\n  apiKeys:\n    cacheTtl: forever\n')).toEqual([
      '/etc/mcp-warden.yaml: auth.apiKeys.cacheTtl: expected a duration such as 500ms, 30s, 15m, 24h or 30d, found string "forever"',
    ]);
    expect(problems('roles:\n  reader: [read, wrte]\n')).toEqual([
      '/etc/mcp-warden.yaml: roles.reader[1]: expected one of "read", "write", "delete", found string "wrte"',
    ]);
    expect(problems('store: { type: mysql }\n')[0]).toMatch(/^\/etc\/mcp-warden\.yaml: store\.type: /);
    expect(problems('audit:\n  queue:\n    onFul: drop\n')).toEqual(['/etc/mcp-warden.yaml: audit.queue: unknown key "onFul"']);
  });

  it('Security: never prints the value of a secret it refuses, only its length', () => {
    const env = { SS: 'short-SECRETVALUE', MT: 'tiny-MTSECRET' };
    const found = problems('server: { sessionSecret: "${SS}", metricsToken: "${MT}" }\n', env);
    expect(found).toEqual([
      '/etc/mcp-warden.yaml: server.sessionSecret: expected at least 32 characters, found a string of 17 characters (not shown: a secret)',
      '/etc/mcp-warden.yaml: server.metricsToken: expected at least 16 characters, found a string of 13 characters (not shown: a secret)',
    ]);
    expect(found.join('\n')).not.toMatch(/SECRETVALUE|MTSECRET/);
    // Written unquoted, a secret is a number: not shown either.
    expect(problems('server: { metricsToken: 1234567890123456789 }\n')).toEqual([
      '/etc/mcp-warden.yaml: server.metricsToken: expected string, found a number (not shown: a secret)',
    ]);
    // A token from the environment written where an entry belongs.
    const token = problems('auth: { staticTokens: ["${CI_TOKEN}"] }\n', { CI_TOKEN: 'mcpw_live_abcdef' });
    expect(token).toEqual(['/etc/mcp-warden.yaml: auth.staticTokens[0]: expected object, found a string of 16 characters (not shown: a secret)']);
    // A header or variable written as one key (`Authorization=Bearer …`): the key is not shown.
    const keys = problems('upstreams:\n  api: { type: http, url: "http://127.0.0.1:1/mcp", headers: { "Authorization=Bearer sk-live-123": x } }\n  tool: { type: stdio, command: node, env: { "API_KEY=sk-live-456": x } }\n');
    expect(keys).toEqual([
      '/etc/mcp-warden.yaml: upstreams.api.headers: expected a header name, found key "Authorization" followed by 19 characters (not shown: they may hold a secret)',
      '/etc/mcp-warden.yaml: upstreams.tool.env: expected an environment variable name, found key "API_KEY" followed by 12 characters (not shown: they may hold a secret)',
    ]);
    // A URL's query may carry a key: not shown.
    const url = problems('upstreams:\n  api: { type: http, url: "${UP_URL}" }\n', { UP_URL: 'wss://up.example/mcp?api_key=sk-live-999' });
    expect(url).toEqual(['/etc/mcp-warden.yaml: upstreams.api.url: expected an http(s) URL, found string "wss://up.example/mcp?***"']);
    expect([...token, ...keys, ...url].join('\n')).not.toMatch(/sk-live|mcpw_live/);
    // Values that are not secrets are still shown as found, durations of token lifetimes included.
    expect(problems('server: { host: 5 }\n')).toEqual(['/etc/mcp-warden.yaml: server.host: expected string, found number 5']);
    expect(problems('auth:\n  apiKeys:\n    cacheTtl: forever\n')[0]).toContain('found string "forever"');
  });

  it('names a bad key of a map, and what a key must be, rather than describing its value', () => {
    expect(problems('upstreams:\n  Bad_Name: { type: stdio, command: node }\n')).toEqual([
      '/etc/mcp-warden.yaml: upstreams: expected a lower-case name (letters, digits, - and _) used in the path /mcp/<name>, found key "Bad_Name"',
    ]);
    expect(problems('upstreams:\n  tools: { type: stdio, command: node, env: { 1BAD: x } }\n')).toEqual([
      '/etc/mcp-warden.yaml: upstreams.tools.env: expected an environment variable name, found key "1BAD"',
    ]);
    expect(problems('upstreams:\n  api: { type: http, url: "http://127.0.0.1:1/mcp", headers: { "bad header": x } }\n')).toEqual([
      '/etc/mcp-warden.yaml: upstreams.api.headers: expected a header name, found key "bad" followed by 7 characters (not shown: they may hold a secret)',
    ]);
  });

  it('checks store.schema as PostgreSQL will need it: a lower-case identifier', () => {
    expect(parseConfig('store: { type: postgres, url: "postgres://db/x", schema: warden_1 }\n', 'f.yaml', {}).store).toMatchObject({ schema: 'warden_1' });
    for (const bad of ['Bad-Schema', 'Warden', '1st', 'a;drop', 'x'.repeat(64)]) {
      expect(problems(`store: { type: postgres, url: "postgres://db/x", schema: "${bad}" }\n`)).toEqual([
        `/etc/mcp-warden.yaml: store.schema: expected a lower-case SQL identifier (a-z, 0-9 and _, at most 63), found string "${bad}"`,
      ]);
    }
  });

  it('refuses inline static tokens and missing environment variables', () => {
    expect(problems('auth:\n  staticTokens:\n    - { id: bot, token: s3cret, roles: [reader] }\n')).toEqual([
      '/etc/mcp-warden.yaml: auth.staticTokens[0]: unknown key "token"',
      '/etc/mcp-warden.yaml: auth.staticTokens[0]: expected exactly one of tokenEnv or sha256 (no inline tokens), found a mapping',
    ]);
    expect(problems('store: { type: postgres, url: "${NOPE}" }\n')).toEqual(['/etc/mcp-warden.yaml: store.url: environment variable NOPE is not set']);
  });

  it('reads upstreams.<name>.inputTimeout for stdio upstreams (default 5m), positive and at most 24d, and refuses it on http upstreams', () => {
    const stdio = (extra: string): string => `upstreams:\n  tools:\n    type: stdio\n    command: node${extra}\n`;
    expect(parseConfig(stdio(''), 'f.yaml', {}).upstreams['tools']).toMatchObject({ type: 'stdio', inputTimeout: 300_000 });
    expect(parseConfig(stdio('\n    inputTimeout: 30s'), 'f.yaml', {}).upstreams['tools']).toMatchObject({ inputTimeout: 30_000 });
    expect(parseConfig(stdio('\n    inputTimeout: 24d'), 'f.yaml', {}).upstreams['tools']).toMatchObject({ inputTimeout: 24 * 86_400_000 });
    const expected = 'expected a duration above 0 and at most 24d, such as 30s or 5m';
    expect(problems(stdio('\n    inputTimeout: soon'))).toEqual([`/etc/mcp-warden.yaml: upstreams.tools.inputTimeout: ${expected}, found string "soon"`]);
    expect(problems(stdio('\n    inputTimeout: 0s'))).toEqual([`/etc/mcp-warden.yaml: upstreams.tools.inputTimeout: ${expected}, found string "0s"`]);
    // Node's timers fire at once past 2^31-1 ms (24.8 days): a longer wait would end every call at once.
    expect(problems(stdio('\n    inputTimeout: 25d'))).toEqual([`/etc/mcp-warden.yaml: upstreams.tools.inputTimeout: ${expected}, found string "25d"`]);
    expect(problems(stdio('\n    inputTimeout: 300000'))).toEqual(['/etc/mcp-warden.yaml: upstreams.tools.inputTimeout: expected string, found number 300000']);
    expect(problems('upstreams:\n  api:\n    type: http\n    url: https://mcp.example.com/mcp\n    inputTimeout: 30s\n')).toEqual([
      '/etc/mcp-warden.yaml: upstreams.api: unknown key "inputTimeout"',
    ]);
  });

  it("refuses an upstream timeout of 0 or past 24 days (a timer would fire at once: every request would time out)", () => {
    const expected = 'expected a duration above 0 and at most 24d, such as 30s or 5m';
    const http = (timeout: string): string => `upstreams:\n  api:\n    type: http\n    url: https://mcp.example.com/mcp\n    timeout: ${timeout}\n`;
    const stdio = (timeout: string): string => `upstreams:\n  tools:\n    type: stdio\n    command: node\n    timeout: ${timeout}\n`;
    expect(parseConfig(http('45s'), 'f.yaml', {}).upstreams['api']).toMatchObject({ timeout: 45_000 });
    expect(parseConfig(stdio('2m'), 'f.yaml', {}).upstreams['tools']).toMatchObject({ timeout: 120_000 });
    for (const bad of ['0s', '30d']) {
      expect(problems(http(bad))).toEqual([`/etc/mcp-warden.yaml: upstreams.api.timeout: ${expected}, found string "${bad}"`]);
      expect(problems(stdio(bad))).toEqual([`/etc/mcp-warden.yaml: upstreams.tools.timeout: ${expected}, found string "${bad}"`]);
    }
  });

  it('bounds the other durations that feed timers: flushInterval above 0, shutdownGrace and restart.backoff may be 0; none past 24d', () => {
    const stdio = (backoff: string): string => `upstreams:\n  tools:\n    type: stdio\n    command: node\n    restart: { backoff: ${backoff} }\n`;
    expect(parseConfig(stdio('0s'), 'f.yaml', {}).upstreams['tools']).toMatchObject({ restart: { backoff: 0 } });
    expect(problems(stdio('25d'))).toEqual(['/etc/mcp-warden.yaml: upstreams.tools.restart.backoff: expected a duration of at most 24d, such as 0s, 500ms or 10s, found string "25d"']);
    expect(parseConfig('server: { shutdownGrace: 0s }\n', 'f.yaml', {}).server.shutdownGrace).toBe(0);
    expect(problems('server: { shutdownGrace: 30d }\n')).toEqual(['/etc/mcp-warden.yaml: server.shutdownGrace: expected a duration of at most 24d, such as 0s, 500ms or 10s, found string "30d"']);
    expect(problems('audit: { queue: { flushInterval: 0s } }\n')).toEqual(['/etc/mcp-warden.yaml: audit.queue.flushInterval: expected a duration above 0 and at most 24d, such as 30s or 5m, found string "0s"']);
  });

  it('reports YAML syntax errors with a line number', () => {
    expect(problems('roles:\n  reader: [read\n')[0]).toMatch(/^\/etc\/mcp-warden\.yaml: line \d+: /);
  });
});
