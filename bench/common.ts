/**
 * Helpers every benchmark shares: environment knobs, CPU and machine load from /proc, percentiles,
 * the printed table, package versions. Each bench keeps its own scenarios and checks.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** A positive number from the environment (an integer unless `integer` is false), or the fallback. */
export function envNumber(name: string, fallback: number, integer = true): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new Error(`${name} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** Clock ticks per second of /proc times. */
export const CLK_TCK = (() => {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(value) && value > 0 ? value : 100;
  } catch {
    return 100;
  }
})();

/** The fields of /proc/<pid>/stat after the command name; [0] is field 3 (state). Undefined once the process is gone. */
export function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** utime + stime of a process, in µs (all its threads: the main thread, GC helpers, libuv pool). */
export function cpuMicros(pid: number): number {
  const fields = statFields(pid);
  if (fields === undefined) throw new Error(`process ${pid} is gone`);
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK; // fields 14 (utime) and 15 (stime)
}

/** Machine-wide busy and steal time from /proc/stat, in µs (summed over CPUs); zeros where /proc is missing. */
export function machineMicros(): { busy: number; steal: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] as string;
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
    const toMicros = (ticks: number): number => (ticks * 1e6) / CLK_TCK;
    return { busy: toMicros((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0)), steal: toMicros(steal ?? 0) };
  } catch {
    return { busy: 0, steal: 0 };
  }
}

/** Resident memory of a process in MiB, NaN once it is gone. */
export function rssMiB(pid: number): number {
  try {
    const pages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return (pages * 4096) / (1024 * 1024);
  } catch {
    return Number.NaN;
  }
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

/** The median of the finite values, NaN when there are none. */
export function median(values: readonly number[]): number {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return Number.NaN;
  const sorted = [...finite].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Whether two lists hold the same strings the same number of times, in any order. */
export function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');
}

/** A Markdown table: the first row is the header, the first column left-aligned, the rest right-aligned. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = (rows[0] as readonly string[]).map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: readonly string[]): string => `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number))).join(' | ')} |`;
  const sep = `|${widths.map((w, c) => (c === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(rows[0] as readonly string[]), sep, ...rows.slice(1).map(line)].join('\n');
}

/** The installed version of a package (from the workspace's node_modules), or `unknown`. */
export function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(fileURLToPath(new URL(`../node_modules/${name}/package.json`, import.meta.url)), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
