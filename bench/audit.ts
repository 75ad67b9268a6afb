/**
 * `npm run bench:audit`: sustained audit events per second through the gateway's audit writer,
 * `AuditQueue` + `databaseSink`, into SQLite (a temporary file) and PostgreSQL (a schema of its own,
 * `mcpw_bench_<random>`, dropped at the end), in one process.
 *
 * For BENCH_DURATION seconds the bench makes realistic `tools/call` decision events and writes them
 * as fast as the queue takes them: while `accepting()` is false it awaits `flush()`; between bursts
 * of one batch it yields to the event loop (a gateway's requests do too), so the flush timer and the
 * database's I/O run. Then it closes the queue, which writes what is left; the rate is the rows
 * really stored (`select count(*)`) over the time from the first event to the end of that drain.
 * `flush()` resolves only when the queue is empty, so a backend slower than the producer fills the
 * queue (100,000 events) within the first second and the run then lasts until that is written: it
 * can exceed BENCH_DURATION by capacity ÷ rate seconds; the rate counts all of that time.
 *
 * The run fails, and measures nothing, when a sink reports an error, when the stored rows are not
 * exactly the events written, or when `verifyChain` over the stored events (read back in pages with
 * `store.audit.query({ afterSeq, limit })`) does not find an intact chain up to the head.
 *
 * Environment: BENCH_DURATION (seconds per backend, default 5), BENCH_BACKENDS (a comma-separated
 * subset of sqlite,postgres), BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import type { AuditEvent } from '@mcp-warden/core';
import { AuditQueue, type Store, type StoredAuditEvent, createPostgresStore, createSqliteStore, databaseSink, verifyChain } from 'mcp-warden';
import { envNumber, machineMicros, packageVersion, table } from './common.js';

const DURATION = envNumber('BENCH_DURATION', 5);
const PG_URL = process.env['BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const BACKENDS = ['sqlite', 'postgres'] as const;
type Backend = (typeof BACKENDS)[number];
const SELECTED: readonly Backend[] = (() => {
  const raw = process.env['BENCH_BACKENDS'];
  if (raw === undefined || raw.trim() === '') return BACKENDS;
  const names = raw.split(',').map((n) => n.trim());
  for (const name of names) if (!(BACKENDS as readonly string[]).includes(name)) throw new Error(`BENCH_BACKENDS: unknown backend ${JSON.stringify(name)} (${BACKENDS.join(', ')})`);
  return BACKENDS.filter((b) => names.includes(b));
})();
/** The queue as the gateway would configure it under load. */
const QUEUE = { capacity: 100_000, batchSize: 500, flushIntervalMs: 50 } as const;
const TARGETS: Partial<Record<Backend, number>> = { sqlite: 20_000 };
/** Events read back per page when verifying the chain. */
const VERIFY_PAGE = 5_000;

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

class BenchFailure extends Error {}

// ---------------------------------------------------------------------------------------------
// Events

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const keyId = (): string => Array.from(randomBytes(12), (b) => BASE32[b & 31]).join('');

interface Caller {
  readonly principal: { readonly id: string; readonly kind: string };
  readonly role: string;
  readonly address: string;
  readonly userAgent: string;
}

const USER_AGENTS = ['claude-code/2.1.4', 'Cursor/1.9.2 (darwin arm64)', 'mcp-inspector/0.18.0', 'node-fetch/1.0 (+https://github.com/bitinn/node-fetch)', 'python-httpx/0.28.1'];
const ROLES = ['reader', 'writer', 'ops'] as const;
const CALLERS: readonly Caller[] = Array.from({ length: 1_000 }, (_, i) => ({
  principal: i % 10 === 0 ? { id: `svc-${i}`, kind: 'static-token' } : { id: keyId(), kind: 'api-key' },
  role: ROLES[i % ROLES.length] as string,
  address: `10.${(i >> 8) & 255}.${i & 255}.${(i * 7) % 254 + 1}`,
  userAgent: USER_AGENTS[i % USER_AGENTS.length] as string,
}));
const TOOLS: readonly { readonly name: string; readonly verb: 'read' | 'write' }[] = [
  'github.get_issue', 'github.list_pull_requests', 'github.create_issue', 'github.merge_pull_request', 'fs.read_file',
  'fs.list_directory', 'fs.write_file', 'fs.delete_file', 'postgres.query', 'postgres.execute', 'slack.post_message',
  'slack.search_messages', 'jira.get_ticket', 'jira.transition_ticket', 'search.web', 'echo',
].map((name) => ({ name, verb: /create|merge|write|delete|execute|post|transition/.test(name) ? 'write' : 'read' }));

/** A decision event as the pipeline records it for a `tools/call` (no arguments: recording is opt-in). */
function decisionEvent(n: number): AuditEvent {
  const caller = CALLERS[n % CALLERS.length] as Caller;
  const tool = TOOLS[(n * 7919) % TOOLS.length] as (typeof TOOLS)[number];
  const allowed = tool.verb === 'read' || caller.role !== 'reader';
  return {
    time: new Date().toISOString(),
    requestId: randomUUID(),
    principal: caller.principal,
    method: 'tools/call',
    kind: 'tool',
    target: tool.name,
    decision: allowed ? 'allow' : 'deny',
    rule: allowed ? `role:${caller.role} verb:${tool.verb}` : 'default:deny',
    reason: allowed ? `role ${caller.role} may ${tool.verb} tools` : `no role of ${caller.principal.id} may ${tool.verb} ${tool.name}`,
    latencyMicros: 40 + ((Math.imul(n, 2654435761) >>> 0) % 2_000),
    clientAddress: caller.address,
    userAgent: caller.userAgent,
  };
}

// ---------------------------------------------------------------------------------------------
// Backends

interface OpenedBackend {
  readonly store: Store;
  readonly where: string;
  /** Rows in the events table, read on a connection of its own. */
  countRows(): Promise<number>;
  /** Removes the database or schema. Safe to call twice. */
  remove(): Promise<void>;
}

async function openSqlite(): Promise<OpenedBackend> {
  const dir = mkdtempSync(join(os.tmpdir(), 'mcpw-bench-audit-'));
  const path = join(dir, 'audit.sqlite');
  const store = createSqliteStore({ path });
  return {
    store,
    where: `${path} (temporary; WAL, synchronous NORMAL)`,
    async countRows() {
      const raw = new BetterSqlite3(path, { readonly: true });
      try {
        return raw.prepare('select count(*) from mcpw_audit_events').pluck().get() as number;
      } finally {
        raw.close();
      }
    },
    async remove() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function openPostgres(): Promise<OpenedBackend> {
  const schema = `mcpw_bench_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  let store: Store | undefined;
  let removed = false;
  const remove = async (): Promise<void> => {
    if (removed) return;
    removed = true;
    await store?.close();
    await admin.query(`drop schema if exists ${schema} cascade`);
    await admin.end();
  };
  try {
    store = await createPostgresStore({ url: PG_URL, schema });
  } catch (error) {
    await remove();
    throw error;
  }
  const version = ((await admin.query('show server_version')).rows[0] as { server_version: string }).server_version;
  return {
    store,
    where: `${PG_URL.replace(/\/\/[^@/]*@/, '//')} schema ${schema} (PostgreSQL ${version}, dropped at the end)`,
    async countRows() {
      const result = await admin.query(`select count(*)::int as n from ${schema}.mcpw_audit_events`);
      return (result.rows[0] as { n: number }).n;
    },
    remove,
  };
}

// ---------------------------------------------------------------------------------------------
// Measurement

/** Machine-wide busy time (steal included), in µs. */
function machineBusyMicros(): number {
  const { busy, steal } = machineMicros();
  return busy + steal;
}

interface BackendResult {
  readonly backend: Backend;
  readonly where: string;
  readonly written: number;
  readonly stored: number;
  /** From the first event to the end of `close()`. */
  readonly seconds: number;
  /** How long `close()` took to write what was still queued when production stopped. */
  readonly drainSeconds: number;
  readonly eventsPerSecond: number;
  /** This process's user+system CPU per stored event (making, queueing, sealing, writing). */
  readonly cpuMicrosPerEvent: number;
  /** Stored events per second of this process's CPU: the steadier figure on a shared machine. */
  readonly perCpuSecond: number;
  /** Other processes' CPU during the run, in % of one core (PostgreSQL's server processes included). */
  readonly otherCpuPercent: number;
  /** Times the producer found the queue full and waited for a flush. */
  readonly fullWaits: number;
  readonly maxPending: number;
  readonly chain: { readonly events: number; readonly headSeq: number; readonly seconds: number };
  readonly target?: number;
}

async function* storedEvents(store: Store): AsyncGenerator<StoredAuditEvent> {
  let afterSeq = 0;
  for (;;) {
    const page = await store.audit.query({ afterSeq, limit: VERIFY_PAGE });
    yield* page;
    const last = page[page.length - 1];
    if (last === undefined || page.length < VERIFY_PAGE) return;
    afterSeq = last.seq;
  }
}

async function measure(backend: Backend, opened: OpenedBackend): Promise<BackendResult> {
  const { store } = opened;
  await store.migrate();
  const errors: string[] = [];
  const queue = new AuditQueue({
    sinks: [databaseSink(store.audit)],
    ...QUEUE,
    onError: (error, sink) => errors.push(`${sink}: ${error instanceof Error ? error.message : String(error)}`),
  });

  let written = 0;
  let fullWaits = 0;
  let maxPending = 0;
  const cpuBefore = process.cpuUsage();
  const busyBefore = machineBusyMicros();
  const started = performance.now();
  const deadline = started + DURATION * 1000;
  while (performance.now() < deadline) {
    for (let k = 0; k < QUEUE.batchSize; k++) {
      if (!queue.accepting()) {
        fullWaits++;
        await queue.flush();
      }
      queue.write(decisionEvent(written));
      written++;
    }
    maxPending = Math.max(maxPending, queue.stats().pending);
    if (errors.length > 0) break;
    await yieldToEventLoop();
  }
  const producedAt = performance.now();
  await queue.close();
  const finished = performance.now();
  const cpu = process.cpuUsage(cpuBefore);
  const ownMicros = cpu.user + cpu.system;
  const otherMicros = Math.max(0, machineBusyMicros() - busyBefore - ownMicros);
  if (errors.length > 0) throw new BenchFailure(`[${backend}] the audit sink failed ${errors.length} time(s), first: ${errors[0]}`);
  const { pending, dropped } = queue.stats();
  if (pending !== 0 || dropped !== 0) throw new BenchFailure(`[${backend}] after close() ${pending} events are pending and ${dropped} were dropped`);

  const stored = await opened.countRows();
  if (stored !== written) throw new BenchFailure(`[${backend}] ${written} events were written to the queue but ${stored} rows are stored`);
  const verifyStarted = performance.now();
  const head = await store.audit.head();
  const verdict = await verifyChain(head, storedEvents(store));
  const verifySeconds = (performance.now() - verifyStarted) / 1000;
  if (!verdict.ok) throw new BenchFailure(`[${backend}] the audit chain is broken: ${verdict.problem} at event ${verdict.seq} (${verdict.message})`);
  if (verdict.events !== stored || head.seq !== stored) {
    throw new BenchFailure(`[${backend}] the chain holds ${verdict.events} events up to seq ${head.seq}, but ${stored} rows are stored`);
  }

  const seconds = (finished - started) / 1000;
  const target = TARGETS[backend];
  const result: BackendResult = {
    backend,
    where: opened.where,
    written,
    stored,
    seconds,
    drainSeconds: (finished - producedAt) / 1000,
    eventsPerSecond: stored / seconds,
    cpuMicrosPerEvent: ownMicros / stored,
    perCpuSecond: stored / (ownMicros / 1e6),
    otherCpuPercent: (otherMicros / ((finished - started) * 1000)) * 100,
    fullWaits,
    maxPending,
    chain: { events: verdict.events, headSeq: head.seq, seconds: verifySeconds },
    ...(target === undefined ? {} : { target }),
  };
  console.log(
    `${backend.padEnd(8)} ${Math.round(result.eventsPerSecond).toLocaleString('en-US').padStart(7)} events/s  ` +
      `${stored.toLocaleString('en-US')} stored in ${seconds.toFixed(2)} s (final drain ${result.drainSeconds.toFixed(2)} s)  ` +
      `CPU ${result.cpuMicrosPerEvent.toFixed(1)} µs/event  queue full ${fullWaits}×, max pending ${maxPending.toLocaleString('en-US')}  ` +
      `chain ok (${verdict.events.toLocaleString('en-US')} events verified in ${verifySeconds.toFixed(2)} s)  other processes ${result.otherCpuPercent.toFixed(0)}% of a core`,
  );
  return result;
}

// ---------------------------------------------------------------------------------------------
// Report

const int = (n: number): string => Math.round(n).toLocaleString('en-US');

function render(results: readonly BackendResult[]): string {
  const header = ['backend', 'events/s', 'stored', 'seconds', 'final drain s', 'CPU µs/event', 'per CPU-second', 'queue full', 'chain', 'other CPU', 'target', 'met'];
  const rows = results.map((r) => [
    r.backend === 'sqlite' ? 'SQLite' : 'PostgreSQL',
    int(r.eventsPerSecond),
    int(r.stored),
    r.seconds.toFixed(2),
    r.drainSeconds.toFixed(2),
    r.cpuMicrosPerEvent.toFixed(1),
    int(r.perCpuSecond),
    `${r.fullWaits}×`,
    'ok',
    `${r.otherCpuPercent.toFixed(0)}%`,
    r.target === undefined ? '—' : `≥ ${int(r.target)}/s`,
    r.target === undefined ? '—' : r.eventsPerSecond >= r.target ? 'yes' : 'NO',
  ]);
  return table([header, ...rows]);
}

// ---------------------------------------------------------------------------------------------
// Main

const openBackends = new Set<OpenedBackend>();

async function cleanUp(): Promise<void> {
  for (const opened of openBackends) {
    openBackends.delete(opened);
    await opened.remove().catch((error: unknown) => console.error(`cleaning up ${opened.where} failed:`, error));
  }
}

async function main(): Promise<void> {
  const started = new Date();
  console.log(
    `mcp-warden audit bench: AuditQueue(capacity ${int(QUEUE.capacity)}, batch ${QUEUE.batchSize}, flush every ${QUEUE.flushIntervalMs} ms) ` +
      `+ databaseSink, ${DURATION} s per backend, one process (Node ${process.version}, better-sqlite3 ${packageVersion('better-sqlite3')}, ` +
      `pg ${packageVersion('pg')}, kysely ${packageVersion('kysely')})`,
  );
  const results: BackendResult[] = [];
  for (const backend of SELECTED) {
    const opened = backend === 'sqlite' ? await openSqlite() : await openPostgres();
    openBackends.add(opened);
    results.push(await measure(backend, opened));
    openBackends.delete(opened);
    await opened.remove();
  }

  console.log(`\n${render(results)}\n`);
  console.log(
    'events/s: rows stored (select count) over the time from the first event to the end of close(), the final drain included.\n' +
      'per CPU-second: stored events over this process\'s CPU time (all threads); other CPU: other processes, PostgreSQL\'s included, in % of a core.',
  );
  for (const r of results) {
    if (r.target !== undefined) console.log(`target ${r.backend}: ≥ ${int(r.target)} events/s → ${r.eventsPerSecond >= r.target ? 'met' : 'NOT met'} (${int(r.eventsPerSecond)}/s)`);
  }

  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `audit-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  const cpus = os.cpus();
  const report = {
    benchmark: 'audit',
    started: started.toISOString(),
    finished: new Date().toISOString(),
    config: { durationSeconds: DURATION, queue: QUEUE, sinks: ['databaseSink'], verifyPageSize: VERIFY_PAGE, targets: TARGETS },
    events: 'tools/call decisions: 1,000 principals (api-key and static-token), 16 tools, allow and deny, no arguments',
    environment: {
      node: process.version,
      platform: `${os.type()} ${os.release()} ${os.arch()}`,
      cpus: cpus.length,
      cpuModel: cpus[0]?.model ?? 'unknown',
      loadAverage: os.loadavg(),
      versions: { 'better-sqlite3': packageVersion('better-sqlite3'), pg: packageVersion('pg'), kysely: packageVersion('kysely') },
    },
    results,
  };
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nresults: ${file}`);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void cleanUp().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}

main().then(
  async () => {
    await cleanUp();
    process.exit(0);
  },
  async (error: unknown) => {
    await cleanUp();
    console.error(error instanceof BenchFailure ? `\nBENCH FAILED: ${error.message}` : error);
    process.exit(1);
  },
);
