/**
 * The SQL backends: SQLite (better-sqlite3 12, the embedded default) and PostgreSQL, over one query
 * layer (Kysely). Dialect differences are confined to this file: how a write transaction begins, the
 * row lock on the audit head, and how other processes' key changes are noticed.
 */
import { closeSync, openSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import BetterSqlite3 from 'better-sqlite3';
import { type CompiledQuery, Kysely, PostgresDialect, type Selectable, SqliteDialect, type Transaction, sql } from 'kysely';
import pg from 'pg';
import type { AuditEvent } from '@mcp-warden/core';
import { sealEvents } from '../../audit/chain.js';
import type { ApiKeyRecord, AuditHead, AuditQuery, AuditStore, KeyStore, SecretStore, StoredAuditEvent, Store } from '../types.js';
import { migrateToLatest } from './migrations.js';
import { SqlOAuthStore } from './oauth-store.js';
import type { ApiKeysTable, AuditEventsTable, Database } from './schema.js';
import { SqlUserStore, SqliteUserStore } from './user-store.js';

type Dialect = 'sqlite' | 'postgres';
type Db = Kysely<Database>;

const num = (value: number | string): number => (typeof value === 'number' ? value : Number(value));
const optNum = (value: number | string | null): number | undefined => (value === null ? undefined : num(value));

function keyFromRow(row: Selectable<ApiKeysTable>): ApiKeyRecord {
  const record: { -readonly [K in keyof ApiKeyRecord]: ApiKeyRecord[K] } = {
    id: row.id,
    name: row.name,
    hash: row.hash,
    roles: JSON.parse(row.roles) as string[],
    createdAt: num(row.created_at),
  };
  if (row.note !== null) record.note = row.note;
  const expiresAt = optNum(row.expires_at);
  if (expiresAt !== undefined) record.expiresAt = expiresAt;
  const revokedAt = optNum(row.revoked_at);
  if (revokedAt !== undefined) record.revokedAt = revokedAt;
  const lastUsedAt = optNum(row.last_used_at);
  if (lastUsedAt !== undefined) record.lastUsedAt = lastUsedAt;
  if (row.rotated_from !== null) record.rotatedFrom = row.rotated_from;
  if (row.replaced_by !== null) record.replacedBy = row.replaced_by;
  return record;
}

function eventToRow(e: StoredAuditEvent): AuditEventsTable {
  return {
    seq: e.seq,
    time: e.time,
    time_ms: Date.parse(e.time),
    request_id: e.requestId,
    principal_id: e.principal?.id ?? null,
    principal_kind: e.principal?.kind ?? null,
    upstream: e.upstream ?? null,
    method: e.method,
    kind: e.kind,
    target: e.target ?? null,
    decision: e.decision,
    rule: e.rule,
    reason: e.reason,
    latency_micros: e.latencyMicros,
    client_address: e.clientAddress ?? null,
    user_agent: e.userAgent ?? null,
    credential_ref: e.credentialRef ?? null,
    arguments: e.arguments === undefined ? null : JSON.stringify(e.arguments),
    prev_hash: e.prevHash,
    hash: e.hash,
  };
}

function eventFromRow(row: Selectable<AuditEventsTable>): StoredAuditEvent {
  return {
    seq: num(row.seq),
    time: row.time,
    requestId: row.request_id,
    ...(row.principal_id === null ? {} : { principal: { id: row.principal_id, kind: row.principal_kind ?? '' } }),
    ...(row.upstream === null ? {} : { upstream: row.upstream }),
    method: row.method,
    kind: row.kind as StoredAuditEvent['kind'],
    ...(row.target === null ? {} : { target: row.target }),
    decision: row.decision as StoredAuditEvent['decision'],
    rule: row.rule,
    reason: row.reason,
    latencyMicros: row.latency_micros,
    ...(row.client_address === null ? {} : { clientAddress: row.client_address }),
    ...(row.user_agent === null ? {} : { userAgent: row.user_agent }),
    ...(row.credential_ref === null ? {} : { credentialRef: row.credential_ref }),
    ...(row.arguments === null ? {} : { arguments: JSON.parse(row.arguments) as Record<string, unknown> }),
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

/**
 * Runs `work` in a write transaction on one connection. SQLite begins IMMEDIATE so a second process
 * waits for the write lock (busy_timeout) instead of failing after it read the chain head.
 */
async function writeTransaction<T>(db: Db, dialect: Dialect, work: (trx: Transaction<Database> | Db) => Promise<T>): Promise<T> {
  if (dialect === 'postgres') return db.transaction().execute(work);
  return db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    try {
      const result = await work(conn);
      await sql`commit`.execute(conn);
      return result;
    } catch (error) {
      await sql`rollback`.execute(conn);
      throw error;
    }
  });
}

class SqlKeyStore implements KeyStore {
  // Subclassed for SQLite below: the hot lookups there use better-sqlite3 statements directly.
  readonly #db: Db;
  readonly #changeToken: () => number;
  readonly #notify: (id: string) => Promise<void>;
  readonly #byId: CompiledQuery;

  constructor(db: Db, changeToken: () => number, notify: (id: string) => Promise<void>) {
    this.#db = db;
    this.#changeToken = changeToken;
    this.#notify = notify;
    // Compiled once: the lookup is on the verification path.
    this.#byId = db.selectFrom('mcpw_api_keys').selectAll().where('id', '=', '?').compile();
  }

  async insertKey(record: ApiKeyRecord): Promise<void> {
    await this.#db
      .insertInto('mcpw_api_keys')
      .values({
        id: record.id,
        name: record.name,
        hash: record.hash,
        roles: JSON.stringify(record.roles),
        note: record.note ?? null,
        created_at: record.createdAt,
        expires_at: record.expiresAt ?? null,
        revoked_at: record.revokedAt ?? null,
        last_used_at: record.lastUsedAt ?? null,
        rotated_from: record.rotatedFrom ?? null,
        replaced_by: record.replacedBy ?? null,
      })
      .execute();
  }

  async getKey(id: string): Promise<ApiKeyRecord | undefined> {
    const result = await this.#db.executeQuery<Selectable<ApiKeysTable>>({ ...this.#byId, parameters: [id] });
    const row = result.rows[0];
    return row === undefined ? undefined : keyFromRow(row);
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    const rows = await this.#db.selectFrom('mcpw_api_keys').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(keyFromRow);
  }

  async revokeKey(id: string, at: number): Promise<boolean> {
    const result = await this.#db
      .updateTable('mcpw_api_keys')
      .set({ revoked_at: sql<number>`coalesce(revoked_at, ${at})` })
      .where('id', '=', id)
      .executeTakeFirst();
    const found = Number(result.numUpdatedRows) > 0;
    if (found) await this.#notify(id);
    return found;
  }

  async markRotated(oldId: string, newId: string, expiresAt: number): Promise<void> {
    const result = await this.#db
      .updateTable('mcpw_api_keys')
      .set({
        replaced_by: newId,
        expires_at: sql<number>`case when expires_at is null or expires_at > ${expiresAt} then ${expiresAt} else expires_at end`,
      })
      .where('id', '=', oldId)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) throw new Error(`key ${oldId} does not exist`);
    await this.#notify(oldId);
  }

  async touchKeys(uses: ReadonlyMap<string, number>): Promise<void> {
    for (const chunk of chunks([...uses], TOUCH_CHUNK)) {
      const values = sql.join(chunk.map(([id, at]) => sql`(${id}, cast(${at} as bigint))`));
      await sql`update mcpw_api_keys as k set last_used_at = v.at from (values ${values}) as v(id, at)
        where k.id = v.id and (k.last_used_at is null or k.last_used_at < v.at)`.execute(this.#db);
    }
  }

  changeToken(): number {
    return this.#changeToken();
  }
}

/** Shared secrets: first writer wins, every instance then reads the same value. */
function sqlSecrets(db: Db): SecretStore {
  return {
    async getOrCreate(name, create) {
      await db.insertInto('mcpw_secrets').values({ name, value: create() }).onConflict((oc) => oc.column('name').doNothing()).execute();
      const row = await db.selectFrom('mcpw_secrets').select('value').where('name', '=', name).executeTakeFirstOrThrow();
      return row.value;
    },
  };
}

/** Rows per INSERT: 20 columns × 500 stays under SQLite's and PostgreSQL's parameter limits. */
const INSERT_CHUNK = 500;
/** Keys per last-used write. */
const TOUCH_CHUNK = 500;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

class SqlAuditStore implements AuditStore {
  // Subclassed for SQLite below: append there is one synchronous better-sqlite3 transaction.
  readonly #db: Db;
  readonly #dialect: Dialect;

  constructor(db: Db, dialect: Dialect) {
    this.#db = db;
    this.#dialect = dialect;
  }

  async append(events: readonly AuditEvent[]): Promise<readonly StoredAuditEvent[]> {
    if (events.length === 0) return [];
    return writeTransaction(this.#db, this.#dialect, async (trx) => {
      let headQuery = trx.selectFrom('mcpw_audit_head').select(['seq', 'hash']).where('id', '=', 1);
      if (this.#dialect === 'postgres') headQuery = headQuery.forUpdate();
      const head = await headQuery.executeTakeFirstOrThrow();
      const sealed = sealEvents({ seq: num(head.seq), hash: head.hash }, events);
      for (let i = 0; i < sealed.length; i += INSERT_CHUNK) {
        await trx.insertInto('mcpw_audit_events').values(sealed.slice(i, i + INSERT_CHUNK).map(eventToRow)).execute();
      }
      const last = sealed[sealed.length - 1] as StoredAuditEvent;
      await trx.updateTable('mcpw_audit_head').set({ seq: last.seq, hash: last.hash }).where('id', '=', 1).execute();
      return sealed;
    });
  }

  async query(query: AuditQuery): Promise<StoredAuditEvent[]> {
    let q = this.#db.selectFrom('mcpw_audit_events').selectAll();
    if (query.afterSeq !== undefined) q = q.where('seq', '>', query.afterSeq);
    if (query.since !== undefined) q = q.where('time_ms', '>=', query.since);
    if (query.principalId !== undefined) q = q.where('principal_id', '=', query.principalId);
    if (query.decision !== undefined) q = q.where('decision', '=', query.decision);
    q = q.orderBy('seq', query.newestFirst === true ? 'desc' : 'asc');
    if (query.limit !== undefined) q = q.limit(query.limit);
    return (await q.execute()).map(eventFromRow);
  }

  async firstTimeMismatch(): Promise<number | undefined> {
    let after: number | undefined;
    for (;;) {
      let q = this.#db.selectFrom('mcpw_audit_events').select(['seq', 'time', 'time_ms']).orderBy('seq').limit(2000);
      if (after !== undefined) q = q.where('seq', '>', after);
      const rows = await q.execute();
      if (rows.length === 0) return undefined;
      for (const row of rows) if (num(row.time_ms) !== Date.parse(row.time)) return num(row.seq);
      after = num((rows[rows.length - 1] as (typeof rows)[number]).seq);
    }
  }

  async head(): Promise<AuditHead> {
    const row = await this.#db.selectFrom('mcpw_audit_head').selectAll().where('id', '=', 1).executeTakeFirstOrThrow();
    return { seq: num(row.seq), hash: row.hash, prunedSeq: num(row.pruned_seq), prunedHash: row.pruned_hash };
  }

  async prune(before: number): Promise<number> {
    return writeTransaction(this.#db, this.#dialect, async (trx) => {
      // Cut at the first event that must be kept, so the anchor is a real event of the chain.
      const firstKept = await trx.selectFrom('mcpw_audit_events').select('seq').where('time_ms', '>=', before).orderBy('seq').limit(1).executeTakeFirst();
      let lastCut = trx.selectFrom('mcpw_audit_events').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1);
      if (firstKept !== undefined) lastCut = lastCut.where('seq', '<', num(firstKept.seq));
      const anchor = await lastCut.executeTakeFirst();
      if (anchor === undefined) return 0;
      const removed = await trx.deleteFrom('mcpw_audit_events').where('seq', '<=', num(anchor.seq)).executeTakeFirst();
      await trx.updateTable('mcpw_audit_head').set({ pruned_seq: anchor.seq, pruned_hash: anchor.hash }).where('id', '=', 1).execute();
      return Number(removed.numDeletedRows);
    });
  }
}


/** Row shape of `mcpw_audit_events` as better-sqlite3 binds it (named parameters). */
function rowParams(e: StoredAuditEvent): Record<string, string | number | null> {
  return eventToRow(e) as unknown as Record<string, string | number | null>;
}

/**
 * SQLite: the key lookup and the last-used writes use prepared better-sqlite3 statements, and append
 * is one synchronous IMMEDIATE transaction of prepared single-row inserts. bench:keys and bench:audit
 * measured Kysely's per-query compile and driver overhead at 3–4 µs per lookup and ~3 µs per audited
 * event, a large share of both budgets.
 */
class SqliteKeyStore extends SqlKeyStore {
  readonly #raw: BetterSqlite3.Database;
  // Prepared on first use: the tables exist only once migrations ran.
  #byId: BetterSqlite3.Statement<[string], Selectable<ApiKeysTable>> | undefined;
  #touch: ((uses: readonly (readonly [string, number])[]) => void) | undefined;

  constructor(db: Db, raw: BetterSqlite3.Database, changeToken: () => number) {
    super(db, changeToken, async () => {});
    this.#raw = raw;
  }

  override async getKey(id: string): Promise<ApiKeyRecord | undefined> {
    this.#byId ??= this.#raw.prepare('select * from mcpw_api_keys where id = ?');
    const row = this.#byId.get(id);
    return row === undefined ? undefined : keyFromRow(row);
  }

  override async touchKeys(uses: ReadonlyMap<string, number>): Promise<void> {
    if (this.#touch === undefined) {
      const update = this.#raw.prepare('update mcpw_api_keys set last_used_at = ? where id = ? and (last_used_at is null or last_used_at < ?)');
      this.#touch = this.#raw.transaction((chunk: readonly (readonly [string, number])[]) => {
        for (const [id, at] of chunk) update.run(at, id, at);
      });
    }
    // Chunks with a turn of the event loop between them: SQLite blocks while it writes.
    for (const chunk of chunks([...uses], TOUCH_CHUNK)) {
      this.#touch(chunk);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

class SqliteAuditStore extends SqlAuditStore {
  readonly #raw: BetterSqlite3.Database;
  // Prepared on first use: the tables exist only once migrations ran.
  #append: ((events: readonly AuditEvent[]) => StoredAuditEvent[]) | undefined;

  constructor(db: Db, raw: BetterSqlite3.Database) {
    super(db, 'sqlite');
    this.#raw = raw;
  }

  #prepare(): (events: readonly AuditEvent[]) => StoredAuditEvent[] {
    const raw = this.#raw;
    const head = raw.prepare<[], { seq: number; hash: string }>('select seq, hash from mcpw_audit_head where id = 1');
    const columns = Object.keys(eventToRow(sealEvents({ seq: 0, hash: '' }, [PROBE_EVENT])[0] as StoredAuditEvent));
    const insert = raw.prepare(`insert into mcpw_audit_events (${columns.join(', ')}) values (${columns.map((c) => `@${c}`).join(', ')})`);
    const moveHead = raw.prepare('update mcpw_audit_head set seq = ?, hash = ? where id = 1');
    const transaction = raw.transaction((events: readonly AuditEvent[]) => {
      const current = head.get();
      if (current === undefined) throw new Error('the audit chain head is missing: run mcp-warden migrate');
      const sealed = sealEvents(current, events);
      for (const event of sealed) insert.run(rowParams(event));
      const last = sealed[sealed.length - 1] as StoredAuditEvent;
      moveHead.run(last.seq, last.hash);
      return sealed;
    });
    return (events) => transaction.immediate(events);
  }

  override async append(events: readonly AuditEvent[]): Promise<readonly StoredAuditEvent[]> {
    if (events.length === 0) return [];
    this.#append ??= this.#prepare();
    return this.#append(events);
  }
}

/** A minimal event, only to learn the column list of an audit row. */
const PROBE_EVENT: AuditEvent = { time: new Date(0).toISOString(), requestId: '', method: '', kind: 'request', decision: 'deny', rule: '', reason: '', latencyMicros: 0 };

/** Options of {@link createSqliteStore}. */
export interface SqliteStoreOptions {
  /** Path of the database file, or `:memory:`. */
  readonly path: string;
  /** How long a write waits for another process's lock, in ms. @default 5000 */
  readonly busyTimeoutMs?: number;
}

/** How often a SQLite store looks for other processes' commits, in ms. */
const CHANGE_CHECK_MS = 100;

/** Opens (creating if needed) a SQLite store: WAL journal, synchronous NORMAL (durable across a process crash). */
export function createSqliteStore(options: SqliteStoreOptions): Store {
  // A new database file is made readable by its owner only: it holds the session and identity
  // signing keys. SQLite gives its -wal and -shm files the database file's mode. (An existing file
  // keeps the mode it has.)
  if (options.path !== ':memory:' && options.path !== '' && !options.path.startsWith('file:')) closeSync(openSync(options.path, 'a', 0o600));
  const raw = new BetterSqlite3(options.path);
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = NORMAL');
  raw.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
  // Kysely prepares every query; reuse prepared statements (bounded) so the hot lookups stay cheap.
  const statements = new Map<string, BetterSqlite3.Statement>();
  const database = {
    close: () => raw.close(),
    prepare: (text: string) => {
      let statement = statements.get(text);
      if (statement === undefined) {
        if (statements.size >= 256) statements.clear();
        statement = raw.prepare(text);
        statements.set(text, statement);
      }
      return statement;
    },
  };
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  // data_version changes when another connection commits (a CLI revoking a key, another gateway).
  // Reading it opens a read transaction (~3 µs), so it is read at most every CHANGE_CHECK_MS: other
  // processes' revocations are seen within that time; this process's own act at once.
  const dataVersion = raw.prepare('pragma data_version').pluck();
  let closed = false;
  let checkedAt = -Infinity;
  let version = 0;
  const changeToken = (): number => {
    if (closed) return -1;
    const now = performance.now();
    if (now - checkedAt >= CHANGE_CHECK_MS) {
      version = dataVersion.get() as number;
      checkedAt = now;
    }
    return version;
  };
  return {
    kind: 'sqlite',
    keys: new SqliteKeyStore(db, raw, changeToken),
    audit: new SqliteAuditStore(db, raw),
    secrets: sqlSecrets(db),
    users: new SqliteUserStore(db, raw),
    oauth: new SqlOAuthStore(db as Kysely<never>),
    migrate: () => migrateToLatest(db as unknown as Kysely<unknown>),
    close: async () => {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
}

/** Options of {@link createPostgresStore}. */
export interface PostgresStoreOptions {
  /** A `postgres://` connection URL. */
  readonly url: string;
  /** A schema to use (created if missing); the default is the server's search_path. */
  readonly schema?: string;
  /** Pool size. @default 10 */
  readonly maxConnections?: number;
}

const NOTIFY_CHANNEL = 'mcp_warden_keys';

/**
 * Opens a PostgreSQL store. Key changes are announced with NOTIFY and heard with LISTEN, so every
 * gateway instance drops cached keys as soon as any instance (or the CLI) revokes or rotates one.
 */
export async function createPostgresStore(options: PostgresStoreOptions): Promise<Store> {
  const schema = options.schema;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new TypeError(`store.schema must be a lower-case SQL identifier, got "${schema}"`);
  }
  const clientOptions = { connectionString: options.url, ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }) };
  if (schema !== undefined) {
    const setup = new pg.Client({ connectionString: options.url });
    await setup.connect();
    try {
      await setup.query(`create schema if not exists ${schema}`);
    } finally {
      await setup.end();
    }
  }
  const pool = new pg.Pool({ ...clientOptions, max: options.maxConnections ?? 10 });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const scope = schema ?? 'public';
  let version = 0;
  const listener = new pg.Client(clientOptions);
  await listener.connect();
  listener.on('notification', (message) => {
    if (message.payload?.startsWith(`${scope}:`) === true) version++;
  });
  // A lost LISTEN connection would leave caches stale without notice: count it as a change forever.
  listener.on('error', () => {
    version = Number.NaN;
  });
  await listener.query(`listen ${NOTIFY_CHANNEL}`);
  const notify = async (id: string): Promise<void> => {
    await sql`select pg_notify(${NOTIFY_CHANNEL}, ${`${scope}:${id}`})`.execute(db);
  };
  let closed = false;
  return {
    kind: 'postgres',
    keys: new SqlKeyStore(db, () => version, notify),
    audit: new SqlAuditStore(db, 'postgres'),
    secrets: sqlSecrets(db),
    users: new SqlUserStore(db),
    oauth: new SqlOAuthStore(db as Kysely<never>),
    migrate: () => migrateToLatest(db as unknown as Kysely<unknown>, schema),
    close: async () => {
      if (closed) return;
      closed = true;
      await listener.end().catch(() => {});
      await db.destroy();
    },
  };
}
