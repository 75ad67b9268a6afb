/**
 * The authorization server's state in SQLite survives a restart: signing keys (same JWKS), cookie
 * keys (the browser stays signed in), grants (no new consent) and refresh tokens; rotated keys stay
 * published; expired records are pruned.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadSigningKeys, rotateSigningKeys } from '../../src/oauth/keys.js';
import { createSqliteStore } from '../../src/store/sql/sql-store.js';
import { Browser, TestUsers, authorize, closeAll, fullFlow, headerOf, pkce, startAs, tokenRequest } from './as-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'mcpw-as-'));
let files = 0;
const dbPath = (): string => join(dir, `as-${++files}.db`);

afterEach(closeAll);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const kids = (jwks: { keys: JsonWebKey[] }): string[] => jwks.keys.map((k) => (k as { kid: string }).kid).sort();

describe('SQLite: state survives a restart', () => {
  it('keeps keys, the browser session, the grant and the refresh token', async () => {
    const path = dbPath();
    const users = new TestUsers();
    const before = await startAs({ store: createSqliteStore({ path }), users });
    const port = Number(new URL(before.base).port);
    const { tokens, client, browser } = await fullFlow(before);
    const jwksBefore = before.as.jwks();
    await before.close();

    const after = await startAs({ store: createSqliteStore({ path }), users, port });
    expect(after.base).toBe(before.base);
    expect(kids(after.as.jwks())).toEqual(kids(jwksBefore));
    // A token signed before the restart verifies with the keys after it.
    await jwtVerify(tokens['access_token'] as string, createLocalJWKSet(after.as.jwks() as never), { issuer: after.base, audience: after.resource });

    const refreshed = await tokenRequest(after.base, { grant_type: 'refresh_token', refresh_token: tokens['refresh_token'] as string, client_id: client.client_id, resource: after.resource });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);

    // Same browser: still signed in, consent remembered: straight back to the client.
    const { challenge } = pkce();
    const again = await authorize(browser, after.base, { clientId: client.client_id, redirectUri: client.redirect_uri, resource: after.resource, challenge, challengeMethod: 'S256' });
    expect(again.pages).toEqual([]);
    expect(again.callback.searchParams.get('code')).not.toBeNull();
  });

  it('a rotation keeps the old public keys published and signs new tokens with the new key', async () => {
    const path = dbPath();
    const before = await startAs({ store: createSqliteStore({ path }) });
    const port = Number(new URL(before.base).port);
    const old = await fullFlow(before);
    const oldKid = headerOf(old.tokens['access_token'] as string)['kid'] as string;
    await before.close();

    const store = createSqliteStore({ path });
    await store.migrate();
    const newKids = await rotateSigningKeys(store.oauth, 3_600_000);
    await store.close();

    const after = await startAs({ store: createSqliteStore({ path }), port });
    expect(kids(after.as.jwks())).toEqual(expect.arrayContaining([oldKid, ...newKids]));
    await jwtVerify(old.tokens['access_token'] as string, createLocalJWKSet(after.as.jwks() as never), { issuer: after.base });
    const fresh = await fullFlow(after, { browser: new Browser() });
    const freshKid = headerOf(fresh.tokens['access_token'] as string)['kid'] as string;
    expect(newKids).toContain(freshKid);
    expect(freshKid).not.toBe(oldKid);
  });

  it('drops retired keys once every token they signed has expired', async () => {
    const store = createSqliteStore({ path: dbPath() });
    await store.migrate();
    const t0 = 1_800_000_000_000;
    const first = (await loadSigningKeys(store.oauth, 60_000, t0)).map((k) => k.jwk.kid);
    const second = await rotateSigningKeys(store.oauth, 60_000, t0 + 1_000);
    expect((await loadSigningKeys(store.oauth, 60_000, t0 + 30_000)).map((k) => k.jwk.kid)).toEqual([...second, ...first]);
    expect((await loadSigningKeys(store.oauth, 60_000, t0 + 61_001)).map((k) => k.jwk.kid)).toEqual(second);
    await store.close();
  });

  it('two instances starting at once end up with one key set', async () => {
    const path = dbPath();
    const a = createSqliteStore({ path });
    const b = createSqliteStore({ path });
    await a.migrate();
    await b.migrate();
    const [ka, kb] = await Promise.all([loadSigningKeys(a.oauth, 60_000), loadSigningKeys(b.oauth, 60_000)]);
    expect(ka.map((k) => k.jwk.kid)).toEqual(kb.map((k) => k.jwk.kid));
    await a.close();
    await b.close();
  });
});
