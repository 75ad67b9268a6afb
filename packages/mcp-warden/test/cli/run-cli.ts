/** Runs the built `mcp-warden` CLI as a user would, in a directory, with a clean environment. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';

export const ROOT = new URL('../../../../', import.meta.url).pathname;
const CLI = `${ROOT}packages/mcp-warden/dist/cli/main.js`;

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `mcp-warden …` in `cwd`; never throws on a non-zero exit. */
export function cli(cwd: string, args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, env: { PATH: process.env['PATH'] ?? '', HOME: cwd, NO_COLOR: '1', ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  server.close();
  return port;
}

/** Starts the tutorial server (its sources through tsx) with a config; resolves once it listens. */
export async function startTutorial(env: Record<string, string>): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const port = await freePort();
  // One process (no tsx wrapper), so a signal reaches the server itself.
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/tutorial/server.ts'], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const deadline = Date.now() + 20_000;
  while (!output.includes('listening on')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the tutorial server did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, url: `http://127.0.0.1:${port}/mcp`, output: () => output };
}

/** Stops a child and waits for it to exit. */
export async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  await once(child, 'exit');
}
