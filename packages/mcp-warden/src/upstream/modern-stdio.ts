/**
 * Clients of MCP 2026-07-28 in front of a stdio upstream. That revision has no sessions: every
 * request carries its own `_meta` envelope and may open with `server/discover`. stdio servers speak
 * the 2025 handshake, so the gateway serves the modern wire itself (the official SDK v2's
 * `createMcpHandler`, which owns discovery, envelopes, the Mcp-Method/Mcp-Name checks and SSE) and
 * answers each request through a child it keeps per principal, initialized the 2025 way. Principals
 * never share a child.
 *
 * Server-to-client requests of the child (sampling, elicitation, roots) reach the client as
 * Multi Round-Trip Requests: 2026-07-28 has no server-to-client requests, so the `tools/call`,
 * `prompts/get` or `resources/read` that is waiting on the child answers `input_required` with the
 * child's request embedded, the child's call stays open here, and the client's retry delivers the
 * answers to the child (spec: basic/patterns/mrtr). The open call lives in this process: a retry
 * that reaches another gateway instance, or arrives after its child restarted or after
 * `inputTimeout`, is refused with -32602.
 *
 * `subscriptions/listen` (2026-07-28's way to follow changes) is served per principal: each principal
 * has its own `createMcpHandler`, so its own change-event bus, and the child's list-changed and
 * resource-updated notifications are published on that bus only. The resources a listen follows
 * (already allowed by the policy) are subscribed to at the child with 2025's `resources/subscribe`,
 * counted per URI, and unsubscribed when the last listen following them closes. When the child
 * exits, its listens' streams are cut without a graceful result, so their clients listen again.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '@mcp-warden/core';
import { toNodeHandler } from '@modelcontextprotocol/node';
import {
  CLIENT_CAPABILITIES_META_KEY,
  type InputRequests,
  type McpHttpHandler,
  ProtocolError,
  ProtocolErrorCode,
  type RequestStateCodec,
  Server,
  type ServerEvent,
  type ServerContext,
  createMcpHandler,
  createRequestStateCodec,
  inputRequired,
} from '@modelcontextprotocol/server';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { jsonRpcError, requestIdOf } from './json-rpc.js';
import type { StdioChild } from './stdio-child.js';
import type { UpstreamLogger } from './types.js';

const FIRST_MODERN_REVISION = '2026-07-28';
const ENVELOPE_PREFIX = 'io.modelcontextprotocol/';
/** How long a listen waits for the child to accept a resource subscription. */
const SUBSCRIBE_TIMEOUT_MS = 30_000;

/** Whether a POST body (one message) claims a 2026-07-28-or-later revision in its `_meta` envelope. */
export function isModernMessage(body: unknown, protocolHeader: string | undefined): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const params = (body as { params?: unknown }).params;
  const meta = typeof params === 'object' && params !== null ? (params as { _meta?: unknown })._meta : undefined;
  const claim = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>)[`${ENVELOPE_PREFIX}protocolVersion`] : undefined;
  if (typeof claim === 'string') return claim >= FIRST_MODERN_REVISION;
  return protocolHeader !== undefined && protocolHeader >= FIRST_MODERN_REVISION;
}

type Failure = Error & { code?: number; data?: unknown };

interface PendingCall {
  resolve(result: Record<string, unknown>): void;
  reject(error: Failure): void;
  onProgress?: (params: Record<string, unknown>) => void;
}

/** A request the child sent to its client. */
interface ChildRequest {
  readonly id: string | number;
  readonly method: string;
  readonly params: Record<string, unknown>;
}

/** The methods whose 2026-07-28 result may be `input_required` (basic/patterns/mrtr, "Supported Requests"). */
const INPUT_CAPABLE_METHODS: ReadonlySet<string> = new Set(['tools/call', 'prompts/get', 'resources/read']);
/** The server-to-client requests a 2026-07-28 client fulfils as embedded input requests. */
const INPUT_REQUEST_METHODS: ReadonlySet<string> = new Set(['sampling/createMessage', 'elicitation/create', 'roots/list']);

/**
 * One `tools/call`, `prompts/get` or `resources/read` of a 2026-07-28 client, kept across the rounds
 * of its Multi Round-Trip Request: the child's call stays open, the child's requests wait here until
 * a round hands them to the client, and the client's retry answers them.
 */
class Flow {
  readonly id = randomUUID();
  /** The id of the child call the flow waits on. */
  readonly callId: string;
  /** What the client asked, `_meta` aside: a retry must ask the same. */
  readonly digest: string;
  /** Child requests no round has handed to the client yet. */
  readonly fresh: ChildRequest[] = [];
  /** Child requests handed to the client and not answered yet, by their key in `inputRequests`. */
  readonly asked = new Map<string, ChildRequest>();
  /** Counts the `input_required` answers: only the latest round's `requestState` is accepted. */
  round = 0;
  /** The child's answer to the call, once it came. */
  outcome: { readonly result: Record<string, unknown> } | { readonly error: Failure } | undefined;
  /** Relays the child's progress to the round being served, if it asked for progress. */
  onProgress: ((params: Record<string, unknown>) => void) | undefined;
  /** Whether a request of the client is being served for this flow right now. */
  serving = false;
  readonly abort = new AbortController();
  #wake: (() => void) | undefined;
  #expiry: NodeJS.Timeout | undefined;

  constructor(callId: string, digest: string) {
    this.callId = callId;
    this.digest = digest;
  }

  /** Resolves once something happened: a child request, the outcome, or `signal` aborting. */
  changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        this.#wake = undefined;
        resolve();
      };
      this.#wake = done;
      signal.addEventListener('abort', done, { once: true });
      if (signal.aborted) done();
    });
  }

  notify(): void {
    this.#wake?.();
  }

  /** Starts the clock for the client's retry. */
  park(timeoutMs: number, onExpired: () => void): void {
    this.#expiry = setTimeout(onExpired, timeoutMs);
    this.#expiry.unref();
  }

  unpark(): void {
    clearTimeout(this.#expiry);
    this.#expiry = undefined;
  }
}

/** The SHA-256 of a request's params without `_meta` (the envelope and progress token change per round). */
function digestOf(params: Record<string, unknown>): string {
  const { _meta: _ignored, ...rest } = params;
  return createHash('sha256').update(JSON.stringify(rest)).digest('base64url');
}

/**
 * The client capability a child request needs, if the request's envelope does not declare it. As
 * strict as the SDK's own check (`MissingRequiredClientCapabilityError`): a bare `elicitation: {}`
 * means form mode; URL mode needs `elicitation.url`; sampling with tools needs `sampling.tools`.
 */
function missingCapability(request: ChildRequest, declared: Record<string, unknown> | undefined): string | undefined {
  const member = (capability: string): Record<string, unknown> | undefined => {
    const value = declared?.[capability];
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  };
  switch (request.method) {
    case 'sampling/createMessage': {
      const sampling = member('sampling');
      if (sampling === undefined) return 'sampling';
      const withTools = request.params['tools'] !== undefined || request.params['toolChoice'] !== undefined;
      return withTools && sampling['tools'] === undefined ? 'sampling.tools' : undefined;
    }
    case 'elicitation/create': {
      const elicitation = member('elicitation');
      if (elicitation === undefined) return 'elicitation';
      if (request.params['mode'] === 'url') return elicitation['url'] === undefined ? 'elicitation.url' : undefined;
      return elicitation['form'] === undefined && elicitation['url'] !== undefined ? 'elicitation.form' : undefined;
    }
    default:
      return member('roots') === undefined ? 'roots' : undefined;
  }
}

/**
 * A child request as a 2026-07-28 embedded input request: `{method, params}` without `_meta` and
 * `task` (neither exists there), and without URL mode's `elicitationId` (removed with
 * `notifications/elicitation/complete`).
 */
function embeddedRequest(request: ChildRequest): InputRequests[string] {
  const { _meta: _meta, task: _task, ...params } = request.params;
  if (request.method === 'elicitation/create' && params['mode'] === 'url') delete params['elicitationId'];
  return (Object.keys(params).length === 0 ? { method: request.method } : { method: request.method, params }) as InputRequests[string];
}

/** The client capabilities a child is initialized with, so that it offers what uses them (per child, not per request: see `missingCapability`). */
const CHILD_CAPABILITIES = { sampling: {}, elicitation: { form: {}, url: {} }, roots: {} };

/** One principal's child, initialized with the 2025 handshake, shared by that principal's requests. */
class PooledChild {
  readonly ready: Promise<Record<string, unknown>>;
  lastUsed = Date.now();
  readonly #child: StdioChild;
  readonly #pending = new Map<string, PendingCall>();
  /** The flows of 2026-07-28 calls, by their id. */
  readonly #flows = new Map<string, Flow>();
  /** Resources subscribed to at the child for open listens: how many follow each, and its subscription. */
  readonly #followed = new Map<string, { count: number; readonly subscribed: Promise<unknown> }>();
  /** The responses of the open listens, ended abruptly when the child exits (so their clients listen again). */
  readonly #listens = new Set<ServerResponse>();
  #next = 0;
  #dead = false;
  /** The child's notifications other than progress (list changes, resource updates, logging…). */
  onNotification?: (method: string, params: Record<string, unknown>) => void;

  constructor(child: StdioChild, onDead: (started: boolean) => void) {
    this.#child = child;
    child.onmessage = (message) => this.#receive(message as unknown as Record<string, unknown>);
    const die = (): void => {
      if (this.#dead) return;
      this.#dead = true;
      for (const call of this.#pending.values()) call.reject(Object.assign(new Error('the upstream process exited'), { code: -32603 }));
      this.#pending.clear();
      // Without a graceful `complete` result: a client treats the drop as a reason to listen again
      // (spec: basic/patterns/subscriptions, Graceful Closure).
      for (const res of this.#listens) res.destroy();
      onDead(child.pid !== undefined);
    };
    child.onclose = die;
    const started = child.start();
    // A spawn that throws (an invalid argument) rejects without an exit: dead all the same.
    started.catch(die);
    this.ready = started.then(async () => {
      const result = await this.call('initialize', {
        protocolVersion: '2025-11-25',
        capabilities: CHILD_CAPABILITIES,
        clientInfo: { name: 'mcp-warden-modern-bridge', version: '1' },
      });
      await child.send({ jsonrpc: '2.0', method: 'notifications/initialized' } as JSONRPCMessage);
      return result;
    });
  }

  get dead(): boolean {
    return this.#dead;
  }

  /** Open flows. The idle sweeper spares a child that has any: each ends by itself (its call ends, its client cancels, or `inputTimeoutMs` passes). */
  get flowCount(): number {
    return this.#flows.size;
  }

  /** Open listens of this principal. The idle sweeper spares a child that has any. */
  get listenCount(): number {
    return this.#listens.size;
  }

  /**
   * Counts the listen answered on `res` and subscribes the child to the resources it follows (a
   * subscription under way for another listen is shared, so its failure fails both). Returns the
   * release to call when the listen closes: resources no open listen follows any more are
   * unsubscribed. Rejects with the child's error, or after 30 s, when a subscription fails; nothing
   * stays counted then.
   */
  async follow(uris: readonly string[], res: ServerResponse): Promise<() => void> {
    const unique = [...new Set(uris)];
    this.#listens.add(res);
    const waits: Promise<unknown>[] = [];
    for (const uri of unique) {
      let entry = this.#followed.get(uri);
      if (entry === undefined) {
        const subscribed = this.call('resources/subscribe', { uri }, { signal: AbortSignal.timeout(SUBSCRIBE_TIMEOUT_MS) }).catch((error: Failure) => {
          // The call's own abort says "cancelled"; here the only abort is the timeout.
          throw error.code === -32800 ? Object.assign(new Error(`the upstream did not answer resources/subscribe within ${SUBSCRIBE_TIMEOUT_MS / 1000} s`), { code: -32603 }) : error;
        });
        entry = { count: 0, subscribed };
        // A failure is reported to the listens waiting on it; none is left unhandled.
        entry.subscribed.catch(() => {});
        this.#followed.set(uri, entry);
      }
      entry.count++;
      waits.push(entry.subscribed);
    }
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.#listens.delete(res);
      for (const uri of unique) {
        const entry = this.#followed.get(uri);
        if (entry === undefined) continue;
        if (--entry.count > 0) continue;
        this.#followed.delete(uri);
        if (!this.#dead) this.call('resources/unsubscribe', { uri }).catch(() => {});
      }
    };
    try {
      await Promise.all(waits);
    } catch (error) {
      release();
      throw error;
    }
    return release;
  }

  call(method: string, params: Record<string, unknown>, options: { signal?: AbortSignal; onProgress?: PendingCall['onProgress']; id?: string } = {}): Promise<Record<string, unknown>> {
    const id = options.id ?? this.#nextId();
    this.lastUsed = Date.now();
    const meta = { ...((params['_meta'] as Record<string, unknown> | undefined) ?? {}) };
    for (const key of Object.keys(meta)) if (key.startsWith(ENVELOPE_PREFIX) || key === 'progressToken') delete meta[key];
    if (options.onProgress !== undefined) meta['progressToken'] = id;
    const forwarded = { ...params, ...(Object.keys(meta).length === 0 ? {} : { _meta: meta }) };
    if (Object.keys(meta).length === 0) delete forwarded['_meta'];
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }) });
      options.signal?.addEventListener('abort', () => {
        if (!this.#pending.delete(id)) return;
        void this.#child.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'cancelled by the client' } } as JSONRPCMessage).catch(() => {});
        reject(Object.assign(new Error('cancelled'), { code: -32800 }));
      });
      this.#child.send({ jsonrpc: '2.0', id, method, params: forwarded } as JSONRPCMessage).catch((error: unknown) => {
        this.#pending.delete(id);
        reject(error as Error);
      });
    });
  }

  /** Calls the child for a request that may need its client's input; the flow collects what the child asks. */
  open(method: string, params: Record<string, unknown>): Flow {
    const id = this.#nextId();
    const flow = new Flow(id, digestOf(params));
    this.#flows.set(flow.id, flow);
    this.call(method, params, { id, signal: flow.abort.signal, onProgress: (progress) => flow.onProgress?.(progress) }).then(
      (result) => {
        flow.outcome = { result };
        flow.notify();
      },
      (error: Failure) => {
        flow.outcome = { error };
        flow.notify();
      },
    );
    return flow;
  }

  /** The flow a retry names, if it still waits here. */
  flow(flowId: string): Flow | undefined {
    return this.#flows.get(flowId);
  }

  /** Forgets a flow: an open call is cancelled, then the child's unanswered requests get an error. */
  endFlow(flow: Flow, reason: string): void {
    this.#flows.delete(flow.id);
    flow.unpark();
    if (flow.outcome === undefined) flow.abort.abort();
    for (const request of [...flow.fresh, ...flow.asked.values()]) this.refuse(request, -32603, reason);
    flow.fresh.length = 0;
    flow.asked.clear();
  }

  answer(request: ChildRequest, result: unknown): void {
    void this.#child.send({ jsonrpc: '2.0', id: request.id, result } as JSONRPCMessage).catch(() => {});
  }

  refuse(request: ChildRequest, code: number, message: string): void {
    void this.#child.send({ jsonrpc: '2.0', id: request.id, error: { code, message } } as JSONRPCMessage).catch(() => {});
  }

  #nextId(): string {
    return `m${++this.#next}`;
  }

  #receive(message: Record<string, unknown>): void {
    const id = message['id'];
    if (typeof id === 'string' && ('result' in message || 'error' in message)) {
      const call = this.#pending.get(id);
      if (call === undefined) return;
      this.#pending.delete(id);
      const error = message['error'] as { code?: number; message?: string; data?: unknown } | undefined;
      if (error !== undefined) call.reject(Object.assign(new Error(error.message ?? 'upstream error'), { code: error.code ?? -32603, data: error.data }));
      else call.resolve((message['result'] as Record<string, unknown>) ?? {});
      return;
    }
    const method = message['method'];
    const params = (message['params'] as Record<string, unknown> | undefined) ?? {};
    if (method === 'notifications/progress') {
      const token = params['progressToken'];
      if (typeof token === 'string') this.#pending.get(token)?.onProgress?.(params);
      return;
    }
    if (typeof method === 'string' && id === undefined) {
      this.onNotification?.(method, params);
      return;
    }
    if (typeof method !== 'string' || (typeof id !== 'string' && typeof id !== 'number')) return;
    const request: ChildRequest = { id, method, params };
    if (method === 'ping') return this.answer(request, {});
    if (!INPUT_REQUEST_METHODS.has(method)) return this.refuse(request, -32601, `Method not found: ${method}`);
    // A 2025 stdio request does not say which call it serves (SDK v1's relatedRequestId never
    // reaches the wire), so it is attributed only while exactly one call is open at the child and
    // that call has a flow. With more open, the request is refused rather than guessed: one
    // principal's concurrent calls keep running in parallel (serializing them would hold a quick
    // call behind an elicitation a person takes minutes to answer), at the price that a request
    // the child sends amid them fails as it would for a client without the capability.
    const [onlyCall] = this.#pending.size === 1 ? this.#pending.keys() : [];
    const flow = onlyCall === undefined ? undefined : [...this.#flows.values()].find((candidate) => candidate.callId === onlyCall);
    if (flow === undefined) {
      const reason =
        this.#pending.size > 1
          ? `${this.#pending.size} calls are in flight, and a 2025-11-25 stdio request does not say which one it belongs to`
          : 'no call of a 2026-07-28 client is waiting on this process';
      return this.refuse(request, -32603, `mcp-warden cannot relay ${method}: ${reason}`);
    }
    flow.fresh.push(request);
    flow.notify();
  }

  close(): Promise<void> {
    return this.#child.close();
  }
}

/** The request methods forwarded to the child, by the capability that must be present. */
const FORWARDED: readonly (readonly [string, string])[] = [
  ['tools', 'tools/list'],
  ['tools', 'tools/call'],
  ['prompts', 'prompts/list'],
  ['prompts', 'prompts/get'],
  ['resources', 'resources/list'],
  ['resources', 'resources/read'],
  ['resources', 'resources/templates/list'],
  ['completions', 'completion/complete'],
];

type NodeHandler = ReturnType<typeof toNodeHandler>;

/** One principal's modern handler: its own `subscriptions/listen` bus. */
interface PrincipalHandler {
  readonly handler: McpHttpHandler;
  readonly node: NodeHandler;
  /** When a request last came (ms): a handler whose principal has no child is closed once idle. */
  lastUsed: number;
}

/**
 * The resources a `subscriptions/listen` body follows (its filter was read and allowed by the
 * policy); undefined when the body is no listen.
 */
function followedResources(body: unknown): readonly string[] | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || (body as { method?: unknown }).method !== 'subscriptions/listen') return undefined;
  const params = (body as { params?: unknown }).params;
  const filter = typeof params === 'object' && params !== null ? (params as { notifications?: unknown }).notifications : undefined;
  const uris = typeof filter === 'object' && filter !== null ? (filter as { resourceSubscriptions?: unknown }).resourceSubscriptions : undefined;
  return Array.isArray(uris) ? uris.filter((uri): uri is string => typeof uri === 'string') : [];
}

/** The change event a child's notification stands for on the listen bus, if any. */
function changeEventOf(method: string, params: Record<string, unknown>): ServerEvent | undefined {
  if (method === 'notifications/tools/list_changed') return { kind: 'tools_list_changed' };
  if (method === 'notifications/prompts/list_changed') return { kind: 'prompts_list_changed' };
  if (method === 'notifications/resources/list_changed') return { kind: 'resources_list_changed' };
  if (method === 'notifications/resources/updated' && typeof params['uri'] === 'string') {
    // The child's own _meta stays behind: the router stamps the subscription's.
    const rest = { ...params };
    delete rest['_meta'];
    return { kind: 'resource_updated', uri: params['uri'], params: rest };
  }
  return undefined;
}

/** What a flow's `requestState` carries: the flow and the round it was minted for. Signed, not secret. */
interface FlowState {
  readonly f: string;
  readonly r: number;
}

/** Options of {@link ModernStdioFace}. */
export interface ModernStdioFaceOptions {
  /**
   * How long a call whose child asked for input waits for its client's retry, in milliseconds.
   * After it, the child's requests are answered with an error, its call is cancelled, and the
   * retry is refused. A child's own request timeout (60 s in SDK v1) may end the call earlier.
   * @default 300000 (5 minutes)
   */
  readonly inputTimeoutMs?: number;
  /**
   * The most processes the upstream may run at once; the face's children count with
   * `otherProcesses()` (the upstream's session processes). A principal without a child is answered
   * 503 when they are all taken. @default Infinity
   */
  readonly maxProcesses?: number;
  readonly otherProcesses?: () => number;
  /**
   * The most processes one principal may hold, its child here counting with
   * `principalProcesses(id)` (its session processes). @default Infinity
   */
  readonly maxProcessesPerPrincipal?: number;
  readonly principalProcesses?: (principalId: string) => number;
  /**
   * After a principal's child exits by itself, its next child is started no sooner than this
   * (milliseconds, at least 250: with no wait a crashing command would be started once per
   * request), doubled for each exit in a row of a child that never answered `initialize` (at most
   * an hour); requests meanwhile get 503 with `Retry-After`. @default 1000
   */
  readonly restartBackoffMs?: number;
  /**
   * Called when a principal's child exits by itself (for the upstream's error count):
   * `start_failed` when its process never ran (the command could not be spawned), `exited` otherwise.
   */
  readonly onExit?: (kind: 'exited' | 'start_failed') => void;
}

function principalIdOf(ctx: ServerContext): string {
  const principal = ctx.http?.authInfo?.extra?.['principal'] as { id?: unknown } | undefined;
  return typeof principal?.id === 'string' ? principal.id : '';
}

/** Serves 2026-07-28 clients of one stdio upstream through a child per principal (see the module comment). */
export class ModernStdioFace {
  readonly #name: string;
  readonly #spawn: () => StdioChild;
  readonly #log: UpstreamLogger;
  readonly #pool = new Map<string, PooledChild>();
  /** Per principal: its handler and so its listen bus (a child's changes reach its principal only). */
  readonly #handlers = new Map<string, PrincipalHandler>();
  readonly #sweeper: NodeJS.Timeout;
  readonly #inputTimeoutMs: number;
  /**
   * Signs `requestState` with a key of this process (flows live in this process anyway), bound to
   * the principal and the method (spec: basic/patterns/mrtr, server requirements 4-5).
   */
  readonly #states: RequestStateCodec<FlowState>;
  readonly #maxProcesses: number;
  readonly #otherProcesses: () => number;
  readonly #maxPerPrincipal: number;
  readonly #principalProcesses: (principalId: string) => number;
  readonly #backoffMs: number;
  readonly #onExit: (kind: 'exited' | 'start_failed') => void;
  /** Principals whose child exited by itself: how many in a row, and when the next may start (ms). */
  readonly #exits = new Map<string, { count: number; readonly until: number }>();

  constructor(name: string, spawn: () => StdioChild, log: UpstreamLogger, idleTimeoutMs: number, options: ModernStdioFaceOptions = {}) {
    const inputTimeoutMs = options.inputTimeoutMs ?? 300_000;
    if (!Number.isFinite(inputTimeoutMs) || inputTimeoutMs <= 0) throw new RangeError(`inputTimeoutMs must be a positive number of milliseconds (got ${inputTimeoutMs})`);
    this.#name = name;
    this.#spawn = spawn;
    this.#log = log;
    this.#inputTimeoutMs = inputTimeoutMs;
    this.#maxProcesses = options.maxProcesses ?? Number.POSITIVE_INFINITY;
    this.#otherProcesses = options.otherProcesses ?? (() => 0);
    this.#maxPerPrincipal = options.maxProcessesPerPrincipal ?? Number.POSITIVE_INFINITY;
    this.#principalProcesses = options.principalProcesses ?? (() => 0);
    this.#backoffMs = Math.max(250, options.restartBackoffMs ?? 1000);
    this.#onExit = options.onExit ?? (() => {});
    this.#states = createRequestStateCodec<FlowState>({
      key: randomBytes(32),
      ttlSeconds: Math.ceil(inputTimeoutMs / 1000),
      bind: (ctx) => `${principalIdOf(ctx)}\0${ctx.mcpReq.method}`,
    });
    this.#sweeper = setInterval(() => {
      const cutoff = Date.now() - idleTimeoutMs;
      for (const [id, pooled] of this.#pool) {
        if (pooled.lastUsed < cutoff && pooled.flowCount === 0 && pooled.listenCount === 0) {
          this.#pool.delete(id);
          this.#closeHandler(id);
          void pooled.close();
        }
      }
      // Handlers of principals whose requests never reached a child (refused by the SDK first).
      for (const [id, entry] of this.#handlers) if (!this.#pool.has(id) && entry.lastUsed < cutoff) this.#closeHandler(id);
      for (const [id, exit] of this.#exits) if (exit.until < cutoff) this.#exits.delete(id);
    }, Math.max(1000, Math.min(idleTimeoutMs / 4, 60_000)));
    this.#sweeper.unref();
  }

  /** Open `tools/call`, `prompts/get` and `resources/read` calls of 2026-07-28 clients (flows), counting those that wait for their client's retry. */
  get flowCount(): number {
    let count = 0;
    for (const pooled of this.#pool.values()) count += pooled.flowCount;
    return count;
  }

  /** Whether the principal has a child running now. */
  hasChild(principalId: string): boolean {
    const pooled = this.#pool.get(principalId);
    return pooled !== undefined && !pooled.dead;
  }

  /** The children running now (one per principal that has one). */
  get childCount(): number {
    let count = 0;
    for (const pooled of this.#pool.values()) if (!pooled.dead) count += 1;
    return count;
  }

  /**
   * Why no child may be started for this principal now (its last one exited too recently, or the
   * upstream runs all the processes it may), with the seconds to wait; `undefined` when one may,
   * or the principal has one.
   */
  #refusal(principalId: string): { message: string; retryAfter: number } | undefined {
    const pooled = this.#pool.get(principalId);
    if (pooled !== undefined && !pooled.dead) return undefined;
    const wait = (this.#exits.get(principalId)?.until ?? 0) - Date.now();
    if (wait > 0) return { message: `Service Unavailable: the process of upstream ${this.#name} exited; it is started again in ${Math.ceil(wait / 1000)} s`, retryAfter: Math.ceil(wait / 1000) };
    if (this.childCount + this.#otherProcesses() >= this.#maxProcesses) {
      return { message: `Service Unavailable: upstream ${this.#name} has reached its limit of ${this.#maxProcesses} processes`, retryAfter: 5 };
    }
    if (this.#principalProcesses(principalId) >= this.#maxPerPrincipal) {
      return { message: `Service Unavailable: upstream ${this.#name} has reached its limit of ${this.#maxPerPrincipal} processes for one caller`, retryAfter: 5 };
    }
    return undefined;
  }

  async handle(req: IncomingMessage, res: ServerResponse, body: unknown, principal: Principal): Promise<void> {
    const refusal = this.#refusal(principal.id);
    if (refusal !== undefined) {
      res.setHeader('retry-after', String(refusal.retryAfter));
      return jsonRpcError(res, 503, requestIdOf(body), -32000, refusal.message);
    }
    // Started now, not when the SDK's handler asks for it: the count the next request checks includes it.
    this.#child(principal.id);
    const listened = followedResources(body);
    if (listened !== undefined) {
      // Every open listen keeps the child from the idle sweep; the resources it follows are
      // subscribed to at the child when the child offers subscriptions (without, the SDK
      // acknowledges the listen without resource updates).
      const pooled = this.#child(principal.id);
      const init = await pooled.ready.catch(() => undefined);
      const resources = (init?.['capabilities'] as { resources?: { subscribe?: unknown } } | undefined)?.resources;
      let release: () => void;
      try {
        release = await pooled.follow(resources?.subscribe === true ? listened : [], res);
      } catch (error) {
        const failure = error as Failure;
        if (!res.destroyed) jsonRpcError(res, 200, requestIdOf(body), failure.code ?? -32603, failure.message);
        return;
      }
      // The client left while the listen was set up, or the child it was set up at exited: the
      // count must not outlive the listen, nor the listen be served by a child it is not counted at.
      if (res.destroyed || res.closed) {
        release();
        return;
      }
      if (pooled.dead || this.#pool.get(principal.id) !== pooled) {
        release();
        jsonRpcError(res, 200, requestIdOf(body), -32603, 'the upstream process exited while the listen was set up; listen again');
        return;
      }
      res.once('close', release);
    }
    const entry = this.#handlerFor(principal.id);
    entry.lastUsed = Date.now();
    return entry.node(req as Parameters<NodeHandler>[0], res, body);
  }

  /** The principal's handler, created on its first request. */
  #handlerFor(principalId: string): PrincipalHandler {
    let entry = this.#handlers.get(principalId);
    if (entry === undefined) {
      const handler = createMcpHandler(
        (ctx) => {
          const principal = ctx.authInfo?.extra?.['principal'] as { id?: string } | undefined;
          // The handler serves one principal: its bus carries that principal's child's changes.
          if (principal?.id !== principalId) throw new Error("a request reached another principal's handler");
          return this.#serverFor(principal);
        },
        { legacy: 'reject' },
      );
      entry = { handler, node: toNodeHandler(handler), lastUsed: Date.now() };
      this.#handlers.set(principalId, entry);
    }
    return entry;
  }

  /** Closes an idle principal's handler (its child was swept, or it never had one). */
  #closeHandler(principalId: string): void {
    const entry = this.#handlers.get(principalId);
    if (entry === undefined) return;
    this.#handlers.delete(principalId);
    void entry.handler.close().catch(() => {});
  }

  #child(principalId: string): PooledChild {
    let pooled = this.#pool.get(principalId);
    if (pooled === undefined || pooled.dead) {
      let initialized = false;
      const created: PooledChild = new PooledChild(this.#spawn(), (started) => {
        // A child the face ended (idle, closing) is out of the pool already: this one exited by itself.
        if (this.#pool.get(principalId) !== created) return;
        this.#pool.delete(principalId);
        // Exits in a row of children that never answered initialize double the wait (at most an
        // hour, far below a timer's 24.8-day limit); one that did starts the count again.
        const count = initialized ? 1 : (this.#exits.get(principalId)?.count ?? 0) + 1;
        const delay = Math.min(this.#backoffMs * 2 ** (count - 1), 3_600_000);
        this.#exits.set(principalId, { count, until: Date.now() + delay });
        this.#log.warn({ upstream: this.#name, principal: principalId, exitsInARow: count, delayMs: delay }, 'the 2026-07-28 child exited; its next start waits');
        this.#onExit(started ? 'exited' : 'start_failed');
      });
      created.ready.then(
        () => void (initialized = true),
        () => {},
      );
      created.onNotification = (method, params) => {
        const event = changeEventOf(method, params);
        if (event !== undefined && this.#pool.get(principalId) === created) this.#handlers.get(principalId)?.handler.bus.publish(event);
      };
      pooled = created;
      this.#pool.set(principalId, pooled);
      this.#log.info({ upstream: this.#name, principal: principalId }, 'child started for 2026-07-28 requests');
    }
    return pooled;
  }

  async #serverFor(principal: { id?: string } | undefined): Promise<Server> {
    if (principal?.id === undefined) throw new Error('no principal: the pipeline must run before the modern face');
    // `handle` started the child after checking the limits; one that died since is not started
    // again here, past them: the client's next request is checked again.
    const pooled = this.#pool.get(principal.id);
    if (pooled === undefined || pooled.dead) throw new Error('the upstream process exited before the request reached it; send it again');
    const init = await pooled.ready;
    const capabilities = (init['capabilities'] as Record<string, unknown> | undefined) ?? {};
    const serverInfo = (init['serverInfo'] as { name: string; version: string } | undefined) ?? { name: this.#name, version: '0' };
    const forwarded = FORWARDED.filter(([capability]) => capabilities[capability] !== undefined);
    // What the child offers to follow is offered to listens (the SDK honours a filter against it).
    const followable = (capability: string): Record<string, boolean> => {
      const offered = capabilities[capability] as Record<string, unknown> | undefined;
      const flags: Record<string, boolean> = {};
      for (const flag of capability === 'resources' ? ['listChanged', 'subscribe'] : ['listChanged']) if (offered?.[flag] === true) flags[flag] = true;
      return flags;
    };
    const server = new Server(serverInfo, {
      capabilities: Object.fromEntries(forwarded.map(([capability]) => [capability, capability === 'completions' ? {} : followable(capability)])),
      ...(typeof init['instructions'] === 'string' ? { instructions: init['instructions'] } : {}),
      requestState: { verify: this.#states.verify },
    });
    for (const [, method] of forwarded) {
      if (INPUT_CAPABLE_METHODS.has(method)) {
        server.setRequestHandler(method as 'tools/call', (request, ctx) => this.#interactive(pooled, method, (request.params ?? {}) as Record<string, unknown>, ctx) as never);
        continue;
      }
      server.setRequestHandler(method as 'tools/list', async (request, ctx) => {
        const result = await pooled.call(method, (request.params ?? {}) as Record<string, unknown>, {
          signal: ctx.mcpReq.signal,
          ...(ctx.mcpReq._meta?.progressToken === undefined ? {} : { onProgress: this.#progressTo(ctx) }),
        });
        return result as never;
      });
    }
    return server;
  }

  #progressTo(ctx: ServerContext): (params: Record<string, unknown>) => void {
    const token = ctx.mcpReq._meta?.progressToken;
    return (params) => void ctx.mcpReq.notify({ method: 'notifications/progress', params: { ...params, progressToken: token } } as never).catch(() => {});
  }

  /**
   * Serves one round of a call that may need the client's input: the first round opens the flow,
   * a retry (its `requestState` already verified by the SDK) answers the child's requests. Either
   * way the round ends with the child's result, or with `input_required` when the child asks.
   */
  async #interactive(pooled: PooledChild, method: string, params: Record<string, unknown>, ctx: ServerContext): Promise<unknown> {
    const state = ctx.mcpReq.requestState<FlowState>();
    let flow: Flow;
    if (state === undefined) {
      flow = pooled.open(method, params);
    } else {
      // The flow is looked up among the retrying principal's own, and the state is bound to that
      // principal, so a principal replaying another's state finds nothing.
      const found = pooled.flow(state.f);
      if (found === undefined || found.round !== state.r || found.serving || found.digest !== digestOf(params)) {
        throw new ProtocolError(
          ProtocolErrorCode.InvalidParams,
          'Invalid or expired requestState: this gateway process holds no such call waiting for input (it timed out, its upstream process restarted, it was started on another gateway instance, or the request differs from the one that started it); call again without requestState',
        );
      }
      flow = found;
      flow.unpark();
      pooled.lastUsed = Date.now();
      const responses = ctx.mcpReq.inputResponses ?? {};
      for (const [key, request] of flow.asked) {
        if (!Object.hasOwn(responses, key)) continue;
        pooled.answer(request, responses[key]);
        flow.asked.delete(key);
      }
    }
    flow.serving = true;
    flow.onProgress = ctx.mcpReq._meta?.progressToken === undefined ? undefined : this.#progressTo(ctx);
    const declared = (ctx.mcpReq.envelope as Record<string, unknown> | undefined)?.[CLIENT_CAPABILITIES_META_KEY] as Record<string, unknown> | undefined;
    const signal = ctx.mcpReq.signal;
    const onAbort = (): void => pooled.endFlow(flow, 'the 2026-07-28 client cancelled the call');
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        for (const request of flow.fresh.splice(0)) {
          const missing = missingCapability(request, declared);
          // What a 2025 client that lacks the capability answers: the child reports it, the client's call goes on.
          if (missing !== undefined) pooled.refuse(request, -32601, `Method not found: the client did not declare the ${missing} capability for this request`);
          else flow.asked.set(`${request.method.split('/')[0]}-${String(request.id)}`, request);
        }
        if (flow.outcome !== undefined) {
          pooled.endFlow(flow, 'the call it belonged to has ended');
          if ('error' in flow.outcome) throw flow.outcome.error;
          return flow.outcome.result;
        }
        if (flow.asked.size > 0) {
          // Unanswered requests of an earlier round are asked again (the spec's SHOULD, not an error).
          const inputRequests: InputRequests = {};
          for (const [key, request] of flow.asked) inputRequests[key] = embeddedRequest(request);
          flow.round += 1;
          const requestState = await this.#states.mint({ f: flow.id, r: flow.round }, ctx);
          if (signal.aborted) throw Object.assign(new Error('cancelled'), { code: -32800 });
          flow.park(this.#inputTimeoutMs, () => {
            this.#log.info({ upstream: this.#name, principal: principalIdOf(ctx), requests: Object.keys(inputRequests) }, 'a 2026-07-28 client did not answer the input requests of its call in time');
            pooled.endFlow(flow, `the 2026-07-28 client did not answer within ${this.#inputTimeoutMs} ms`);
          });
          return inputRequired({ inputRequests, requestState });
        }
        if (signal.aborted) throw Object.assign(new Error('cancelled'), { code: -32800 });
        await flow.changed(signal);
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      flow.serving = false;
      flow.onProgress = undefined;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    const handlers = [...this.#handlers.values()];
    this.#handlers.clear();
    await Promise.all(handlers.map((entry) => entry.handler.close()));
    const children = [...this.#pool.values()];
    this.#pool.clear();
    await Promise.all(children.map((c) => c.close()));
  }
}
