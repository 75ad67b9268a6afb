/**
 * The demo user of `npm start` (issue item 7): `mcp-warden serve` on a copy of the demo config, state
 * in a temporary directory. With the built-in authorization server on and no users, the first run
 * creates `demo` and prints its password once; the password logs in; later runs create nothing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { createSqliteStore } from '../../src/store/sql/sql-store.js';
import { UserService } from '../../src/users/service.js';
import { ROOT, freePort, stop } from './run-cli.js';

const running: ChildProcess[] = [];
afterEach(async () => {
  for (const child of running.splice(0)) await stop(child);
});

/** The demo config with its store in `dir` and the authorization server on or off. */
function writeDemoConfig(dir: string, authorizationServer: boolean): string {
  const config = parse(readFileSync(`${ROOT}examples/gateway/mcp-warden.yaml`, 'utf8')) as Record<string, any>;
  config['store'] = { type: 'sqlite', path: join(dir, 'warden.db') };
  config['auth'] ??= {};
  config['auth'].oauth ??= {};
  config['auth'].oauth.authorizationServer = { ...config['auth'].oauth.authorizationServer, enabled: authorizationServer };
  const file = join(dir, 'mcp-warden.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

/** Runs serve until its first-run output is complete (the keys come last), then stops it; returns the output. */
async function serveOnce(config: string): Promise<string> {
  const child = spawn(process.execPath, [`${ROOT}packages/mcp-warden/dist/cli/main.js`, '--config', config, 'serve'], {
    cwd: ROOT,
    env: { PATH: `${ROOT}node_modules/.bin:${process.env['PATH'] ?? ''}`, HOME: tmpdir(), PORT: String(await freePort()), NO_COLOR: '1', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.push(child);
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const deadline = Date.now() + 60_000;
  while (!/reader +mcpw_\S+\n|Using the keys created earlier/.test(output)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`serve did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop(child);
  return output;
}

async function withUsers<T>(dir: string, work: (users: UserService) => Promise<T>): Promise<T> {
  const store = createSqliteStore({ path: join(dir, 'warden.db') });
  try {
    return await work(new UserService(store.users));
  } finally {
    await store.close();
  }
}

describe('mcp-warden serve: the demo user', { timeout: 120_000 }, () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-warden-demo-user-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('creates no user while the authorization server is off', async () => {
    const output = await serveOnce(writeDemoConfig(dir, false));
    expect(output).toMatch(/reader +mcpw_/);
    expect(output).not.toContain('username');
    expect(await withUsers(dir, (users) => users.list())).toEqual([]);
  });

  let password = '';
  it('with the authorization server on and no users, creates demo (admin) and prints its password once, before the keys', async () => {
    const output = await serveOnce(writeDemoConfig(dir, true));
    expect(output).toContain('First run: created a user to log in at the built-in authorization server (roles: admin). The password is shown only once.');
    expect(output).toMatch(/^ {2}username demo$/m);
    password = /^ {2}password (\S+)$/m.exec(output)?.[1] ?? '';
    expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(output).toMatch(/An OAuth-capable MCP client connecting to http:\/\/127\.0\.0\.1:\d+\/mcp\/everything opens the login page/);
    // The keys were made by the earlier run: a store with keys but no users still gets the demo user.
    expect(output).toContain('Using the keys created earlier');
    expect(output.indexOf('username demo')).toBeLessThan(output.indexOf('Using the keys created earlier'));
    expect(await withUsers(dir, (users) => users.authenticate('demo', password))).toMatchObject({ username: 'demo', roles: ['admin'] });
  });

  it('later runs create no user and print no password', async () => {
    const output = await serveOnce(writeDemoConfig(dir, true));
    expect(output).toContain('Using the users created earlier (mcp-warden users list). Lost the demo password? mcp-warden users passwd demo');
    expect(output).not.toMatch(/^ {2}password /m);
    expect(output).not.toContain(password);
    const users = await withUsers(dir, (service) => service.list());
    expect(users.map((u) => u.username)).toEqual(['demo']);
  });
});
