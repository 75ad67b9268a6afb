/** Output helpers for the CLI: colours only on a TTY (and never with NO_COLOR), tables, JSON. */

/** A failure the user can fix; the message says how. Exit code 2 unless given. */
export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.Usage,
  ) {
    super(message);
  }
}

/** Exit codes, documented in docs/cli.md. */
export const ExitCode = {
  Ok: 0,
  /** The command ran and found a problem: a broken audit chain, an invalid config. */
  CheckFailed: 1,
  /** Bad flags or values, a missing or invalid config file. */
  Usage: 2,
  /** The key (or other object) named does not exist. */
  NotFound: 3,
  /** The store cannot be opened or reached. */
  StoreUnavailable: 4,
  /** A bug: please report it (run with MCP_WARDEN_DEBUG=1 for the stack). */
  Internal: 70,
} as const;

const useColour = (stream: NodeJS.WriteStream): boolean => stream.isTTY === true && process.env['NO_COLOR'] === undefined;

function paint(code: number, text: string, stream: NodeJS.WriteStream = process.stdout): string {
  return useColour(stream) ? `\u001b[${code}m${text}\u001b[0m` : text;
}

export const colour = {
  green: (t: string, s?: NodeJS.WriteStream) => paint(32, t, s),
  red: (t: string, s?: NodeJS.WriteStream) => paint(31, t, s),
  yellow: (t: string, s?: NodeJS.WriteStream) => paint(33, t, s),
  dim: (t: string, s?: NodeJS.WriteStream) => paint(2, t, s),
  bold: (t: string, s?: NodeJS.WriteStream) => paint(1, t, s),
};

/**
 * For a command whose output is often piped into a reader that stops early (`audit tail | head`):
 * once the reader has closed the pipe, the command ends quietly with exit 0, as Unix tools do,
 * rather than with an unhandled EPIPE. Not for `serve`, whose logs must not stop it.
 */
export function endQuietlyWhenPipeCloses(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(ExitCode.Ok);
  });
}

export function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function err(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function printJson(value: unknown): void {
  out(JSON.stringify(value, null, 2));
}

/** Prints rows as aligned columns under a header. */
export function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  out(colour.bold(line(header)));
  for (const row of rows) out(line(row));
}

/** An ISO time, or `-`. */
export function when(ms: number | undefined): string {
  if (ms === undefined) return '-';
  // A time no Date can hold (a key stored with a lifetime of millions of years by an older
  // version) is shown as its number rather than ending the command.
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? `${ms} ms since 1970` : date.toISOString();
}
