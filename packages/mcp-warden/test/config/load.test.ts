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

  it('refuses inline static tokens and missing environment variables', () => {
    expect(problems('auth:\n  staticTokens:\n    - { id: bot, token: s3cret, roles: [reader] }\n')).toEqual([
      '/etc/mcp-warden.yaml: auth.staticTokens[0]: unknown key "token"',
      '/etc/mcp-warden.yaml: auth.staticTokens[0]: expected exactly one of tokenEnv or sha256 (no inline tokens), found a mapping',
    ]);
    expect(problems('store: { type: postgres, url: "${NOPE}" }\n')).toEqual(['/etc/mcp-warden.yaml: store.url: environment variable NOPE is not set']);
  });

  it('reports YAML syntax errors with a line number', () => {
    expect(problems('roles:\n  reader: [read\n')[0]).toMatch(/^\/etc\/mcp-warden\.yaml: line \d+: /);
  });
});
