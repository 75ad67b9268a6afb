/**
 * `mcp-warden users …`: local accounts of the built-in authorization server (docs/users.md). A given
 * password is read from stdin only, never from the command line (where `ps` and shell history see it)
 * and never echoed; a generated one is printed once.
 */
import type { Command } from 'commander';
import type { WardenConfig } from '../../config/schema.js';
import { UserAccountError } from '../../users/errors.js';
import { type UserRecord, UserService, generatePassword } from '../../users/service.js';
import { type GlobalOptions, withStore } from '../context.js';
import { ExitCode, UserError, colour, err, out, printJson, printTable, when } from '../output.js';

/** The exit code of each refusal (docs/cli.md): a bad value is a usage error, a missing account "not found". */
const EXIT_CODES: Record<UserAccountError['code'], number> = {
  invalid_username: ExitCode.Usage,
  weak_password: ExitCode.Usage,
  username_taken: ExitCode.Usage,
  disabled: ExitCode.Usage,
  not_found: ExitCode.NotFound,
};

/** Runs a service call, turning its refusals into CLI errors with their exit codes. */
async function refusalsAsUserErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof UserAccountError) throw new UserError(error.message, EXIT_CODES[error.code]);
    if (error instanceof TypeError) throw new UserError(error.message);
    throw error;
  }
}

function notFound(username: string): never {
  throw new UserError(`no user named ${JSON.stringify(username)}; see mcp-warden users list`, EXIT_CODES.not_found);
}

/**
 * `--roles a,b` as a list. Roles the config does not define are refused, as `keys create` does: a
 * misspelt role would otherwise grant nothing, silently, and only show at the user's first login.
 */
function parseRoles(value: string, config: WardenConfig): string[] {
  const roles = [...new Set(value.split(',').map((r) => r.trim()).filter((r) => r !== ''))];
  if (roles.length === 0) throw new UserError('--roles: name at least one role, e.g. --roles reader or --roles admin,reader');
  const unknown = roles.filter((r) => !Object.hasOwn(config.roles, r));
  if (unknown.length > 0) {
    throw new UserError(`--roles: ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not defined in the config (roles: ${Object.keys(config.roles).join(', ') || 'none'})`);
  }
  return roles;
}

/** The password piped to stdin, without its final line break. Refuses a terminal, where typing would echo it. */
async function readPasswordFromStdin(): Promise<string> {
  if (process.stdin.isTTY === true) {
    throw new UserError("--password-stdin reads a pipe, not a terminal (typing would echo it): printf '%s' \"$PASSWORD\" | mcp-warden users …");
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

function status(user: UserRecord): string {
  return user.disabled ? 'disabled' : 'active';
}

/** How the account logs in, for the table. */
function signIn(user: UserRecord): string {
  const ways = [...(user.hasPassword ? ['password'] : []), ...(user.federated === undefined ? [] : [`federated (${user.federated.issuer})`])];
  return ways.join(', ') || '-';
}

/** The JSON shape of an account: never a password or a hash. */
function view(user: UserRecord): Record<string, unknown> {
  return {
    id: user.id,
    username: user.username,
    roles: user.roles,
    status: status(user),
    hasPassword: user.hasPassword,
    federated: user.federated ?? null,
    createdAt: when(user.createdAt),
    updatedAt: when(user.updatedAt),
    disabledAt: user.disabledAt === undefined ? null : when(user.disabledAt),
  };
}

/** Says so when the accounts cannot log in anywhere yet. */
function noteWhenLoginIsOff(config: WardenConfig): void {
  if (!config.auth.oauth.authorizationServer.enabled) {
    err(colour.dim('Note: the built-in authorization server is off (auth.oauth.authorizationServer.enabled), so users cannot log in until it is on.', process.stderr));
  }
}

export function registerUsers(program: Command): void {
  const users = program.command('users').description('manage the people who log in at the built-in authorization server (passwords stored as argon2id hashes)');
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();

  users
    .command('add <username>')
    .description('create a local account; without --password-stdin a password is generated and printed alone on stdout, once')
    .requiredOption('--roles <roles>', 'comma-separated roles, e.g. admin,reader')
    .option('--password-stdin', 'read the password from stdin (at least 12 characters)')
    .option('--json', 'print the account (and a generated password) as JSON')
    .action(async (username: string, options: { roles: string; passwordStdin?: boolean; json?: boolean }) => {
      const given = options.passwordStdin === true ? await readPasswordFromStdin() : undefined;
      await withStore(globals(), async (store, config) => {
        const roles = parseRoles(options.roles, config);
        const password = given ?? generatePassword();
        const user = await refusalsAsUserErrors(() => new UserService(store.users).add(username, password, roles));
        const summary = `Created user ${user.username} (${user.id}, roles: ${user.roles.join(', ')}).`;
        if (options.json === true) printJson(given === undefined ? { password, ...view(user) } : view(user));
        else if (given === undefined) {
          out(password);
          err(`${summary} The password above is shown only once.`);
        } else out(summary);
        noteWhenLoginIsOff(config);
      });
    });

  users
    .command('list')
    .description('list accounts with their roles and status (never a password or hash)')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      await withStore(globals(), async (store) => {
        const records = await new UserService(store.users).list();
        if (options.json === true) return printJson(records.map(view));
        if (records.length === 0) return out('No users yet. Add one: mcp-warden users add NAME --roles ROLE');
        printTable(
          ['USERNAME', 'ID', 'ROLES', 'STATUS', 'SIGN-IN', 'CREATED'],
          records.map((u) => [u.username, u.id, u.roles.join(','), u.disabled ? colour.red('disabled') : colour.green('active'), signIn(u), when(u.createdAt)]),
        );
      });
    });

  users
    .command('disable <username>')
    .description('stop an account from logging in (kept, and can be enabled again)')
    .action(async (username: string) => {
      await withStore(globals(), async (store) => {
        if (!(await new UserService(store.users).disable(username))) notFound(username);
        out(`Disabled user ${username}: it can no longer log in.`);
      });
    });

  users
    .command('enable <username>')
    .description('let a disabled account log in again')
    .action(async (username: string) => {
      await withStore(globals(), async (store) => {
        if (!(await new UserService(store.users).enable(username))) notFound(username);
        out(`Enabled user ${username}.`);
      });
    });

  users
    .command('roles <username>')
    .description("replace an account's roles (a federated account's are replaced again at its next login)")
    .requiredOption('--roles <roles>', 'comma-separated roles, e.g. admin,reader')
    .action(async (username: string, options: { roles: string }) => {
      await withStore(globals(), async (store, config) => {
        const roles = parseRoles(options.roles, config);
        if (!(await refusalsAsUserErrors(() => new UserService(store.users).setRoles(username, roles)))) notFound(username);
        out(`User ${username} now has roles: ${roles.join(', ')}.`);
      });
    });

  users
    .command('passwd <username>')
    .description('set a new password; without --password-stdin one is generated and printed alone on stdout, once')
    .option('--password-stdin', 'read the password from stdin (at least 12 characters)')
    .option('--json', 'print the generated password as JSON')
    .action(async (username: string, options: { passwordStdin?: boolean; json?: boolean }) => {
      const given = options.passwordStdin === true ? await readPasswordFromStdin() : undefined;
      await withStore(globals(), async (store) => {
        const password = given ?? generatePassword();
        if (!(await refusalsAsUserErrors(() => new UserService(store.users).setPassword(username, password)))) notFound(username);
        if (given !== undefined) return out(`Changed the password of user ${username}.`);
        if (options.json === true) return printJson({ username, password });
        out(password);
        err(`Changed the password of user ${username}. The password above is shown only once.`);
      });
    });
}
