/**
 * `mcp-warden grants …`: consent remembered by the built-in authorization server, per user and
 * client. Revoking one makes the next authorization ask again and stops the client's refresh tokens
 * at once; JWT access tokens already issued run out on their own (`accessTokenTtl`).
 */
import type { Command } from 'commander';
import { type GrantView, GrantService } from '../../oauth/grants.js';
import type { Store } from '../../store/types.js';
import { UserService } from '../../users/service.js';
import { type GlobalOptions, withStore } from '../context.js';
import { ExitCode, UserError, out, printJson, printTable, when } from '../output.js';

async function userIdOf(store: Store, username: string): Promise<string> {
  const user = await new UserService(store.users).findByUsername(username);
  if (user === undefined) throw new UserError(`no user named ${JSON.stringify(username)}; see mcp-warden users list`, ExitCode.NotFound);
  return user.id;
}

async function view(store: Store, grants: readonly GrantView[]): Promise<Record<string, unknown>[]> {
  const users = new UserService(store.users);
  const names = new Map<string, string>();
  for (const grant of grants) {
    if (!names.has(grant.accountId)) names.set(grant.accountId, (await users.get(grant.accountId))?.username ?? grant.accountId);
  }
  return grants.map((g) => ({
    id: g.id,
    user: names.get(g.accountId),
    userId: g.accountId,
    client: g.clientId,
    scopes: g.scopes,
    resources: g.resources,
    createdAt: g.createdAt === undefined ? null : when(g.createdAt),
    expiresAt: g.expiresAt === undefined ? null : when(g.expiresAt),
  }));
}

export function registerGrants(program: Command): void {
  const grants = program.command('grants').description('consent remembered by the built-in authorization server (per user and client)');
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();

  grants
    .command('list')
    .description('list remembered consent')
    .option('--user <username>', 'only this user')
    .option('--client <id>', 'only this client')
    .option('--json', 'print JSON')
    .action(async (options: { user?: string; client?: string; json?: boolean }) => {
      await withStore(globals(), async (store) => {
        const accountId = options.user === undefined ? undefined : await userIdOf(store, options.user);
        const listed = await new GrantService(store.oauth).list({
          ...(accountId === undefined ? {} : { accountId }),
          ...(options.client === undefined ? {} : { clientId: options.client }),
        });
        const rows = await view(store, listed);
        if (options.json === true) return printJson(rows);
        if (rows.length === 0) return out('No remembered consent.');
        printTable(
          ['USER', 'CLIENT', 'SCOPES', 'RESOURCES', 'CREATED', 'EXPIRES'],
          rows.map((r) => [String(r['user']), String(r['client']), (r['scopes'] as string[]).join(' '), (r['resources'] as string[]).join(' '), String(r['createdAt'] ?? '-'), String(r['expiresAt'] ?? '-')]),
        );
      });
    });

  grants
    .command('revoke')
    .description("withdraw a user's consent to a client: the next authorization asks again, its refresh tokens stop working")
    .requiredOption('--user <username>', 'the user')
    .requiredOption('--client <id>', 'the client id')
    .action(async (options: { user: string; client: string }) => {
      await withStore(globals(), async (store) => {
        const revoked = await new GrantService(store.oauth).revoke(await userIdOf(store, options.user), options.client);
        if (revoked === 0) throw new UserError(`${options.user} has no remembered consent for client ${options.client}; see mcp-warden grants list`, ExitCode.NotFound);
        out(`Revoked the consent of ${options.user} to ${options.client}: its refresh tokens no longer work; access tokens already issued expire within the access token lifetime.`);
      });
    });
}
