/**
 * `npm run bench:keys`: API key verifications per second through `createApiKeyVerifier` over a SQLite
 * store holding a million keys, in one process on one core (a tight `await` loop, no workers).
 *
 * Phases, each run for BENCH_DURATION seconds after BENCH_WARMUP seconds of warm-up:
 * 1. baseline: parse the id and secret by position, SHA-256 them, compare with a `Map` lookup: the
 *    ceiling for any verifier that hashes the secret.
 * 2. cached: a working set of keys (BENCH_WORKING_SET, default 1,000) verified over and over, the
 *    cache filled first; every verification must be answered from the cache.
 * 3. uncached: keys drawn in random order from the sample (default 100,000) with `cacheTtlMs: 0`;
 *    every verification must read SQLite.
 * Every verification must answer `ok: true`; the first that does not stops the bench, which then
 * measures nothing. Whether an answer came from the cache is seen from its type (a promise means the
 * store was read) and counted.
 *
 * The key database is generated once per row count into `bench/results/keys-db-<rows>/` (git-ignored):
 * 1M rows inserted with better-sqlite3 straight into `mcpw_api_keys` after `store.migrate()`, hashes
 * from `hashSecret`, plaintexts kept only for the sample. Each run verifies the cached copy (row count,
 * schema, sample hashes), regenerating it when it does not check out, then works on a temporary copy
 * that is deleted at the end, so last-used writes never change the cache.
 *
 * Environment: BENCH_DURATION (seconds per phase, default 5), BENCH_WARMUP (default 1), BENCH_KEYS
 * (rows, default 1,000,000), BENCH_SAMPLE (default 100,000), BENCH_WORKING_SET (default 1,000),
 * BENCH_REGENERATE=1 (rebuild the key database), BENCH_PHASES (a comma-separated subset of baseline,
 * cached, uncached).
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import type { Credential, VerificationResult } from '@mcp-warden/core';
import { type ApiKeyVerifier, createApiKeyVerifier, createSqliteStore, hashSecret, mintKey, parseKey } from 'mcp-warden';
import { envNumber, machineMicros, packageVersion, table } from './common.js';

const DURATION = envNumber('BENCH_DURATION', 5);
const WARMUP = envNumber('BENCH_WARMUP', 1);
const ROWS = envNumber('BENCH_KEYS', 1_000_000);
const SAMPLE = Math.min(envNumber('BENCH_SAMPLE', 100_000), ROWS);
const WORKING_SET = Math.min(envNumber('BENCH_WORKING_SET', 1_000), SAMPLE);
const REGENERATE = process.env['BENCH_REGENERATE'] === '1';
const PHASES = ['baseline', 'cached', 'uncached'] as const;
type Phase = (typeof PHASES)[number];
/** BENCH_PHASES: a comma-separated subset, e.g. to profile one phase with `tsx --cpu-prof`. */
const SELECTED: ReadonlySet<Phase> = (() => {
  const raw = process.env['BENCH_PHASES'];
  if (raw === undefined || raw.trim() === '') return new Set(PHASES);
  const names = raw.split(',').map((n) => n.trim());
  for (const name of names) if (!(PHASES as readonly string[]).includes(name)) throw new Error(`BENCH_PHASES: unknown phase ${JSON.stringify(name)} (${PHASES.join(', ')})`);
  return new Set(names as Phase[]);
})();
const TARGETS = { cached: 200_000, uncached: 30_000 } as const;
/** Bumped whenever the generator changes, so an older cached database is rebuilt. */
const GENERATOR_VERSION = 1;
/** Rows per bulk-load transaction. */
const LOAD_CHUNK = 50_000;
/** Verifications between two looks at the clock. */
const CLOCK_EVERY = 256;

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const CACHE_DIR = join(RESULTS_DIR, `keys-db-${ROWS}`);
const CACHE_DB = join(CACHE_DIR, 'keys.sqlite');
const CACHE_META = join(CACHE_DIR, 'meta.json');

class BenchFailure extends Error {}

// ---------------------------------------------------------------------------------------------
// The key database

interface KeyDbMeta {
  readonly generatorVersion: number;
  readonly rows: number;
  readonly generatedAt: string;
  readonly generateMs: number;
  readonly insertMs: number;
  /** Plaintexts of the sample keys: synthetic keys of this bench only, in a git-ignored directory. */
  readonly sample: readonly string[];
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** `count` distinct 12-character base32 ids (the `newKeyId` alphabet), from one random buffer. */
function distinctIds(count: number): string[] {
  const ids = new Set<string>();
  while (ids.size < count) {
    const bytes = randomBytes(12 * (count - ids.size));
    for (let at = 0; at < bytes.length; at += 12) {
      let id = '';
      for (let c = 0; c < 12; c++) id += BASE32[(bytes[at + c] as number) & 31];
      ids.add(id);
    }
  }
  return [...ids];
}

const ROLE_SETS = ['["reader"]', '["reader","writer"]', '["admin"]', '["ops","reader"]'] as const;

/** Creates the schema with the store's own migrations, then bulk-loads the rows with better-sqlite3. */
async function generateKeyDb(): Promise<KeyDbMeta> {
  rmSync(CACHE_DIR, { recursive: true, force: true });
  mkdirSync(CACHE_DIR, { recursive: true });
  const store = createSqliteStore({ path: CACHE_DB });
  await store.migrate();
  await store.close();

  process.stdout.write(`generating ${ROWS.toLocaleString('en-US')} keys (${SAMPLE.toLocaleString('en-US')} with plaintexts kept)… `);
  const generateStarted = performance.now();
  const ids = distinctIds(ROWS);
  const stride = ROWS / SAMPLE;
  const sample: string[] = [];
  const sampled = new Uint8Array(ROWS);
  const hashes: string[] = new Array<string>(ROWS);
  const filler = randomBytes(32).toString('base64url').slice(0, 43);
  for (let i = 0; i < ROWS; i++) {
    const id = ids[i] as string;
    if (sample.length < SAMPLE && i >= Math.floor(sample.length * stride)) {
      const minted = mintKey(id);
      sample.push(minted.plaintext);
      sampled[i] = 1;
      hashes[i] = minted.hash;
    } else {
      // Nobody verifies these keys; their hash only has to have the real shape.
      hashes[i] = hashSecret(id, `${filler}${i}`.slice(-43));
    }
  }
  const generateMs = performance.now() - generateStarted;

  const raw = new BetterSqlite3(CACHE_DB);
  raw.pragma('synchronous = OFF');
  raw.pragma('cache_size = -262144');
  const insert = raw.prepare(
    'insert into mcpw_api_keys (id, name, hash, roles, note, created_at, expires_at, revoked_at, last_used_at, rotated_from, replaced_by) ' +
      'values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const createdAt = Date.now() - 30 * 86_400_000;
  const load = raw.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      // Sample keys stay valid; some keys expire next year, some carry a note, a few others are revoked.
      const revoked = sampled[i] === 0 && i % 50 === 1;
      insert.run(
        ids[i],
        `bench-key-${i}`,
        hashes[i],
        ROLE_SETS[i % ROLE_SETS.length],
        i % 10 === 0 ? 'created by bench/keys.ts' : null,
        createdAt + (i % 86_400_000),
        i % 7 === 0 ? createdAt + 365 * 86_400_000 : null,
        revoked ? createdAt + 86_400_000 : null,
        null,
        null,
        null,
      );
    }
  });
  const insertStarted = performance.now();
  for (let from = 0; from < ROWS; from += LOAD_CHUNK) load(from, Math.min(ROWS, from + LOAD_CHUNK));
  raw.pragma('wal_checkpoint(TRUNCATE)');
  raw.close();
  const insertMs = performance.now() - insertStarted;
  console.log(`ids and hashes ${(generateMs / 1000).toFixed(1)} s, insert ${(insertMs / 1000).toFixed(1)} s (${Math.round(ROWS / (insertMs / 1000)).toLocaleString('en-US')} rows/s)`);

  const meta: KeyDbMeta = { generatorVersion: GENERATOR_VERSION, rows: ROWS, generatedAt: new Date().toISOString(), generateMs, insertMs, sample };
  writeFileSync(CACHE_META, JSON.stringify(meta), { mode: 0o600 });
  return meta;
}

/** The cached database's metadata when it still matches this generator, the row count and the key format. */
function cachedKeyDb(): KeyDbMeta | undefined {
  if (REGENERATE || !existsSync(CACHE_DB) || !existsSync(CACHE_META)) return undefined;
  try {
    const meta = JSON.parse(readFileSync(CACHE_META, 'utf8')) as KeyDbMeta;
    if (meta.generatorVersion !== GENERATOR_VERSION || meta.rows !== ROWS || meta.sample.length < SAMPLE) return undefined;
    const raw = new BetterSqlite3(CACHE_DB, { readonly: true });
    try {
      if (raw.prepare('select count(*) from mcpw_api_keys').pluck().get() !== ROWS) return undefined;
      const hashOf = raw.prepare('select hash from mcpw_api_keys where id = ?').pluck();
      for (const plaintext of meta.sample.slice(0, 20)) {
        const parsed = parseKey(plaintext);
        if (parsed === undefined || hashOf.get(parsed.id) !== hashSecret(parsed.id, parsed.secret)) return undefined;
      }
    } finally {
      raw.close();
    }
    return { ...meta, sample: meta.sample.slice(0, SAMPLE) };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Measurement

/** Machine-wide busy time (steal included), in µs. */
function machineBusyMicros(): number {
  const { busy, steal } = machineMicros();
  return busy + steal;
}

interface PhaseResult {
  readonly phase: Phase;
  readonly verifications: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly wallMicrosPerVerification: number;
  /** This process's user+system CPU per verification (all its threads). */
  readonly cpuMicrosPerVerification: number;
  /** Verifications per second of this process's CPU: the steadier figure on a shared machine. */
  readonly perCpuSecond: number;
  /** Answers other than `ok: true` (any fails the bench, so a written result always has 0). */
  readonly failures: number;
  /** Answers that came as a promise, i.e. read the store. */
  readonly storeReads: number;
  /** Other processes' CPU during the phase, in % of one core (the machine is shared). */
  readonly otherCpuPercent: number;
  /** Time `verifier.close()` took to write the last-used times of the phase, in ms. */
  readonly lastUsedFlushMs?: number;
  /** How long the event loop could not turn from the start of that write, in ms. */
  readonly lastUsedFlushLoopBlockedMs?: number;
  readonly target?: number;
}

type Verify = (credential: Credential) => VerificationResult | undefined | Promise<VerificationResult | undefined>;

function idOf(credential: Credential): string {
  return parseKey(credential.value)?.id ?? '(unparseable)';
}

/**
 * Verifies `credentials` round-robin until `seconds` have passed. Answers other than `ok: true` are
 * counted (the caller fails the bench on any), with the id of the first such key.
 */
async function loop(
  verify: Verify,
  credentials: readonly Credential[],
  seconds: number,
): Promise<{ verifications: number; storeReads: number; failures: number; firstFailure?: string; elapsedMs: number }> {
  let verifications = 0;
  let storeReads = 0;
  let failures = 0;
  let firstFailure: string | undefined;
  let next = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  for (;;) {
    for (let k = 0; k < CLOCK_EVERY; k++) {
      const credential = credentials[next] as Credential;
      next = next + 1 === credentials.length ? 0 : next + 1;
      const answer = verify(credential);
      if (answer instanceof Promise) storeReads++;
      const result = await answer;
      if (result?.ok !== true) {
        failures++;
        firstFailure ??= `key ${idOf(credential)}: ${result === undefined ? 'no verifier recognised it' : `${result.reason}, ${result.description}`}`;
      }
    }
    verifications += CLOCK_EVERY;
    const now = performance.now();
    if (now >= deadline) return { verifications, storeReads, failures, elapsedMs: now - started, ...(firstFailure === undefined ? {} : { firstFailure }) };
  }
}

async function measure(phase: Phase, verify: Verify, credentials: readonly Credential[], target?: number): Promise<PhaseResult> {
  const warm = await loop(verify, credentials, WARMUP);
  const cpuBefore = process.cpuUsage();
  const busyBefore = machineBusyMicros();
  const { verifications, storeReads, failures, firstFailure, elapsedMs } = await loop(verify, credentials, DURATION);
  const cpu = process.cpuUsage(cpuBefore);
  const ownMicros = cpu.user + cpu.system;
  const otherMicros = Math.max(0, machineBusyMicros() - busyBefore - ownMicros);
  const failed = warm.failures + failures;
  if (failed > 0) {
    throw new BenchFailure(`${phase}: ${failed} of ${warm.verifications + verifications} verifications were refused (first: ${warm.firstFailure ?? firstFailure})`);
  }
  const result: PhaseResult = {
    phase,
    verifications,
    seconds: elapsedMs / 1000,
    perSecond: verifications / (elapsedMs / 1000),
    wallMicrosPerVerification: (elapsedMs * 1000) / verifications,
    cpuMicrosPerVerification: ownMicros / verifications,
    perCpuSecond: verifications / (ownMicros / 1e6),
    failures,
    storeReads,
    otherCpuPercent: (otherMicros / (elapsedMs * 1000)) * 100,
    ...(target === undefined ? {} : { target }),
  };
  console.log(
    `${phase.padEnd(8)} ${Math.round(result.perSecond).toLocaleString('en-US').padStart(9)} verifications/s  ` +
      `${result.wallMicrosPerVerification.toFixed(2)} µs each (CPU ${result.cpuMicrosPerVerification.toFixed(2)} µs)  ` +
      `store reads ${storeReads.toLocaleString('en-US')} of ${verifications.toLocaleString('en-US')}  other processes ${result.otherCpuPercent.toFixed(0)}% of a core`,
  );
  return result;
}

/**
 * Closes a verifier (it writes the last-used times it holds) and times it, and how long the event
 * loop stayed blocked meanwhile: SQLite calls are synchronous, so a write made only of microtasks
 * holds up every other request of the process until it is done.
 */
async function timeClose(verifier: ApiKeyVerifier): Promise<{ lastUsedFlushMs: number; lastUsedFlushLoopBlockedMs: number }> {
  const started = performance.now();
  const turned = new Promise<number>((resolve) => setImmediate(() => resolve(performance.now())));
  await verifier.close();
  const closed = performance.now();
  return { lastUsedFlushMs: closed - started, lastUsedFlushLoopBlockedMs: (await turned) - started };
}

/** A Fisher-Yates shuffle (in place). */
function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// Report

const int = (n: number): string => Math.round(n).toLocaleString('en-US');

function render(results: readonly PhaseResult[]): string {
  const header = ['phase', 'verifications/s', 'µs/verification', 'CPU µs/verification', 'per CPU-second', 'store reads', 'failures', 'other CPU', 'target', 'met'];
  const rows = results.map((r) => [
    r.phase === 'baseline' ? 'baseline (SHA-256 + Map)' : r.phase === 'cached' ? `cached (${int(WORKING_SET)} keys)` : `uncached (${int(SAMPLE)} keys, ttl 0)`,
    int(r.perSecond),
    r.wallMicrosPerVerification.toFixed(2),
    r.cpuMicrosPerVerification.toFixed(2),
    int(r.perCpuSecond),
    `${((r.storeReads / r.verifications) * 100).toFixed(1)}%`,
    String(r.failures),
    `${r.otherCpuPercent.toFixed(0)}%`,
    r.target === undefined ? '—' : `≥ ${int(r.target)}/s`,
    r.target === undefined ? '—' : r.perSecond >= r.target ? 'yes' : 'NO',
  ]);
  return table([header, ...rows]);
}

// ---------------------------------------------------------------------------------------------
// Main

let tempDir: string | undefined;
const cleanUp = (): void => {
  if (tempDir !== undefined) rmSync(tempDir, { recursive: true, force: true });
  tempDir = undefined;
};

async function main(): Promise<void> {
  const started = new Date();
  console.log(
    `mcp-warden key verification bench: ${int(ROWS)} keys in SQLite, ${DURATION} s per phase after ${WARMUP} s warm-up, ` +
      `one process, one async loop (Node ${process.version}, better-sqlite3 ${packageVersion('better-sqlite3')}, kysely ${packageVersion('kysely')})`,
  );

  let meta = cachedKeyDb();
  const reused = meta !== undefined;
  meta ??= await generateKeyDb();
  if (reused) {
    console.log(
      `reusing ${CACHE_DB} (generated ${meta.generatedAt}: ids and hashes ${(meta.generateMs / 1000).toFixed(1)} s, ` +
        `insert ${(meta.insertMs / 1000).toFixed(1)} s, ${int(ROWS / (meta.insertMs / 1000))} rows/s)`,
    );
  }

  tempDir = mkdtempSync(join(os.tmpdir(), 'mcpw-bench-keys-'));
  const dbPath = join(tempDir, 'keys.sqlite');
  copyFileSync(CACHE_DB, dbPath);
  const store = createSqliteStore({ path: dbPath });
  await store.migrate();

  const sample = shuffle(meta.sample.map((value): Credential => ({ source: 'bearer', value })));
  const workingSet = sample.slice(0, WORKING_SET);
  const results: PhaseResult[] = [];

  // Baseline: the same loop over a bare SHA-256 of `<id>:<secret>` and a Map of the working set's hashes.
  const known = new Map<string, string>();
  for (const { value } of workingSet) {
    const parsed = parseKey(value) as { id: string; secret: string };
    known.set(parsed.id, hashSecret(parsed.id, parsed.secret));
  }
  const ok: VerificationResult = { ok: true, principal: { id: 'baseline', kind: 'api-key', subject: 'baseline', roles: [], scopes: [], claims: {} } };
  const bad: VerificationResult = { ok: false, reason: 'unknown', description: 'baseline hash mismatch' };
  if (SELECTED.has('baseline')) {
    results.push(
      await measure('baseline', ({ value }) => {
        const id = value.slice(5, 17);
        return known.get(id) === createHash('sha256').update(`${id}:${value.slice(18, 61)}`).digest('hex') ? ok : bad;
      }, workingSet),
    );
  }

  if (SELECTED.has('cached')) {
    // Fill the cache with the working set, then verify it over and over. The TTL outlasts the phase.
    const verifier = createApiKeyVerifier(store.keys, { cacheTtlMs: (WARMUP + DURATION + 60) * 1000 });
    for (const credential of workingSet) await verifier.verify(credential);
    const cached = await measure('cached', (c) => verifier.verify(c), workingSet, TARGETS.cached);
    if (cached.storeReads > 0) throw new BenchFailure(`the cached phase read the store ${cached.storeReads} times`);
    results.push({ ...cached, ...(await timeClose(verifier)) });
  }

  if (SELECTED.has('uncached')) {
    // Every verification reads SQLite.
    const verifier = createApiKeyVerifier(store.keys, { cacheTtlMs: 0 });
    const uncached = await measure('uncached', (c) => verifier.verify(c), sample, TARGETS.uncached);
    if (uncached.storeReads !== uncached.verifications) {
      throw new BenchFailure(`the uncached phase answered ${uncached.verifications - uncached.storeReads} verifications from the cache`);
    }
    results.push({ ...uncached, ...(await timeClose(verifier)) });
  }
  await store.close();

  console.log(`\nkeys in DB: ${int(ROWS)} (SQLite, WAL, synchronous NORMAL; the file in the OS page cache)\n`);
  console.log(render(results));
  console.log(
    "per CPU-second: verifications over this process's CPU time (all threads); other CPU: other processes during the phase, in % of a core.",
  );
  for (const r of results) {
    if (r.lastUsedFlushMs === undefined || r.lastUsedFlushLoopBlockedMs === undefined) continue;
    console.log(
      `last-used write after ${r.phase} (verifier.close(), one UPDATE per key used): ${r.lastUsedFlushMs.toFixed(0)} ms, ` +
        `event loop blocked ${r.lastUsedFlushLoopBlockedMs.toFixed(0)} ms`,
    );
  }
  for (const r of results) {
    if (r.target !== undefined) console.log(`target ${r.phase}: ≥ ${int(r.target)}/s → ${r.perSecond >= r.target ? 'met' : 'NOT met'} (${int(r.perSecond)}/s)`);
  }

  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `keys-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  const cpus = os.cpus();
  const report = {
    benchmark: 'keys',
    started: started.toISOString(),
    finished: new Date().toISOString(),
    config: { durationSeconds: DURATION, warmupSeconds: WARMUP, keysInDb: ROWS, sample: SAMPLE, workingSet: WORKING_SET, targets: TARGETS },
    keyDb: {
      path: CACHE_DB,
      reused,
      generatedAt: meta.generatedAt,
      generateMs: meta.generateMs,
      insertMs: meta.insertMs,
      insertRowsPerSecond: ROWS / (meta.insertMs / 1000),
      run: 'a temporary copy, deleted after the run',
    },
    environment: {
      node: process.version,
      platform: `${os.type()} ${os.release()} ${os.arch()}`,
      cpus: cpus.length,
      cpuModel: cpus[0]?.model ?? 'unknown',
      loadAverage: os.loadavg(),
      versions: { 'better-sqlite3': packageVersion('better-sqlite3'), kysely: packageVersion('kysely'), tsx: packageVersion('tsx') },
    },
    results,
  };
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nresults: ${file}`);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanUp();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

main().then(
  () => {
    cleanUp();
    process.exit(0);
  },
  (error: unknown) => {
    cleanUp();
    console.error(error instanceof BenchFailure ? `\nBENCH FAILED: ${error.message}` : error);
    process.exit(1);
  },
);
