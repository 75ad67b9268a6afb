import { crc32 } from 'node:zlib';
import type { Credential, VerificationResult } from '@mcp-warden/core';
import { afterEach, describe, expect, it } from 'vitest';
import { hashSecret, mintKey, newKeyId, parseKey } from '../../src/keys/format.js';
import { type IssuedKey, KeyNotFoundError, KeyService, keyStatus } from '../../src/keys/service.js';
import { type ApiKeyVerifier, type ApiKeyVerifierOptions, createApiKeyVerifier } from '../../src/keys/verifier.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { ApiKeyRecord, KeyStore } from '../../src/store/types.js';

const T0 = Date.UTC(2026, 0, 15, 9, 0, 0);
const MINUTE = 60_000;
const DAY = 86_400_000;
/** Long enough that the background flush never runs during a test: flushes are explicit. */
const NO_BACKGROUND_FLUSH = 3_600_000;

/** A memory key store that counts reads and writes of last use, can pin its change token, and can fail. */
class ObservedKeyStore implements KeyStore {
  readonly inner = createMemoryStore().keys;
  getKeyCalls = 0;
  readonly touches: Map<string, number>[] = [];
  /** When set, changeToken() answers this instead of the memory store's counter. */
  pinnedToken: number | undefined;
  getKeyError: Error | undefined;
  touchError: Error | undefined;
  /** When set, touchKeys waits for it before writing. */
  touchGate: Promise<void> | undefined;

  insertKey(record: ApiKeyRecord): Promise<void> {
    return this.inner.insertKey(record);
  }
  async getKey(id: string): Promise<ApiKeyRecord | undefined> {
    this.getKeyCalls++;
    if (this.getKeyError !== undefined) throw this.getKeyError;
    return this.inner.getKey(id);
  }
  listKeys(): Promise<ApiKeyRecord[]> {
    return this.inner.listKeys();
  }
  revokeKey(id: string, at: number): Promise<boolean> {
    return this.inner.revokeKey(id, at);
  }
  markRotated(oldId: string, newId: string, expiresAt: number): Promise<void> {
    return this.inner.markRotated(oldId, newId, expiresAt);
  }
  async touchKeys(uses: ReadonlyMap<string, number>): Promise<void> {
    this.touches.push(new Map(uses));
    await this.touchGate;
    if (this.touchError !== undefined) throw this.touchError;
    return this.inner.touchKeys(uses);
  }
  changeToken(): number {
    return this.pinnedToken ?? this.inner.changeToken();
  }
}

const verifiers: ApiKeyVerifier[] = [];
afterEach(async () => {
  for (const verifier of verifiers.splice(0)) await verifier.close();
});

/** A store, a clock, a key service and a verifier over them; the service writes to the store directly. */
function setup(options: ApiKeyVerifierOptions = {}) {
  const clock = { now: T0 };
  const now = (): number => clock.now;
  const store = new ObservedKeyStore();
  const changed: string[] = [];
  const service = new KeyService(store.inner, { now, onChange: (id) => changed.push(id) });
  const verifier = createApiKeyVerifier(store, { now, lastUsedFlushMs: NO_BACKGROUND_FLUSH, ...options });
  verifiers.push(verifier);
  const verify = async (value: string): Promise<VerificationResult | undefined> => verifier.verify({ source: 'bearer', value } satisfies Credential);
  return { clock, store, service, verifier, verify, changed };
}

const secretOf = (key: IssuedKey): string => parseKey(key.plaintext)?.secret as string;

/** A key for `id` with this secret and a correct checksum: what a forger who knows the format can build. */
function forgeKey(id: string, secret: string): string {
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  const body = `mcpw_${id}_${secret}`;
  let n = crc32(body);
  let checksum = '';
  while (n > 0) {
    checksum = (alphabet[n % 62] as string) + checksum;
    n = Math.floor(n / 62);
  }
  return `${body}_${checksum.padStart(6, '0')}`;
}

describe('KeyService', () => {
  it('creates a key: the store gets the hash, the caller gets the plaintext once', async () => {
    const { service, store } = setup();
    const roles = ['deployer', 'reader'];
    const issued = await service.create({ name: 'ci deploy', roles, expiresInMs: DAY, note: 'owned by platform' });
    roles.push('admin');
    expect(issued.record).toStrictEqual({
      id: issued.record.id,
      name: 'ci deploy',
      hash: hashSecret(issued.record.id, secretOf(issued)),
      roles: ['deployer', 'reader'],
      note: 'owned by platform',
      createdAt: T0,
      expiresAt: T0 + DAY,
    });
    expect(parseKey(issued.plaintext)?.id).toBe(issued.record.id);
    const stored = await store.inner.getKey(issued.record.id);
    expect(stored).toStrictEqual(issued.record);
    expect(JSON.stringify(stored)).not.toContain(secretOf(issued));
  });

  it('refuses a key without a name, without roles, or with an expiry not in the future, and stores nothing', async () => {
    const { service } = setup();
    await expect(service.create({ name: '  ', roles: ['reader'] })).rejects.toThrow(new TypeError('a key needs a name'));
    await expect(service.create({ name: 'x', roles: [] })).rejects.toThrow(new TypeError('a key needs at least one role'));
    await expect(service.create({ name: 'x', roles: ['reader'], expiresInMs: 0 })).rejects.toThrow(new TypeError('the expiry must be in the future'));
    await expect(service.create({ name: 'x', roles: ['reader'], expiresInMs: Number.NaN })).rejects.toThrow(TypeError);
    expect(await service.list()).toEqual([]);
  });

  it('lists keys oldest first and shows one by id', async () => {
    const { service, clock } = setup();
    const first = await service.create({ name: 'first', roles: ['reader'] });
    clock.now += MINUTE;
    const second = await service.create({ name: 'second', roles: ['reader'] });
    expect((await service.list()).map((k) => k.name)).toEqual(['first', 'second']);
    expect(await service.show(second.record.id)).toStrictEqual(second.record);
    expect(await service.show(first.record.id)).toStrictEqual(first.record);
    expect(await service.show(newKeyId())).toBeUndefined();
  });

  it('revokes a key at once and tells the process; an unknown id answers false', async () => {
    const { service, clock, changed, verify } = setup();
    const key = await service.create({ name: 'ci', roles: ['reader'] });
    clock.now += MINUTE;
    expect(await service.revoke(key.record.id)).toBe(true);
    expect(await service.show(key.record.id)).toMatchObject({ revokedAt: T0 + MINUTE });
    expect(keyStatus((await service.show(key.record.id)) as ApiKeyRecord, clock.now)).toBe('revoked');
    expect(changed).toEqual([key.record.id]);
    expect(await service.revoke(newKeyId())).toBe(false);
    expect(changed).toEqual([key.record.id]);
    expect(await verify(key.plaintext)).toMatchObject({ ok: false, reason: 'revoked' });
  });

  it('a revocation stamped by a clock ahead of the gateway\'s counts at once (Security: clock skew)', async () => {
    const { service, store, clock, verify } = setup();
    const key = await service.create({ name: 'ci', roles: ['reader'] });
    expect(await verify(key.plaintext)).toMatchObject({ ok: true });
    // The CLI that revokes runs on a machine whose clock is two minutes ahead of the gateway's.
    const ahead = new KeyService(store.inner, { now: () => clock.now + 2 * MINUTE });
    expect(await ahead.revoke(key.record.id)).toBe(true);
    expect(await verify(key.plaintext)).toMatchObject({ ok: false, reason: 'revoked' });
  });

  describe('rotate', () => {
    it('issues a successor with the same name, roles, note and lifetime; the old key works until the grace ends', async () => {
      const { service, clock, changed, verify } = setup();
      const old = await service.create({ name: 'ci', roles: ['deployer'], note: 'n', expiresInMs: 30 * DAY });
      clock.now += DAY;
      const rotatedAt = clock.now;
      const next = await service.rotate(old.record.id, 10 * MINUTE);

      expect(next.record).toStrictEqual({
        id: next.record.id,
        name: 'ci',
        hash: hashSecret(next.record.id, secretOf(next)),
        roles: ['deployer'],
        note: 'n',
        createdAt: rotatedAt,
        expiresAt: rotatedAt + 30 * DAY,
        rotatedFrom: old.record.id,
      });
      expect(next.record.id).not.toBe(old.record.id);
      const oldNow = (await service.show(old.record.id)) as ApiKeyRecord;
      expect(oldNow).toMatchObject({ replacedBy: next.record.id, expiresAt: rotatedAt + 10 * MINUTE });
      expect(oldNow.revokedAt).toBeUndefined();
      expect(keyStatus(oldNow, clock.now)).toBe('rotating');
      expect(changed).toEqual([old.record.id]);

      clock.now = rotatedAt + 10 * MINUTE - 1;
      expect(await verify(old.plaintext)).toMatchObject({ ok: true, principal: { id: old.record.id } });
      expect(await verify(next.plaintext)).toMatchObject({ ok: true, principal: { id: next.record.id } });
      clock.now = rotatedAt + 10 * MINUTE;
      expect(await verify(old.plaintext)).toMatchObject({ ok: false, reason: 'expired', credentialRef: `key:${old.record.id}` });
      expect(await verify(next.plaintext)).toMatchObject({ ok: true, principal: { id: next.record.id } });
    });

    it('revokes the old key at once when the grace is 0', async () => {
      const { service, clock, verify } = setup();
      const old = await service.create({ name: 'ci', roles: ['reader'] });
      clock.now += MINUTE;
      const next = await service.rotate(old.record.id, 0);
      expect(await service.show(old.record.id)).toMatchObject({ revokedAt: T0 + MINUTE, replacedBy: next.record.id });
      expect(await verify(old.plaintext)).toMatchObject({ ok: false, reason: 'revoked' });
      expect(await verify(next.plaintext)).toMatchObject({ ok: true, principal: { id: next.record.id, roles: ['reader'] } });
    });

    it('never lets the grace extend an expiry the old key already had', async () => {
      const { service, verify, clock } = setup();
      const old = await service.create({ name: 'ci', roles: ['reader'], expiresInMs: MINUTE });
      await service.rotate(old.record.id, DAY);
      expect(await service.show(old.record.id)).toMatchObject({ expiresAt: T0 + MINUTE });
      clock.now = T0 + MINUTE;
      expect(await verify(old.plaintext)).toMatchObject({ ok: false, reason: 'expired' });
    });

    it('refuses to rotate a revoked, an expired or an unknown key, and issues nothing', async () => {
      const { service, clock } = setup();
      const revoked = await service.create({ name: 'revoked', roles: ['reader'] });
      const expiring = await service.create({ name: 'expiring', roles: ['reader'], expiresInMs: MINUTE });
      await service.revoke(revoked.record.id);
      clock.now += MINUTE;
      await expect(service.rotate(revoked.record.id, MINUTE)).rejects.toThrow(`key ${revoked.record.id} is revoked`);
      await expect(service.rotate(expiring.record.id, MINUTE)).rejects.toThrow(`key ${expiring.record.id} is expired`);
      const unknown = newKeyId();
      await expect(service.rotate(unknown, MINUTE)).rejects.toThrow(new KeyNotFoundError(unknown));
      expect(await service.list()).toHaveLength(2);
    });

    it('refuses to rotate a key already being rotated, which would give its successor the grace as a lifetime', async () => {
      const { service } = setup();
      const key = await service.create({ name: 'forever', roles: ['reader'] });
      const next = await service.rotate(key.record.id, MINUTE);
      expect(next.record.expiresAt).toBeUndefined();
      await expect(service.rotate(key.record.id, MINUTE)).rejects.toThrow(`key ${key.record.id} is already being rotated (replaced by ${next.record.id}); rotate ${next.record.id} instead`);
      expect(await service.show(key.record.id)).toMatchObject({ replacedBy: next.record.id });
      expect(await service.list()).toHaveLength(2);
      // The successor itself rotates as any key does, and keeps having no expiry.
      expect((await service.rotate(next.record.id, MINUTE)).record.expiresAt).toBeUndefined();
    });
  });
});

describe('createApiKeyVerifier', () => {
  it('accepts a valid key as an api-key principal with the key’s roles', async () => {
    const { service, verify } = setup();
    const plain = await service.create({ name: 'ci deploy', roles: ['deployer', 'reader'] });
    const expiring = await service.create({ name: 'temp', roles: ['reader'], expiresInMs: DAY + 999 });
    expect(await verify(plain.plaintext)).toStrictEqual({
      ok: true,
      principal: {
        id: plain.record.id,
        kind: 'api-key',
        subject: 'ci deploy',
        roles: ['deployer', 'reader'],
        scopes: [],
        claims: { name: 'ci deploy' },
      },
    });
    // Principals carry expiry in seconds, as JWTs do.
    expect(await verify(expiring.plaintext)).toMatchObject({ ok: true, principal: { id: expiring.record.id, expiresAt: Math.floor((T0 + DAY + 999) / 1000) } });
  });

  it('leaves credentials that are not mcp-warden keys to other verifiers, without a lookup', async () => {
    const { verify, store } = setup();
    for (const value of ['', 'secret-token', 'eyJhbGciOiJIUzI1NiJ9.e30.c2ln', 'MCPW_abcdefghijkl', 'ghp_0123456789abcdef']) {
      expect(await verify(value)).toBeUndefined();
    }
    expect(store.getKeyCalls).toBe(0);
  });

  it('refuses a malformed key as invalid without reading the store', async () => {
    const { service, verifier, store } = setup();
    const key = await service.create({ name: 'ci', roles: ['reader'] });
    const last = key.plaintext.at(-1) === 'A' ? 'B' : 'A';
    for (const value of ['mcpw_', 'mcpw_short', key.plaintext.slice(0, -1), `${key.plaintext.slice(0, -1)}${last}`, `${key.plaintext}x`]) {
      const result = verifier.verify({ source: 'bearer', value });
      // Answered synchronously: no store round trip for a typo.
      expect(result).toEqual({ ok: false, reason: 'invalid', description: 'The API key is malformed (wrong length, characters or checksum)' });
    }
    expect(store.getKeyCalls).toBe(0);
  });

  it('refuses unknown, revoked and expired keys with the matching reason and the key id as reference', async () => {
    const { service, clock, verify } = setup();
    const revoked = await service.create({ name: 'revoked', roles: ['reader'] });
    const expiring = await service.create({ name: 'expiring', roles: ['reader'], expiresInMs: MINUTE });
    await service.revoke(revoked.record.id);
    const unknownId = newKeyId();
    expect(await verify(mintKey(unknownId).plaintext)).toStrictEqual({
      ok: false,
      reason: 'unknown',
      description: 'The API key is not valid',
      credentialRef: `key:${unknownId}`,
    });
    expect(await verify(revoked.plaintext)).toStrictEqual({
      ok: false,
      reason: 'revoked',
      description: 'The API key has been revoked',
      credentialRef: `key:${revoked.record.id}`,
    });
    expect(await verify(expiring.plaintext)).toMatchObject({ ok: true });
    clock.now = T0 + MINUTE;
    expect(await verify(expiring.plaintext)).toStrictEqual({
      ok: false,
      reason: 'expired',
      description: 'The API key has expired',
      credentialRef: `key:${expiring.record.id}`,
    });
  });

  describe('cache', () => {
    it('answers a second verification from the cache', async () => {
      const { service, store, verify } = setup();
      const key = await service.create({ name: 'ci', roles: ['reader'] });
      await verify(key.plaintext);
      expect(await verify(key.plaintext)).toMatchObject({ ok: true });
      expect(store.getKeyCalls).toBe(1);
    });

    it('re-reads a key after invalidate(id), and only that key', async () => {
      const { service, store, verifier, verify } = setup();
      const a = await service.create({ name: 'a', roles: ['reader'] });
      const b = await service.create({ name: 'b', roles: ['reader'] });
      await verify(a.plaintext);
      await verify(b.plaintext);
      expect(store.getKeyCalls).toBe(2);
      verifier.invalidate(a.record.id);
      await verify(a.plaintext);
      await verify(b.plaintext);
      expect(store.getKeyCalls).toBe(3);
    });

    it('re-reads when the store’s change token moves (a revocation by another process)', async () => {
      const { service, store, verify } = setup();
      const key = await service.create({ name: 'ci', roles: ['reader'] });
      store.pinnedToken = 1;
      expect(await verify(key.plaintext)).toMatchObject({ ok: true });
      await store.inner.revokeKey(key.record.id, T0);
      // Within the TTL and with an unchanged token, the cached record still answers.
      expect(await verify(key.plaintext)).toMatchObject({ ok: true });
      expect(store.getKeyCalls).toBe(1);
      store.pinnedToken = 2;
      expect(await verify(key.plaintext)).toMatchObject({ ok: false, reason: 'revoked' });
      expect(store.getKeyCalls).toBe(2);
    });

    it('re-reads once the TTL has passed', async () => {
      const { service, store, clock, verify } = setup({ cacheTtlMs: 1_000 });
      const key = await service.create({ name: 'ci', roles: ['reader'] });
      await verify(key.plaintext);
      clock.now = T0 + 999;
      await verify(key.plaintext);
      expect(store.getKeyCalls).toBe(1);
      clock.now = T0 + 1_000;
      await verify(key.plaintext);
      expect(store.getKeyCalls).toBe(2);
      clock.now = T0 + 1_500;
      await verify(key.plaintext);
      expect(store.getKeyCalls).toBe(2);
    });

    it('keeps at most maxCacheEntries keys', async () => {
      const { service, store, verify } = setup({ maxCacheEntries: 2 });
      const keys = [
        await service.create({ name: 'a', roles: ['reader'] }),
        await service.create({ name: 'b', roles: ['reader'] }),
        await service.create({ name: 'c', roles: ['reader'] }),
      ];
      for (const key of keys) await verify(key.plaintext);
      expect(store.getKeyCalls).toBe(3);
      await verify((keys[2] as IssuedKey).plaintext);
      await verify((keys[1] as IssuedKey).plaintext);
      expect(store.getKeyCalls).toBe(3);
      await verify((keys[0] as IssuedKey).plaintext);
      expect(store.getKeyCalls).toBe(4);
    });
  });

  describe('last-used times', () => {
    it('are written coalesced, one touchKeys call per flush, the latest time per key, never for refused keys', async () => {
      const { service, store, clock, verifier, verify } = setup();
      const a = await service.create({ name: 'a', roles: ['reader'] });
      const b = await service.create({ name: 'b', roles: ['reader'] });
      const revoked = await service.create({ name: 'revoked', roles: ['reader'] });
      const expiring = await service.create({ name: 'expiring', roles: ['reader'], expiresInMs: 1 });
      await service.revoke(revoked.record.id);
      for (const offset of [10, 20, 30]) {
        clock.now = T0 + offset;
        expect(await verify(a.plaintext)).toMatchObject({ ok: true });
      }
      clock.now = T0 + 25;
      expect(await verify(b.plaintext)).toMatchObject({ ok: true });
      await verify(revoked.plaintext);
      await verify(expiring.plaintext);
      await verify(forgeKey(a.record.id, secretOf(b)));
      await verify(mintKey(newKeyId()).plaintext);
      expect(store.touches).toEqual([]);

      await verifier.flush();
      expect(store.touches).toEqual([
        new Map([
          [a.record.id, T0 + 30],
          [b.record.id, T0 + 25],
        ]),
      ]);
      expect((await store.inner.getKey(a.record.id))?.lastUsedAt).toBe(T0 + 30);
      expect((await store.inner.getKey(revoked.record.id))?.lastUsedAt).toBeUndefined();
      expect((await store.inner.getKey(expiring.record.id))?.lastUsedAt).toBeUndefined();

      await verifier.flush();
      expect(store.touches).toHaveLength(1);
    });

    it('are flushed by close()', async () => {
      const { service, store, verifier, verify, clock } = setup();
      const key = await service.create({ name: 'ci', roles: ['reader'] });
      clock.now = T0 + 5;
      await verify(key.plaintext);
      await verifier.close();
      expect(store.touches).toEqual([new Map([[key.record.id, T0 + 5]])]);
      expect((await store.inner.getKey(key.record.id))?.lastUsedAt).toBe(T0 + 5);
    });

    it('are written in the background every lastUsedFlushMs', async () => {
      const { service, store, verify } = setup({ lastUsedFlushMs: 20 });
      const key = await service.create({ name: 'ci', roles: ['reader'] });
      await verify(key.plaintext);
      await expect.poll(() => store.touches.length, { timeout: 2_000, interval: 10 }).toBe(1);
      expect((await store.inner.getKey(key.record.id))?.lastUsedAt).toBe(T0);
    });

    it('are kept and retried at the next flush when the write fails, and the failure is reported', async () => {
      const errors: unknown[] = [];
      const { service, store, verifier, verify, clock } = setup({ onError: (error) => errors.push(error) });
      const key = await service.create({ name: 'ci', roles: ['reader'] });
      await verify(key.plaintext);
      store.touchError = new Error('database is locked');
      await verifier.flush();
      expect(errors).toEqual([store.touchError]);
      expect((await store.inner.getKey(key.record.id))?.lastUsedAt).toBeUndefined();

      store.touchError = undefined;
      clock.now = T0 + 7;
      await verifier.flush();
      expect(store.touches).toHaveLength(2);
      expect((await store.inner.getKey(key.record.id))?.lastUsedAt).toBe(T0);
      await verify(key.plaintext);
      await verifier.flush();
      expect((await store.inner.getKey(key.record.id))?.lastUsedAt).toBe(T0 + 7);
    });

    it('close() during a background flush still writes the uses recorded since', async () => {
      const { service, store, verifier, verify, clock } = setup();
      const a = await service.create({ name: 'a', roles: ['reader'] });
      const b = await service.create({ name: 'b', roles: ['reader'] });
      let open = (): void => {};
      store.touchGate = new Promise((resolve) => (open = resolve));
      await verify(a.plaintext);
      const inFlight = verifier.flush();
      clock.now = T0 + 9;
      await verify(b.plaintext);
      const closing = verifier.close();
      open();
      await Promise.all([inFlight, closing]);
      expect((await store.inner.getKey(b.record.id))?.lastUsedAt).toBe(T0 + 9);
    });
  });

  it('rejects when the store fails, so the pipeline can answer 503', async () => {
    const { service, store, verify } = setup();
    const key = await service.create({ name: 'ci', roles: ['reader'] });
    store.getKeyError = new Error('connection refused');
    await expect(verify(key.plaintext)).rejects.toThrow('connection refused');
    store.getKeyError = undefined;
    expect(await verify(key.plaintext)).toMatchObject({ ok: true });
  });

  describe('Security', () => {
    it('refuses a key whose secret differs only in its last character, even with a valid checksum', async () => {
      const { service, store, verify } = setup();
      const key = await service.create({ name: 'ci', roles: ['admin'] });
      const secret = secretOf(key);
      const forged = forgeKey(key.record.id, `${secret.slice(0, -1)}${secret.endsWith('x') ? 'y' : 'x'}`);
      expect(parseKey(forged)?.id).toBe(key.record.id);
      // Cold cache (read from the store), then warm cache: both compare hashes.
      expect(await verify(forged)).toMatchObject({ ok: false, reason: 'unknown', credentialRef: `key:${key.record.id}` });
      expect(await verify(forged)).toMatchObject({ ok: false, reason: 'unknown' });
      expect(store.getKeyCalls).toBe(1);
      expect(await verify(key.plaintext)).toMatchObject({ ok: true });
    });

    it('never puts the key or its secret in a refusal', async () => {
      const { service, clock, verifier, verify } = setup();
      const revoked = await service.create({ name: 'revoked', roles: ['reader'] });
      const expiring = await service.create({ name: 'expiring', roles: ['reader'], expiresInMs: 1 });
      const valid = await service.create({ name: 'valid', roles: ['reader'] });
      await service.revoke(revoked.record.id);
      clock.now = T0 + 1;
      const unknown = mintKey(newKeyId()).plaintext;
      const wrongSecret = forgeKey(valid.record.id, secretOf(revoked));
      const attempts = [revoked.plaintext, expiring.plaintext, unknown, wrongSecret, valid.plaintext.slice(0, -1), `${valid.plaintext}0`];
      for (const attempt of attempts) {
        const result = await verify(attempt);
        expect(result?.ok).toBe(false);
        const text = JSON.stringify(result);
        expect(text).not.toContain(attempt);
        expect(text).not.toContain(attempt.slice(18, 61));
      }
      expect(verifier.verify({ source: 'bearer', value: 'mcpw_leaked-secret-value' })).toMatchObject({ ok: false, reason: 'invalid' });
      expect(JSON.stringify(verifier.verify({ source: 'bearer', value: 'mcpw_leaked-secret-value' }))).not.toContain('leaked-secret-value');
    });

    it('refuses a key revoked in this process at once, through onChange, whatever the cache holds', async () => {
      const store = new ObservedKeyStore();
      store.pinnedToken = 1;
      const verifier = createApiKeyVerifier(store, { now: () => T0, lastUsedFlushMs: NO_BACKGROUND_FLUSH });
      verifiers.push(verifier);
      const service = new KeyService(store, { now: () => T0, onChange: (id) => verifier.invalidate(id) });
      const key = await service.create({ name: 'ci', roles: ['admin'] });
      expect(await verifier.verify({ source: 'bearer', value: key.plaintext })).toMatchObject({ ok: true });
      await service.revoke(key.record.id);
      expect(await verifier.verify({ source: 'bearer', value: key.plaintext })).toMatchObject({ ok: false, reason: 'revoked' });
    });
  });
});
