/** `mcp-warden serve`: run the gateway in front of the configured upstreams. */
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../../config/load.js';
import { pino } from 'pino';
import type { KeyService } from '../../keys/service.js';
import type { WardenConfig } from '../../config/schema.js';
import type { UserStore } from '../../store/types.js';
import { UserAccountError } from '../../users/errors.js';
import { UserService, generatePassword } from '../../users/service.js';
import { startGateway } from '../../server/gateway.js';
import { type GlobalOptions, readConfig } from '../context.js';
import { UserError, colour, out } from '../output.js';

/** On a store without any key, creates an admin and a reader key and prints them once. */
async function bootstrapKeys(keys: KeyService, roles: readonly string[], url: string, firstUpstream: string | undefined): Promise<void> {
  if ((await keys.list()).length > 0) {
    out(colour.dim('Using the keys created earlier (mcp-warden keys list). Lost them? mcp-warden keys create --name NAME --role ROLE'));
    return;
  }
  const wanted = ['admin', 'reader'].filter((r) => roles.includes(r));
  if (wanted.length === 0) {
    out('No key created: the config defines neither an admin nor a reader role. Create one with: mcp-warden keys create --name NAME --role ROLE');
    return;
  }
  out('First run: created these keys. They are shown only once; store them now.');
  const issued: Record<string, string> = {};
  for (const role of wanted) {
    const key = await keys.create({ name: `first-${role}`, roles: [role], note: 'created by the first run of mcp-warden serve' });
    issued[role] = key.plaintext;
    out(`  ${role.padEnd(6)} ${colour.bold(key.plaintext)}`);
  }
  const key = issued['reader'] ?? issued['admin'] ?? '';
  if (firstUpstream !== undefined) {
    const endpoint = `${url}/mcp/${firstUpstream}`;
    out('');
    out('Try it:');
    out(`  curl -s ${endpoint} -H "Authorization: Bearer ${key}" -H 'Content-Type: application/json' \\`);
    out(`    -H 'Accept: application/json, text/event-stream' \\`);
    out(`    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'`);
    out('');
    out('Or with the MCP TypeScript SDK:');
    out(`  new StreamableHTTPClientTransport(new URL('${endpoint}'), { requestInit: { headers: { Authorization: 'Bearer <key>' } } })`);
  }
}

/** The demo user's name (docs/users.md). */
const DEMO_USER = 'demo';

/**
 * With the built-in authorization server on and no users yet, creates the user `demo` with a
 * generated password and prints both once, so an OAuth client can log in on the first run. Its roles:
 * `admin` when the config defines it, else every configured role (a demo may do what the config allows).
 */
async function bootstrapDemoUser(store: UserStore, config: WardenConfig, endpoint: string | undefined): Promise<void> {
  if (!config.auth.oauth.authorizationServer.enabled) return;
  const users = new UserService(store);
  const existing = colour.dim(`Using the users created earlier (mcp-warden users list). Lost the demo password? mcp-warden users passwd ${DEMO_USER}`);
  if ((await users.list()).length > 0) return out(existing);
  const configured = Object.keys(config.roles);
  const roles = configured.includes('admin') ? ['admin'] : configured;
  if (roles.length === 0) return;
  const password = generatePassword();
  try {
    await users.add(DEMO_USER, password, roles);
  } catch (error) {
    // Another gateway on the same store made it first.
    if (error instanceof UserAccountError && error.code === 'username_taken') return out(existing);
    throw error;
  }
  out(`First run: created a user to log in at the built-in authorization server (roles: ${roles.join(', ')}). The password is shown only once.`);
  out(`  username ${colour.bold(DEMO_USER)}`);
  out(`  password ${colour.bold(password)}`);
  if (endpoint !== undefined) out(`  An OAuth-capable MCP client connecting to ${endpoint} opens the login page: sign in there with these.`);
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the gateway: authentication, per-tool authorization and audit in front of the configured upstreams')
    .option('--port <port>', 'listen on this port (also $PORT; default: server.port)')
    .action(async (options: { port?: string }) => {
      const { file, config } = readConfig(program.opts<GlobalOptions>());
      const path = resolve(file);
      const textOf = (): string | undefined => {
        try {
          return readFileSync(path, 'utf8');
        } catch {
          // Gone for the moment (being replaced): the next event tells.
          return undefined;
        }
      };
      // The text running now: an edit made while the gateway starts is a change.
      let seen = textOf();
      const rawPort = options.port ?? process.env['PORT'];
      let port: number | undefined;
      if (rawPort !== undefined) {
        port = Number(rawPort);
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`--port / PORT: expected a port number, got "${rawPort}"`);
      }
      if (Object.keys(config.upstreams).length === 0) throw new UserError(`${file}: no upstreams configured; add one under "upstreams:" (see docs/gateway.md)`);
      // JSON lines for machines; readable lines on a terminal (NO_COLOR respected by pino-pretty).
      const logger = pino({
        level: process.env['LOG_LEVEL'] ?? 'info',
        base: { service: 'mcp-warden' },
        ...(process.stdout.isTTY === true ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } } : {}),
      });
      // A SIGHUP while the gateway starts (it lists every upstream's tools first) would end the
      // process, Node's default for it: it is remembered instead, and reloads once the gateway runs.
      let hupWhileStarting = false;
      const hupDuringStart = (): void => {
        hupWhileStarting = true;
      };
      process.on('SIGHUP', hupDuringStart);
      const gateway = await startGateway({ config, configFile: file, logger, ...(port === undefined ? {} : { port }) });
      await gateway.ready;
      out(`mcp-warden gateway listening on ${gateway.url}`);
      for (const name of gateway.upstreams.keys()) out(`  /mcp/${name}  →  ${gateway.url}/mcp/${name}`);
      const firstUpstream = gateway.upstreams.keys().next().value;
      await bootstrapDemoUser(gateway.services.store.users, config, firstUpstream === undefined ? undefined : `${gateway.url}/mcp/${firstUpstream}`);
      await bootstrapKeys(gateway.services.keys, Object.keys(config.roles), gateway.url, firstUpstream);
      // Hot reload, on SIGHUP and when the file changes: validated, then swapped atomically, or refused.
      let reloading: Promise<void> = Promise.resolve();
      const reload = (why: string): void => {
        reloading = reloading.then(async () => {
          let next;
          try {
            next = loadConfig(file);
            await gateway.reload(next);
            logger.info({ why, file }, 'configuration reloaded');
          } catch (error) {
            const problems = error instanceof ConfigError ? error.problems : [(error as Error).message];
            logger.error({ why, file, problems }, 'configuration reload refused; the running configuration is kept');
          }
        });
      };
      let stopping = false;
      process.on('SIGHUP', () => {
        if (!stopping) reload('SIGHUP');
      });
      process.off('SIGHUP', hupDuringStart);
      if (hupWhileStarting) reload('SIGHUP while starting');
      // The file is watched, and watched again after each event: an editor saving by renaming a new
      // file over the old one, or a Kubernetes ConfigMap (a symlink swapped), replaces the file, and
      // a watch follows the replaced one no more. (Not its directory: a SQLite store or an audit
      // file beside it would wake the gateway on every write.) After an event it is read again, and
      // reloaded when its text changed.
      let debounce: NodeJS.Timeout | undefined;
      let watcher: FSWatcher | undefined;
      let warned = false;
      const arm = (): void => {
        watcher?.close();
        watcher = undefined;
        if (stopping) return;
        try {
          watcher = watch(path, () => {
            clearTimeout(debounce);
            debounce = setTimeout(changed, 200);
          });
          watcher.on('error', () => {
            // Gone (replaced): watch what is there now.
            clearTimeout(debounce);
            debounce = setTimeout(changed, 200);
          });
          warned = false;
        } catch (error) {
          // Not there for the moment (being replaced): look again soon.
          if (!warned) logger.warn({ file, err: (error as Error).message }, 'cannot watch the configuration file for now; SIGHUP still reloads');
          warned = true;
          clearTimeout(debounce);
          debounce = setTimeout(changed, 1000);
        }
      };
      const changed = (): void => {
        arm();
        const text = textOf();
        if (text === undefined || text === seen) return;
        seen = text;
        reload('file changed');
      };
      arm();
      const stop = (signal: string): void => {
        if (stopping) {
          // A second signal: the operator will not wait for the requests in flight (nor the audit flush).
          logger.warn({ signal }, 'second signal: exiting without waiting for the requests in flight');
          process.exit(1);
        }
        stopping = true;
        logger.info({ signal }, 'shutting down (a second signal exits at once)');
        clearTimeout(debounce);
        watcher?.close();
        void gateway.close().then(() => process.exit(0));
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
      await new Promise(() => {});
    });
}
