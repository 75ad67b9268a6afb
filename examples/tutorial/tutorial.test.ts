/**
 * Runs the tutorial as a user would: `npm run example:tutorial` in both modes, its curl script, and
 * its client. Needs the workspace built (`npm test` builds first).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  server.close();
  return port;
}

let child: ChildProcess | undefined;
afterEach(() => {
  if (child?.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
  child = undefined;
});

async function startTutorial(mode: '0' | '1'): Promise<number> {
  const port = await freePort();
  child = spawn('npm', ['run', '--silent', 'example:tutorial'], {
    cwd: root,
    env: { ...process.env, PORT: String(port), TUTORIAL_MODE: mode },
    detached: true,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 15_000;
  while (!output.includes('listening on')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`tutorial did not start: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(output).toContain(`http://127.0.0.1:${port}/mcp`);
  return port;
}

describe('examples/tutorial', () => {
  it('tutorial mode: the curl script sees 401, 403 and 200, and the client lists tools with a raw header', async () => {
    const port = await startTutorial('1');
    const curl = await run('bash', ['examples/tutorial/curl.sh'], { cwd: root, env: { ...process.env, PORT: String(port), TUTORIAL_MODE: '1' } });
    expect(curl.stdout).toContain('ok   no Authorization header → 401');
    expect(curl.stdout).toContain('ok   wrong secret → 403');
    expect(curl.stdout).toContain('ok   valid secret → 200');
    const client = await run('node_modules/.bin/tsx', ['examples/tutorial/client.ts', 'reader-token'], {
      cwd: root,
      env: { ...process.env, MCP_URL: `http://127.0.0.1:${port}/mcp`, TUTORIAL_MODE: '1' },
    });
    expect(client.stdout.trim().split('\n').sort()).toEqual(['list_notes', 'read_note', 'whoami']);
  });

  it("default mode (TUTORIAL_MODE=0): the spec's answers, 401 for a wrong secret", async () => {
    const port = await startTutorial('0');
    const curl = await run('bash', ['examples/tutorial/curl.sh'], { cwd: root, env: { ...process.env, PORT: String(port), TUTORIAL_MODE: '0' } });
    expect(curl.stdout).toContain('ok   wrong secret → 401');
    expect(curl.stdout).toContain('ok   valid secret → 200');
    const client = await run('node_modules/.bin/tsx', ['examples/tutorial/client.ts', 'admin-token'], {
      cwd: root,
      env: { ...process.env, MCP_URL: `http://127.0.0.1:${port}/mcp`, TUTORIAL_MODE: '0' },
    });
    expect(client.stdout.trim().split('\n')).toHaveLength(5);
  });
});
