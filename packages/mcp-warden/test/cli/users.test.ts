/**
 * `mcp-warden users …` as an operator runs it: the built CLI spawned in a temporary directory on a
 * SQLite store, passwords piped to stdin. Logins are then checked through the service on the same file.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSqliteStore } from '../../src/store/sql/sql-store.js';
import { UserService } from '../../src/users/service.js';
import { type CliResult, ROOT, cli } from './run-cli.js';

const CONFIG = `store: { type: sqlite, path: ./warden.db }
roles:
  admin: [read, write, delete]
  reader: [read]
`;

let dir: string;
/** Every output of every command run, to scan for secrets at the end. */
const outputs: string[] = [];

/** Runs `mcp-warden …` in the test directory, with `input` on stdin. */
function run(args: readonly string[], input?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [`${ROOT}packages/mcp-warden/dist/cli/main.js`, ...args],
      { cwd: dir, env: { PATH: process.env['PATH'] ?? '', HOME: dir, NO_COLOR: '1' }, timeout: 30_000 },
      (error, stdout, stderr) => {
        outputs.push(stdout, stderr);
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
      },
    );
    child.stdin?.end(input ?? '');
  });
}

/** Checks a login against the store file, as the authorization server will. */
async function login(username: string, password: string): Promise<{ username: string; roles: readonly string[] } | undefined> {
  const store = createSqliteStore({ path: join(dir, 'warden.db') });
  try {
    return await new UserService(store.users).authenticate(username, password);
  } finally {
    await store.close();
  }
}

async function listed(): Promise<Record<string, any>[]> {
  const result = await run(['users', 'list', '--json']);
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as Record<string, any>[];
}

// Each test spawns the CLI several times; on a loaded 2-core machine one start can take seconds.
describe('mcp-warden users', { timeout: 180_000 }, () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-warden-users-'));
    writeFileSync(join(dir, 'mcp-warden.yaml'), CONFIG);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('add without --password-stdin prints a generated password alone on stdout, once, and it logs in', async () => {
    const added = await run(['users', 'add', 'Alice', '--roles', 'admin,reader']);
    expect(added.code).toBe(0);
    const password = added.stdout.trim();
    expect(added.stdout).toMatch(/^[A-Za-z0-9_-]{24}\n$/);
    expect(added.stderr).toMatch(/Created user Alice \(usr_[A-Za-z0-9_-]{16}, roles: admin, reader\)\. The password above is shown only once\./);
    expect(added.stderr).toContain('the built-in authorization server is off');
    expect(added.stderr).not.toContain(password);
    expect(await login('alice', password)).toMatchObject({ username: 'Alice', roles: ['admin', 'reader'] });
    const [alice] = await listed();
    expect(alice).toMatchObject({ username: 'Alice', roles: ['admin', 'reader'], status: 'active', hasPassword: true, federated: null, disabledAt: null });
    expect(JSON.stringify(alice)).not.toContain(password);
  });

  it('add --password-stdin takes the piped password (without its line break) and never echoes it', async () => {
    const password = 'piped passphrase, 2026 edition';
    const added = await run(['users', 'add', 'bob', '--roles', 'reader', '--password-stdin'], `${password}\n`);
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(/^Created user bob \(usr_[A-Za-z0-9_-]{16}, roles: reader\)\.\n$/);
    expect(added.stdout + added.stderr).not.toContain(password);
    expect(await login('bob', password)).toMatchObject({ username: 'bob', roles: ['reader'] });
    expect(await login('bob', `${password}\n`)).toBeUndefined();
  });

  it('add --json gives the account and the generated password, once', async () => {
    const added = await run(['users', 'add', 'carol', '--roles', 'reader', '--json']);
    expect(added.code).toBe(0);
    const shown = JSON.parse(added.stdout);
    expect(shown).toMatchObject({ username: 'carol', roles: ['reader'], status: 'active', password: expect.stringMatching(/^[A-Za-z0-9_-]{24}$/) });
    expect(await login('carol', shown.password)).toMatchObject({ username: 'carol' });
  });

  it('lists accounts as a table and as JSON', async () => {
    const table = await run(['users', 'list']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^USERNAME\s+ID\s+ROLES\s+STATUS\s+SIGN-IN\s+CREATED$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 5))).toEqual([
      ['Alice', expect.stringMatching(/^usr_/), 'admin,reader', 'active', 'password'],
      ['bob', expect.stringMatching(/^usr_/), 'reader', 'active', 'password'],
      ['carol', expect.stringMatching(/^usr_/), 'reader', 'active', 'password'],
    ]);
    expect((await listed()).map((u) => u['username'])).toEqual(['Alice', 'bob', 'carol']);
  });

  it('disable stops logins, enable restores them; names match ignoring case', async () => {
    const password = 'dave has a long password';
    await run(['users', 'add', 'dave', '--roles', 'reader', '--password-stdin'], password);
    const disabled = await run(['users', 'disable', 'DAVE']);
    expect(disabled).toMatchObject({ code: 0, stdout: 'Disabled user DAVE: it can no longer log in.\n' });
    expect(await login('dave', password)).toBeUndefined();
    expect((await listed()).find((u) => u['username'] === 'dave')).toMatchObject({ status: 'disabled', disabledAt: expect.stringMatching(/^\d{4}-/) });
    expect((await run(['users', 'list'])).stdout).toMatch(/dave\s+usr_\S+\s+reader\s+disabled/);
    expect((await run(['users', 'enable', 'dave'])).code).toBe(0);
    expect(await login('dave', password)).toMatchObject({ username: 'dave' });
  });

  it('roles replaces the roles; passwd sets a piped or a generated password', async () => {
    expect(await run(['users', 'roles', 'bob', '--roles', 'admin'])).toMatchObject({ code: 0, stdout: 'User bob now has roles: admin.\n' });
    const fresh = 'bob changed his passphrase';
    const piped = await run(['users', 'passwd', 'bob', '--password-stdin'], `${fresh}\r\n`);
    expect(piped).toMatchObject({ code: 0, stdout: 'Changed the password of user bob.\n' });
    expect(piped.stderr).not.toContain(fresh);
    expect(await login('bob', fresh)).toMatchObject({ roles: ['admin'] });
    const generated = await run(['users', 'passwd', 'bob']);
    expect(generated.stdout).toMatch(/^[A-Za-z0-9_-]{24}\n$/);
    expect(generated.stderr).toContain('shown only once');
    expect(await login('bob', fresh)).toBeUndefined();
    expect(await login('bob', generated.stdout.trim())).toMatchObject({ username: 'bob' });
  });

  describe('refusals say what to do, with documented exit codes', () => {
    it('a taken name (compared ignoring case) → 2', async () => {
      const taken = await run(['users', 'add', 'ALICE', '--roles', 'reader']);
      expect(taken.code).toBe(2);
      expect(taken.stdout).toBe('');
      expect(taken.stderr).toBe('mcp-warden: the username "ALICE" is taken (names are compared ignoring case and width)\n');
    });

    it('an invalid name, a weak password, a role the config does not define, no role → 2', async () => {
      expect(await run(['users', 'add', ' eve', '--roles', 'reader'])).toMatchObject({ code: 2, stderr: 'mcp-warden: a username cannot begin or end with a space\n' });
      expect(await run(['users', 'add', 'e'.repeat(65), '--roles', 'reader'])).toMatchObject({ code: 2, stderr: 'mcp-warden: a username has at most 64 characters\n' });
      const weak = await run(['users', 'add', 'eve', '--roles', 'reader', '--password-stdin'], 'tooshort');
      expect(weak).toMatchObject({ code: 2, stderr: 'mcp-warden: a password needs at least 12 characters\n' });
      expect(weak.stdout + weak.stderr).not.toContain('tooshort');
      expect(await run(['users', 'add', 'eve', '--roles', 'reader,auditor'])).toMatchObject({
        code: 2,
        stderr: 'mcp-warden: --roles: auditor is not defined in the config (roles: admin, reader)\n',
      });
      expect((await run(['users', 'add', 'eve', '--roles', ' , '])).code).toBe(2);
      expect((await run(['users', 'roles', 'bob', '--roles', 'root'])).code).toBe(2);
      expect((await run(['users', 'add', 'eve'])).code).toBe(2);
      expect((await listed()).map((u) => u['username'])).not.toContain('eve');
    });

    it('an unknown name → 3', async () => {
      for (const args of [['disable', 'zed'], ['enable', 'zed'], ['roles', 'zed', '--roles', 'reader'], ['passwd', 'zed']]) {
        const result = await run(['users', ...args]);
        expect(result, args.join(' ')).toMatchObject({ code: 3, stdout: '', stderr: 'mcp-warden: no user named "zed"; see mcp-warden users list\n' });
      }
    });

    it('prints --help for users and its subcommands', async () => {
      for (const args of [['users'], ['users', 'add']]) {
        const help = await cli(dir, [...args, '--help']);
        expect(help.code, args.join(' ')).toBe(0);
        expect(help.stdout).toContain('Usage: mcp-warden users');
      }
      const help = await cli(dir, ['users', '--help']);
      for (const sub of ['add', 'list', 'disable', 'enable', 'roles', 'passwd']) expect(help.stdout).toMatch(new RegExp(`^  ${sub} `, 'm'));
    });
  });

  describe('Security', () => {
    it('no output of any command, and no listing, holds a password hash; the SQLite file holds no password', async () => {
      const store = createSqliteStore({ path: join(dir, 'warden.db') });
      let hashes: string[];
      try {
        hashes = (await store.users.listUsers()).map((u) => u.passwordHash ?? '');
      } finally {
        await store.close();
      }
      expect(hashes.length).toBeGreaterThanOrEqual(4);
      for (const hash of hashes) expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
      await listed();
      const said = outputs.join('\n');
      expect(said).not.toContain('$argon2');
      for (const hash of hashes) expect(said).not.toContain(hash.split('$').at(-1));

      const bytes = readdirSync(dir)
        .filter((name) => name.startsWith('warden.db'))
        .map((name) => readFileSync(join(dir, name)).toString('latin1'))
        .join('\n');
      for (const hash of hashes) expect(bytes.includes(hash), 'the scan should find each hash').toBe(true);
      for (const password of ['piped passphrase, 2026 edition', 'dave has a long password', 'bob changed his passphrase']) {
        expect(bytes.includes(password), `the database holds "${password}"`).toBe(false);
      }
    });
  });
});
