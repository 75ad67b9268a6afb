/**
 * `mcp-warden grants list|revoke` as an operator runs it (the built CLI on a SQLite file), against
 * consent given through the authorization server with the real UserService as its directory.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSqliteStore } from '../../src/store/sql/sql-store.js';
import { UserService } from '../../src/users/service.js';
import { cli } from '../cli/run-cli.js';
import { PASSWORD, closeAll, fullFlow, startAs, tokenRequest } from './as-harness.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcpw-grants-'));
  writeFileSync(join(dir, 'mcp-warden.yaml'), 'store: { type: sqlite, path: ./warden.db }\nroles:\n  reader: [read]\n');
});
afterEach(closeAll);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('mcp-warden grants', () => {
  it('lists consent by user, revokes it, and the client\'s refresh token stops working', async () => {
    const path = join(dir, 'warden.db');
    const setup = createSqliteStore({ path });
    await setup.migrate();
    const users = new UserService(setup.users, { hashing: { memoryCostKib: 1024, timeCost: 1 } });
    const alice = await users.add('alice', PASSWORD, ['reader']);
    await users.add('bob', PASSWORD, ['reader']);
    const as = await startAs({ store: setup, directory: users, keepStoreOpen: true });
    const { tokens, client } = await fullFlow(as);
    await as.close();
    await setup.close();

    const listed = await cli(dir, ['grants', 'list', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const rows = JSON.parse(listed.stdout) as Record<string, unknown>[];
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ user: 'alice', userId: alice.id, client: client.client_id, scopes: ['mcp:read'], resources: [as.resource] });
    expect(JSON.parse((await cli(dir, ['grants', 'list', '--user', 'bob', '--json'])).stdout)).toEqual([]);
    expect((await cli(dir, ['grants', 'list', '--user', 'nobody'])).code).toBe(3);
    const table = await cli(dir, ['grants', 'list', '--user', 'alice']);
    expect(table.stdout).toContain(client.client_id);

    const revoked = await cli(dir, ['grants', 'revoke', '--user', 'alice', '--client', client.client_id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain('Revoked');
    expect((await cli(dir, ['grants', 'revoke', '--user', 'alice', '--client', client.client_id])).code).toBe(3);
    expect(JSON.parse((await cli(dir, ['grants', 'list', '--json'])).stdout)).toEqual([]);

    const reopened = createSqliteStore({ path });
    const after = await startAs({ store: reopened, directory: new UserService(reopened.users) });
    const refreshed = await tokenRequest(after.base, { grant_type: 'refresh_token', refresh_token: tokens['refresh_token'] as string, client_id: client.client_id });
    expect(refreshed.body['error']).toBe('invalid_grant');
    // Eight CLI processes on a shared machine.
  }, 120_000);
});
