/**
 * UserService over the memory store: argon2id hashing, logins that do not reveal which names exist,
 * name folding, password rules, rehashing, and federated accounts. argon2 is the real library; its
 * functions are wrapped only to count verifications.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as argon2 from '@node-rs/argon2';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { createMemoryStore } from '../../src/store/memory.js';
import { createSqliteStore } from '../../src/store/sql/sql-store.js';
import type { Store } from '../../src/store/types.js';
import { UserAccountError, type UserErrorCode } from '../../src/users/errors.js';
import { type UserServiceOptions, UserService, generatePassword } from '../../src/users/service.js';

vi.mock('@node-rs/argon2', async (importOriginal) => {
  const real = await importOriginal<typeof argon2>();
  return { ...real, verify: vi.fn(real.verify), hash: vi.fn(real.hash) };
});

/** Cheap parameters for most tests; the defaults are checked on their own. */
const FAST = { memoryCostKib: 1024, timeCost: 1 } as const;
const PASSWORD = 'correct horse battery staple';
const T0 = Date.UTC(2026, 10, 28);

let store: Store;
let clock: number;

function service(options: UserServiceOptions = {}): UserService {
  return new UserService(store.users, { hashing: FAST, now: () => clock, ...options });
}

async function expectCode(promise: Promise<unknown>, code: UserErrorCode): Promise<UserAccountError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UserAccountError);
  expect((error as UserAccountError).code).toBe(code);
  return error as UserAccountError;
}

async function storedHash(username: string): Promise<string> {
  const user = (await store.users.listUsers()).find((u) => u.username === username);
  return user?.passwordHash ?? '';
}

beforeEach(() => {
  store = createMemoryStore();
  clock = T0;
  vi.mocked(argon2.verify).mockClear();
  vi.mocked(argon2.hash).mockClear();
});

describe('UserService', () => {
  describe('add', () => {
    it('stores an argon2id hash with the OWASP parameters by default, and returns the account without it', async () => {
      const users = new UserService(store.users, { now: () => clock });
      const record = await users.add('alice', PASSWORD, ['admin', 'reader', 'admin']);
      expect(record).toStrictEqual({ id: record.id, username: 'alice', roles: ['admin', 'reader'], disabled: false, hasPassword: true, createdAt: T0, updatedAt: T0 });
      expect(record.id).toMatch(/^usr_[A-Za-z0-9_-]{16}$/);
      expect(await storedHash('alice')).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
      expect(await users.authenticate('alice', PASSWORD)).toStrictEqual({ id: record.id, username: 'alice', roles: ['admin', 'reader'] });
    });

    it('gives every account its own id and salt', async () => {
      const users = service();
      const a = await users.add('alice', PASSWORD, ['reader']);
      const b = await users.add('bob', PASSWORD, ['reader']);
      expect(a.id).not.toBe(b.id);
      expect(await storedHash('alice')).not.toBe(await storedHash('bob'));
    });

    it('refuses malformed role names with a TypeError', async () => {
      await expect(service().add('alice', PASSWORD, [''])).rejects.toThrow(TypeError);
      await expect(service().add('alice', PASSWORD, ['re\nader'])).rejects.toThrow(TypeError);
      expect(await store.users.listUsers()).toEqual([]);
    });
  });

  describe('authenticate', () => {
    it('answers the account for the right password and undefined for a wrong one', async () => {
      const users = service();
      const { id } = await users.add('alice', PASSWORD, ['reader']);
      expect(await users.authenticate('alice', PASSWORD)).toStrictEqual({ id, username: 'alice', roles: ['reader'] });
      expect(await users.authenticate('alice', `${PASSWORD}!`)).toBeUndefined();
      expect(await users.authenticate('alice', PASSWORD.toUpperCase())).toBeUndefined();
      expect(await users.authenticate('alice', '')).toBeUndefined();
    });

    it('answers undefined for a disabled account, and the account again once enabled', async () => {
      const users = service();
      const { id } = await users.add('alice', PASSWORD, ['reader']);
      clock = T0 + 10;
      expect(await users.disable('alice')).toBe(true);
      clock = T0 + 20;
      expect(await users.disable('ALICE')).toBe(true);
      expect(await users.get(id)).toMatchObject({ disabled: true, disabledAt: T0 + 10, updatedAt: T0 + 10 });
      expect(await users.authenticate('alice', PASSWORD)).toBeUndefined();
      expect(await users.enable('alice')).toBe(true);
      expect(await users.get(id)).toMatchObject({ disabled: false, updatedAt: T0 + 20 });
      expect((await users.get(id))?.disabledAt).toBeUndefined();
      expect(await users.authenticate('alice', PASSWORD)).toMatchObject({ id });
      expect(await users.disable('nobody')).toBe(false);
      expect(await users.enable('nobody')).toBe(false);
    });

    it('answers undefined for unknown, invalid and federated-only names', async () => {
      const users = service();
      await users.upsertFederated('https://idp.example', 'sub-1', 'fed', ['reader']);
      expect(await users.authenticate('nobody', PASSWORD)).toBeUndefined();
      expect(await users.authenticate('', PASSWORD)).toBeUndefined();
      expect(await users.authenticate(' alice', PASSWORD)).toBeUndefined();
      expect(await users.authenticate('fed', PASSWORD)).toBeUndefined();
    });

    it('costs one argon2 verification whatever the reason for refusing (no enumeration by timing)', async () => {
      const users = service();
      await users.add('alice', PASSWORD, ['reader']);
      await users.add('carol', PASSWORD, ['reader']);
      await users.disable('carol');
      await users.upsertFederated('https://idp.example', 'sub-1', 'fed', ['reader']);
      const verify = vi.mocked(argon2.verify);
      for (const [name, password] of [
        ['alice', PASSWORD],
        ['alice', 'wrong password!!'],
        ['nobody', PASSWORD],
        ['nobody', 'wrong password!!'],
        ['carol', PASSWORD],
        ['fed', PASSWORD],
        ['in\u0000valid', PASSWORD],
      ] as const) {
        verify.mockClear();
        await users.authenticate(name, password);
        expect(verify, `${name}`).toHaveBeenCalledTimes(1);
        // The dummy hash has the same parameters as a real one, so it costs the same.
        expect(String(verify.mock.calls[0]?.[0])).toMatch(/^\$argon2id\$v=19\$m=1024,t=1,p=1\$/);
      }
    });

    it('refuses a password longer than any accepted one without hashing it', async () => {
      const users = service();
      await users.add('alice', PASSWORD, ['reader']);
      vi.mocked(argon2.verify).mockClear();
      expect(await users.authenticate('alice', 'x'.repeat(1025))).toBeUndefined();
      expect(argon2.verify).not.toHaveBeenCalled();
    });

    it('compares passwords after NFKC normalisation', async () => {
      const users = service();
      await users.add('alice', 'caf\u00e9 au lait, s\u2019il vous pla\u00eet', ['reader']);
      expect(await users.authenticate('alice', 'cafe\u0301 au lait, s\u2019il vous plai\u0302t')).toMatchObject({ username: 'alice' });
    });
  });

  describe('usernames', () => {
    it('compares names folded: Alice, alice, ALICE and fullwidth Ａｌｉｃｅ are one account', async () => {
      const users = service();
      const alice = await users.add('Alice', PASSWORD, ['reader']);
      for (const other of ['alice', 'ALICE', '\uff21\uff4c\uff49\uff43\uff45']) await expectCode(users.add(other, PASSWORD, ['reader']), 'username_taken');
      expect(await users.authenticate('aLiCe', PASSWORD)).toStrictEqual({ id: alice.id, username: 'Alice', roles: ['reader'] });
      expect((await users.findByUsername('ALICE'))?.id).toBe(alice.id);
      expect(await users.list()).toHaveLength(1);
    });

    it('stores names NFC-normalised: a decomposed é finds the composed one', async () => {
      const users = service();
      const jose = await users.add('Jose\u0301', PASSWORD, ['reader']);
      expect(jose.username).toBe('Jos\u00e9');
      await expectCode(users.add('JOS\u00c9', PASSWORD, ['reader']), 'username_taken');
      expect(await users.authenticate('jos\u00e9', PASSWORD)).toMatchObject({ id: jose.id });
    });

    it('folds ß as ss and final sigma as sigma', async () => {
      const users = service();
      await users.add('stra\u00dfe', PASSWORD, ['reader']);
      await expectCode(users.add('STRASSE', PASSWORD, ['reader']), 'username_taken');
      await users.add('\u03bf\u03b4\u03bf\u03c2', PASSWORD, ['reader']);
      await expectCode(users.add('\u039f\u0394\u039f\u03a3', PASSWORD, ['reader']), 'username_taken');
    });

    it('keeps letters of another script apart (Cyrillic а is not Latin a; see docs/users.md)', async () => {
      const users = service();
      const latin = await users.add('alice', PASSWORD, ['reader']);
      const cyrillic = await users.add('\u0430lice', PASSWORD, ['reader']);
      expect(cyrillic.id).not.toBe(latin.id);
    });

    it('refuses empty, over-long, space-edged names and control, format or separator characters', async () => {
      const users = service();
      for (const name of ['', ' alice', 'alice ', '\talice', 'a'.repeat(65), 'al\u0000ice', 'al\nice', 'al\u007fice', 'ali\u200bce', 'ali\u202ece', 'ali\u2028ce', 'ali\ue000ce']) {
        await expectCode(users.add(name, PASSWORD, ['reader']), 'invalid_username');
      }
      expect(await users.list()).toEqual([]);
      await users.add('a'.repeat(64), PASSWORD, ['reader']);
      await users.add('\u{1F600}'.repeat(64), PASSWORD, ['reader']);
      await users.add('Mary Ann', PASSWORD, ['reader']);
      expect(await users.list()).toHaveLength(3);
    });
  });

  describe('passwords', () => {
    it('needs at least 12 characters and at most 1024 bytes, and not the username', async () => {
      const users = service();
      await expectCode(users.add('alice', 'elevenchars', ['reader']), 'weak_password');
      await expectCode(users.add('alice', '\u00e9'.repeat(513), ['reader']), 'weak_password');
      await expectCode(users.add('alice.liddell', 'ALICE.LIDDELL', ['reader']), 'weak_password');
      expect(await users.list()).toEqual([]);
      await users.add('alice', 'twelve chars', ['reader']);
      await users.add('bob', '\u00e9'.repeat(512), ['reader']);
      expect(await users.authenticate('bob', '\u00e9'.repeat(512))).toMatchObject({ username: 'bob' });
    });

    it('setPassword replaces the password; the old one stops working', async () => {
      const users = service();
      await users.add('alice', PASSWORD, ['reader']);
      clock = T0 + 5;
      expect(await users.setPassword('Alice', 'a brand new passphrase')).toBe(true);
      expect(await users.authenticate('alice', PASSWORD)).toBeUndefined();
      expect(await users.authenticate('alice', 'a brand new passphrase')).toMatchObject({ username: 'alice' });
      expect((await users.findByUsername('alice'))?.updatedAt).toBe(T0 + 5);
      await expectCode(users.setPassword('alice', 'short'), 'weak_password');
      expect(await users.setPassword('nobody', 'a brand new passphrase')).toBe(false);
    });

    it('generatePassword gives 24 base64url characters, different each time, that the rules accept', async () => {
      const passwords = new Set(Array.from({ length: 50 }, generatePassword));
      expect(passwords.size).toBe(50);
      for (const p of passwords) expect(p).toMatch(/^[A-Za-z0-9_-]{24}$/);
      await service().add('alice', [...passwords][0] as string, ['reader']);
    });
  });

  describe('rehash', () => {
    it('redoes a hash made with other parameters at the next successful login, not at a failed one', async () => {
      const old = service({ hashing: { memoryCostKib: 512, timeCost: 1 } });
      await old.add('alice', PASSWORD, ['reader']);
      expect(await storedHash('alice')).toMatch(/^\$argon2id\$v=19\$m=512,t=1,p=1\$/);
      const current = service({ hashing: { memoryCostKib: 2048, timeCost: 2 } });
      expect(await current.authenticate('alice', 'not the password')).toBeUndefined();
      expect(await storedHash('alice')).toMatch(/^\$argon2id\$v=19\$m=512,t=1,p=1\$/);
      clock = T0 + 7;
      expect(await current.authenticate('alice', PASSWORD)).toMatchObject({ username: 'alice' });
      expect(await storedHash('alice')).toMatch(/^\$argon2id\$v=19\$m=2048,t=2,p=1\$/);
      const rehashed = await storedHash('alice');
      expect(await current.authenticate('alice', PASSWORD)).toMatchObject({ username: 'alice' });
      expect(await storedHash('alice')).toBe(rehashed);
      expect(await old.authenticate('alice', PASSWORD)).toMatchObject({ username: 'alice' });
    });

    it('does not overwrite a password changed while the login was rehashing', async () => {
      const old = service({ hashing: { memoryCostKib: 512, timeCost: 1 } });
      const { id } = await old.add('alice', PASSWORD, ['reader']);
      const current = service();
      // The admin's new password lands between the login's verification and its rehash write.
      const real = await vi.importActual<typeof argon2>('@node-rs/argon2');
      vi.mocked(argon2.hash).mockImplementationOnce(async (password, options) => {
        await old.setPassword('alice', 'set by the admin meanwhile');
        return real.hash(password, options);
      });
      expect(await current.authenticate('alice', PASSWORD)).toMatchObject({ id });
      expect(await current.authenticate('alice', 'set by the admin meanwhile')).toMatchObject({ id });
      expect(await current.authenticate('alice', PASSWORD)).toBeUndefined();
    });
  });

  describe('roles and listing', () => {
    it('setRoles replaces the roles; list is oldest first and never holds a hash', async () => {
      const users = service();
      await users.add('alice', PASSWORD, ['reader']);
      clock = T0 + 1;
      await users.add('bob', PASSWORD, ['admin']);
      expect(await users.setRoles('ALICE', ['admin', 'reader'])).toBe(true);
      expect(await users.setRoles('nobody', ['admin'])).toBe(false);
      const listed = await users.list();
      expect(listed.map((u) => [u.username, u.roles])).toEqual([
        ['alice', ['admin', 'reader']],
        ['bob', ['admin']],
      ]);
      expect(JSON.stringify(listed)).not.toContain('$argon2');
      expect(JSON.stringify(await users.get(listed[0]?.id as string))).not.toContain('$argon2');
      expect(await users.get('usr_nonexistent00000')).toBeUndefined();
      expect(await users.findByUsername('nobody')).toBeUndefined();
    });
  });

  describe('upsertFederated', () => {
    const ISSUER = 'https://login.example.com';

    it('creates the account at the first login and refreshes its roles at each later one, keeping its id', async () => {
      const users = service();
      clock = T0 + 1;
      const first = await users.upsertFederated(ISSUER, 'sub-123', 'dana', ['reader']);
      expect(first).toStrictEqual({ id: first.id, username: 'dana', roles: ['reader'] });
      clock = T0 + 2;
      const second = await users.upsertFederated(ISSUER, 'sub-123', 'Dana Renamed', ['admin']);
      expect(second).toStrictEqual({ id: first.id, username: 'dana', roles: ['admin'] });
      expect(await users.get(first.id)).toStrictEqual({
        id: first.id,
        username: 'dana',
        roles: ['admin'],
        disabled: false,
        hasPassword: false,
        createdAt: T0 + 1,
        updatedAt: T0 + 2,
        federated: { issuer: ISSUER, subject: 'sub-123' },
      });
      const other = await users.upsertFederated('https://other.example', 'sub-123', 'erin', []);
      expect(other.id).not.toBe(first.id);
    });

    it('never links a login to a local account by name: a taken name gets a tag', async () => {
      const users = service();
      const local = await users.add('alice', PASSWORD, ['admin']);
      const federated = await users.upsertFederated(ISSUER, 'sub-alice', 'Alice', ['reader']);
      expect(federated.id).not.toBe(local.id);
      expect(federated.username).toMatch(/^Alice#[0-9a-f]{8}$/);
      expect(await users.upsertFederated(ISSUER, 'sub-alice', 'Alice', ['reader'])).toStrictEqual(federated);
      expect(await users.authenticate('alice', PASSWORD)).toMatchObject({ id: local.id, roles: ['admin'] });
      expect((await users.findByUsername('alice'))?.roles).toEqual(['admin']);
    });

    it('cleans a name it cannot use, or makes one from the identity', async () => {
      const users = service();
      expect((await users.upsertFederated(ISSUER, 's1', '  bad\u0000name\u200b ', ['reader'])).username).toBe('badname');
      expect((await users.upsertFederated(ISSUER, 's2', '\u0000\u0001', ['reader'])).username).toMatch(/^user#[0-9a-f]{8}$/);
      expect((await users.upsertFederated(ISSUER, 's3', 'x'.repeat(200), ['reader'])).username).toBe('x'.repeat(64));
      expect((await users.upsertFederated(ISSUER, 's4', 'x'.repeat(200), ['reader'])).username).toMatch(/^x{55}#[0-9a-f]{8}$/);
    });

    it('refuses a disabled account', async () => {
      const users = service();
      const { username } = await users.upsertFederated(ISSUER, 'sub-1', 'dana', ['reader']);
      await users.disable(username);
      await expectCode(users.upsertFederated(ISSUER, 'sub-1', 'dana', ['reader']), 'disabled');
    });

    it('creates one account when the first two logins of an identity arrive at once', async () => {
      const users = service();
      const [a, b] = await Promise.all([users.upsertFederated(ISSUER, 'sub-1', 'dana', ['reader']), users.upsertFederated(ISSUER, 'sub-1', 'dana', ['reader'])]);
      expect(a.id).toBe(b.id);
      expect(await users.list()).toHaveLength(1);
    });

    it('refuses an empty issuer or subject', async () => {
      await expect(service().upsertFederated('', 'sub', 'dana', [])).rejects.toThrow(TypeError);
      await expect(service().upsertFederated(ISSUER, '', 'dana', [])).rejects.toThrow(TypeError);
    });
  });

  it('validates hashing options when the service is created', () => {
    expect(() => new UserService(store.users, { hashing: { parallelism: 0 } })).toThrow(/hashing.parallelism/);
    expect(() => new UserService(store.users, { hashing: { memoryCostKib: 8, parallelism: 2 } })).toThrow(/hashing.memoryCostKib/);
    expect(() => new UserService(store.users, { hashing: { timeCost: 1.5 } })).toThrow(/hashing.timeCost/);
  });

  describe('Security', () => {
    it('no error message holds the password or a hash', async () => {
      const users = service();
      const secret = 'my secret passphrase 42';
      await users.add('alice', secret, ['reader']);
      const hash = await storedHash('alice');
      const errors = [
        await expectCode(users.add('ALICE', secret, ['reader']), 'username_taken'),
        await expectCode(users.add('bob', 'sh0rt', ['reader']), 'weak_password'),
        await expectCode(users.add('bo\u0000b', secret, ['reader']), 'invalid_username'),
        await expectCode(users.setPassword('alice', 'ALICE'), 'weak_password'),
      ];
      for (const error of errors) {
        expect(error.message).not.toContain(secret);
        expect(error.message).not.toContain('sh0rt');
        expect(error.message).not.toContain(hash);
        expect(error.message).not.toContain('$argon2');
      }
    });

    it('stores no password in the SQLite file or its WAL: only argon2id hashes', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mcpw-users-at-rest-'));
      try {
        const path = join(dir, 'warden.db');
        const sqlite = createSqliteStore({ path });
        const passwords = ['first password of alice', 'second password of alice', 'the password of bob'];
        const hashes: string[] = [];
        try {
          await sqlite.migrate();
          const users = new UserService(sqlite.users, { hashing: FAST });
          await users.add('alice', passwords[0] as string, ['reader']);
          await users.setPassword('alice', passwords[1] as string);
          await users.add('bob', passwords[2] as string, ['admin']);
          await users.authenticate('bob', passwords[2] as string);
          for (const stored of await sqlite.users.listUsers()) hashes.push(stored.passwordHash ?? '');
        } finally {
          await sqlite.close();
        }
        const bytes = readdirSync(dir)
          .filter((name) => name.startsWith('warden.db'))
          .map((name) => readFileSync(join(dir, name)).toString('latin1'))
          .join('\n');
        expect(hashes).toHaveLength(2);
        for (const hash of hashes) expect(bytes.includes(hash), 'the scan should find each hash').toBe(true);
        for (const password of passwords) expect(bytes.includes(password), `the file holds "${password}"`).toBe(false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('a corrupt stored hash is reported by account id only', async () => {
      const users = service();
      const { id } = await users.add('alice', PASSWORD, ['reader']);
      await store.users.updateUser(id, { passwordHash: '$argon2id$garbage-with-secret-looking-bits', updatedAt: T0 });
      await expect(users.authenticate('alice', PASSWORD)).rejects.toThrow(`the stored password hash of user ${id} cannot be read`);
      await users.authenticate('alice', PASSWORD).catch((error: Error) => expect(error.message).not.toContain('garbage'));
    });
  });
});
