/** `mcp-warden oauth rotate-keys`: new signing keys in front, the old ones still published. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSigningKeys } from '../../src/oauth/keys.js';
import { createSqliteStore } from '../../src/store/sql/sql-store.js';
import { cli } from './run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'warden-rotate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('mcp-warden oauth rotate-keys', () => {
  it('puts new keys first and keeps the previous public keys for the life of their tokens', async () => {
    const db = join(dir, 'warden.db');
    const config = join(dir, 'mcp-warden.yaml');
    writeFileSync(config, `store: { type: sqlite, path: ${db} }\nroles: { reader: [read] }\nauth: { oauth: { scopes: { "mcp:read": [reader] }, authorizationServer: { enabled: true, accessTokenTtl: 10m } } }\n`);
    const store = createSqliteStore({ path: db });
    await store.migrate();
    const before = (await loadSigningKeys(store.oauth, 3_600_000)).map((k) => k.jwk.kid as string);
    await store.close();

    const result = await cli(dir, ['--config', config, 'oauth', 'rotate-keys', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const printed = JSON.parse(result.stdout) as { active: string[]; retiredKeysPublishedForSeconds: number };
    expect(printed.retiredKeysPublishedForSeconds).toBe(3660);

    const reopened = createSqliteStore({ path: db });
    try {
      const after = (await loadSigningKeys(reopened.oauth, 3_660_000)).map((k) => k.jwk.kid as string);
      expect(after.slice(0, printed.active.length)).toEqual(printed.active);
      expect(after).toEqual(expect.arrayContaining(before));
      expect(printed.active.some((kid) => before.includes(kid))).toBe(false);
    } finally {
      await reopened.close();
    }
  }, 60_000);
});
