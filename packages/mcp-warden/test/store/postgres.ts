/**
 * PostgreSQL for tests: every run works in schemas of its own (`mcpw_test_<random hex>_<n>`) and drops
 * them afterwards. An unreachable server fails the suite with a message saying what to do; it is never
 * skipped (CI has PostgreSQL).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The test database: `MCP_WARDEN_TEST_PG_URL`, or the local server with trust auth. */
export const PG_URL = process.env['MCP_WARDEN_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

function redacted(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an invalid URL)';
  }
}

/** A connected administration client; throws a clear error when the server cannot be reached. */
export async function connectAdmin(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at ${redacted(PG_URL)} (${(error as Error).message}). These tests need it: ` +
        'start it (pg_ctlcluster --skip-systemctl-redirect <version> main start) or point MCP_WARDEN_TEST_PG_URL at a server.',
      { cause: error },
    );
  }
  return client;
}

/** The schemas of one test file: created on demand, all dropped by {@link TestSchemas.dropAll}. */
export class TestSchemas {
  readonly #prefix = `mcpw_test_${randomBytes(6).toString('hex')}`;
  readonly #created: string[] = [];
  #admin: pg.Client | undefined;

  /** Connects (failing clearly when PostgreSQL is down). Call it in `beforeAll`. */
  async connect(): Promise<void> {
    this.#admin ??= await connectAdmin();
  }

  get admin(): pg.Client {
    if (this.#admin === undefined) throw new Error('TestSchemas.connect() was not called');
    return this.#admin;
  }

  /** A new empty schema's name. */
  async create(): Promise<string> {
    const schema = `${this.#prefix}_${this.#created.length + 1}`;
    this.#created.push(schema);
    await this.admin.query(`create schema ${schema}`);
    return schema;
  }

  /** Drops every schema this run created and disconnects. Call it in `afterAll`. */
  async dropAll(): Promise<void> {
    if (this.#admin === undefined) return;
    try {
      for (const schema of this.#created) await this.#admin.query(`drop schema if exists ${schema} cascade`);
    } finally {
      await this.#admin.end();
      this.#admin = undefined;
    }
  }
}
