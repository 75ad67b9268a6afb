/** `mcp-warden keys …`: create, list, show, revoke, rotate managed API keys. */
import type { Command } from 'commander';
import { parseDuration } from '../../config/duration.js';
import { KeyNotFoundError, KeyService, keyStatus } from '../../keys/service.js';
import type { ApiKeyRecord } from '../../store/types.js';
import { type GlobalOptions, withStore } from '../context.js';
import { ExitCode, UserError, colour, err, out, printJson, printTable, when } from '../output.js';

/** The longest `--expires` or `--grace`: past it a date cannot be shown (or stored as a PostgreSQL bigint). */
const MAX_DURATION_MS = 100 * 365 * 86_400_000;

function durationOption(value: string, flag: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new UserError(`${flag}: "${value}" is not a duration; use e.g. 30d, 24h, 15m`);
  if (ms > MAX_DURATION_MS) throw new UserError(`${flag}: "${value}" is longer than 100 years${flag === '--expires' ? '; leave --expires out for a key that does not expire' : ''}`);
  return ms;
}

function view(record: ApiKeyRecord, now: number): Record<string, unknown> {
  return {
    id: record.id,
    name: record.name,
    roles: record.roles,
    status: keyStatus(record, now),
    createdAt: when(record.createdAt),
    expiresAt: record.expiresAt === undefined ? null : when(record.expiresAt),
    revokedAt: record.revokedAt === undefined ? null : when(record.revokedAt),
    lastUsedAt: record.lastUsedAt === undefined ? null : when(record.lastUsedAt),
    note: record.note ?? null,
    rotatedFrom: record.rotatedFrom ?? null,
    replacedBy: record.replacedBy ?? null,
  };
}

function statusColour(status: string): string {
  if (status === 'active') return colour.green(status);
  if (status === 'rotating') return colour.yellow(status);
  return colour.red(status);
}

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('manage API keys (stored only as hashes)');
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();

  keys
    .command('create')
    .description('create a key; the key alone goes to stdout (KEY=$(mcp-warden keys create ...)), shown once')
    .requiredOption('--name <name>', 'a name for people')
    .requiredOption('--role <role...>', 'role(s) the key has (repeatable)')
    .option('--expires <duration>', 'lifetime, e.g. 30d, 12h')
    .option('--note <text>', 'a note kept with the key')
    .option('--json', 'print the key and its record as JSON')
    .action(async (options: { name: string; role: string[]; expires?: string; note?: string; json?: boolean }) => {
      const expiresInMs = options.expires === undefined ? undefined : durationOption(options.expires, '--expires');
      await withStore(globals(), async (store, config) => {
        const unknown = options.role.filter((r) => !Object.hasOwn(config.roles, r));
        if (unknown.length > 0) {
          throw new UserError(`--role: ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not defined in the config (roles: ${Object.keys(config.roles).join(', ') || 'none'})`);
        }
        let issued;
        try {
          issued = await new KeyService(store.keys).create({
            name: options.name,
            roles: options.role,
            ...(expiresInMs === undefined ? {} : { expiresInMs }),
            ...(options.note === undefined ? {} : { note: options.note }),
          });
        } catch (error) {
          // The service's refusals (an empty name, an expiry not in the future) are the user's to fix.
          if (error instanceof TypeError) throw new UserError(error.message);
          throw error;
        }
        if (options.json === true) printJson({ key: issued.plaintext, ...view(issued.record, Date.now()) });
        else {
          out(issued.plaintext);
          err(`Created key ${issued.record.id} (${issued.record.name}, roles: ${issued.record.roles.join(', ')}). It is shown only once.`);
        }
      });
    });

  keys
    .command('list')
    .description('list keys with their status')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      await withStore(globals(), async (store) => {
        const now = Date.now();
        const records = await store.keys.listKeys();
        if (options.json === true) return printJson(records.map((r) => view(r, now)));
        if (records.length === 0) return out('No keys yet. Create one: mcp-warden keys create --name NAME --role ROLE');
        printTable(
          ['ID', 'NAME', 'ROLES', 'STATUS', 'CREATED', 'EXPIRES', 'LAST USED'],
          records.map((r) => [r.id, r.name, r.roles.join(','), statusColour(keyStatus(r, now)), when(r.createdAt), when(r.expiresAt), when(r.lastUsedAt)]),
        );
      });
    });

  keys
    .command('show <id>')
    .description('show one key (never its secret)')
    .option('--json', 'print JSON')
    .action(async (id: string, options: { json?: boolean }) => {
      await withStore(globals(), async (store) => {
        const record = await store.keys.getKey(id);
        if (record === undefined) throw new UserError(`no key with id ${id}; see mcp-warden keys list`, ExitCode.NotFound);
        const shown = view(record, Date.now());
        if (options.json === true) return printJson(shown);
        for (const [k, v] of Object.entries(shown)) out(`${k.padEnd(11)} ${Array.isArray(v) ? v.join(', ') : String(v ?? '-')}`);
      });
    });

  keys
    .command('revoke <id>')
    .description('revoke a key at once')
    .action(async (id: string) => {
      await withStore(globals(), async (store) => {
        if (!(await new KeyService(store.keys).revoke(id))) throw new UserError(`no key with id ${id}; see mcp-warden keys list`, ExitCode.NotFound);
        out(`Revoked key ${id}. Gateways on this store refuse it from their next request.`);
      });
    });

  keys
    .command('rotate <id>')
    .description('issue a successor key (alone on stdout); the old one keeps working for the grace period')
    .option('--grace <duration>', 'how long the old key keeps working', '24h')
    .option('--json', 'print the new key and its record as JSON')
    .action(async (id: string, options: { grace: string; json?: boolean }) => {
      const graceMs = options.grace === '0' ? 0 : durationOption(options.grace, '--grace');
      await withStore(globals(), async (store) => {
        let issued;
        try {
          issued = await new KeyService(store.keys).rotate(id, graceMs);
        } catch (error) {
          if (error instanceof KeyNotFoundError) throw new UserError(`no key with id ${id}; see mcp-warden keys list`, ExitCode.NotFound);
          if (error instanceof TypeError) throw new UserError(error.message);
          throw error;
        }
        if (options.json === true) printJson({ key: issued.plaintext, ...view(issued.record, Date.now()) });
        else {
          out(issued.plaintext);
          // The old key stops at the end of the grace, or at its own expiry if that comes first.
          const old = await store.keys.getKey(id);
          const until = graceMs <= 0 ? undefined : Math.min(Date.now() + graceMs, old?.expiresAt ?? Infinity);
          err(`Key ${id} rotated to ${issued.record.id}; ${until === undefined ? `${id} is revoked.` : `${id} keeps working until ${when(until)}.`}`);
        }
      });
    });
}
