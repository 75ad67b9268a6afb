/**
 * Tokens at rest (OAuth 2.1 §7.1; MCP authorization "Token Theft"): the authorization server's
 * database holds no usable refresh token, code or access token — only their SHA-256 — and the
 * hashed lookups still work (refresh, rotation, reuse detection).
 */
import { readFileSync, readdirSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createSqliteStore } from '../../src/store/sql/sql-store.js';
import { closeAll, fullFlow, startAs, tokenRequest } from './as-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'mcpw-as-storage-'));
afterEach(closeAll);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Security: tokens at rest', () => {
  it('the SQLite files (database and WAL) never contain a refresh token in the clear, and refresh still works', async () => {
    const path = join(dir, 'as.db');
    const running = await startAs({ store: createSqliteStore({ path }) });
    const { tokens, client } = await fullFlow(running);
    const first = tokens['refresh_token'] as string;
    const refreshed = await tokenRequest(running.base, { grant_type: 'refresh_token', refresh_token: first, client_id: client.client_id, resource: running.resource });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    const second = refreshed.body['refresh_token'] as string;
    expect(second).not.toBe(first);
    // Reuse of the rotated token is still detected through the hashed key.
    expect((await tokenRequest(running.base, { grant_type: 'refresh_token', refresh_token: first, client_id: client.client_id, resource: running.resource })).status).toBe(400);
    const files = readdirSync(dir).filter((f) => f.startsWith('as.db'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const bytes = readFileSync(join(dir, file)).toString('latin1');
      for (const secret of [first, second]) expect(bytes.includes(secret), `${file} holds a refresh token`).toBe(false);
    }
  });
});
