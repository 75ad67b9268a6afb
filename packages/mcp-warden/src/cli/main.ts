#!/usr/bin/env node
/**
 * The `mcp-warden` command. Exit codes: 0 ok, 1 a check failed, 2 usage or config error, 3 not found,
 * 4 store unavailable, 70 internal error (docs/cli.md). User errors print what to do, never a stack.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/load.js';
import { StoreUnavailableError } from '../store/open.js';
import { registerAudit } from './commands/audit.js';
import { registerConfig } from './commands/config.js';
import { registerExplain } from './commands/explain.js';
import { registerGrants } from './commands/grants.js';
import { registerOAuth } from './commands/oauth.js';
import { registerInit } from './commands/init.js';
import { registerKeys } from './commands/keys.js';
import { registerServe } from './commands/serve.js';
import { registerUsers } from './commands/users.js';
import { ExitCode, UserError, err } from './output.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

function buildProgram(): Command {
  const program = new Command('mcp-warden')
    .description('authentication, authorization and audit for MCP servers')
    .version(pkg.version, '-V, --version')
    .option('-c, --config <file>', 'configuration file (default: $MCP_WARDEN_CONFIG or ./mcp-warden.yaml)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerInit(program);
  registerKeys(program);
  registerUsers(program);
  registerGrants(program);
  registerOAuth(program);
  registerExplain(program);
  registerAudit(program);
  registerConfig(program);
  registerServe(program);
  for (const command of program.commands) {
    command.exitOverride();
    for (const sub of command.commands) sub.exitOverride();
  }
  return program;
}

async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.Ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; commander has already printed usage errors.
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help' ? ExitCode.Ok : ExitCode.Usage;
    }
    if (error instanceof UserError) {
      err(`mcp-warden: ${error.message}`);
      return error.exitCode;
    }
    if (error instanceof ConfigError) {
      for (const problem of error.problems) err(`mcp-warden: ${problem}`);
      return ExitCode.Usage;
    }
    if (error instanceof StoreUnavailableError) {
      err(`mcp-warden: ${error.message}. Check the store settings in the config and that the database is reachable.`);
      return ExitCode.StoreUnavailable;
    }
    err(`mcp-warden: internal error: ${(error as Error).message ?? String(error)}`);
    if (process.env['MCP_WARDEN_DEBUG'] === '1') err((error as Error).stack ?? '');
    else err('Run again with MCP_WARDEN_DEBUG=1 for details, and report it.');
    return ExitCode.Internal;
  }
}

process.exitCode = await main(process.argv);
