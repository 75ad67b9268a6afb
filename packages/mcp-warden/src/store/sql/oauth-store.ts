/**
 * The authorization server's state in SQL (SQLite and PostgreSQL): one table, `mcpw_oauth`, keyed by
 * (model, id), with the payload as JSON text and the looked-up fields copied into indexed columns.
 * Expired rows are never returned; `prune` deletes them (the authorization server calls it on a timer).
 */
import { type Kysely, type Migration, type Selectable, sql } from 'kysely';
import type { OAuthEntry, OAuthRecord, OAuthStore } from '../types.js';

type BigIntColumn = number | string;

/** Row shape of `mcpw_oauth`. Times are ms since the epoch. */
export interface OAuthTable {
  model: string;
  id: string;
  /** oidc-provider's payload, JSON. */
  payload: string;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  account_id: string | null;
  client_id: string | null;
  expires_at: BigIntColumn | null;
  consumed_at: BigIntColumn | null;
}

interface OAuthDatabase {
  mcpw_oauth: OAuthTable;
}

/** The migration that creates `mcpw_oauth` (appended to migrations.ts as `2026-11-28-004-oauth`). */
export const oauthMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('mcpw_oauth')
      .addColumn('model', 'text', (c) => c.notNull())
      .addColumn('id', 'text', (c) => c.notNull())
      .addColumn('payload', 'text', (c) => c.notNull())
      .addColumn('grant_id', 'text')
      .addColumn('uid', 'text')
      .addColumn('user_code', 'text')
      .addColumn('account_id', 'text')
      .addColumn('client_id', 'text')
      .addColumn('expires_at', 'bigint')
      .addColumn('consumed_at', 'bigint')
      .addPrimaryKeyConstraint('mcpw_oauth_pk', ['model', 'id'])
      .execute();
    await db.schema.createIndex('mcpw_oauth_grant').on('mcpw_oauth').columns(['grant_id', 'model']).execute();
    await db.schema.createIndex('mcpw_oauth_uid').on('mcpw_oauth').columns(['uid', 'model']).execute();
    await db.schema.createIndex('mcpw_oauth_user_code').on('mcpw_oauth').columns(['user_code', 'model']).execute();
    await db.schema.createIndex('mcpw_oauth_account').on('mcpw_oauth').columns(['account_id', 'model']).execute();
    await db.schema.createIndex('mcpw_oauth_expires').on('mcpw_oauth').column('expires_at').execute();
  },
};

const num = (value: BigIntColumn): number => (typeof value === 'number' ? value : Number(value));
const text = (payload: Readonly<Record<string, unknown>>, field: string): string | null => {
  const value = payload[field];
  return typeof value === 'string' ? value : null;
};

function recordFromRow(row: Pick<Selectable<OAuthTable>, 'payload' | 'expires_at' | 'consumed_at'>): OAuthRecord {
  return {
    payload: JSON.parse(row.payload) as Record<string, unknown>,
    ...(row.expires_at === null ? {} : { expiresAt: num(row.expires_at) }),
    ...(row.consumed_at === null ? {} : { consumedAt: num(row.consumed_at) }),
  };
}

function rowOf(model: string, id: string, payload: Readonly<Record<string, unknown>>, expiresAt: number | undefined): OAuthTable {
  return {
    model,
    id,
    payload: JSON.stringify(payload),
    grant_id: text(payload, 'grantId'),
    uid: text(payload, 'uid'),
    user_code: text(payload, 'userCode'),
    account_id: text(payload, 'accountId'),
    client_id: text(payload, 'clientId'),
    expires_at: expiresAt ?? null,
    consumed_at: null,
  };
}

/** {@link OAuthStore} over Kysely, portable between SQLite and PostgreSQL. */
export class SqlOAuthStore implements OAuthStore {
  readonly #db: Kysely<OAuthDatabase>;

  constructor(db: Kysely<never>) {
    this.#db = db as unknown as Kysely<OAuthDatabase>;
  }

  #live(now = Date.now()) {
    return this.#db
      .selectFrom('mcpw_oauth')
      .select(['id', 'payload', 'expires_at', 'consumed_at'])
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]));
  }

  async upsert(model: string, id: string, payload: Readonly<Record<string, unknown>>, expiresAt?: number): Promise<void> {
    const row = rowOf(model, id, payload, expiresAt);
    const { model: _model, id: _id, ...update } = row;
    await this.#db
      .insertInto('mcpw_oauth')
      .values(row)
      .onConflict((oc) => oc.columns(['model', 'id']).doUpdateSet(update))
      .execute();
  }

  async insert(model: string, id: string, payload: Readonly<Record<string, unknown>>, expiresAt?: number): Promise<boolean> {
    const result = await this.#db
      .insertInto('mcpw_oauth')
      .values(rowOf(model, id, payload, expiresAt))
      .onConflict((oc) => oc.columns(['model', 'id']).doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  async find(model: string, id: string): Promise<OAuthRecord | undefined> {
    const row = await this.#live().where('model', '=', model).where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : recordFromRow(row);
  }

  async findByUid(model: string, uid: string): Promise<OAuthRecord | undefined> {
    const row = await this.#live().where('uid', '=', uid).where('model', '=', model).limit(1).executeTakeFirst();
    return row === undefined ? undefined : recordFromRow(row);
  }

  async findByUserCode(model: string, userCode: string): Promise<OAuthRecord | undefined> {
    const row = await this.#live().where('user_code', '=', userCode).where('model', '=', model).limit(1).executeTakeFirst();
    return row === undefined ? undefined : recordFromRow(row);
  }

  async consume(model: string, id: string, at: number): Promise<void> {
    await this.#db
      .updateTable('mcpw_oauth')
      .set({ consumed_at: sql<number>`coalesce(consumed_at, ${at})` })
      .where('model', '=', model)
      .where('id', '=', id)
      .execute();
  }

  async destroy(model: string, id: string): Promise<void> {
    await this.#db.deleteFrom('mcpw_oauth').where('model', '=', model).where('id', '=', id).execute();
  }

  async revokeByGrantId(model: string, grantId: string): Promise<number> {
    const result = await this.#db.deleteFrom('mcpw_oauth').where('grant_id', '=', grantId).where('model', '=', model).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async list(model: string, filter: { readonly accountId?: string; readonly clientId?: string } = {}): Promise<OAuthEntry[]> {
    let query = this.#live().where('model', '=', model);
    if (filter.accountId !== undefined) query = query.where('account_id', '=', filter.accountId);
    if (filter.clientId !== undefined) query = query.where('client_id', '=', filter.clientId);
    const rows = await query.orderBy('id').execute();
    return rows.map((row) => ({ id: row.id, ...recordFromRow(row) }));
  }

  async prune(now: number): Promise<number> {
    const result = await this.#db.deleteFrom('mcpw_oauth').where('expires_at', '<=', now).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
