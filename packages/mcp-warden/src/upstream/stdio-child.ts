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
  /** The pieces of the line the child is writing, until its end comes (see `start`). */
  #pending: string[] = [];
  #pendingLength = 0;
  #closed = false;

  constructor(options: StdioChildOptions) {
    this.#options = options;
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /** One line of the child's output (without its line end): a message, or an error when not JSON. */
  #line(line: string): void {
    if (line.trim() === '') return;
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.onerror?.(new Error(`the upstream wrote a line that is not JSON (${line.length} bytes)`));
      return;
    }
    // JSON that is no message (null, a number, a string): dropped like a line that is not JSON.
    // Handed on, code that reads a message's members would throw outside any request.
    if (typeof message !== 'object' || message === null) {
      this.onerror?.(new Error(`the upstream wrote a line that is not a JSON-RPC message (${line.length} bytes of JSON ${message === null ? 'null' : typeof message})`));
      return;
    }
    this.onmessage?.(message as JSONRPCMessage, line);
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
        // Line ends are looked for in the new chunk only, and a line's earlier pieces are joined once
        // its end comes: appending to one string and searching it again from its start on every
        // chunk cost time quadratic in the line (~100 ms of blocked event loop for a 4 MB answer).
        let start = 0;
        for (let newline = chunk.indexOf('\n'); newline >= 0; newline = chunk.indexOf('\n', start)) {
          let line = chunk.slice(start, newline);
          start = newline + 1;
          if (this.#pending.length > 0) {
            this.#pending.push(line);
            line = this.#pending.join('');
            this.#pending = [];
            this.#pendingLength = 0;
          }
          this.#line(line.endsWith('\r') ? line.slice(0, -1) : line);
        }
        if (start < chunk.length) {
          this.#pending.push(start === 0 ? chunk : chunk.slice(start));
          this.#pendingLength += chunk.length - start;
        }
        if (this.#pendingLength > maxLine) {
          this.#pending = [];
          this.#pendingLength = 0;
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
