/**
 * Keys at rest: whatever a store writes to disk or to the database holds a key's id and hash, never
 * the key or its secret part. Keys are made, rotated and used through the real services.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret, parseKey } from '../../src/keys/format.js';
import { type IssuedKey, KeyService } from '../../src/keys/service.js';
import { createApiKeyVerifier } from '../../src/keys/verifier.js';
import { createPostgresStore, createSqliteStore } from '../../src/store/sql/sql-store.js';
import type { Store } from '../../src/store/types.js';
import { PG_URL, TestSchemas } from './postgres.js';

/** Creates, rotates and uses keys as an operator and a gateway would; returns every plaintext issued. */
async function issueAndUseKeys(store: Store): Promise<IssuedKey[]> {
  const service = new KeyService(store.keys);
  const issued = [
    await service.create({ name: 'ci deploy', roles: ['deployer'] }),
    await service.create({ name: 'analytics', roles: ['reader'], expiresInMs: 86_400_000, note: 'read-only dashboards' }),
    await service.create({ name: 'on-call', roles: ['admin', 'reader'] }),
  ];
  issued.push(await service.rotate(issued[0]?.record.id as string, 60_000));
  await service.revoke(issued[2]?.record.id as string);
  const verifier = createApiKeyVerifier(store.keys);
  for (const key of issued) await verifier.verify({ source: 'bearer', value: key.plaintext });
  await verifier.close();
  return issued;
}

function secretOf(key: IssuedKey): string {
  const parsed = parseKey(key.plaintext);
  if (parsed === undefined) throw new Error(`key ${key.record.id} does not parse`);
  expect(parsed.secret).toHaveLength(43);
  return parsed.secret;
}

async function expectHashesOnly(store: Store, issued: readonly IssuedKey[]): Promise<void> {
  for (const key of issued) {
    const stored = await store.keys.getKey(key.record.id);
    expect(stored?.hash).toBe(hashSecret(key.record.id, secretOf(key)));
    expect(stored?.hash).toMatch(/^[0-9a-f]{64}$/);
  }
}

/** Asserts `haystack` holds each key's id and hash (so the scan saw the keys) but never its plaintext or secret. */
function expectNoPlaintext(haystack: string, issued: readonly IssuedKey[], where: string): void {
  for (const key of issued) {
    const id = key.record.id;
    expect(haystack.includes(id), `${where} should hold key ${id}`).toBe(true);
    expect(haystack.includes(key.record.hash), `${where} should hold the hash of key ${id}`).toBe(true);
    expect(haystack.includes(key.plaintext), `${where} holds the plaintext of key ${id}`).toBe(false);
    expect(haystack.includes(secretOf(key)), `${where} holds the secret part of key ${id}`).toBe(false);
  }
}

describe('Security', () => {
  describe('keys at rest in SQLite', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'mcpw-plaintext-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('stores only hashes: the database file and its WAL never hold a key or its secret', async () => {
      const path = join(dir, 'warden.db');
      const store = createSqliteStore({ path });
      let issued: IssuedKey[];
      try {
        await store.migrate();
        issued = await issueAndUseKeys(store);
        await expectHashesOnly(store, issued);
      } finally {
        await store.close();
      }
      expect(existsSync(path)).toBe(true);
      // Closing checkpoints the WAL into the file; scan whatever SQLite left beside it too.
      const files = readdirSync(dir).filter((name) => name.startsWith('warden.db'));
      const bytes = files.map((name) => readFileSync(join(dir, name)).toString('latin1')).join('\n');
      expectNoPlaintext(bytes, issued, `the SQLite files (${files.join(', ')})`);
    });
  });

  describe('keys at rest in PostgreSQL', () => {
    const schemas = new TestSchemas();
    beforeAll(() => schemas.connect());
    afterAll(() => schemas.dropAll());

    it('stores only hashes: no column of any table in the schema holds a key or its secret', async () => {
      const schema = await schemas.create();
      const store = await createPostgresStore({ url: PG_URL, schema });
      let issued: IssuedKey[];
      try {
        await store.migrate();
        issued = await issueAndUseKeys(store);
        await expectHashesOnly(store, issued);
      } finally {
        await store.close();
      }
      const columns = await schemas.admin.query<{ table_name: string; column_name: string }>(
        'select table_name, column_name from information_schema.columns where table_schema = $1 order by table_name, ordinal_position',
        [schema],
      );
      expect(columns.rows.map((c) => c.table_name)).toContain('mcpw_api_keys');
      const values: string[] = [];
      for (const { table_name: table, column_name: column } of columns.rows) {
        const result = await schemas.admin.query<{ value: string | null }>(`select "${column}"::text as value from ${schema}."${table}"`);
        for (const row of result.rows) if (row.value !== null) values.push(row.value);
      }
      expectNoPlaintext(values.join('\n'), issued, `the tables of schema ${schema}`);
    });
  });
});

describe('Security: SQLite files on disk', () => {
  it('a new database and its -wal and -shm files are readable by their owner only (they hold signing keys), under the common umask 022', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-mode-'));
    const previous = process.umask(0o022);
    try {
      const store = createSqliteStore({ path: join(dir, 'warden.db') });
      await store.migrate();
      await store.secrets.getOrCreate('session-signing-key', () => 'not-a-real-key');
      const modes = Object.fromEntries(readdirSync(dir).map((name) => [name, statSync(join(dir, name)).mode & 0o777]));
      await store.close();
      expect(Object.keys(modes).sort()).toEqual(['warden.db', 'warden.db-shm', 'warden.db-wal']);
      for (const [name, mode] of Object.entries(modes)) expect(mode.toString(8), name).toBe('600');
    } finally {
      process.umask(previous);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
