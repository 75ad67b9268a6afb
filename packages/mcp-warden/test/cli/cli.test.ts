/**
 * The CLI as a user runs it: spawned processes in a temporary directory, against the tutorial server.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, cli, startTutorial, stop } from './run-cli.js';

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const KEY = /^mcpw_[a-z2-7]{12}_[0-9A-Za-z]{43}_[0-9A-Za-z]{6}$/;

async function mcp(url: string, key: string, body: unknown) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  const data = text.split('\n').find((l) => l.startsWith('data: '));
  return { status: response.status, json: (data !== undefined ? JSON.parse(data.slice(6)) : text.startsWith('{') ? JSON.parse(text) : undefined) as any };
}

describe('mcp-warden CLI', () => {
  let dir: string;
  let env: Record<string, string>;
  let server: ChildProcess | undefined;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-warden-cli-'));
    env = { MCP_WARDEN_CONFIG: join(dir, 'mcp-warden.yaml') };
  });
  afterAll(async () => {
    if (server !== undefined) await stop(server);
    rmSync(dir, { recursive: true, force: true });
  });

  it('init → reader key → works against the tutorial server → revoke → 401 on the next request', async () => {
    const init = await cli(dir, ['init']);
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/Your admin key \([a-z2-7]{12}\) is shown once/);
    const adminKey = /(mcpw_\S+)/.exec(init.stdout)?.[1] ?? '';
    expect(adminKey).toMatch(KEY);
    expect(readFileSync(join(dir, 'mcp-warden.yaml'), 'utf8')).toContain('# mcp-warden configuration');

    const created = await cli(dir, ['keys', 'create', '--name', 'reader-bot', '--role', 'reader', '--expires', '30d'], env);
    expect(created.code).toBe(0);
    const readerKey = created.stdout.trim();
    expect(readerKey).toMatch(KEY);
    expect(created.stderr).toContain('shown only once');
    const readerId = readerKey.slice(5, 17);

    const tutorial = await startTutorial({ ...env, TUTORIAL_MODE: '0' });
    server = tutorial.child;
    const list = await mcp(tutorial.url, readerKey, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    expect(list.status).toBe(200);
    expect(list.json.result.tools.map((t: { name: string }) => t.name).sort()).toEqual(['list_notes', 'read_note', 'whoami']);
    const denied = await mcp(tutorial.url, readerKey, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'delete_note', arguments: { name: 'welcome' } } });
    expect(denied.json.error).toMatchObject({ code: -32003, data: { permission: 'delete' } });
    expect((await mcp(tutorial.url, adminKey, { jsonrpc: '2.0', id: 3, method: 'tools/list' })).json.result.tools).toHaveLength(5);

    const revoked = await cli(dir, ['keys', 'revoke', readerId], env);
    expect(revoked.code).toBe(0);
    const after = await mcp(tutorial.url, readerKey, { jsonrpc: '2.0', id: 4, method: 'tools/list' });
    expect(after.status).toBe(401);
    expect(after.json.error.message).toBe('The API key has been revoked');

    await stop(tutorial.child);
    server = undefined;
    const tail = await cli(dir, ['audit', 'tail', '--json', '--principal', readerId], env);
    const events = tail.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.map((e: { method: string; decision: string }) => `${e.method}:${e.decision}`)).toEqual(['tools/list:allow', 'tools/call:deny']);
    const verify = await cli(dir, ['audit', 'verify'], env);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/^ok: \d+ events, chain intact/);
    const shown = await cli(dir, ['keys', 'show', readerId, '--json'], env);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id: readerId, status: 'revoked', roles: ['reader'], name: 'reader-bot' });
    expect(JSON.parse(shown.stdout).lastUsedAt).not.toBeNull();
    // Seven processes started one after another (the CLI six times, the tutorial under tsx): 10 s
    // alone on a slow 2-core machine, and past the default 20 s once while the whole suite ran.
  }, 60_000);

  it('lists keys as a table and as JSON, never with a secret', async () => {
    const table = await cli(dir, ['keys', 'list'], env);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+ROLES\s+STATUS/);
    const json = JSON.parse((await cli(dir, ['keys', 'list', '--json'], env)).stdout) as { id: string; status: string }[];
    expect(json.map((k) => k.status)).toEqual(['active', 'revoked']);
    expect(table.stdout + JSON.stringify(json)).not.toMatch(/mcpw_/);
  });

  it('rotates a key: the successor alone on stdout, the old key ending after the grace period', async () => {
    const created = (await cli(dir, ['keys', 'create', '--name', 'rotating', '--role', 'reader'], env)).stdout.trim();
    const id = created.slice(5, 17);
    const rotated = await cli(dir, ['keys', 'rotate', id, '--grace', '1h'], env);
    expect(rotated.code).toBe(0);
    expect(rotated.stdout.trim()).toMatch(KEY);
    expect(rotated.stderr).toContain(`Key ${id} rotated to ${rotated.stdout.trim().slice(5, 17)}`);
    const old = JSON.parse((await cli(dir, ['keys', 'show', id, '--json'], env)).stdout);
    expect(old.status).toBe('rotating');
    expect(Date.parse(old.expiresAt) - Date.now()).toBeGreaterThan(59 * 60_000);
  });

  it('explains decisions for roles and keys without calling anything', async () => {
    const deny = await cli(dir, ['explain', '--role', 'reader', '--tool', 'drop_table'], env);
    expect(deny.code).toBe(0);
    expect(deny.stdout).toContain('deny  tools/call drop_table');
    expect(deny.stdout).toContain('rule:   default-deny');
    expect(deny.stdout).toContain('needs:  delete');
    const allow = JSON.parse((await cli(dir, ['explain', '--role', 'reader', '--tool', 'get_weather', '--annotations', '{"readOnlyHint":true}', '--args', '{"city":"Oslo"}', '--json'], env)).stdout);
    expect(allow).toMatchObject({ decision: 'allow', rule: 'role:reader verb:read' });
    const resource = JSON.parse((await cli(dir, ['explain', '--role', 'reader', '--resource', 'file:///docs/../etc/passwd', '--json'], env)).stdout);
    expect(resource).toMatchObject({ decision: 'deny', rule: 'builtin:invalid-target' });
  });

  it('follows the audit log with tail -f', async () => {
    const { spawn } = await import('node:child_process');
    const { createSqliteStore } = await import('../../src/store/sql/sql-store.js');
    const follower = spawn(process.execPath, [`${ROOT}packages/mcp-warden/dist/cli/main.js`, 'audit', 'tail', '-f', '--json', '--decision', 'deny', '-n', '1'], {
      cwd: dir,
      env: { PATH: process.env['PATH'] ?? '', NO_COLOR: '1', ...env },
    });
    let output = '';
    follower.stdout.on('data', (c: Buffer) => (output += c.toString()));
    try {
      // The first test left a denial: the follower prints it, then must pick up the new one while following.
      await waitFor(() => output.includes('\n'));
      expect(output).not.toContain('new denial');
      const store = createSqliteStore({ path: join(dir, '.warden', 'warden.db') });
      await store.audit.append([
        { time: new Date().toISOString(), requestId: 'followed', method: 'tools/call', kind: 'tool', target: 'x', decision: 'allow', rule: 'r', reason: 'allowed, filtered out', latencyMicros: 1 },
        { time: new Date().toISOString(), requestId: 'followed', method: 'tools/call', kind: 'tool', target: 'rm', decision: 'deny', rule: 'default-deny', reason: 'new denial', latencyMicros: 1 },
      ]);
      await store.close();
      await waitFor(() => output.includes('new denial'));
      const last = JSON.parse(output.trim().split('\n').at(-1) ?? '{}');
      expect(last).toMatchObject({ target: 'rm', decision: 'deny', reason: 'new denial' });
      expect(output).not.toContain('allowed, filtered out');
    } finally {
      follower.kill('SIGINT');
    }
  });

  describe('user errors say what to do, with documented exit codes and no stack traces', () => {
    it.each([
      [['keys', 'create', '--name', 'x', '--role', 'ghost'], 2, /--role: ghost is not defined in the config/],
      [['keys', 'create', '--name', 'x', '--role', 'reader', '--expires', 'soon'], 2, /--expires: "soon" is not a duration/],
      [['keys', 'revoke', 'nosuchkey123'], 3, /no key with id nosuchkey123; see mcp-warden keys list/],
      [['explain', '--tool', 'x'], 2, /pass exactly one of --key ID or --role ROLE/],
      [['explain', '--role', 'reader', '--tool', 'x', '--args', '{oops'], 2, /--args: not valid JSON/],
      [['audit', 'tail', '--decision', 'maybe'], 2, /--decision: expected allow or deny/],
      [['keys', 'frobnicate'], 2, /unknown command 'frobnicate'/],
      [['keys', 'create', '--name', 'x', '--role', 'reader', '--expires', '0s'], 2, /the expiry must be in the future/],
      [['keys', 'create', '--name', '  ', '--role', 'reader'], 2, /a key needs a name/],
      [['keys', 'create', '--name', 'x', '--role', 'reader', '--expires', '20000000w'], 2, /--expires: "20000000w" is longer than 100 years; leave --expires out/],
      [['keys', 'rotate', 'nosuchkey123', '--grace', '99999w'], 2, /--grace: "99999w" is longer than 100 years/],
      [['audit', 'verify', '--file', '/nonexistent/audit.jsonl'], 2, /--file: cannot read \/nonexistent\/audit.jsonl \(ENOENT\)/],
    ])('%j → exit %i', async (args, code, message) => {
      const result = await cli(dir, args, env);
      expect(result.code).toBe(code);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    });

    it('ends quietly (exit 0, no stack) when the reader of its output stops early: audit tail | head -1', async () => {
      const { execFile } = await import('node:child_process');
      const { writeFileSync } = await import('node:fs');
      const { createSqliteStore } = await import('../../src/store/sql/sql-store.js');
      const path = join(dir, 'many.db');
      const store = createSqliteStore({ path });
      await store.migrate();
      const events = Array.from({ length: 3000 }, (_, i) => ({ time: new Date().toISOString(), requestId: `r${i}`, method: 'tools/call', kind: 'tool' as const, target: 'x'.repeat(200), decision: 'allow' as const, rule: 'r', reason: 'filler '.repeat(20), latencyMicros: 1 }));
      await store.audit.append(events);
      await store.close();
      const config = join(dir, 'many.yaml');
      writeFileSync(config, `store: { type: sqlite, path: ${path} }\n`);
      const cliPath = join(ROOT, 'packages/mcp-warden/dist/cli/main.js');
      const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        // `set -o pipefail` makes the pipeline's status the CLI's, not head's.
        execFile('bash', ['-c', `set -o pipefail; "${process.execPath}" "${cliPath}" --config "${config}" audit tail -n 3000 --json | head -1`], { env: { PATH: process.env['PATH'] ?? '', NO_COLOR: '1' }, timeout: 30_000 }, (error, stdout, stderr) =>
          resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr }),
        );
      });
      expect(result.stderr).not.toMatch(/EPIPE|\n\s+at /);
      expect(result.code).toBe(0);
      expect(result.stdout.trim().split('\n')).toHaveLength(1);
    });

    it('lists a key stored with an expiry no date can hold (by an older version) instead of failing', async () => {
      const { writeFileSync } = await import('node:fs');
      const { createSqliteStore } = await import('../../src/store/sql/sql-store.js');
      const path = join(dir, 'far.db');
      const store = createSqliteStore({ path });
      await store.migrate();
      await store.keys.insertKey({ id: 'farfuture234', name: 'far', hash: 'ab'.repeat(32), roles: ['reader'], createdAt: Date.now(), expiresAt: 6.048e22 });
      await store.close();
      const config = join(dir, 'far.yaml');
      writeFileSync(config, `store: { type: sqlite, path: ${path} }\nroles: { reader: [read] }\n`);
      for (const args of [['keys', 'list'], ['keys', 'list', '--json'], ['keys', 'show', 'farfuture234']]) {
        const result = await cli(dir, ['--config', config, ...args]);
        expect(result.code, args.join(' ')).toBe(0);
        expect(result.stdout, args.join(' ')).toContain('6.048e+22 ms since 1970');
      }
    });

    it('names a missing config file and how to create one', async () => {
      const result = await cli(dir, ['keys', 'list'], { MCP_WARDEN_CONFIG: join(dir, 'missing.yaml') });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('missing.yaml: no such file. Run "mcp-warden init"');
    });

    it('refuses to overwrite an existing config without --force', async () => {
      const result = await cli(dir, ['init']);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('already exists');
    });

    it('prints --help for every command', async () => {
      for (const args of [['--help'], ['keys', '--help'], ['keys', 'create', '--help'], ['audit', 'verify', '--help'], ['explain', '--help'], ['config', 'check', '--help']]) {
        const result = await cli(dir, args, env);
        expect(result.code, args.join(' ')).toBe(0);
        expect(result.stdout, args.join(' ')).toMatch(/^Usage: mcp-warden/);
      }
    });

    it('reports an unreachable store with exit code 4', async () => {
      const { writeFileSync } = await import('node:fs');
      const file = join(dir, 'pg.yaml');
      writeFileSync(file, 'store: { type: postgres, url: "postgres://nobody:hunter2@127.0.0.1:1/none" }\nroles: { reader: [read] }\n');
      const result = await cli(dir, ['--config', file, 'keys', 'list']);
      expect(result.code).toBe(4);
      expect(result.stderr).toContain('cannot open the postgres store');
      expect(result.stderr).not.toContain('hunter2');
    });
  });
});
