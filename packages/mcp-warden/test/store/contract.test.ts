/**
 * The store contract: one suite, run against every backend (memory, SQLite on a file, PostgreSQL in
 * schemas of its own). Each test opens a fresh, empty store so the audit chain starts at genesis.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AuditEvent } from '@mcp-warden/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GENESIS_HASH } from '../../src/audit/chain.js';
import { type ChainVerdict, verifyChain } from '../../src/audit/verify.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { createPostgresStore, createSqliteStore } from '../../src/store/sql/sql-store.js';
import type { ApiKeyRecord, AuditQuery, Store, StoredAuditEvent } from '../../src/store/types.js';
import type { StoredUser } from '../../src/store/types.js';
import { T0, auditEvent, auditEventAt } from './events.js';
import { PG_URL, TestSchemas } from './postgres.js';

const MIGRATIONS = ['2026-11-28-001-keys-and-audit', '2026-11-28-002-secrets', '2026-11-28-003-users', '2026-11-28-004-oauth'];
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const DAY = 86_400_000;

/** A writer on the same data through another connection or process, started before the test's own writes. */
interface OtherWriter {
  /** Appends `batches` batches of two events (request ids `<prefix>-<i>-a|b`); `started` settles after the first. */
  run(batches: number, prefix: string): { readonly started: Promise<void>; readonly finished: Promise<void> };
}

interface OpenedStore {
  readonly store: Store;
  /** Another instance on the same data (file or schema); absent where there is no such thing (memory). */
  readonly another?: () => Promise<Store>;
  /** A writer in another process (SQLite) or connection pool (PostgreSQL). */
  readonly otherWriter?: () => Promise<OtherWriter>;
}

interface Backend {
  readonly kind: Store['kind'];
  /** Where key changes that move `changeToken()` come from: memory only has itself. */
  readonly changesSeenFrom: 'the same instance' | 'another instance';
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A fresh, empty store, not yet migrated. */
  open(): Promise<OpenedStore>;
}

const openStores: Store[] = [];
const children: ChildProcess[] = [];

function track(store: Store): Store {
  openStores.push(store);
  return store;
}

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill();
      await once(child, 'exit');
    }
  }
  for (const store of openStores.splice(0).reverse()) await store.close();
});

/** Appends one batch of two events, request ids `<prefix>-<i>-a|b`. */
async function appendBatch(store: Store, prefix: string, i: number): Promise<void> {
  await store.audit.append([auditEvent({ requestId: `${prefix}-${i}-a` }), auditEvent({ requestId: `${prefix}-${i}-b` })]);
}

/** Appends batches `from`..`to - 1` as a gateway does, one per flush, pausing a moment between them. */
async function appendBatches(store: Store, prefix: string, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    await appendBatch(store, prefix, i);
    await sleep(1);
  }
}

/**
 * A writer in another process (`sqlite-writer-process.ts`). Two SQLite stores in one process cannot
 * write at once: better-sqlite3 waits for the lock synchronously, blocking the very event loop the
 * lock holder needs to commit. Gateways and the CLI are separate processes, so the test is too.
 */
async function startSqliteWriterProcess(path: string): Promise<OtherWriter> {
  const script = fileURLToPath(new URL('./sqlite-writer-process.ts', import.meta.url));
  let output = '';
  let errors = '';
  let spawned: ChildProcess | undefined;
  const waitFor = async (line: string): Promise<void> => {
    const child = spawned as ChildProcess;
    const deadline = Date.now() + 15_000;
    while (!output.split('\n').includes(line)) {
      if (child.exitCode !== null) throw new Error(`the writer process exited with ${child.exitCode} before "${line}": ${errors}`);
      if (Date.now() > deadline) throw new Error(`the writer process did not print "${line}": ${output} ${errors}`);
      await sleep(5);
    }
  };
  return {
    run(batches, prefix) {
      const child = spawn(process.execPath, ['--import', 'tsx', script, path, String(batches), prefix], {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      spawned = child;
      children.push(child);
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
      const started = waitFor('ready').then(() => {
        child.stdin.write('go\n');
        return waitFor('appending');
      });
      const finished = started.then(async () => {
        if (child.exitCode === null) await once(child, 'exit');
        if (child.exitCode !== 0 || !output.includes('done')) throw new Error(`the writer process failed (${child.exitCode}): ${errors}`);
      });
      return { started, finished };
    },
  };
}

/** A writer on another store instance of this process (its own connection pool). */
function inProcessWriter(store: Store): OtherWriter {
  return {
    run(batches, prefix) {
      const started = appendBatch(store, prefix, 0);
      return { started, finished: started.then(() => appendBatches(store, prefix, 1, batches)) };
    },
  };
}

const memoryBackend: Backend = {
  kind: 'memory',
  changesSeenFrom: 'the same instance',
  setup: async () => {},
  teardown: async () => {},
  open: async () => ({ store: track(createMemoryStore()) }),
};

function sqliteBackend(): Backend {
  let dir: string | undefined;
  let files = 0;
  return {
    kind: 'sqlite',
    changesSeenFrom: 'another instance',
    setup: async () => {
      dir = mkdtempSync(join(tmpdir(), 'mcpw-store-contract-'));
    },
    teardown: async () => {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    },
    open: async () => {
      const path = join(dir as string, `store-${++files}.db`);
      return {
        store: track(createSqliteStore({ path })),
        another: async () => track(createSqliteStore({ path })),
        otherWriter: () => startSqliteWriterProcess(path),
      };
    },
  };
}

function postgresBackend(): Backend {
  const schemas = new TestSchemas();
  return {
    kind: 'postgres',
    changesSeenFrom: 'another instance',
    setup: () => schemas.connect(),
    teardown: () => schemas.dropAll(),
    open: async () => {
      const schema = await schemas.create();
      const another = async (): Promise<Store> => track(await createPostgresStore({ url: PG_URL, schema }));
      return { store: await another(), another, otherWriter: async () => inProcessWriter(await another()) };
    },
  };
}

async function* iterate<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/** Verifies the chain over everything the store holds, as `mcp-warden audit verify` does. */
async function verifyStored(store: Store): Promise<ChainVerdict> {
  return verifyChain(await store.audit.head(), iterate(await store.audit.query({})));
}

const seqsOf = (events: readonly StoredAuditEvent[]): number[] => events.map((e) => e.seq);

function keyRecord(id: string, overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  return { id, name: `key ${id}`, hash: 'ab'.repeat(32), roles: ['reader'], createdAt: T0, ...overrides };
}

/** Waits until `token()` differs from `before`, for at most `withinMs` (0: it must have changed already). */
async function expectChanged(token: () => number, before: number, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (token() === before && Date.now() < deadline) await sleep(10);
  expect(token()).not.toBe(before);
}

describe.each([memoryBackend, sqliteBackend(), postgresBackend()])('$kind store', (backend) => {
  beforeAll(() => backend.setup());
  afterAll(() => backend.teardown());

  const openMigrated = async (): Promise<OpenedStore> => {
    const opened = await backend.open();
    await opened.store.migrate();
    return opened;
  };

  describe('migrate()', () => {
    it('applies the schema once: a second call, and another instance, apply nothing', async () => {
      const { store, another } = await backend.open();
      expect(await store.migrate()).toEqual(backend.kind === 'memory' ? [] : MIGRATIONS);
      expect(await store.migrate()).toEqual([]);
      if (another !== undefined) expect(await (await another()).migrate()).toEqual([]);
      await store.keys.insertKey(keyRecord('aaaaaaaaaaaa'));
      expect(await store.keys.getKey('aaaaaaaaaaaa')).toBeDefined();
    });
  });

  describe('keys', () => {
    it('reads back a key with every field, and one with none of the optional fields, unchanged', async () => {
      const { store } = await openMigrated();
      const full: ApiKeyRecord = {
        id: 'aaaaaaaaaaaa',
        name: 'ci deploy',
        hash: 'cd'.repeat(32),
        roles: ['reader', 'deployer'],
        note: 'owned by the platform team',
        createdAt: T0,
        expiresAt: T0 + 90 * DAY,
        revokedAt: T0 + 2,
        lastUsedAt: T0 + 1,
        rotatedFrom: 'bbbbbbbbbbbb',
        replacedBy: 'cccccccccccc',
      };
      const bare = keyRecord('dddddddddddd');
      await store.keys.insertKey(full);
      await store.keys.insertKey(bare);
      expect(await store.keys.getKey(full.id)).toStrictEqual(full);
      expect(await store.keys.getKey(bare.id)).toStrictEqual(bare);
    });

    it('answers undefined for an unknown id', async () => {
      const { store } = await openMigrated();
      await store.keys.insertKey(keyRecord('aaaaaaaaaaaa'));
      expect(await store.keys.getKey('zzzzzzzzzzzz')).toBeUndefined();
      expect(await store.keys.getKey('')).toBeUndefined();
    });

    it('refuses a second key with the same id and keeps the first', async () => {
      const { store } = await openMigrated();
      const first = keyRecord('aaaaaaaaaaaa', { name: 'original' });
      await store.keys.insertKey(first);
      await expect(store.keys.insertKey(keyRecord('aaaaaaaaaaaa', { name: 'impostor', hash: 'ef'.repeat(32) }))).rejects.toThrow();
      expect(await store.keys.getKey(first.id)).toStrictEqual(first);
      expect(await store.keys.listKeys()).toHaveLength(1);
    });

    it('lists keys oldest first, ties broken by id', async () => {
      const { store } = await openMigrated();
      expect(await store.keys.listKeys()).toEqual([]);
      await store.keys.insertKey(keyRecord('cccccccccccc', { createdAt: T0 + 2 }));
      await store.keys.insertKey(keyRecord('bbbbbbbbbbbb', { createdAt: T0 + 1 }));
      await store.keys.insertKey(keyRecord('aaaaaaaaaaaa', { createdAt: T0 + 1 }));
      await store.keys.insertKey(keyRecord('dddddddddddd', { createdAt: T0 }));
      const listed = await store.keys.listKeys();
      expect(listed.map((k) => k.id)).toEqual(['dddddddddddd', 'aaaaaaaaaaaa', 'bbbbbbbbbbbb', 'cccccccccccc']);
      expect(listed[0]).toStrictEqual(keyRecord('dddddddddddd', { createdAt: T0 }));
    });

    it('revokes once: a second revoke keeps the first time, an unknown id answers false', async () => {
      const { store } = await openMigrated();
      await store.keys.insertKey(keyRecord('aaaaaaaaaaaa'));
      await store.keys.insertKey(keyRecord('bbbbbbbbbbbb'));
      expect(await store.keys.revokeKey('aaaaaaaaaaaa', T0 + 10)).toBe(true);
      expect((await store.keys.getKey('aaaaaaaaaaaa'))?.revokedAt).toBe(T0 + 10);
      expect(await store.keys.revokeKey('aaaaaaaaaaaa', T0 + 20)).toBe(true);
      expect((await store.keys.getKey('aaaaaaaaaaaa'))?.revokedAt).toBe(T0 + 10);
      expect(await store.keys.revokeKey('zzzzzzzzzzzz', T0 + 30)).toBe(false);
      expect(await store.keys.getKey('zzzzzzzzzzzz')).toBeUndefined();
      expect((await store.keys.getKey('bbbbbbbbbbbb'))?.revokedAt).toBeUndefined();
    });

    it('markRotated links the pair and ends the old key, never later than an expiry it already had', async () => {
      const { store } = await openMigrated();
      await store.keys.insertKey(keyRecord('aaaaaaaaaaaa'));
      await store.keys.insertKey(keyRecord('bbbbbbbbbbbb', { expiresAt: T0 + 1_000 }));
      await store.keys.insertKey(keyRecord('cccccccccccc', { expiresAt: T0 + DAY }));
      await store.keys.insertKey(keyRecord('nnnnnnnnnnnn'));

      await store.keys.markRotated('aaaaaaaaaaaa', 'nnnnnnnnnnnn', T0 + 5_000);
      await store.keys.markRotated('bbbbbbbbbbbb', 'nnnnnnnnnnnn', T0 + 5_000);
      await store.keys.markRotated('cccccccccccc', 'nnnnnnnnnnnn', T0 + 5_000);

      expect(await store.keys.getKey('aaaaaaaaaaaa')).toMatchObject({ replacedBy: 'nnnnnnnnnnnn', expiresAt: T0 + 5_000 });
      expect(await store.keys.getKey('bbbbbbbbbbbb')).toMatchObject({ replacedBy: 'nnnnnnnnnnnn', expiresAt: T0 + 1_000 });
      expect(await store.keys.getKey('cccccccccccc')).toMatchObject({ replacedBy: 'nnnnnnnnnnnn', expiresAt: T0 + 5_000 });
      await expect(store.keys.markRotated('zzzzzzzzzzzz', 'nnnnnnnnnnnn', T0)).rejects.toThrow(/zzzzzzzzzzzz/);
    });

    it('touchKeys records the last use and never moves it backwards', async () => {
      const { store } = await openMigrated();
      await store.keys.insertKey(keyRecord('aaaaaaaaaaaa'));
      await store.keys.insertKey(keyRecord('bbbbbbbbbbbb'));
      await store.keys.insertKey(keyRecord('cccccccccccc'));
      await store.keys.touchKeys(new Map());
      await store.keys.touchKeys(
        new Map([
          ['aaaaaaaaaaaa', T0 + 10],
          ['bbbbbbbbbbbb', T0 + 5],
        ]),
      );
      await store.keys.touchKeys(
        new Map([
          ['aaaaaaaaaaaa', T0 + 7],
          ['bbbbbbbbbbbb', T0 + 6],
          ['zzzzzzzzzzzz', T0 + 6],
        ]),
      );
      expect((await store.keys.getKey('aaaaaaaaaaaa'))?.lastUsedAt).toBe(T0 + 10);
      expect((await store.keys.getKey('bbbbbbbbbbbb'))?.lastUsedAt).toBe(T0 + 6);
      expect((await store.keys.getKey('cccccccccccc'))?.lastUsedAt).toBeUndefined();
      expect(await store.keys.getKey('zzzzzzzzzzzz')).toBeUndefined();
    });

    it(`changeToken() changes after a revoke and after a rotation made through ${backend.changesSeenFrom}`, async () => {
      const { store, another } = await openMigrated();
      await store.keys.insertKey(keyRecord('aaaaaaaaaaaa'));
      await store.keys.insertKey(keyRecord('bbbbbbbbbbbb'));
      await store.keys.insertKey(keyRecord('nnnnnnnnnnnn'));
      const writer = another === undefined ? store : await another();
      // PostgreSQL hears other instances through LISTEN/NOTIFY, asynchronously; SQLite looks at
      // data_version at most every 100 ms; memory knows at once.
      const withinMs = backend.kind === 'postgres' ? 2_000 : backend.kind === 'sqlite' ? 500 : 0;

      const beforeRevoke = store.keys.changeToken();
      await writer.keys.revokeKey('aaaaaaaaaaaa', T0);
      await expectChanged(() => store.keys.changeToken(), beforeRevoke, withinMs);

      const beforeRotation = store.keys.changeToken();
      await writer.keys.markRotated('bbbbbbbbbbbb', 'nnnnnnnnnnnn', T0 + 1_000);
      await expectChanged(() => store.keys.changeToken(), beforeRotation, withinMs);
    });
  });

  describe('oauth', () => {
    const HOUR = 3_600_000;
    const grant = (id: string, accountId: string, clientId: string): Record<string, unknown> => ({ jti: id, kind: 'Grant', accountId, clientId, openid: { scope: 'openid' } });

    it('reads back a payload unchanged, replaces it on upsert, and clears consumption on replace', async () => {
      const { store } = await openMigrated();
      const payload = { jti: 'rt1', kind: 'RefreshToken', grantId: 'g1', accountId: 'usr_1', clientId: 'c1', scope: 'openid mcp:read', nested: { a: [1, 'ü ✓'] } };
      await store.oauth.upsert('RefreshToken', 'rt1', payload, Date.now() + HOUR);
      const found = await store.oauth.find('RefreshToken', 'rt1');
      expect(found?.payload).toStrictEqual(payload);
      expect(found?.consumedAt).toBeUndefined();
      expect(await store.oauth.find('AccessToken', 'rt1')).toBeUndefined();
      await store.oauth.consume('RefreshToken', 'rt1', T0);
      await store.oauth.consume('RefreshToken', 'rt1', T0 + 5);
      expect((await store.oauth.find('RefreshToken', 'rt1'))?.consumedAt).toBe(T0);
      await store.oauth.upsert('RefreshToken', 'rt1', { ...payload, scope: 'openid' });
      expect(await store.oauth.find('RefreshToken', 'rt1')).toStrictEqual({ payload: { ...payload, scope: 'openid' } });
    });

    it('never returns an expired record, and prune deletes only expired ones', async () => {
      const { store } = await openMigrated();
      const now = Date.now();
      await store.oauth.upsert('Session', 'old', { jti: 'old', uid: 'u-old', accountId: 'usr_1' }, now - 1);
      await store.oauth.upsert('Session', 'new', { jti: 'new', uid: 'u-new', accountId: 'usr_1' }, now + HOUR);
      await store.oauth.upsert('Client', 'forever', { client_id: 'forever' });
      expect(await store.oauth.find('Session', 'old')).toBeUndefined();
      expect(await store.oauth.findByUid('Session', 'u-old')).toBeUndefined();
      expect((await store.oauth.list('Session')).map((e) => e.id)).toEqual(['new']);
      expect(await store.oauth.prune(now)).toBe(1);
      expect(await store.oauth.prune(now)).toBe(0);
      expect(await store.oauth.find('Session', 'new')).toBeDefined();
      expect(await store.oauth.find('Client', 'forever')).toStrictEqual({ payload: { client_id: 'forever' } });
    });

    it('finds by uid and by user code within one model', async () => {
      const { store } = await openMigrated();
      await store.oauth.upsert('Session', 's1', { jti: 's1', uid: 'uid-1' }, Date.now() + HOUR);
      await store.oauth.upsert('DeviceCode', 'd1', { jti: 'd1', userCode: 'ABCD-EFGH' }, Date.now() + HOUR);
      expect((await store.oauth.findByUid('Session', 'uid-1'))?.payload).toMatchObject({ jti: 's1' });
      expect(await store.oauth.findByUid('Interaction', 'uid-1')).toBeUndefined();
      expect((await store.oauth.findByUserCode('DeviceCode', 'ABCD-EFGH'))?.payload).toMatchObject({ jti: 'd1' });
      expect(await store.oauth.findByUserCode('DeviceCode', 'ZZZZ-ZZZZ')).toBeUndefined();
    });

    it('revokeByGrantId deletes the grant\'s records of one model only; destroy deletes one record', async () => {
      const { store } = await openMigrated();
      const later = Date.now() + HOUR;
      await store.oauth.upsert('RefreshToken', 'rt1', { grantId: 'g1' }, later);
      await store.oauth.upsert('RefreshToken', 'rt2', { grantId: 'g1' }, later);
      await store.oauth.upsert('RefreshToken', 'rt3', { grantId: 'g2' }, later);
      await store.oauth.upsert('AuthorizationCode', 'ac1', { grantId: 'g1' }, later);
      expect(await store.oauth.revokeByGrantId('RefreshToken', 'g1')).toBe(2);
      expect(await store.oauth.find('RefreshToken', 'rt1')).toBeUndefined();
      expect(await store.oauth.find('RefreshToken', 'rt3')).toBeDefined();
      expect(await store.oauth.find('AuthorizationCode', 'ac1')).toBeDefined();
      await store.oauth.destroy('AuthorizationCode', 'ac1');
      await store.oauth.destroy('AuthorizationCode', 'missing');
      expect(await store.oauth.find('AuthorizationCode', 'ac1')).toBeUndefined();
    });

    it('lists by account and client, ordered by id', async () => {
      const { store } = await openMigrated();
      const later = Date.now() + HOUR;
      await store.oauth.upsert('Grant', 'g3', grant('g3', 'usr_a', 'c2'), later);
      await store.oauth.upsert('Grant', 'g1', grant('g1', 'usr_a', 'c1'), later);
      await store.oauth.upsert('Grant', 'g2', grant('g2', 'usr_b', 'c1'), later);
      const ids = async (filter?: { accountId?: string; clientId?: string }): Promise<string[]> => (await store.oauth.list('Grant', filter)).map((e) => e.id);
      expect(await ids()).toEqual(['g1', 'g2', 'g3']);
      expect(await ids({ accountId: 'usr_a' })).toEqual(['g1', 'g3']);
      expect(await ids({ clientId: 'c1' })).toEqual(['g1', 'g2']);
      expect(await ids({ accountId: 'usr_a', clientId: 'c1' })).toEqual(['g1']);
      expect(await ids({ accountId: 'usr_z' })).toEqual([]);
      expect((await store.oauth.list('Grant', { accountId: 'usr_b' }))[0]).toStrictEqual({ id: 'g2', payload: grant('g2', 'usr_b', 'c1'), expiresAt: later });
    });

    it('insert creates once (first writer wins, on every instance)', async () => {
      const { store, another } = await openMigrated();
      expect(await store.oauth.insert('KeySet', 'signing', { keys: ['first'] })).toBe(true);
      expect(await store.oauth.insert('KeySet', 'signing', { keys: ['second'] })).toBe(false);
      if (another !== undefined) expect(await (await another()).oauth.insert('KeySet', 'signing', { keys: ['third'] })).toBe(false);
      expect((await store.oauth.find('KeySet', 'signing'))?.payload).toEqual({ keys: ['first'] });
    });
  });

  describe('users', () => {
    const HASH = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g';
    const user = (id: string, username: string, overrides: Partial<StoredUser> = {}): StoredUser => ({
      id,
      username,
      usernameFolded: username.toLowerCase(),
      passwordHash: HASH,
      roles: ['reader'],
      createdAt: T0,
      updatedAt: T0,
      ...overrides,
    });
    const federated = (id: string, username: string, issuer: string, subject: string): StoredUser => {
      const { passwordHash: _none, ...rest } = user(id, username, { federated: { issuer, subject } });
      return rest;
    };

    it('reads back a user with every field, and a federated one without a password, unchanged, by id and by folded name', async () => {
      const { store } = await openMigrated();
      const full = user('usr_aaaaaaaaaaaaaaaa', 'Jos\u00e9 \u{1F600}', { usernameFolded: 'jos\u00e9 \u{1F600}', roles: ['admin', 'reader'], disabledAt: T0 + 5, updatedAt: T0 + 5 });
      const fed = federated('usr_bbbbbbbbbbbbbbbb', 'dana', 'https://idp.example', 'sub|123');
      expect(await store.users.insertUser(full)).toBe(true);
      expect(await store.users.insertUser(fed)).toBe(true);
      expect(await store.users.getUser(full.id)).toStrictEqual(full);
      expect(await store.users.getUser(fed.id)).toStrictEqual(fed);
      expect(await store.users.getUserByFoldedName('jos\u00e9 \u{1F600}')).toStrictEqual(full);
      expect(await store.users.getUserByFederated('https://idp.example', 'sub|123')).toStrictEqual(fed);
      expect(await store.users.getUser('usr_zzzzzzzzzzzzzzzz')).toBeUndefined();
      expect(await store.users.getUserByFoldedName('Jos\u00e9 \u{1F600}')).toBeUndefined();
      expect(await store.users.getUserByFederated('https://idp.example', 'sub|124')).toBeUndefined();
      expect(await store.users.getUserByFederated('https://other.example', 'sub|123')).toBeUndefined();
    });

    it('refuses (false, nothing written) a second user with the same id, folded name or federated identity', async () => {
      const { store, another } = await openMigrated();
      const alice = user('usr_aaaaaaaaaaaaaaaa', 'alice');
      const dana = federated('usr_bbbbbbbbbbbbbbbb', 'dana', 'https://idp.example', 'sub-1');
      expect(await store.users.insertUser(alice)).toBe(true);
      expect(await store.users.insertUser(dana)).toBe(true);
      const other = another === undefined ? store : await another();
      expect(await other.users.insertUser(user('usr_cccccccccccccccc', 'ALICE', { usernameFolded: 'alice' }))).toBe(false);
      expect(await other.users.insertUser(user('usr_aaaaaaaaaaaaaaaa', 'someone else'))).toBe(false);
      expect(await other.users.insertUser(federated('usr_dddddddddddddddd', 'dana2', 'https://idp.example', 'sub-1'))).toBe(false);
      // Local accounts have no federated identity: many of them, and one identity per issuer.
      expect(await other.users.insertUser(user('usr_eeeeeeeeeeeeeeee', 'bob'))).toBe(true);
      expect(await other.users.insertUser(federated('usr_ffffffffffffffff', 'dana3', 'https://other.example', 'sub-1'))).toBe(true);
      expect((await store.users.listUsers()).map((u) => u.username)).toEqual(['alice', 'dana', 'bob', 'dana3']);
      expect(await store.users.getUser('usr_aaaaaaaaaaaaaaaa')).toStrictEqual(alice);
    });

    it('one of two concurrent inserts of a name wins', async () => {
      const { store, another } = await openMigrated();
      const other = another === undefined ? store : await another();
      const results = await Promise.all([
        store.users.insertUser(user('usr_aaaaaaaaaaaaaaaa', 'alice')),
        other.users.insertUser(user('usr_bbbbbbbbbbbbbbbb', 'Alice', { usernameFolded: 'alice' })),
      ]);
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.users.listUsers()).toHaveLength(1);
    });

    it('lists users oldest first, ties broken by id', async () => {
      const { store } = await openMigrated();
      expect(await store.users.listUsers()).toEqual([]);
      await store.users.insertUser(user('usr_cccccccccccccccc', 'carol', { createdAt: T0 + 2 }));
      await store.users.insertUser(user('usr_bbbbbbbbbbbbbbbb', 'bob', { createdAt: T0 + 1 }));
      await store.users.insertUser(user('usr_aaaaaaaaaaaaaaaa', 'alice', { createdAt: T0 + 1 }));
      await store.users.insertUser(user('usr_dddddddddddddddd', 'dave'));
      expect((await store.users.listUsers()).map((u) => u.username)).toEqual(['dave', 'alice', 'bob', 'carol']);
    });

    it('updates roles, password hash and disabled time; null clears; absent fields stay', async () => {
      const { store } = await openMigrated();
      const alice = user('usr_aaaaaaaaaaaaaaaa', 'alice');
      await store.users.insertUser(alice);
      expect(await store.users.updateUser(alice.id, { roles: ['admin'], disabledAt: T0 + 1, updatedAt: T0 + 1 })).toBe(true);
      expect(await store.users.getUser(alice.id)).toStrictEqual({ ...alice, roles: ['admin'], disabledAt: T0 + 1, updatedAt: T0 + 1 });
      expect(await store.users.updateUser(alice.id, { disabledAt: null, passwordHash: `${HASH}x`, updatedAt: T0 + 2 })).toBe(true);
      expect(await store.users.getUser(alice.id)).toStrictEqual({ ...alice, roles: ['admin'], passwordHash: `${HASH}x`, updatedAt: T0 + 2 });
      expect(await store.users.updateUser(alice.id, { passwordHash: null, roles: [], updatedAt: T0 + 3 })).toBe(true);
      const { passwordHash: _gone, ...withoutHash } = alice;
      expect(await store.users.getUser(alice.id)).toStrictEqual({ ...withoutHash, roles: [], updatedAt: T0 + 3 });
      expect(await store.users.updateUser('usr_zzzzzzzzzzzzzzzz', { roles: ['admin'], updatedAt: T0 })).toBe(false);
    });

    it('a conditional update (ifPasswordHash) applies only while the stored hash is the one expected', async () => {
      const { store } = await openMigrated();
      const alice = user('usr_aaaaaaaaaaaaaaaa', 'alice');
      await store.users.insertUser(alice);
      expect(await store.users.updateUser(alice.id, { passwordHash: 'stale rehash', updatedAt: T0 + 1 }, { ifPasswordHash: 'another hash' })).toBe(false);
      expect((await store.users.getUser(alice.id))?.passwordHash).toBe(HASH);
      expect(await store.users.updateUser(alice.id, { passwordHash: 'fresh rehash', updatedAt: T0 + 2 }, { ifPasswordHash: HASH })).toBe(true);
      expect(await store.users.getUser(alice.id)).toMatchObject({ passwordHash: 'fresh rehash', updatedAt: T0 + 2 });
    });
  });

  describe('secrets', () => {
    it('creates a secret once and gives every instance the same value', async () => {
      const { store, another } = await openMigrated();
      const first = await store.secrets.getOrCreate('session-key', () => 'first-value');
      expect(first).toBe('first-value');
      expect(await store.secrets.getOrCreate('session-key', () => 'second-value')).toBe('first-value');
      if (another !== undefined) expect(await (await another()).secrets.getOrCreate('session-key', () => 'third-value')).toBe('first-value');
    });
  });

  describe('audit', () => {
    it('starts at genesis, assigns consecutive seqs after the head, and seals a chain that verifies', async () => {
      const { store } = await openMigrated();
      expect(await store.audit.head()).toEqual({ seq: 0, hash: GENESIS_HASH, prunedSeq: 0, prunedHash: GENESIS_HASH });

      const first = await store.audit.append([auditEventAt(0), auditEventAt(1), auditEventAt(2)]);
      const second = await store.audit.append([auditEventAt(3), auditEventAt(4)]);
      expect(seqsOf(first)).toEqual([1, 2, 3]);
      expect(seqsOf(second)).toEqual([4, 5]);
      const all = [...first, ...second];
      expect(all[0]?.prevHash).toBe(GENESIS_HASH);
      for (let i = 1; i < all.length; i++) expect(all[i]?.prevHash).toBe(all[i - 1]?.hash);
      expect(new Set(all.map((e) => e.hash)).size).toBe(5);

      expect(await store.audit.head()).toEqual({ seq: 5, hash: all[4]?.hash, prunedSeq: 0, prunedHash: GENESIS_HASH });
      expect(await store.audit.query({})).toStrictEqual(all);
      expect(await verifyStored(store)).toEqual({ ok: true, events: 5, head: { seq: 5, hash: all[4]?.hash } });
      // Every stored time in ms is its event's time (SQL stores; memory keeps no such column).
      expect(await store.audit.firstTimeMismatch?.()).toBeUndefined();
    });

    it('treats an empty batch as a no-op', async () => {
      const { store } = await openMigrated();
      expect(await store.audit.append([])).toEqual([]);
      expect(await store.audit.head()).toEqual({ seq: 0, hash: GENESIS_HASH, prunedSeq: 0, prunedHash: GENESIS_HASH });
      await store.audit.append([auditEvent()]);
      const head = await store.audit.head();
      expect(await store.audit.append([])).toEqual([]);
      expect(await store.audit.head()).toEqual(head);
      expect(await store.audit.query({})).toHaveLength(1);
    });

    it('filters queries by afterSeq, since, principal and decision, in either order, with a limit', async () => {
      const { store } = await openMigrated();
      const alice = { id: 'alice', kind: 'api-key' };
      const bob = { id: 'bob', kind: 'jwt' };
      await store.audit.append([
        auditEventAt(0, { principal: alice, decision: 'allow' }),
        auditEventAt(1_000, { principal: bob, decision: 'deny' }),
        auditEventAt(2_000, { principal: alice, decision: 'deny' }),
        auditEventAt(3_000, { decision: 'deny', kind: 'request', rule: 'authn:credential_missing' }),
        auditEventAt(4_000, { principal: alice, decision: 'allow' }),
      ]);
      const seqs = async (query: AuditQuery): Promise<number[]> => seqsOf(await store.audit.query(query));

      expect(await seqs({})).toEqual([1, 2, 3, 4, 5]);
      expect(await seqs({ afterSeq: 3 })).toEqual([4, 5]);
      expect(await seqs({ afterSeq: 5 })).toEqual([]);
      expect(await seqs({ since: T0 + 2_000 })).toEqual([3, 4, 5]);
      expect(await seqs({ since: T0 + 2_001 })).toEqual([4, 5]);
      expect(await seqs({ principalId: 'alice' })).toEqual([1, 3, 5]);
      expect(await seqs({ principalId: 'carol' })).toEqual([]);
      expect(await seqs({ decision: 'deny' })).toEqual([2, 3, 4]);
      expect(await seqs({ decision: 'allow' })).toEqual([1, 5]);
      expect(await seqs({ newestFirst: true })).toEqual([5, 4, 3, 2, 1]);
      expect(await seqs({ limit: 2 })).toEqual([1, 2]);
      expect(await seqs({ newestFirst: true, limit: 2 })).toEqual([5, 4]);
      expect(await seqs({ principalId: 'alice', decision: 'deny' })).toEqual([3]);
      expect(await seqs({ afterSeq: 1, since: T0 + 3_000, decision: 'allow' })).toEqual([5]);
      expect(await seqs({ principalId: 'alice', newestFirst: true, limit: 1 })).toEqual([5]);
    });

    it('round-trips every optional field, and leaves absent ones absent', async () => {
      const { store } = await openMigrated();
      const full: AuditEvent = auditEventAt(0, {
        requestId: 'req-full',
        principal: { id: 'alice', kind: 'api-key' },
        upstream: 'github',
        target: 'create_issue',
        clientAddress: '203.0.113.7',
        userAgent: 'claude-code/2.1 (Linux; ü ✓)',
        credentialRef: 'key:abcdefghijkl',
        arguments: { title: 'Crash on "start"', labels: ['bug', 'p1'], nested: { count: 3, draft: false, assignee: null } },
        latencyMicros: 2_147_000_000,
      });
      const bare: AuditEvent = auditEventAt(1, { requestId: 'req-bare', decision: 'deny', kind: 'request', method: 'POST' });
      const sealed = await store.audit.append([full, bare]);
      const stored = await store.audit.query({});
      expect(stored).toStrictEqual(sealed);
      expect(stored[0]).toStrictEqual({ ...full, seq: 1, prevHash: GENESIS_HASH, hash: sealed[0]?.hash });
      expect(stored[1]).toStrictEqual({ ...bare, seq: 2, prevHash: sealed[0]?.hash, hash: sealed[1]?.hash });
      expect(await verifyStored(store)).toMatchObject({ ok: true, events: 2 });
    });

    it('Security: seals text that is not well-formed Unicode (a lone surrogate from a request) as it is stored, so the chain still verifies', async () => {
      const { store } = await openMigrated();
      // What a request can ask for: `"name":"\\ud800x"` in its JSON is the string below.
      const odd = auditEventAt(0, { method: 'tools/call\udfff', target: '\ud800x', reason: 'tool "\ud800x" is not allowed', principal: { id: 'bob\ud800', kind: 'api-key' } });
      const fine = auditEventAt(1, { target: 'pair \ud83d\ude00 kept' });
      const sealed = await store.audit.append([odd, fine]);
      expect(sealed[0]).toMatchObject({ method: 'tools/call\ufffd', target: '\ufffdx', reason: 'tool "\ufffdx" is not allowed', principal: { id: 'bob\ufffd', kind: 'api-key' } });
      expect(sealed[1]?.target).toBe('pair \ud83d\ude00 kept');
      expect(await store.audit.query({})).toStrictEqual(sealed);
      expect(await verifyStored(store)).toMatchObject({ ok: true, events: 2 });
    });

    it('prunes events before a time and moves the anchor, so what is left still verifies', async () => {
      const { store } = await openMigrated();
      const sealed = await store.audit.append([0, 1_000, 2_000, 3_000, 4_000].map((offset) => auditEventAt(offset)));

      expect(await store.audit.prune(T0 + 2_000)).toBe(2);
      expect(seqsOf(await store.audit.query({}))).toEqual([3, 4, 5]);
      expect(await store.audit.head()).toEqual({ seq: 5, hash: sealed[4]?.hash, prunedSeq: 2, prunedHash: sealed[1]?.hash });
      expect(await verifyStored(store)).toMatchObject({ ok: true, events: 3 });
      expect(await store.audit.prune(T0 + 2_000)).toBe(0);

      const [sixth] = await store.audit.append([auditEventAt(5_000)]);
      expect(sixth).toMatchObject({ seq: 6, prevHash: sealed[4]?.hash });
      expect(await verifyStored(store)).toMatchObject({ ok: true, events: 4 });

      expect(await store.audit.prune(T0 + DAY)).toBe(4);
      expect(await store.audit.query({})).toEqual([]);
      expect(await store.audit.head()).toEqual({ seq: 6, hash: sixth?.hash, prunedSeq: 6, prunedHash: sixth?.hash });
      expect(await verifyStored(store)).toMatchObject({ ok: true, events: 0 });

      const [seventh] = await store.audit.append([auditEventAt(DAY + 1)]);
      expect(seventh).toMatchObject({ seq: 7, prevHash: sixth?.hash });
      expect(await verifyStored(store)).toMatchObject({ ok: true, events: 1 });
    });

    it('prunes no further than the first event it must keep, so the chain stays contiguous', async () => {
      const { store } = await openMigrated();
      // Clocks are not monotonic across gateways: an older event may follow a newer one.
      await store.audit.append([auditEventAt(0), auditEventAt(5_000), auditEventAt(1_000), auditEventAt(6_000)]);
      expect(await store.audit.prune(T0 + 3_000)).toBe(1);
      expect(seqsOf(await store.audit.query({}))).toEqual([2, 3, 4]);
      expect(await verifyStored(store)).toMatchObject({ ok: true, events: 3 });
    });

    describe('concurrency', () => {
      const expectOneChain = async (store: Store, events: number): Promise<StoredAuditEvent[]> => {
        const stored = await store.audit.query({});
        expect(seqsOf(stored)).toEqual(Array.from({ length: events }, (_, i) => i + 1));
        expect(await verifyStored(store)).toMatchObject({ ok: true, events });
        expect((await store.audit.head()).seq).toBe(events);
        return stored;
      };

      it('appends started at once on one store form one unbroken chain, each batch in one piece', async () => {
        const { store } = await openMigrated();
        const batches = await Promise.all(
          Array.from({ length: 8 }, (_, b) => store.audit.append([0, 1, 2].map((i) => auditEvent({ requestId: `batch-${b}-${i}` })))),
        );
        batches.forEach((batch, b) => {
          const first = batch[0]?.seq as number;
          expect(seqsOf(batch)).toEqual([first, first + 1, first + 2]);
          expect(batch.map((e) => e.requestId)).toEqual([0, 1, 2].map((i) => `batch-${b}-${i}`));
        });
        const stored = await expectOneChain(store, 24);
        expect(new Set(stored.map((e) => e.requestId)).size).toBe(24);
      });

      // Memory has no other instance on the same data.
      if (backend.kind === 'memory') return;
      it('appends from another instance at the same time form one unbroken chain', async () => {
        const { store, otherWriter } = await openMigrated();
        const writer = await (otherWriter as () => Promise<OtherWriter>)();
        const batches = 60;
        const other = writer.run(batches, 'other');
        await other.started;
        await Promise.all([appendBatches(store, 'this', 0, batches), other.finished]);
        const stored = await expectOneChain(store, batches * 4);
        const fromOther = stored.filter((e) => e.requestId.startsWith('other-'));
        const fromThis = stored.filter((e) => e.requestId.startsWith('this-'));
        expect(fromOther).toHaveLength(batches * 2);
        expect(fromThis).toHaveLength(batches * 2);
        const turns = stored.filter((e, i) => i > 0 && e.requestId.split('-')[0] !== stored[i - 1]?.requestId.split('-')[0]).length;
        expect(turns, 'the two writers never took turns: the test did not exercise contention').toBeGreaterThan(1);
      });
    });
  });
});

describe('PostgreSQL store', () => {
  const schemas = new TestSchemas();
  beforeAll(() => schemas.connect());
  afterAll(() => schemas.dropAll());

  // Each schema keeps its own migration bookkeeping (Kysely's migrationTableSchema).
  it('migrates a fresh schema while another schema of the database is already migrated', async () => {
    const first = track(await createPostgresStore({ url: PG_URL, schema: await schemas.create() }));
    const second = track(await createPostgresStore({ url: PG_URL, schema: await schemas.create() }));
    expect(await first.migrate()).toEqual(MIGRATIONS);
    expect(await second.migrate()).toEqual(MIGRATIONS);
  });
});
