/** What every command needs: the config file, loaded and validated, and the services it describes. */
import { loadConfig, defaultConfigPath } from '../config/load.js';
import type { WardenConfig } from '../config/schema.js';
import { openStore } from '../store/open.js';
import type { Store } from '../store/types.js';

/** Global options every command accepts. */
export interface GlobalOptions {
  readonly config?: string;
}

/** The config file a command uses: `--config`, else `$MCP_WARDEN_CONFIG`, else `./mcp-warden.yaml`. */
export function configPath(options: GlobalOptions): string {
  return options.config ?? defaultConfigPath();
}

export function readConfig(options: GlobalOptions): { file: string; config: WardenConfig } {
  const file = configPath(options);
  return { file, config: loadConfig(file) };
}

/** Runs `work` with the configured store open, closing it afterwards. */
export async function withStore<T>(options: GlobalOptions, work: (store: Store, config: WardenConfig) => Promise<T>): Promise<T> {
  const { config } = readConfig(options);
  const store = await openStore(config.store);
  try {
    return await work(store, config);
  } finally {
    await store.close();
  }
}
