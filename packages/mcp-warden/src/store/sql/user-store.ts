/**
 * Users in SQL (`mcpw_users`), over Kysely for PostgreSQL and SQLite alike; on SQLite the lookups a
 * login makes use prepared better-sqlite3 statements, as the key lookups do (sql-store.ts).
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { Kysely, Selectable, Updateable } from 'kysely';
import type { StoredUser, StoredUserUpdate, UserStore } from '../types.js';
import type { Database, UsersTable } from './schema.js';

const num = (value: number | string): number => (typeof value === 'number' ? value : Number(value));

function userFromRow(row: Selectable<UsersTable>): StoredUser {
  const user: { -readonly [K in keyof StoredUser]: StoredUser[K] } = {
    id: row.id,
    username: row.username,
    usernameFolded: row.username_folded,
    roles: JSON.parse(row.roles) as string[],
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
  };
  if (row.password_hash !== null) user.passwordHash = row.password_hash;
  if (row.disabled_at !== null) user.disabledAt = num(row.disabled_at);
  if (row.federated_issuer !== null && row.federated_subject !== null) user.federated = { issuer: row.federated_issuer, subject: row.federated_subject };
  return user;
}

/** Users over Kysely: PostgreSQL uses it as is, SQLite through {@link SqliteUserStore}. */
export class SqlUserStore implements UserStore {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async insertUser(record: StoredUser): Promise<boolean> {
    // No conflict target: any unique column (id, folded name, federated pair) turns the insert into
    // a no-op, on SQLite and PostgreSQL alike, so a concurrent duplicate answers false, not an error.
    const result = await this.#db
      .insertInto('mcpw_users')
      .values({
        id: record.id,
        username: record.username,
        username_folded: record.usernameFolded,
        password_hash: record.passwordHash ?? null,
        roles: JSON.stringify(record.roles),
        disabled_at: record.disabledAt ?? null,
        created_at: record.createdAt,
        updated_at: record.updatedAt,
        federated_issuer: record.federated?.issuer ?? null,
        federated_subject: record.federated?.subject ?? null,
      })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  async getUser(id: string): Promise<StoredUser | undefined> {
    const row = await this.#db.selectFrom('mcpw_users').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : userFromRow(row);
  }

  async getUserByFoldedName(usernameFolded: string): Promise<StoredUser | undefined> {
    const row = await this.#db.selectFrom('mcpw_users').selectAll().where('username_folded', '=', usernameFolded).executeTakeFirst();
    return row === undefined ? undefined : userFromRow(row);
  }

  async getUserByFederated(issuer: string, subject: string): Promise<StoredUser | undefined> {
    const row = await this.#db
      .selectFrom('mcpw_users')
      .selectAll()
      .where('federated_issuer', '=', issuer)
      .where('federated_subject', '=', subject)
      .executeTakeFirst();
    return row === undefined ? undefined : userFromRow(row);
  }

  async listUsers(): Promise<StoredUser[]> {
    const rows = await this.#db.selectFrom('mcpw_users').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(userFromRow);
  }

  async updateUser(id: string, update: StoredUserUpdate, options: { readonly ifPasswordHash?: string } = {}): Promise<boolean> {
    const set: Updateable<UsersTable> = { updated_at: update.updatedAt };
    if (update.roles !== undefined) set.roles = JSON.stringify(update.roles);
    if (update.passwordHash !== undefined) set.password_hash = update.passwordHash;
    if (update.disabledAt !== undefined) set.disabled_at = update.disabledAt;
    let query = this.#db.updateTable('mcpw_users').set(set).where('id', '=', id);
    if (options.ifPasswordHash !== undefined) query = query.where('password_hash', '=', options.ifPasswordHash);
    const result = await query.executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }
}

/** SQLite: the two lookups of a login through prepared better-sqlite3 statements. */
export class SqliteUserStore extends SqlUserStore {
  readonly #raw: BetterSqlite3.Database;
  // Prepared on first use: the table exists only once migrations ran.
  #byId: BetterSqlite3.Statement<[string], Selectable<UsersTable>> | undefined;
  #byFoldedName: BetterSqlite3.Statement<[string], Selectable<UsersTable>> | undefined;

  constructor(db: Kysely<Database>, raw: BetterSqlite3.Database) {
    super(db);
    this.#raw = raw;
  }

  override async getUser(id: string): Promise<StoredUser | undefined> {
    this.#byId ??= this.#raw.prepare('select * from mcpw_users where id = ?');
    const row = this.#byId.get(id);
    return row === undefined ? undefined : userFromRow(row);
  }

  override async getUserByFoldedName(usernameFolded: string): Promise<StoredUser | undefined> {
    this.#byFoldedName ??= this.#raw.prepare('select * from mcpw_users where username_folded = ?');
    const row = this.#byFoldedName.get(usernameFolded);
    return row === undefined ? undefined : userFromRow(row);
  }
}
