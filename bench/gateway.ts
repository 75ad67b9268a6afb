/**
 * `npm run bench:gateway`: what the mcp-warden gateway costs in front of an MCP server, measured in
 * one run on one machine. Six scenarios, each run on fresh processes on 127.0.0.1:
 *
 *   a  tools/call `echo` straight to the upstream (an SDK v1 server, Streamable HTTP, stateless)
 *   b  the same through the gateway (`type: http` upstream, an admin API key)
 *   c  tools/list of the 1,000-tool catalog straight to the upstream
 *   d  the same through the gateway for a reader key (filtered to the 500 read-only tools)
 *   e  tools/call `echo` through the gateway to a stdio upstream (one SDK process per session)
 *   f  tools/call `echo` through a plain reverse-proxy hop (node:http + undici, `gateway-hop.ts`): the
 *      yardstick of ANCHORS.md, so "a plain hop plus ≤ 20 µs" can be judged on this machine's speed
 *   g  tools/list of the 1,000-tool catalog through the same plain hop (unfiltered): what relaying the
 *      ~300 KB answer costs any proxy of this kind here, the yardstick for d's CPU and added latency
 *
 * The gateway is `mcp-warden serve` (the built CLI) in a child process of its own, with a SQLite
 * store in a temporary directory and the default audit sink (the database): authentication,
 * classification, policy, filtering and audit are all on. Its API keys are the ones its first run
 * prints. Its CPU time per request comes from /proc/<pid>/stat (utime + stime before and after the
 * measurement, over the 2xx answers); the upstream's is read the same way (for e, summed over the
 * session processes).
 *
 * For e, one session per autocannon connection is opened before the load (initialize and
 * notifications/initialized, as a client does) and `setupClient` gives each connection its own
 * `Mcp-Session-Id`, so the measurement is tools/call only, and warm-up and measurement share the
 * sessions (a session is a process: opening them during the measurement would measure spawning).
 * As ids must not be reused within a session, every request of e has an id of its own.
 *
 * Every scenario is checked before it is measured (status, echo text, the reader's list is exactly
 * the read-only tools, auth is really on) and every measured answer must be byte-identical to the
 * checked one (for e, to the checked one with the request's own id): any error, timeout, non-2xx
 * answer or different body fails the bench. Rounds
 * alternate the order; the table shows medians across rounds. After each measurement (and outside its
 * CPU figures) a short phase with one connection gives the p50 of a request that waits for no other:
 * both that and the p50 under load are compared with the direct run.
 *
 * The warm-up lasts BENCH_WARMUP seconds and then, when fewer than BENCH_WARMUP_REQUESTS requests were
 * answered, as long as the rate seen needs to answer that many (at most 60 s more). V8 compiles hot code
 * after a number of calls, not of seconds: at the ~180 req/s of the 1,000-tool list on a slow machine,
 * a CPU profile (perf, cpu-clock) of the gateway showed its compiler threads busy for 15 s, about a
 * fifth of its CPU during a measurement that began after 3 s; after ~3,000 requests they were idle.
 *
 * Environment: BENCH_DURATION (seconds per run, default 10), BENCH_WARMUP (seconds, default 3),
 * BENCH_WARMUP_REQUESTS (default 4000),
 * BENCH_ROUNDS (default 2), BENCH_CONNECTIONS (default 32, all but e), BENCH_STDIO_CONNECTIONS
 * (default 16, scenario e: also its number of sessions and upstream processes), BENCH_MAX_OTHER_CPU
 * (default 25: a run during whose measurement or one-connection phase other processes and the host's
 * steal used more than this % of a core is repeated, at most twice), BENCH_QUIET_WAIT (default 60:
 * seconds to wait before each run for the machine to be quiet), BENCH_SCENARIOS (a comma-separated
 * subset of a–g; baselines are added),
 * BENCH_LATENCY_DURATION (default 5: seconds of a one-connection latency phase after each measurement; 0: none),
 * BENCH_STORE (sqlite, the default, or memory), BENCH_CPU_PROF (a directory: the gateway and plain-hop processes
 * run with --cpu-prof and write their profiles there), BENCH_GATEWAY_CLI (another build's
 * `dist/cli/main.js`, to compare a change against this one; default: this workspace's).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import ts from 'typescript';
import { CATALOG_NAMES, CATALOG_SIZE, ECHO_TEXT, READ_ONLY_NAMES, REQUEST_BODIES, callBody, requestHeaders } from './gateway-fixtures.js';
import type { HopMessage } from './gateway-hop.js';
import type { UpstreamMessage } from './gateway-upstream.js';
import { CLK_TCK, cpuMicros, envNumber, machineMicros, median, packageVersion, percentile, rssMiB, sameSet, statFields, table } from './common.js';

const DURATION = envNumber('BENCH_DURATION', 10, true);
const WARMUP = envNumber('BENCH_WARMUP', 3, true);
/** BENCH_WARMUP_REQUESTS: answered requests the warm-up reaches before measuring (see the header). */
const WARMUP_REQUESTS = envNumber('BENCH_WARMUP_REQUESTS', 4000, true);
/** The longest the warm-up is extended to reach WARMUP_REQUESTS (seconds). */
const WARMUP_EXTRA_MAX = 60;
const ROUNDS = envNumber('BENCH_ROUNDS', 2, true);
const CONNECTIONS = envNumber('BENCH_CONNECTIONS', 32, true);
const STDIO_CONNECTIONS = envNumber('BENCH_STDIO_CONNECTIONS', 16, true);
/** A run during which other processes (plus steal) used more than this % of a core is repeated. */
const MAX_OTHER_PERCENT = envNumber('BENCH_MAX_OTHER_CPU', 25, false);
const MAX_RETRIES = 2;
/** BENCH_QUIET_WAIT: how long to wait, before each run, for other processes to go quiet (seconds). */
const QUIET_WAIT = envNumber('BENCH_QUIET_WAIT', 60, false);
/**
 * BENCH_LATENCY_DURATION: seconds of the latency phase after each measurement (0: none). One
 * connection, so no request waits for another: at 32 connections on 2 shared cores the p50 is mostly
 * queueing (Little's law: connections / throughput), and "p50 added" there is the throughput ratio
 * in other units; with one connection it is the time the proxy itself adds to a request.
 */
const LATENCY_DURATION = process.env['BENCH_LATENCY_DURATION'] === '0' ? 0 : envNumber('BENCH_LATENCY_DURATION', 5, false);
const STORE = (() => {
  const raw = process.env['BENCH_STORE'] ?? 'sqlite';
  if (raw !== 'sqlite' && raw !== 'memory') throw new Error(`BENCH_STORE must be sqlite or memory, got ${JSON.stringify(raw)}`);
  return raw;
})();
const CPU_PROF_DIR = process.env['BENCH_CPU_PROF'] === undefined || process.env['BENCH_CPU_PROF'] === '' ? undefined : resolve(process.env['BENCH_CPU_PROF']);
/** The flags that make a proxy process (gateway or plain hop) write a CPU profile to BENCH_CPU_PROF. */
const cpuProfFlags = (): string[] => (CPU_PROF_DIR === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', CPU_PROF_DIR]);

const SCENARIOS = ['call-direct', 'call-gateway', 'list-direct', 'list-gateway', 'call-stdio', 'call-hop', 'list-hop'] as const;
type ScenarioId = (typeof SCENARIOS)[number];

interface Targets {
  /** Throughput over the baseline's, at least. */
  readonly minRatio?: number;
  /** Median latency above the baseline's, at most (ms). */
  readonly maxP50AddedMs?: number;
  /** Gateway CPU per request, at most (µs). */
  readonly maxGatewayCpuMicros?: number;
  /** Gateway CPU per request above the plain hop's (scenario f, when run), at most (µs). */
  readonly maxAboveHopMicros?: number;
}

interface ScenarioInfo {
  readonly letter: string;
  readonly title: string;
  /** The scenario its ratio and added latency are taken against (itself for a baseline). */
  readonly baseline: ScenarioId;
  readonly request: 'call' | 'list';
  readonly via: 'direct' | 'gateway' | 'stdio' | 'hop';
  readonly targets: Targets;
}

const SCENARIO_INFO: Readonly<Record<ScenarioId, ScenarioInfo>> = {
  'call-direct': { letter: 'a', title: 'a tools/call echo, direct', baseline: 'call-direct', request: 'call', via: 'direct', targets: {} },
  'call-gateway': {
    letter: 'b',
    title: 'b tools/call echo, gateway (admin)',
    baseline: 'call-direct',
    request: 'call',
    via: 'gateway',
    targets: { minRatio: 0.85, maxP50AddedMs: 1, maxGatewayCpuMicros: 100, maxAboveHopMicros: 20 },
  },
  'list-direct': { letter: 'c', title: `c tools/list ${CATALOG_SIZE} tools, direct`, baseline: 'list-direct', request: 'list', via: 'direct', targets: {} },
  'list-gateway': {
    letter: 'd',
    title: `d tools/list, gateway (reader: ${READ_ONLY_NAMES.length})`,
    baseline: 'list-direct',
    request: 'list',
    via: 'gateway',
    targets: { minRatio: 0.85, maxP50AddedMs: 1 },
  },
  'call-stdio': {
    letter: 'e',
    title: 'e tools/call echo, gateway → stdio',
    baseline: 'call-stdio',
    request: 'call',
    via: 'stdio',
    targets: { maxGatewayCpuMicros: 150 },
  },
  'call-hop': { letter: 'f', title: 'f tools/call echo, plain hop (yardstick)', baseline: 'call-direct', request: 'call', via: 'hop', targets: {} },
  'list-hop': { letter: 'g', title: 'g tools/list, plain hop (yardstick)', baseline: 'list-direct', request: 'list', via: 'hop', targets: {} },
};

/** The plain hop's run of the same request: the yardstick of a gateway scenario. */
const HOP_OF: Readonly<Record<'call' | 'list', ScenarioId>> = { call: 'call-hop', list: 'list-hop' };

/** BENCH_SCENARIOS: a comma-separated subset (letters or ids; their baselines are added). */
const SELECTED: readonly ScenarioId[] = (() => {
  const raw = process.env['BENCH_SCENARIOS'];
  if (raw === undefined || raw.trim() === '') return SCENARIOS;
  const wanted = new Set<ScenarioId>();
  for (const name of raw.split(',').map((n) => n.trim())) {
    const id = SCENARIOS.find((s) => s === name || SCENARIO_INFO[s].letter === name);
    if (id === undefined) throw new Error(`BENCH_SCENARIOS: unknown scenario ${JSON.stringify(name)} (a–g or ${SCENARIOS.join(', ')})`);
    wanted.add(id);
    wanted.add(SCENARIO_INFO[id].baseline);
  }
  return SCENARIOS.filter((id) => wanted.has(id));
})();

const connectionsOf = (id: ScenarioId): number => (SCENARIO_INFO[id].via === 'stdio' ? STDIO_CONNECTIONS : CONNECTIONS);

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
/** Where the server modules are transpiled to (inside the git-ignored results directory). */
const BUILD_DIR = fileURLToPath(new URL('./results/.gateway-build/', import.meta.url));
const CLI = resolve(process.env['BENCH_GATEWAY_CLI'] || fileURLToPath(new URL('../packages/mcp-warden/dist/cli/main.js', import.meta.url)));

class BenchFailure extends Error {}

function fail(scenario: ScenarioId, message: string): never {
  throw new BenchFailure(`[${SCENARIO_INFO[scenario].letter} ${scenario}] ${message}`);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// /proc

/** A process identified by pid and start time, so a recycled pid is never mistaken for it. */
interface ProcessId {
  readonly pid: number;
  readonly startTime: string;
}

/** The direct children of `parent` (the gateway's stdio session processes). */
function childrenOf(parent: number): ProcessId[] {
  const children: ProcessId[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (fields !== undefined && Number(fields[1]) === parent) children.push({ pid: Number(entry), startTime: fields[19] as string }); // field 4 ppid, 22 starttime
  }
  return children;
}

function stillRunning(target: ProcessId): boolean {
  const fields = statFields(target.pid);
  return fields !== undefined && fields[19] === target.startTime && fields[0] !== 'Z';
}

// ---------------------------------------------------------------------------------------------
// Processes

/**
 * Transpiles the server modules to JavaScript (types stripped, nothing else changed) so the children
 * run them with plain node, not under tsx (which would also transform what they import).
 */
function buildServers(): { upstream: string; stdio: string; hop: string } {
  rmSync(BUILD_DIR, { recursive: true, force: true });
  mkdirSync(BUILD_DIR, { recursive: true });
  for (const name of ['gateway-fixtures', 'gateway-upstream', 'gateway-stdio', 'gateway-hop']) {
    const source = readFileSync(fileURLToPath(new URL(`./${name}.ts`, import.meta.url)), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      fileName: `${name}.ts`,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    });
    writeFileSync(`${BUILD_DIR}${name}.js`, outputText);
  }
  return { upstream: `${BUILD_DIR}gateway-upstream.js`, stdio: `${BUILD_DIR}gateway-stdio.js`, hop: `${BUILD_DIR}gateway-hop.js` };
}

let builds = { upstream: '', stdio: '', hop: '' };

/** The environment of the children: this one, minus any loader flags meant for this process. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (env['NODE_OPTIONS']?.includes('tsx') === true) delete env['NODE_OPTIONS'];
  return env;
}

const liveChildren = new Set<ChildProcess>();
/** Processes the gateways spawned (stdio sessions), killed at the end if a gateway left any behind. */
const grandchildren: ProcessId[] = [];
const tempDirs = new Set<string>();

function track(child: ChildProcess): Promise<void> {
  liveChildren.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  exited.then(() => liveChildren.delete(child), () => undefined);
  return exited;
}

async function stopChild(child: ChildProcess, exited: Promise<void>, how: () => void, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  how();
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

interface Handle {
  readonly pid: number;
  readonly port: number;
  stop(): Promise<void>;
}

/** A server child that reports its port over IPC: the upstream (`gateway-upstream.ts`) or the hop (`gateway-hop.ts`). */
function startServer(what: string, entry: string, args: readonly string[] = [], flags: readonly string[] = []): Promise<Handle> {
  const child = spawn(process.execPath, [...flags, entry, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: childEnv() });
  const exited = track(child);
  const stop = (): Promise<void> => stopChild(child, exited, () => (child.connected ? child.send('stop') : child.kill('SIGTERM')), 5000);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new BenchFailure(`the ${what} did not report ready within 30 s`));
    }, 30_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new BenchFailure(`the ${what} exited before it was ready (code ${code}, signal ${signal})`));
    });
    child.on('message', (message: UpstreamMessage | HopMessage) => {
      if (message.type !== 'ready') return;
      clearTimeout(timer);
      resolve({ pid: child.pid as number, port: message.port, stop });
    });
  });
}

interface GatewayHandle extends Handle {
  readonly keys: { readonly admin: string; readonly reader: string };
  /** The gateway's log lines at warn level and above so far (it runs with LOG_LEVEL=warn): how many, and the first few. */
  readonly warnings: { count: number; readonly sample: string[] };
}

type UpstreamsConfig = Record<string, Record<string, unknown>>;

/**
 * `mcp-warden serve` with a fresh store in a temporary directory; resolves once it listens and has
 * printed its first-run keys.
 */
function startGateway(upstreams: UpstreamsConfig): Promise<GatewayHandle> {
  const dir = mkdtempSync(join(os.tmpdir(), 'mcpw-gateway-bench-'));
  tempDirs.add(dir);
  const config = {
    server: { host: '127.0.0.1', port: 0 },
    store: STORE === 'sqlite' ? { type: 'sqlite', path: join(dir, 'warden.db') } : { type: 'memory' },
    roles: { admin: ['read', 'write', 'delete'], reader: ['read'] },
    upstreams,
    audit: { sinks: ['database'] },
  };
  // JSON is YAML.
  const file = join(dir, 'mcp-warden.yaml');
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  const flags = cpuProfFlags();
  const child = spawn(process.execPath, [...flags, CLI, '--config', file, 'serve'], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: childEnv({ PORT: '0', LOG_LEVEL: 'warn', NO_COLOR: '1' }),
  });
  const exited = track(child);
  const output: string[] = [];
  const warnings = { count: 0, sample: [] as string[] };
  const keys: { admin?: string; reader?: string } = {};
  let url: string | undefined;
  let settle: (() => void) | undefined;
  const onLine = (line: string): void => {
    output.push(line);
    if (output.length > 200) output.shift();
    const listening = /listening on (http:\/\/\S+)/.exec(line);
    if (listening !== null) url = listening[1];
    const key = /^\s*(admin|reader)\s+(mcpw_\S+)\s*$/.exec(line);
    if (key !== null) keys[key[1] as 'admin' | 'reader'] = key[2];
    if (line.startsWith('{') && /"level":\s*([4-9]\d)/.test(line)) {
      warnings.count += 1;
      if (warnings.sample.length < 10) warnings.sample.push(line);
    }
    if (url !== undefined && keys.admin !== undefined && keys.reader !== undefined) settle?.();
  };
  for (const stream of [child.stdout, child.stderr]) {
    let buffer = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffer += chunk;
      let newline: number;
      while ((newline = buffer.indexOf('\n')) !== -1) {
        onLine(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
      }
    });
  }
  const stop = async (): Promise<void> => {
    const sessions = childrenOf(child.pid as number);
    grandchildren.push(...sessions);
    // SIGTERM: the gateway closes its sessions (their processes), flushes the audit queue, exits.
    await stopChild(child, exited, () => child.kill('SIGTERM'), 20_000);
    for (const session of sessions) if (stillRunning(session)) process.kill(session.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new BenchFailure(`the gateway did not print its address and keys within 60 s; its output:\n${output.join('\n')}`));
    }, 60_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new BenchFailure(`the gateway exited before it was ready (code ${code}, signal ${signal}); its output:\n${output.join('\n')}`));
    });
    settle = () => {
      settle = undefined;
      clearTimeout(timer);
      const port = Number(new URL(url as string).port);
      resolve({ pid: child.pid as number, port, keys: { admin: keys.admin as string, reader: keys.reader as string }, warnings, stop });
    };
  });
}

function killEverything(): void {
  for (const child of liveChildren) child.kill('SIGKILL');
  for (const target of grandchildren) if (stillRunning(target)) process.kill(target.pid, 'SIGKILL');
}

// ---------------------------------------------------------------------------------------------
// Pre-checks

interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly session: string | undefined;
  readonly text: string;
}

async function post(url: string, body: string, headers: Record<string, string>): Promise<Answer> {
  const response = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(30_000) });
  return {
    status: response.status,
    contentType: response.headers.get('content-type') ?? '',
    session: response.headers.get('mcp-session-id') ?? undefined,
    text: await response.text(),
  };
}

/** The one JSON-RPC message of an SSE (or JSON) answer. */
function messageOf(id: ScenarioId, answer: Answer): Record<string, unknown> {
  let json = answer.text;
  if (answer.contentType.startsWith('text/event-stream')) {
    const data = answer.text.split('\n').filter((line) => line.startsWith('data:'));
    if (data.length !== 1) fail(id, `expected one SSE data line, got ${data.length}: ${answer.text.slice(0, 300)}`);
    json = (data[0] as string).replace(/^data: ?/, '');
  }
  try {
    return JSON.parse(json) as Record<string, unknown>;
  } catch {
    return fail(id, `the answer is not JSON: ${answer.text.slice(0, 300)}`);
  }
}

function expectStatus(id: ScenarioId, what: string, answer: Answer, status: number): void {
  if (answer.status !== status) fail(id, `${what}: expected HTTP ${status}, got ${answer.status}: ${answer.text.slice(0, 300)}`);
}

function toolText(id: ScenarioId, what: string, answer: Answer): string {
  expectStatus(id, what, answer, 200);
  const message = messageOf(id, answer);
  const result = message['result'] as { content?: { type?: string; text?: string }[]; isError?: boolean } | undefined;
  if (result === undefined || result.isError === true) fail(id, `${what}: expected a tool result, got ${answer.text.slice(0, 300)}`);
  const text = result.content?.[0]?.text;
  if (typeof text !== 'string') fail(id, `${what}: the result has no text content: ${answer.text.slice(0, 300)}`);
  return text;
}

function listedTools(id: ScenarioId, what: string, answer: Answer): { names: string[]; readOnly: boolean[] } {
  expectStatus(id, what, answer, 200);
  const tools = (messageOf(id, answer)['result'] as { tools?: { name: string; annotations?: { readOnlyHint?: boolean } }[] } | undefined)?.tools;
  if (!Array.isArray(tools)) fail(id, `${what}: expected a tools/list result, got ${answer.text.slice(0, 300)}`);
  return { names: tools.map((t) => t.name), readOnly: tools.map((t) => t.annotations?.readOnlyHint === true) };
}

/** A refusal: HTTP 403, or a JSON-RPC error (or an error result) in a 200. */
function expectRefused(id: ScenarioId, what: string, answer: Answer): void {
  if (answer.status === 403) return;
  if (answer.status === 200) {
    const message = messageOf(id, answer);
    if (message['error'] !== undefined || (message['result'] as { isError?: boolean } | undefined)?.isError === true) return;
  }
  fail(id, `${what} was not refused: HTTP ${answer.status} ${answer.text.slice(0, 300)}`);
}

/** Opens a session as a client does: initialize, then notifications/initialized. Returns its id. */
async function openSession(id: ScenarioId, url: string, token: string): Promise<string> {
  const init = await post(url, REQUEST_BODIES.initialize, requestHeaders(token));
  expectStatus(id, 'initialize', init, 200);
  const message = messageOf(id, init);
  if (message['result'] === undefined || init.session === undefined) fail(id, `initialize: no result or no Mcp-Session-Id: ${init.text.slice(0, 300)}`);
  expectStatus(id, 'notifications/initialized', await post(url, REQUEST_BODIES.initialized, requestHeaders(token, init.session)), 202);
  return init.session;
}

/** What a scenario's load is sent to, and what every answer must be. */
interface Setup {
  readonly url: string;
  readonly headers: Record<string, string>;
  /** For e: one session per connection. */
  readonly sessions?: readonly string[];
  /** The answer every measured response must be (for e, the answer to id 1: see `answerTo`). */
  readonly expected: string;
  /** For e: the answer to the request with id `n`, byte for byte. */
  readonly answerTo?: (n: number) => string;
}

/**
 * The answer to id `n` made from the answer to id 1, `text`, which must hold `"id":1` exactly once:
 * the bytes around the id are fixed, so a response must equal this to be right.
 */
function answerTemplate(scenario: ScenarioId, text: string): (n: number) => string {
  const parts = text.split('"id":1');
  if (parts.length !== 2 || !/^[,}]/.test(parts[1] as string)) fail(scenario, `the answer to id 1 does not hold "id":1 once: ${text.slice(0, 300)}`);
  const [before, after] = parts as [string, string];
  return (n) => `${before}"id":${n}${after}`;
}

/** The next id of a measured request in e's sessions: never one used before in this process. */
let nextRequestId = 10;

/** Checks a scenario and returns its load setup (with the exact answer every measured response must equal). */
async function precheck(id: ScenarioId, upstreamPort: number | undefined, proxyPort: number | undefined, gateway: GatewayHandle | undefined): Promise<Setup> {
  const info = SCENARIO_INFO[id];
  const body = REQUEST_BODIES[info.request];
  let url: string;
  let headers: Record<string, string>;
  let sessions: string[] | undefined;

  if (info.via === 'direct') {
    url = `http://127.0.0.1:${upstreamPort}/${info.request === 'call' ? 'echo' : 'catalog'}`;
    headers = requestHeaders();
  } else if (info.via === 'hop') {
    url = `http://127.0.0.1:${proxyPort}/mcp/${info.request === 'call' ? 'echo' : 'catalog'}`;
    headers = requestHeaders();
  } else {
    const { admin, reader } = (gateway as GatewayHandle).keys;
    const base = `http://127.0.0.1:${(gateway as GatewayHandle).port}/mcp`;
    url = `${base}/${info.via === 'stdio' ? 'stdio' : info.request === 'call' ? 'echo' : 'catalog'}`;
    // Auth is really on.
    expectStatus(id, 'no credential', await post(url, body, requestHeaders()), 401);
    expectStatus(id, 'an unknown key', await post(url, body, requestHeaders('mcpw_not_a_key')), 401);
    if (info.via === 'stdio') {
      const adminSession = await openSession(id, url, admin);
      headers = requestHeaders(admin, adminSession);
      // A session belongs to its principal.
      expectStatus(id, "the reader using the admin's session", await post(url, body, requestHeaders(reader, adminSession)), 404);
      const readerSession = await openSession(id, url, reader);
      expectRefused(id, 'the reader calling the destructive tool', await post(url, REQUEST_BODIES.wipe, requestHeaders(reader, readerSession)));
      const readerEcho = toolText(id, 'echo as reader', await post(url, body, requestHeaders(reader, readerSession)));
      if (readerEcho !== ECHO_TEXT) fail(id, `echo as reader returned ${JSON.stringify(readerEcho)}`);
      // The measured sessions: one per connection, the admin's, opened as a client would.
      sessions = [adminSession];
      while (sessions.length < STDIO_CONNECTIONS) sessions.push(await openSession(id, url, admin));
    } else if (info.request === 'call') {
      headers = requestHeaders(admin);
      expectRefused(id, 'the reader calling the destructive tool', await post(url, REQUEST_BODIES.wipe, requestHeaders(reader)));
    } else {
      headers = requestHeaders(reader);
      const all = listedTools(id, 'tools/list as admin', await post(url, body, requestHeaders(admin)));
      if (!sameSet(all.names, CATALOG_NAMES)) fail(id, `the admin's tools/list returned ${all.names.length} tools, expected all ${CATALOG_NAMES.length}`);
    }
  }

  // e's sessions last: each request there gets an id of its own (1, 2 and 3 here, then `nextRequestId`).
  const bodyWithId = (n: number): string => (sessions === undefined ? body : callBody(n));
  const first = await post(url, bodyWithId(1), headers);
  expectStatus(id, 'measured request', first, 200);
  if (!first.contentType.startsWith('text/event-stream') && !first.contentType.startsWith('application/json')) {
    fail(id, `measured request: unexpected content-type ${first.contentType}`);
  }
  const message = messageOf(id, first);
  if (message['id'] !== 1 || message['error'] !== undefined) fail(id, `measured request: not a result for id 1: ${first.text.slice(0, 300)}`);
  if (info.request === 'call') {
    const text = toolText(id, 'measured tools/call echo', first);
    if (text !== ECHO_TEXT) fail(id, `echo returned ${JSON.stringify(text)}, expected ${JSON.stringify(ECHO_TEXT)}`);
  } else {
    const listed = listedTools(id, 'measured tools/list', first);
    if (info.via === 'direct' || info.via === 'hop') {
      if (!sameSet(listed.names, CATALOG_NAMES)) fail(id, `tools/list returned ${listed.names.length} tools, expected all ${CATALOG_NAMES.length}`);
    } else if (!sameSet(listed.names, READ_ONLY_NAMES) || listed.readOnly.includes(false)) {
      fail(id, `the reader's tools/list returned ${listed.names.length} tools, expected exactly the ${READ_ONLY_NAMES.length} read-only ones`);
    }
  }
  // Answers must be deterministic for the byte-for-byte check of every measured response.
  const answerTo = sessions === undefined ? () => first.text : answerTemplate(id, first.text);
  const second = await post(url, bodyWithId(2), headers);
  if (second.text !== answerTo(2)) fail(id, 'two identical requests got different bodies; cannot verify the measured responses');
  if (sessions !== undefined) {
    const other = await post(url, bodyWithId(3), { ...headers, 'mcp-session-id': sessions[sessions.length - 1] as string });
    if (other.text !== answerTo(3)) fail(id, 'two sessions got different bodies for the same request; cannot verify the measured responses');
  }
  return { url, headers, expected: first.text, ...(sessions === undefined ? {} : { sessions, answerTo }) };
}

// ---------------------------------------------------------------------------------------------
// Load

interface LoadResult {
  readonly result: autocannon.Result;
  /** Latency of every 2xx response, ms, sorted. */
  readonly latencies: Float64Array;
}

/** One request of autocannon's per-client list (the parts this bench uses). */
interface LoadRequest {
  readonly method: 'POST';
  readonly headers: Record<string, string>;
  readonly setupRequest: (request: Record<string, unknown>, context: Record<string, unknown>) => Record<string, unknown>;
  readonly onResponse: (status: number, body: string, context: Record<string, unknown>) => void;
}

/** The part of autocannon's client that `setupClient` uses. */
interface LoadClient {
  setRequests(requests: LoadRequest[]): void;
}

function load(id: ScenarioId, setup: Setup, seconds: number, connections = connectionsOf(id)): Promise<LoadResult> {
  const samples: number[] = [];
  let nextSession = 0;
  const sessions = setup.sessions;
  const answerTo = setup.answerTo;
  /** e's answers that were not the answer to their own request. */
  let wrong = 0;
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: setup.url,
        method: 'POST',
        headers: setup.headers,
        body: REQUEST_BODIES[SCENARIO_INFO[id].request],
        connections,
        pipelining: 1,
        duration: seconds,
        timeout: 10,
        ...(sessions === undefined || answerTo === undefined
          ? { expectBody: setup.expected }
          : {
              // Each connection keeps one session, in a request list of its own (autocannon shares
              // the default one between clients); each request gets a new id, recorded in the
              // request's context, and its answer must be the answer to that id.
              setupClient: (client: unknown) => {
                const session = sessions[nextSession++ % sessions.length] as string;
                (client as LoadClient).setRequests([
                  {
                    method: 'POST',
                    headers: { ...setup.headers, 'mcp-session-id': session },
                    setupRequest: (request, context) => {
                      const n = nextRequestId++;
                      context['id'] = n;
                      return { ...request, body: callBody(n) };
                    },
                    onResponse: (status, body, context) => {
                      if (status >= 200 && status < 300 && body !== answerTo(context['id'] as number)) wrong += 1;
                    },
                  },
                ]);
              },
            }),
      },
      (error, result) => {
        if (error !== null) {
          reject(error);
          return;
        }
        // Counted with autocannon's own (those of a fixed `expectBody`), which `checkClean` reads.
        result.mismatches += wrong;
        resolve({ result, latencies: Float64Array.from(samples).sort() });
      },
    );
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      if (statusCode >= 200 && statusCode < 300) samples.push(responseTime);
    });
  });
}

/** WARMUP seconds of load, then more until WARMUP_REQUESTS were answered (see the header). */
async function warmUp(id: ScenarioId, setup: Setup): Promise<void> {
  const first = (await load(id, setup, WARMUP)).result;
  checkClean(id, 'warm-up', first);
  const answered = first['2xx'];
  if (answered >= WARMUP_REQUESTS) return;
  const rate = answered / WARMUP;
  const extra = Math.min(WARMUP_EXTRA_MAX, Math.ceil((WARMUP_REQUESTS - answered) / rate));
  checkClean(id, 'warm-up', (await load(id, setup, extra)).result);
}

function checkClean(id: ScenarioId, phase: string, result: autocannon.Result): void {
  const problems = [
    result.errors > 0 ? `${result.errors} errors` : '',
    result.timeouts > 0 ? `${result.timeouts} timeouts` : '',
    result.non2xx > 0 ? `${result.non2xx} non-2xx (${JSON.stringify(result.statusCodeStats)})` : '',
    result.mismatches > 0 ? `${result.mismatches} bodies differing from the checked answer` : '',
    result['2xx'] === 0 ? 'no 2xx answer at all' : '',
  ].filter((p) => p !== '');
  if (problems.length > 0) fail(id, `${phase}: ${problems.join(', ')}`);
}

interface RunRecord {
  readonly round: number;
  readonly position: number;
  readonly scenario: ScenarioId;
  readonly connections: number;
  readonly requests: number;
  readonly seconds: number;
  readonly reqPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** p50 and p99 of the latency phase (one connection), NaN when it was off. */
  readonly oneConnectionP50Ms: number;
  readonly oneConnectionP99Ms: number;
  readonly oneConnectionRequests: number;
  /** Other processes' CPU and the host's steal during the one-connection phase (% of a core). */
  readonly oneConnectionOtherCpuPercent: number;
  readonly oneConnectionStealPercent: number;
  readonly autocannonP50Ms: number;
  readonly autocannonP99Ms: number;
  /** The proxy process's CPU per answered request (µs): the gateway, or the plain hop for f; NaN for a direct run. */
  readonly gatewayCpuMicrosPerReq: number;
  /** The upstream's CPU per request (µs): the HTTP server, or the sum of the stdio session processes. */
  readonly upstreamCpuMicrosPerReq: number;
  readonly loadGenCpuMicrosPerReq: number;
  readonly gatewayRssMiB: number;
  readonly upstreamRssMiB: number;
  readonly responseBytes: number;
  /** Gateway log lines at warn or above during the measurement, and the first few of the gateway's life. */
  readonly gatewayWarnings: number;
  readonly gatewayWarningSample: string[];
  readonly loadAverage1m: number;
  /** CPU used during the measurement by everything but our processes, in % of one core. */
  readonly otherCpuPercent: number;
  /** Hypervisor steal during the measurement, in % of one core. */
  readonly stealPercent: number;
  readonly waitedForQuietSeconds: number;
  /** Other processes plus steal exceeded BENCH_MAX_OTHER_CPU during the measurement or the one-connection phase. */
  readonly disturbed: boolean;
}

/**
 * Waits (up to BENCH_QUIET_WAIT seconds) until the machine is quiet: less than MAX_OTHER_PERCENT of a
 * core busy over one second, with no process of ours running. Returns the seconds waited.
 */
async function waitForQuiet(): Promise<number> {
  const started = Date.now();
  let announced = false;
  for (;;) {
    const before = machineMicros();
    await sleep(1000);
    const after = machineMicros();
    const busy = ((after.busy - before.busy + after.steal - before.steal) / 1e6) * 100;
    const waited = (Date.now() - started) / 1000;
    if (busy <= MAX_OTHER_PERCENT || waited >= QUIET_WAIT) return waited;
    if (!announced) {
      console.log(`  (machine busy: ${busy.toFixed(0)}% of a core used by other processes; waiting up to ${QUIET_WAIT} s for it to calm down)`);
      announced = true;
    }
  }
}

async function measure(id: ScenarioId, round: number, position: number): Promise<RunRecord> {
  const info = SCENARIO_INFO[id];
  const waitedForQuiet = await waitForQuiet();
  const stops: (() => Promise<void>)[] = [];
  try {
    const upstream = info.via === 'stdio' ? undefined : await startServer('upstream server', builds.upstream);
    if (upstream !== undefined) stops.push(upstream.stop);
    const hop = info.via === 'hop' ? await startServer('plain hop', builds.hop, [`http://127.0.0.1:${upstream?.port}`], cpuProfFlags()) : undefined;
    if (hop !== undefined) stops.unshift(hop.stop);
    let gateway: GatewayHandle | undefined;
    if (info.via === 'gateway' || info.via === 'stdio') {
      const upstreams: UpstreamsConfig =
        info.via === 'stdio'
          ? { stdio: { type: 'stdio', command: process.execPath, args: [builds.stdio], maxSessions: STDIO_CONNECTIONS + 8 } }
          : {
              echo: { type: 'http', url: `http://127.0.0.1:${upstream?.port}/echo` },
              catalog: { type: 'http', url: `http://127.0.0.1:${upstream?.port}/catalog` },
            };
      gateway = await startGateway(upstreams);
      stops.unshift(gateway.stop);
    }
    const setup = await precheck(id, upstream?.port, hop?.port ?? gateway?.port, gateway);
    await warmUp(id, setup);

    /** The proxy: the gateway, the hop, or nobody (direct). */
    const proxyPid = gateway?.pid ?? hop?.pid;
    const measuredPid = proxyPid ?? (upstream as Handle).pid;
    const upstreamPids = upstream !== undefined ? [upstream.pid] : childrenOf(measuredPid).map((p) => p.pid);
    if (info.via === 'stdio' && upstreamPids.length < STDIO_CONNECTIONS) fail(id, `expected ≥ ${STDIO_CONNECTIONS} session processes, found ${upstreamPids.length}`);
    const upstreamCpu = (): number => upstreamPids.reduce((sum, pid) => sum + cpuMicros(pid), 0);
    const warningsBefore = gateway?.warnings.count ?? 0;
    const loadAverage1m = os.loadavg()[0] as number;
    const machineBefore = machineMicros();
    const gatewayBefore = proxyPid === undefined ? 0 : cpuMicros(proxyPid);
    const upstreamBefore = upstreamCpu();
    const ownBefore = process.cpuUsage();
    const { result, latencies } = await load(id, setup, DURATION);
    const gatewayAfter = proxyPid === undefined ? 0 : cpuMicros(proxyPid);
    const upstreamAfter = upstreamCpu();
    const own = process.cpuUsage(ownBefore);
    const machineAfter = machineMicros();
    checkClean(id, 'measurement', result);
    // After the CPU figures are read: one connection, so nothing queues (see LATENCY_DURATION). It is
    // watched for other processes and steal like the measurement: one phase slowed by the host
    // would move the median of two rounds by half its delay.
    const singleStart = { machine: machineMicros(), gateway: proxyPid === undefined ? 0 : cpuMicros(proxyPid), upstream: upstreamCpu(), own: process.cpuUsage() };
    const single = LATENCY_DURATION > 0 ? await load(id, setup, LATENCY_DURATION, 1) : undefined;
    if (single !== undefined) checkClean(id, 'latency phase (one connection)', single.result);
    const singleOwn = process.cpuUsage(singleStart.own);
    const singleOurs = (proxyPid === undefined ? 0 : cpuMicros(proxyPid) - singleStart.gateway) + (upstreamCpu() - singleStart.upstream) + singleOwn.user + singleOwn.system;
    const singleMachine = machineMicros();
    const singleWall = (single?.result.duration ?? 0) * 1e6;
    const singleOther = singleWall === 0 ? 0 : Math.max(0, ((singleMachine.busy - singleStart.machine.busy - singleOurs) / singleWall) * 100);
    const singleSteal = singleWall === 0 ? 0 : ((singleMachine.steal - singleStart.machine.steal) / singleWall) * 100;

    const wallMicros = result.duration * 1e6;
    const ours = gatewayAfter - gatewayBefore + (upstreamAfter - upstreamBefore) + own.user + own.system;
    const other = Math.max(0, ((machineAfter.busy - machineBefore.busy - ours) / wallMicros) * 100);
    const steal = ((machineAfter.steal - machineBefore.steal) / wallMicros) * 100;
    const requests = result['2xx'];
    return {
      round,
      position,
      scenario: id,
      connections: connectionsOf(id),
      requests,
      seconds: result.duration,
      reqPerSec: requests / result.duration,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      oneConnectionP50Ms: single === undefined ? Number.NaN : percentile(single.latencies, 50),
      oneConnectionP99Ms: single === undefined ? Number.NaN : percentile(single.latencies, 99),
      oneConnectionRequests: single?.result['2xx'] ?? 0,
      autocannonP50Ms: result.latency.p50,
      autocannonP99Ms: result.latency.p99,
      gatewayCpuMicrosPerReq: proxyPid === undefined ? Number.NaN : (gatewayAfter - gatewayBefore) / requests,
      upstreamCpuMicrosPerReq: (upstreamAfter - upstreamBefore) / requests,
      loadGenCpuMicrosPerReq: (own.user + own.system) / requests,
      gatewayRssMiB: proxyPid === undefined ? Number.NaN : rssMiB(proxyPid),
      upstreamRssMiB: upstreamPids.reduce((sum, pid) => sum + rssMiB(pid), 0),
      responseBytes: Buffer.byteLength(setup.expected),
      gatewayWarnings: (gateway?.warnings.count ?? 0) - warningsBefore,
      gatewayWarningSample: gateway?.warnings.sample.slice(0, 3) ?? [],
      loadAverage1m,
      otherCpuPercent: other,
      stealPercent: steal,
      oneConnectionOtherCpuPercent: singleOther,
      oneConnectionStealPercent: singleSteal,
      waitedForQuietSeconds: Math.round(waitedForQuiet),
      disturbed: other + steal > MAX_OTHER_PERCENT || singleOther + singleSteal > MAX_OTHER_PERCENT,
    };
  } finally {
    for (const stop of stops) await stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Report

interface TargetVerdict {
  readonly what: string;
  readonly target: string;
  readonly value: number;
  readonly met: boolean;
}

interface Summary {
  readonly scenario: ScenarioId;
  readonly title: string;
  readonly baseline: ScenarioId;
  readonly connections: number;
  readonly reqPerSec: number;
  readonly reqPerSecByRound: number[];
  readonly p50Ms: number;
  /** Each round's p50 (ms): for a baseline, how far the same run strays from itself. */
  readonly p50MsByRound: number[];
  readonly p99Ms: number;
  /** Throughput over the baseline's (medians). */
  readonly ratio: number;
  readonly ratioByRound: number[];
  /** Median latency above the baseline's (ms). */
  readonly p50AddedMs: number;
  readonly p50AddedMsByRound: number[];
  /** The latency phase's p50 (one connection), and above the baseline's. */
  readonly oneConnectionP50Ms: number;
  readonly oneConnectionP50AddedMs: number;
  /** A gateway scenario's proxy CPU per request above the plain hop's for the same request (NaN without that run). */
  readonly aboveHopCpuMicros: number;
  /** A gateway scenario's one-connection p50 above the plain hop's for the same request (ms; NaN without that run). */
  readonly aboveHopOneConnectionMs: number;
  readonly gatewayCpuMicrosPerReq: number;
  readonly gatewayCpuMicrosPerReqByRound: number[];
  readonly upstreamCpuMicrosPerReq: number;
  readonly loadGenCpuMicrosPerReq: number;
  readonly responseBytes: number;
  readonly gatewayRssMiB: number;
  readonly disturbedRuns: number;
  readonly targets: TargetVerdict[];
}

function summarise(runs: readonly RunRecord[]): Summary[] {
  const of = (id: ScenarioId): RunRecord[] => runs.filter((r) => r.scenario === id).sort((a, b) => a.round - b.round);
  const rounds = [...new Set(runs.map((r) => r.round))].sort((a, b) => a - b);
  return SELECTED.map((id) => {
    const info = SCENARIO_INFO[id];
    const mine = of(id);
    const base = of(info.baseline);
    const isBaseline = info.baseline === id;
    const byRound = (value: (a: RunRecord, b: RunRecord) => number): number[] =>
      rounds.map((round) => {
        const a = mine.find((r) => r.round === round);
        const b = base.find((r) => r.round === round);
        return a === undefined || b === undefined ? Number.NaN : value(a, b);
      });
    const reqPerSec = median(mine.map((r) => r.reqPerSec));
    const p50Ms = median(mine.map((r) => r.p50Ms));
    const ratio = isBaseline ? Number.NaN : reqPerSec / median(base.map((r) => r.reqPerSec));
    const p50AddedMs = isBaseline ? Number.NaN : p50Ms - median(base.map((r) => r.p50Ms));
    const oneConnectionP50Ms = median(mine.map((r) => r.oneConnectionP50Ms));
    const oneConnectionP50AddedMs = isBaseline ? Number.NaN : oneConnectionP50Ms - median(base.map((r) => r.oneConnectionP50Ms));
    const gatewayCpu = median(mine.map((r) => r.gatewayCpuMicrosPerReq));
    // The plain hop's run of the same request (f or g), when run: what any proxy of this kind costs here.
    const hopRuns = info.via === 'gateway' && !isBaseline ? of(HOP_OF[info.request]) : [];
    const hopCpu = median(hopRuns.map((r) => r.gatewayCpuMicrosPerReq));
    const aboveHopOneConnectionMs = oneConnectionP50Ms - median(hopRuns.map((r) => r.oneConnectionP50Ms));
    const targets: TargetVerdict[] = [];
    const { minRatio, maxP50AddedMs, maxGatewayCpuMicros, maxAboveHopMicros } = info.targets;
    if (minRatio !== undefined) targets.push({ what: 'throughput gateway/direct', target: `≥ ${minRatio}`, value: ratio, met: ratio >= minRatio });
    if (maxP50AddedMs !== undefined) {
      targets.push({ what: `p50 added at ${connectionsOf(id)} connections (ms)`, target: `≤ ${maxP50AddedMs}`, value: p50AddedMs, met: p50AddedMs <= maxP50AddedMs });
      if (Number.isFinite(oneConnectionP50AddedMs)) {
        targets.push({ what: 'p50 added at 1 connection (ms)', target: `≤ ${maxP50AddedMs}`, value: oneConnectionP50AddedMs, met: oneConnectionP50AddedMs <= maxP50AddedMs });
      }
    }
    if (maxGatewayCpuMicros !== undefined) {
      targets.push({ what: 'gateway CPU per request (µs)', target: `≤ ${maxGatewayCpuMicros}`, value: gatewayCpu, met: gatewayCpu <= maxGatewayCpuMicros });
    }
    if (maxAboveHopMicros !== undefined && Number.isFinite(hopCpu)) {
      const above = gatewayCpu - hopCpu;
      targets.push({ what: 'gateway CPU above the plain hop (µs)', target: `≤ ${maxAboveHopMicros}`, value: above, met: above <= maxAboveHopMicros });
    }
    return {
      scenario: id,
      title: info.title,
      baseline: info.baseline,
      connections: connectionsOf(id),
      reqPerSec,
      reqPerSecByRound: mine.map((r) => r.reqPerSec),
      p50Ms,
      p50MsByRound: mine.map((r) => r.p50Ms),
      p99Ms: median(mine.map((r) => r.p99Ms)),
      ratio,
      ratioByRound: isBaseline ? [] : byRound((a, b) => a.reqPerSec / b.reqPerSec),
      p50AddedMs,
      p50AddedMsByRound: isBaseline ? [] : byRound((a, b) => a.p50Ms - b.p50Ms),
      oneConnectionP50Ms,
      oneConnectionP50AddedMs,
      aboveHopCpuMicros: gatewayCpu - hopCpu,
      aboveHopOneConnectionMs,
      gatewayCpuMicrosPerReq: gatewayCpu,
      gatewayCpuMicrosPerReqByRound: mine.map((r) => r.gatewayCpuMicrosPerReq),
      upstreamCpuMicrosPerReq: median(mine.map((r) => r.upstreamCpuMicrosPerReq)),
      loadGenCpuMicrosPerReq: median(mine.map((r) => r.loadGenCpuMicrosPerReq)),
      responseBytes: mine[0]?.responseBytes ?? Number.NaN,
      gatewayRssMiB: median(mine.map((r) => r.gatewayRssMiB)),
      disturbedRuns: mine.filter((r) => r.disturbed).length,
      targets,
    };
  });
}

const fmt = (n: number, digits: number): string => (Number.isFinite(n) ? n.toFixed(digits) : '—');
const signed = (n: number, digits: number): string => (Number.isFinite(n) ? `${n >= 0 ? '+' : ''}${n.toFixed(digits)}` : '—');

function render(summaries: readonly Summary[]): string {
  const header = ['scenario', 'conns', 'req/s', 'req/s by round', 'p50 ms', 'p99 ms', 'gw/direct', 'by round', 'p50 added ms', 'p50 1 conn ms', 'added 1 conn', 'proxy CPU µs/req', 'upstream CPU µs/req'];
  const rows = summaries.map((s) => [
    `${s.title}${s.disturbedRuns > 0 ? ' *' : ''}`,
    String(s.connections),
    fmt(s.reqPerSec, 0),
    s.reqPerSecByRound.map((v) => fmt(v, 0)).join(' / '),
    fmt(s.p50Ms, 2),
    fmt(s.p99Ms, 2),
    fmt(s.ratio, 3),
    s.ratioByRound.map((v) => fmt(v, 3)).join(' / ') || '—',
    signed(s.p50AddedMs, 2),
    fmt(s.oneConnectionP50Ms, 2),
    signed(s.oneConnectionP50AddedMs, 2),
    fmt(s.gatewayCpuMicrosPerReq, 0),
    fmt(s.upstreamCpuMicrosPerReq, 0),
  ]);
  return table([header, ...rows]);
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const order = (round: number): readonly ScenarioId[] => (round % 2 === 1 ? SELECTED : [...SELECTED].reverse());
  const started = new Date();
  const perRun = WARMUP + DURATION + LATENCY_DURATION;
  console.log(
    `mcp-warden gateway bench: ${SELECTED.length} scenarios × ${ROUNDS} rounds, ${DURATION} s each after a warm-up of ${WARMUP} s and at least ${WARMUP_REQUESTS} requests ` +
      `(≈ ${Math.ceil((SELECTED.length * ROUNDS * (perRun + 4)) / 60)} min without waits for a quiet machine)\n` +
      `Setup: fresh processes per run on 127.0.0.1: the upstream (SDK ${packageVersion('@modelcontextprotocol/sdk')}, Streamable HTTP, ` +
      `stateless, Express), the gateway (mcp-warden serve, ${STORE} store, audit to the database), autocannon ` +
      `${packageVersion('autocannon')} in this process with ${CONNECTIONS} connections (all but e) and ${STDIO_CONNECTIONS} (e: one stdio session ` +
      `and process each). CPU = /proc/<pid>/stat utime+stime.${CPU_PROF_DIR === undefined ? '' : ` Gateway and hop CPU profiles → ${CPU_PROF_DIR}`}\n`,
  );
  if (CPU_PROF_DIR !== undefined) mkdirSync(CPU_PROF_DIR, { recursive: true });

  builds = buildServers();
  const runs: RunRecord[] = [];
  const discarded: RunRecord[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const scenarios = order(round);
    for (const [position, id] of scenarios.entries()) {
      for (let attempt = 0; ; attempt++) {
        const run = await measure(id, round, position + 1);
        const retry = run.disturbed && attempt < MAX_RETRIES;
        console.log(
          `round ${round} ${String(position + 1)}/${scenarios.length} ${SCENARIO_INFO[id].title.padEnd(40)} ` +
            `${run.reqPerSec.toFixed(0).padStart(6)} req/s  p50 ${run.p50Ms.toFixed(2)} ms  p99 ${run.p99Ms.toFixed(2)} ms  ` +
            `(1 conn: p50 ${fmt(run.oneConnectionP50Ms, 2)} ms; other ${run.oneConnectionOtherCpuPercent.toFixed(0)}%, steal ${run.oneConnectionStealPercent.toFixed(0)}%)  ` +
            `proxy ${fmt(run.gatewayCpuMicrosPerReq, 0)} µs/req  upstream ${run.upstreamCpuMicrosPerReq.toFixed(0)} µs/req  ` +
            `load-gen ${run.loadGenCpuMicrosPerReq.toFixed(0)} µs/req  (${run.requests} req; other processes ${run.otherCpuPercent.toFixed(0)}% ` +
            `of a core, steal ${run.stealPercent.toFixed(0)}%${run.gatewayWarnings > 0 ? `; ${run.gatewayWarnings} gateway warnings` : ''})` +
            (retry ? '  → disturbed, repeating' : run.disturbed ? '  → disturbed, kept (retries used up)' : ''),
        );
        if (!retry) {
          runs.push(run);
          break;
        }
        discarded.push(run);
      }
    }
  }

  const summaries = summarise(runs);
  console.log(`\n${render(summaries)}\n`);
  console.log(
    'Medians across rounds. gw/direct: throughput over the direct run (b, f vs a; d, g vs c); p50 added: median latency above it.\n' +
      `1 conn: a ${LATENCY_DURATION} s phase after each measurement with one connection, where no request waits behind another (at ${CONNECTIONS}\n` +
      'connections on 2 shared cores the p50 is mostly queueing: connections / throughput).\n' +
      "proxy CPU: the gateway process's (f, g: the plain hop's) utime+stime per answered request; upstream CPU: the upstream\n" +
      "server's (e: the stdio session processes together). Gateway, upstream and load generator share this machine's cores.",
  );
  const disturbedKept = runs.filter((r) => r.disturbed).length;
  if (disturbedKept > 0) {
    console.log(
      `\n* WARNING: ${disturbedKept} of ${runs.length} kept runs were measured while other processes used more than ${MAX_OTHER_PERCENT}% of a core ` +
        '(retries used up); their req/s and CPU figures are unreliable. Re-run on a quiet machine.',
    );
  }
  console.log('');
  for (const s of summaries) {
    for (const t of s.targets) {
      const digits = t.what.startsWith('throughput') ? 3 : t.what.startsWith('p50') ? 2 : 0;
      console.log(`target ${SCENARIO_INFO[s.scenario].letter}: ${t.what} ${t.target} → ${t.met ? 'met' : 'NOT met'} (${fmt(t.value, digits)})`);
    }
  }
  for (const s of summaries) {
    if (!Number.isFinite(s.aboveHopCpuMicros)) continue;
    const info = SCENARIO_INFO[s.scenario];
    console.log(
      `yardstick ${info.letter}: above the plain hop (${SCENARIO_INFO[HOP_OF[info.request]].letter}): gateway CPU ${signed(s.aboveHopCpuMicros, 0)} µs/req ` +
        `(× ${fmt(s.gatewayCpuMicrosPerReq / (s.gatewayCpuMicrosPerReq - s.aboveHopCpuMicros), 2)} the hop's), ` +
        `p50 at 1 connection ${signed(s.aboveHopOneConnectionMs, 2)} ms`,
    );
  }
  // How far a direct run's p50 strays from itself between rounds: a p50 added within that spread
  // (under load, where the p50 is mostly queueing) cannot be told from the machine's noise.
  for (const s of summaries) {
    if (s.baseline !== s.scenario || SCENARIO_INFO[s.scenario].via !== 'direct' || s.p50MsByRound.length < 2) continue;
    const spread = Math.max(...s.p50MsByRound) - Math.min(...s.p50MsByRound);
    console.log(
      `noise ${SCENARIO_INFO[s.scenario].letter}: the direct run's own p50 at ${s.connections} connections spans ${fmt(spread, 2)} ms across rounds ` +
        `(${s.p50MsByRound.map((v) => fmt(v, 2)).join(' / ')}); a p50 added within that is not told apart from it`,
    );
  }

  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = `${RESULTS_DIR}gateway-${started.toISOString().replace(/[:.]/g, '-')}.json`;
  const cpus = os.cpus();
  const report = {
    benchmark: 'gateway',
    started: started.toISOString(),
    finished: new Date().toISOString(),
    config: {
      durationSeconds: DURATION,
      warmupSeconds: WARMUP,
      warmupRequests: WARMUP_REQUESTS,
      rounds: ROUNDS,
      connections: CONNECTIONS,
      stdioConnections: STDIO_CONNECTIONS,
      pipelining: 1,
      store: STORE,
      maxOtherCpuPercent: MAX_OTHER_PERCENT,
      maxRetries: MAX_RETRIES,
      quietWaitSeconds: QUIET_WAIT,
      cpuProfiles: CPU_PROF_DIR ?? null,
    },
    setup: {
      processes: 'fresh per run, 127.0.0.1 random ports: upstream and plain hop (plain node on the transpiled server modules), gateway (node <cli> serve, LOG_LEVEL=warn); autocannon in the main process',
      gatewayCli: CLI,
      hop: 'f: node:http server + one undici Pool, MCP headers forwarded, request body streamed, answer piped back; no auth, parsing or audit',
      upstream: 'Express + express.json(), stateless StreamableHTTPServerTransport, a new server + transport per request, one shared AjvJsonSchemaValidator; /echo: McpServer (echo, wipe); /catalog: low-level Server with a 1,000-tool list built once',
      gateway: `roles admin [read, write, delete] and reader [read], first-run API keys, ${STORE} store in a temporary directory, audit sink: database; upstreams: type http (a–d), type stdio (e)`,
      stdio: 'e: one session (and upstream process) per autocannon connection, opened before the load with initialize + notifications/initialized; setupClient gives each connection its Mcp-Session-Id',
      cpuSource: `/proc/<pid>/stat utime+stime, CLK_TCK ${CLK_TCK}`,
      latency: 'p50/p99 over every 2xx response of the measurement (autocannon response events, sub-ms)',
    },
    environment: {
      node: process.version,
      platform: `${os.type()} ${os.release()} ${os.arch()}`,
      cpus: cpus.length,
      cpuModel: cpus[0]?.model ?? 'unknown',
      versions: {
        '@modelcontextprotocol/sdk': packageVersion('@modelcontextprotocol/sdk'),
        autocannon: packageVersion('autocannon'),
        express: packageVersion('express'),
        undici: packageVersion('undici'),
        'mcp-warden': packageVersion('mcp-warden'),
        '@mcp-warden/core': packageVersion('@mcp-warden/core'),
      },
    },
    summary: summaries,
    runs,
    discardedRuns: discarded,
  };
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nresults: ${file}`);
}

const cleanUp = (): void => {
  rmSync(BUILD_DIR, { recursive: true, force: true });
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
};

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killEverything();
    cleanUp();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

main().then(
  () => {
    killEverything();
    cleanUp();
    process.exit(0);
  },
  (error: unknown) => {
    killEverything();
    cleanUp();
    console.error(error instanceof BenchFailure ? `\nBENCH FAILED: ${error.message}` : error);
    process.exit(1);
  },
);
