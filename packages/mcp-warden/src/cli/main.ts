#!/usr/bin/env node
/**
 * The `mcp-warden` command. Only `--version` and `--help` exist yet: `init`, `keys`, `serve`, `audit`
 * and `explain` come with the gateway issues.
 */
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
const [command] = process.argv.slice(2);

if (command === '--version' || command === '-V') {
  process.stdout.write(`${pkg.version}\n`);
} else if (command === undefined || command === '--help' || command === '-h') {
  process.stdout.write(
    'Usage: mcp-warden <command>\n\n' +
      'The gateway and its commands (serve, init, keys, audit, explain) are not in this release yet.\n' +
      'Use the library: @mcp-warden/core (see README.md).\n',
  );
} else {
  process.stderr.write(`mcp-warden: unknown command "${command}". Run mcp-warden --help.\n`);
  process.exitCode = 2;
}
