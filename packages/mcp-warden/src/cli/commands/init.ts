/** `mcp-warden init`: a commented config, the database, and a first admin key shown once. */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import { CONFIG_TEMPLATE } from '../../config/template.js';
import { KeyService } from '../../keys/service.js';
import { openStore } from '../../store/open.js';
import { UserError, colour, out } from '../output.js';

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('write a commented mcp-warden.yaml, create the database and a first admin key')
    .option('--dir <dir>', 'where to write mcp-warden.yaml', '.')
    .option('--force', 'overwrite an existing mcp-warden.yaml (keys in the database are kept)')
    .option('--name <name>', 'name of the first admin key', 'admin')
    .action(async (options: { dir: string; force?: boolean; name: string }) => {
      const dir = resolve(options.dir);
      const file = join(dir, 'mcp-warden.yaml');
      if (existsSync(file) && options.force !== true) {
        throw new UserError(`${file} already exists. Use it (mcp-warden --config ${file} ...), or run init --force to rewrite it.`);
      }
      mkdirSync(dir, { recursive: true });
      writeFileSync(file, CONFIG_TEMPLATE, { mode: 0o600 });
      const config = loadConfig(file);
      const store = await openStore(config.store);
      try {
        const issued = await new KeyService(store.keys).create({ name: options.name, roles: ['admin'] });
        const shown = relative(process.cwd(), file) || file;
        out(`Wrote ${shown} and created the database${config.store.type === 'sqlite' ? ` at ${relative(process.cwd(), config.store.path)}` : ''}.`);
        out('');
        out(`Your admin key (${issued.record.id}) is shown once. Store it in a secret manager now:`);
        out('');
        out(`  ${colour.bold(issued.plaintext)}`);
        out('');
        out('Next:');
        out(`  export MCP_WARDEN_CONFIG=${file}`);
        out('  mcp-warden keys create --name my-reader --role reader   # a read-only key');
        out('  mcp-warden explain --role reader --tool some_tool          # what a role may do');
        out('  mcp-warden audit tail -f                                   # watch decisions');
      } finally {
        await store.close();
      }
    });
}
