/**
 * One stdio MCP server process: newline-delimited JSON-RPC on stdin/stdout, stderr to the log.
 * The child gets a minimal environment: PATH, HOME and the variables its config names, never the
 * gateway's own (server-everything's read-only `get-env` tool prints its whole environment).
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

export interface StdioChildOptions {
  readonly command: string;
  readonly args: readonly string[];
  /** Variables given to the child besides PATH and HOME. */
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** Receives each line the child writes to stderr. */
  readonly onStderr?: (line: string) => void;
  /** Largest line accepted from the child, in bytes. @default 16 MiB */
  readonly maxLineBytes?: number;
}

/** The environment a child gets: PATH and HOME from the gateway, then only what its config names. */
export function childEnvironment(configured: Readonly<Record<string, string>>, parent: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  if (parent['PATH'] !== undefined) env['PATH'] = parent['PATH'];
  if (parent['HOME'] !== undefined) env['HOME'] = parent['HOME'];
  return { ...env, ...configured };
}

/** A child process speaking MCP over stdio, shaped as an SDK `Transport`. */
export class StdioChild {
  /** Each message the child writes, with the line it came on (JSON text without its line end). */
  onmessage?: (message: JSONRPCMessage, line: string) => void;
  onclose?: (code: number | null, signal: NodeJS.Signals | null) => void;
  onerror?: (error: Error) => void;
  readonly #options: StdioChildOptions;
  #process: ChildProcessByStdio<Writable, Readable, Readable> | undefined;
  #buffer = '';
  #closed = false;

  constructor(options: StdioChildOptions) {
    this.#options = options;
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /** Spawns the process; resolves once it is running, rejects if it cannot be started. */
  start(): Promise<void> {
    const options = this.#options;
    return new Promise((resolve, reject) => {
      const child = spawn(options.command, [...options.args], {
        env: childEnvironment(options.env),
        ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
        stdio: ['pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });
      this.#process = child;
      const maxLine = options.maxLineBytes ?? 16 * 1024 * 1024;
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        this.#buffer += chunk;
        let newline: number;
        while ((newline = this.#buffer.indexOf('\n')) >= 0) {
          const line = this.#buffer.slice(0, newline).replace(/\r$/, '');
          this.#buffer = this.#buffer.slice(newline + 1);
          if (line.trim() === '') continue;
          let message: JSONRPCMessage;
          try {
            message = JSON.parse(line) as JSONRPCMessage;
          } catch {
            this.onerror?.(new Error(`the upstream wrote a line that is not JSON (${line.length} bytes)`));
            continue;
          }
          this.onmessage?.(message, line);
        }
        if (this.#buffer.length > maxLine) {
          this.onerror?.(new Error(`the upstream wrote a line longer than ${maxLine} bytes`));
          void this.close();
        }
      });
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        stderr += chunk;
        let newline: number;
        while ((newline = stderr.indexOf('\n')) >= 0) {
          options.onStderr?.(stderr.slice(0, newline));
          stderr = stderr.slice(newline + 1);
        }
        if (stderr.length > 64 * 1024) stderr = stderr.slice(-64 * 1024);
      });
      child.stdin.on('error', (error) => this.onerror?.(error));
      child.once('error', (error) => {
        if (!this.#closed) {
          this.#closed = true;
          reject(error);
          this.onclose?.(null, null);
        }
      });
      child.once('spawn', () => resolve());
      child.once('exit', (code, signal) => {
        if (this.#closed) return;
        this.#closed = true;
        this.onclose?.(code, signal);
      });
    });
  }

  /** Writes one message to the child's stdin. */
  async send(message: JSONRPCMessage): Promise<void> {
    const child = this.#process;
    if (child === undefined || this.#closed) throw new Error('the upstream process is not running');
    const line = `${JSON.stringify(message)}\n`;
    if (!child.stdin.write(line)) await new Promise<void>((resolve) => child.stdin.once('drain', () => resolve()));
  }

  /** Ends the process: closes stdin, then SIGTERM, then SIGKILL after 2 s. */
  async close(): Promise<void> {
    const child = this.#process;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
      this.#closed = true;
      return;
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin.end();
    const term = setTimeout(() => child.kill('SIGTERM'), 500);
    const kill = setTimeout(() => child.kill('SIGKILL'), 2500);
    await exited;
    clearTimeout(term);
    clearTimeout(kill);
  }
}
