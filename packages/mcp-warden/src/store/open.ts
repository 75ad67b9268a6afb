/** Opens the store a configuration names. The only place outside `store/` that knows the backends. */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { WardenConfig } from '../config/schema.js';
import { createMemoryStore } from './memory.js';
import { createPostgresStore, createSqliteStore } from './sql/sql-store.js';
import type { Store } from './types.js';

/** A store that cannot be opened: the message says which and why, without credentials. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an invalid URL)';
  }
}

/** Opens the configured store and, unless told not to, applies pending migrations. */
export async function openStore(config: WardenConfig['store'], options: { migrate?: boolean } = {}): Promise<Store> {
  let store: Store;
  try {
    if (config.type === 'memory') store = createMemoryStore();
    else if (config.type === 'sqlite') {
      if (config.path !== ':memory:') mkdirSync(dirname(config.path), { recursive: true, mode: 0o700 });
      store = createSqliteStore({ path: config.path });
    } else {
      store = await createPostgresStore({
        url: config.url,
        ...(config.schema === undefined ? {} : { schema: config.schema }),
        ...(config.maxConnections === undefined ? {} : { maxConnections: config.maxConnections }),
      });
    }
  } catch (error) {
    const where = config.type === 'postgres' ? redactUrl(config.url) : config.type === 'sqlite' ? config.path : 'memory';
    throw new StoreUnavailableError(`cannot open the ${config.type} store at ${where}: ${(error as Error).message}`, { cause: error });
  }
  if (options.migrate !== false) {
    try {
      await store.migrate();
    } catch (error) {
      await store.close();
      throw new StoreUnavailableError(`cannot migrate the ${config.type} store: ${(error as Error).message}`, { cause: error });
    }
  }
  return store;
}
