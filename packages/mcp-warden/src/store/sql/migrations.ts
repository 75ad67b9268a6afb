/**
 * Schema migrations, portable between SQLite and PostgreSQL (Kysely's schema builder). They run on
 * start and through `mcp-warden migrate`; applied names are kept in `kysely_migration`.
 */
import { type Kysely, type Migration, type MigrationProvider, Migrator } from 'kysely';
import { GENESIS_HASH } from '../../audit/chain.js';
import { oauthMigration } from './oauth-store.js';

const migrations: Record<string, Migration> = {
  '2026-11-28-001-keys-and-audit': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('mcpw_api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('roles', 'text', (c) => c.notNull())
        .addColumn('note', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .addColumn('revoked_at', 'bigint')
        .addColumn('last_used_at', 'bigint')
        .addColumn('rotated_from', 'text')
        .addColumn('replaced_by', 'text')
        .execute();
      await db.schema
        .createTable('mcpw_audit_events')
        .addColumn('seq', 'bigint', (c) => c.primaryKey())
        .addColumn('time', 'text', (c) => c.notNull())
        .addColumn('time_ms', 'bigint', (c) => c.notNull())
        .addColumn('request_id', 'text', (c) => c.notNull())
        .addColumn('principal_id', 'text')
        .addColumn('principal_kind', 'text')
        .addColumn('upstream', 'text')
        .addColumn('method', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('target', 'text')
        .addColumn('decision', 'text', (c) => c.notNull())
        .addColumn('rule', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('latency_micros', 'integer', (c) => c.notNull())
        .addColumn('client_address', 'text')
        .addColumn('user_agent', 'text')
        .addColumn('credential_ref', 'text')
        .addColumn('arguments', 'text')
        .addColumn('prev_hash', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('mcpw_audit_events_time').on('mcpw_audit_events').column('time_ms').execute();
      // No index by principal: with many principals it doubles the cost of every append (scattered
      // index pages in each commit, measured by bench:audit); reading by principal walks seq backwards.
      await db.schema
        .createTable('mcpw_audit_head')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('pruned_seq', 'bigint', (c) => c.notNull())
        .addColumn('pruned_hash', 'text', (c) => c.notNull())
        .execute();
      await (db as Kysely<{ mcpw_audit_head: { id: number; seq: number; hash: string; pruned_seq: number; pruned_hash: string } }>)
        .insertInto('mcpw_audit_head')
        .values({ id: 1, seq: 0, hash: GENESIS_HASH, pruned_seq: 0, pruned_hash: GENESIS_HASH })
        .execute();
    },
  },
  '2026-11-28-002-secrets': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('mcpw_secrets')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '2026-11-28-003-users': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Uniqueness on the folded name (users/username.ts), so `Alice` and `alice` are one account;
      // the federated pair is unique when set (both SQLite and PostgreSQL treat NULLs as distinct).
      await db.schema
        .createTable('mcpw_users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('username', 'text', (c) => c.notNull())
        .addColumn('username_folded', 'text', (c) => c.notNull().unique())
        .addColumn('password_hash', 'text')
        .addColumn('roles', 'text', (c) => c.notNull())
        .addColumn('disabled_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('federated_issuer', 'text')
        .addColumn('federated_subject', 'text')
        .addUniqueConstraint('mcpw_users_federated', ['federated_issuer', 'federated_subject'])
        .execute();
    },
  },
  '2026-11-28-004-oauth': oauthMigration,
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

/**
 * Applies pending migrations; returns the names applied. Throws with the failing migration's name.
 * `schema` (PostgreSQL) keeps Kysely's bookkeeping tables in that schema: without it Kysely looks for
 * them in every schema of the database and fails when another schema is already migrated.
 */
export async function migrateToLatest(db: Kysely<unknown>, schema?: string): Promise<string[]> {
  const { error, results } = await new Migrator({ db, provider, ...(schema === undefined ? {} : { migrationTableSchema: schema }) }).migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
