import { createLocalJWKSet, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { IdentitySigner } from '../../src/server/identity.js';
import { createMemoryStore } from '../../src/store/memory.js';

const principal = { id: 'k1', kind: 'api-key', subject: 'ci-bot', roles: ['reader'], scopes: [], claims: {} };

describe('IdentitySigner', () => {
  it('signs short-lived tokens an upstream can verify with the published JWKS', async () => {
    const signer = await IdentitySigner.open(createMemoryStore().secrets, 'http://127.0.0.1:8080');
    const { token, expiresAt } = await signer.token(principal, 'http://upstream.local/mcp', 60_000);
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(signer.jwks()), {
      issuer: 'http://127.0.0.1:8080',
      audience: 'http://upstream.local/mcp',
      algorithms: ['ES256'],
    });
    expect(payload).toMatchObject({ sub: 'ci-bot', roles: ['reader'], principal_id: 'k1', principal_kind: 'api-key', exp: expiresAt });
    expect(expiresAt - (payload.iat as number)).toBe(60);
    expect(protectedHeader.kid).toBe(signer.jwks().keys[0]?.kid);
    expect(signer.jwks().keys[0]).not.toHaveProperty('d');
  });

  it('shares one key among instances on one store, and reuses tokens while fresh', async () => {
    const store = createMemoryStore();
    const a = await IdentitySigner.open(store.secrets, 'iss');
    const b = await IdentitySigner.open(store.secrets, 'iss');
    expect(a.jwks()).toEqual(b.jwks());
    const first = await a.token(principal, 'aud', 60_000);
    expect((await a.token(principal, 'aud', 60_000)).token).toBe(first.token);
    expect((await a.token({ ...principal, id: 'k2' }, 'aud', 60_000)).token).not.toBe(first.token);
  });

  describe('Security', () => {
    it('never reuses a token whose roles are no longer the principal\'s (a key given fewer roles)', async () => {
      const signer = await IdentitySigner.open(createMemoryStore().secrets, 'iss');
      const admin = { ...principal, roles: ['admin', 'reader'] };
      const before = await signer.token(admin, 'aud', 60_000);
      const after = await signer.token({ ...admin, roles: ['reader'] }, 'aud', 60_000);
      expect(after.token).not.toBe(before.token);
      const { payload } = await jwtVerify(after.token, createLocalJWKSet(signer.jwks()), { audience: 'aud' });
      expect(payload['roles']).toEqual(['reader']);
    });

    it("states an OAuth caller's authority as its roles AND its scopes allow: an admin's read-only token does not say admin", async () => {
      // Found by an adversarial probe: the upstream got roles ["admin"] for a token consented to mcp:read.
      const signer = await IdentitySigner.open(createMemoryStore().secrets, 'iss');
      const scopes = { 'mcp:read': ['reader'], 'mcp:admin': ['admin', 'reader'] };
      const delegated = { ...principal, kind: 'jwt', roles: ['admin', 'reader'], scopes: ['mcp:read', 'openid'], scopeLimited: true };
      const verify = async (token: string) => (await jwtVerify(token, createLocalJWKSet(signer.jwks()), { audience: 'aud' })).payload;
      const read = await verify((await signer.token(delegated, 'aud', 60_000, scopes)).token);
      expect(read).toMatchObject({ roles: ['reader'], user_roles: ['admin', 'reader'], scope: 'mcp:read openid', scope_roles: ['reader'] });
      const adminOnly = await verify((await signer.token({ ...delegated, roles: ['admin'] }, 'aud', 60_000, scopes)).token);
      expect(adminOnly['roles']).toEqual([]);
      // A wider consent gives a new token, with the roles it grants.
      const wide = await verify((await signer.token({ ...delegated, scopes: ['mcp:admin'] }, 'aud', 60_000, scopes)).token);
      expect(wide['roles']).toEqual(['admin', 'reader']);
      // Keys and static tokens are not scope-limited: their roles as before, no scope claims.
      const key = await verify((await signer.token(principal, 'aud', 60_000, scopes)).token);
      expect(key['roles']).toEqual(['reader']);
      expect(key).not.toHaveProperty('scope');
    });

    it('binds the audience: a token for one upstream does not verify for another', async () => {
      const signer = await IdentitySigner.open(createMemoryStore().secrets, 'iss');
      const { token } = await signer.token(principal, 'http://a/mcp', 60_000);
      await expect(jwtVerify(token, createLocalJWKSet(signer.jwks()), { audience: 'http://b/mcp' })).rejects.toThrow(/aud/);
    });
  });
});
