/**
 * A stdio upstream served over Streamable HTTP: one child process per client session, so callers
 * never share a process's state. The HTTP face is `SessionTransport` (sessions, SSE, GET stream,
 * DELETE, as the official SDK's Streamable HTTP server transport answers them); messages are
 * relayed to and from the child.
 *
 * Routing of the child's messages: responses go to the request they answer; progress notifications
 * to the request whose progress token they carry; other server-to-client messages (logging,
 * sampling, elicitation) to the most recent request still in flight, else to the GET stream.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '@mcp-warden/core';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { StdioUpstreamConfig } from '../config/schema.js';
import type { SessionSigner } from '../server/sessions.js';
import { isRequest, isResponse, jsonRpcError, requestIdOf } from './json-rpc.js';
import { ModernStdioFace, isModernMessage } from './modern-stdio.js';
import { SessionTransport } from './session-transport.js';
import { StdioChild } from './stdio-child.js';
import type { Upstream, UpstreamErrorKind, UpstreamLogger } from './types.js';

interface Session {
  readonly id: string;
  readonly principalId: string;
  readonly transport: SessionTransport;
  /** Replaced when a crashed process is restarted. */
  child: StdioChild;
  lastSeen: number;
  /** Requests from the client not yet answered, oldest first, with their progress tokens. */
  readonly inFlight: Map<RequestId, string | number | undefined>;
}

function progressTokenOf(message: { params?: Record<string, unknown> }): string | number | undefined {
  const meta = message.params?.['_meta'];
  const token = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>)['progressToken'] : undefined;
  return typeof token === 'string' || typeof token === 'number' ? token : undefined;
}

export class StdioUpstream implements Upstream {
  readonly name: string;
  onToolsChanged?: () => void;
  onError?: (kind: UpstreamErrorKind) => void;
  readonly #config: StdioUpstreamConfig;
  readonly #signer: SessionSigner;
  readonly #log: UpstreamLogger;
  readonly #sessions = new Map<string, Session>();
  readonly #sweeper: NodeJS.Timeout;
  readonly #closingChildren = new Set<Promise<void>>();
  /** 2026-07-28 (session-less) clients: served by the SDK v2 entry, answered through a child per principal. */
  readonly #modern: ModernStdioFace;
  #closing = false;
  /**
   * Sessions being opened: their child is spawned but the session is not in `#sessions` yet (the
   * spawn is awaited). They count against `maxSessions`, or concurrent initializes would all pass
   * the check before any of them is counted.
   */
  #opening = 0;
  /** The principals of the sessions being opened, with how many each. */
  readonly #openingBy = new Map<string, number>();

  constructor(name: string, config: StdioUpstreamConfig, signer: SessionSigner, log: UpstreamLogger) {
    this.name = name;
    this.#config = config;
    this.#signer = signer;
    this.#log = log;
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(1000, Math.min(config.idleTimeout / 4, 60_000)));
    this.#sweeper.unref();
    this.#modern = new ModernStdioFace(name, () => this.#spawn(), log, config.idleTimeout, {
      inputTimeoutMs: config.inputTimeout,
      // One budget of processes for both kinds of client.
      maxProcesses: config.maxSessions,
      otherProcesses: () => this.#sessions.size + this.#opening,
      ...(config.maxSessionsPerPrincipal === undefined ? {} : { maxProcessesPerPrincipal: config.maxSessionsPerPrincipal }),
      principalProcesses: (principalId) => this.#sessionsOf(principalId),
      restartBackoffMs: config.restart.backoff,
      onExit: (kind) => this.onError?.(kind),
    });
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  async handle(req: IncomingMessage, res: ServerResponse, body: unknown, principal: Principal, requestId?: string): Promise<void> {
    const header = req.headers['mcp-session-id'];
    const version = req.headers['mcp-protocol-version'];
    if (header === undefined && req.method === 'POST' && isModernMessage(body, typeof version === 'string' ? version : undefined)) {
      if (this.#closing) return jsonRpcError(res, 503, requestIdOf(body), -32000, 'Service Unavailable: the gateway is shutting down');
      return this.#modern.handle(req, res, body, principal);
    }
    const sessionId = Array.isArray(header) ? undefined : header;
    if (header !== undefined) {
      // The process lives here, so the map decides: an id this gateway did not mint (forged, or
      // another instance's) is absent, and one minted for another principal names that principal.
      // Both are unknown, exactly like an expired one. (The signature matters to other instances.)
      const session = sessionId === undefined ? undefined : this.#sessions.get(sessionId);
      if (session === undefined || session.principalId !== principal.id) {
        jsonRpcError(res, 404, requestIdOf(body), -32001, 'Session not found');
        return;
      }
      session.lastSeen = Date.now();
      session.transport.handle(req, res, body);
      return;
    }
    const initializing = req.method === 'POST' && typeof body === 'object' && body !== null && !Array.isArray(body) && (body as { method?: unknown }).method === 'initialize';
    if (!initializing) {
      jsonRpcError(res, 400, requestIdOf(body), -32000, 'Bad Request: Mcp-Session-Id header is required (initialize first)');
      return;
    }
    if (this.#closing) {
      jsonRpcError(res, 503, requestIdOf(body), -32000, 'Service Unavailable: the gateway is shutting down');
      return;
    }
    if (this.#sessions.size + this.#opening + this.#modern.childCount >= this.#config.maxSessions) {
      res.setHeader('retry-after', '5');
      jsonRpcError(res, 503, requestIdOf(body), -32000, `Service Unavailable: upstream ${this.name} has reached its limit of ${this.#config.maxSessions} sessions`);
      return;
    }
    const perPrincipal = this.#config.maxSessionsPerPrincipal;
    if (perPrincipal !== undefined && this.#sessionsOf(principal.id) + (this.#modern.hasChild(principal.id) ? 1 : 0) >= perPrincipal) {
      res.setHeader('retry-after', '5');
      jsonRpcError(res, 503, requestIdOf(body), -32000, `Service Unavailable: upstream ${this.name} has reached its limit of ${perPrincipal} sessions for one caller`);
      return;
    }
    await this.#openSession(req, res, body, principal, requestId);
  }

  /** The 2025 sessions of a principal: open, and being opened. */
  #sessionsOf(principalId: string): number {
    let count = this.#openingBy.get(principalId) ?? 0;
    for (const session of this.#sessions.values()) if (session.principalId === principalId) count += 1;
    return count;
  }

  #spawn(): StdioChild {
    const child: StdioChild = new StdioChild({
      command: this.#config.command,
      args: this.#config.args,
      env: this.#config.env,
      ...(this.#config.cwd === undefined ? {} : { cwd: this.#config.cwd }),
      onStderr: (line) => this.#log.info({ upstream: this.name, pid: child.pid, stderr: line }, 'upstream stderr'),
    });
    return child;
  }

  async #openSession(req: IncomingMessage, res: ServerResponse, body: unknown, principal: Principal, requestId: string | undefined): Promise<void> {
    const inFlight = new Map<RequestId, string | number | undefined>();
    let session: Session | undefined;
    let child = this.#spawn();
    /** The client's handshake, replayed to a restarted child so the session goes on. */
    let initialize: JSONRPCMessage | undefined;
    let restarts = 0;
    /** While a crashed child is being replaced: messages from the client wait here. */
    let waiting: JSONRPCMessage[] | undefined;
    let ended = false;
    this.#opening += 1;
    this.#openingBy.set(principal.id, (this.#openingBy.get(principal.id) ?? 0) + 1);
    let opening = true;
    /** The attempt is counted as a session from now on, or ended: its reservation is given back. */
    const opened = (): void => {
      if (!opening) return;
      opening = false;
      this.#opening -= 1;
      const left = (this.#openingBy.get(principal.id) ?? 1) - 1;
      if (left === 0) this.#openingBy.delete(principal.id);
      else this.#openingBy.set(principal.id, left);
    };
    // Whatever happens from here on, the reservation is given back (`opened` acts once).
    try {
      const transport = new SessionTransport({
        sessionId: () => this.#signer.mint(this.name, principal.id),
        onSessionInitialized: (id) => {
          opened();
          session = { id, principalId: principal.id, transport, child, lastSeen: Date.now(), inFlight };
          this.#sessions.set(id, session);
          this.#log.info({ upstream: this.name, requestId, session: id.slice(0, 8), principal: principal.id, pid: child.pid }, 'session opened');
        },
      });
      const forward = (message: JSONRPCMessage): void => {
        child.send(message).catch((error: unknown) => this.#log.warn({ upstream: this.name, err: (error as Error).message }, 'write to upstream failed'));
      };
      const end = (): void => {
        if (ended) return;
        ended = true;
        if (session !== undefined) this.#sessions.delete(session.id);
        for (const timer of timers.values()) clearTimeout(timer);
        this.#track(child.close());
        transport.close();
      };
      /** A request the child has not answered within `timeout` (progress restarts the clock) is answered for it. */
      const timers = new Map<RequestId, NodeJS.Timeout>();
      const settle = (id: RequestId): void => {
        inFlight.delete(id);
        clearTimeout(timers.get(id));
        timers.delete(id);
      };
      const arm = (id: RequestId): void => {
        clearTimeout(timers.get(id));
        const timer = setTimeout(() => {
          if (!inFlight.has(id)) return;
          settle(id);
          forward({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'mcp-warden: upstream timeout' } } as JSONRPCMessage);
          transport.send({ jsonrpc: '2.0', id, error: { code: -32603, message: `upstream ${this.name} did not answer within ${this.#config.timeout} ms` } });
          this.onError?.('timeout');
          transport.retire(id, this.#config.timeout);
        }, this.#config.timeout);
        timer.unref();
        timers.set(id, timer);
      };
      transport.onmessage = (message) => {
        if (isRequest(message)) {
          inFlight.set(message.id, progressTokenOf(message));
          arm(message.id);
          if (message.method === 'initialize') initialize = message;
        } else if ('method' in message && message.method === 'notifications/cancelled') {
          // The child will not answer a cancelled request (MCP cancellation): stop waiting for it.
          const requestId = (message.params as { requestId?: RequestId } | undefined)?.requestId;
          if (requestId !== undefined && inFlight.has(requestId)) {
            settle(requestId);
            transport.retire(requestId, this.#config.timeout);
          }
        }
        if (waiting !== undefined) waiting.push(message);
        else forward(message);
      };
      transport.onclose = end;

      const wire = (current: StdioChild, replay?: string): void => {
        /** The id of the replayed handshake, until the child answers it (then a client's request may use it). */
        let replayId = replay;
        current.onmessage = (message, line) => {
          if (isResponse(message)) {
            if (replayId !== undefined && message.id === replayId) {
              replayId = undefined;
              // The restarted child answered the replayed handshake: the session is whole again.
              void current.send({ jsonrpc: '2.0', method: 'notifications/initialized' } as JSONRPCMessage);
              const queued = waiting ?? [];
              waiting = undefined;
              for (const m of queued) forward(m);
              return;
            }
            if (!inFlight.has(message.id)) {
              // Answered already (timed out) or cancelled: dropped, and its id free again.
              transport.release(message.id);
              return;
            }
            settle(message.id);
            transport.send(message, undefined, line);
            return;
          }
          if ('method' in message && message.method === 'notifications/tools/list_changed') this.onToolsChanged?.();
          const related = this.#relatedRequest(message, inFlight);
          if (related !== undefined && 'method' in message && message.method === 'notifications/progress') arm(related);
          transport.send(message, related, line);
        };
        current.onerror = (error) => this.#log.warn({ upstream: this.name, pid: current.pid, err: error.message }, 'upstream error');
        current.onclose = (code, signal) => {
          // A process that never ran (spawn failed) is `start()`'s to report, not an exit.
          if (ended || current !== child || current.pid === undefined) return;
          this.#log.warn({ upstream: this.name, pid: current.pid, code, signal }, 'upstream process exited');
          this.onError?.('exited');
          for (const id of [...inFlight.keys()]) {
            settle(id);
            transport.send({ jsonrpc: '2.0', id, error: { code: -32603, message: `upstream ${this.name} exited before answering` } });
          }
          const { maxRestarts, backoff } = this.#config.restart;
          if (session === undefined || initialize === undefined || restarts >= maxRestarts || this.#closing) return end();
          restarts += 1;
          waiting = [];
          // Doubling per attempt, capped at an hour (and so far below a timer's 24.8-day limit, past which it fires at once).
          const delay = Math.min(backoff * 2 ** (restarts - 1), 3_600_000);
          this.#log.warn({ upstream: this.name, session: session.id.slice(0, 8), attempt: restarts, delayMs: delay }, 'restarting the upstream process');
          setTimeout(() => {
            if (ended) return;
            const next = this.#spawn();
            child = next;
            if (session !== undefined) session.child = next;
            // Random: a client cannot have a request in flight with it (its answer would be taken for the handshake's).
            const replay = `mcp-warden-replay-${randomUUID()}`;
            wire(next, replay);
            next.start().then(
              () => next.send({ ...(initialize as object), id: replay } as JSONRPCMessage),
              (error: unknown) => {
                this.#log.error({ upstream: this.name, err: (error as Error).message }, 'cannot restart the upstream process');
                this.onError?.('start_failed');
                end();
              },
            );
          }, delay).unref();
        };
      };
      wire(child);
      try {
        await child.start();
      } catch (error) {
        this.#log.error({ upstream: this.name, requestId, err: (error as Error).message }, 'cannot start the upstream process');
        this.onError?.('start_failed');
        opened();
        jsonRpcError(res, 502, requestIdOf(body), -32603, `Bad Gateway: upstream ${this.name} could not be started`);
        return;
      }
      // close() ran while the process started: it did not see this session, so nothing would end it.
      if (this.#closing) {
        opened();
        end();
        jsonRpcError(res, 503, requestIdOf(body), -32000, 'Service Unavailable: the gateway is shutting down');
        return;
      }
      try {
        transport.handle(req, res, body);
      } finally {
        opened();
        // Refused (or failed) before a session existed: nobody else will end this child.
        if (session === undefined) end();
      }
    } finally {
      opened();
    }
  }

  /** Which client request a server-to-client message belongs to (see the module comment). */
  #relatedRequest(message: JSONRPCMessage, inFlight: Map<RequestId, string | number | undefined>): RequestId | undefined {
    if (inFlight.size === 0) return undefined;
    const token = progressTokenOf(message as { params?: Record<string, unknown> });
    if (token !== undefined) {
      for (const [id, t] of inFlight) if (t === token) return id;
    }
    let last: RequestId | undefined;
    for (const id of inFlight.keys()) last = id;
    return last;
  }

  #sweep(): void {
    const cutoff = Date.now() - this.#config.idleTimeout;
    for (const session of this.#sessions.values()) {
      if (session.lastSeen < cutoff && session.inFlight.size === 0) {
        this.#log.info({ upstream: this.name, session: session.id.slice(0, 8) }, 'session closed after idling');
        this.#sessions.delete(session.id);
        session.transport.close();
      }
    }
  }

  /** Asks the upstream for its tools once, outside any client session, to learn their annotations. */
  async listTools(timeoutMs = 15_000): Promise<unknown[]> {
    const child: StdioChild = new StdioChild({
      command: this.#config.command,
      args: this.#config.args,
      env: this.#config.env,
      ...(this.#config.cwd === undefined ? {} : { cwd: this.#config.cwd }),
      // Heard too: when the tools cannot be listed, the child's stderr usually says why.
      onStderr: (line) => this.#log.info({ upstream: this.name, pid: child.pid, catalog: true, stderr: line }, 'upstream stderr'),
    });
    const pending = new Map<string, (message: JSONRPCMessage) => void>();
    child.onmessage = (message) => {
      if (isResponse(message)) pending.get(String(message.id))?.(message);
    };
    child.onclose = (code) => {
      for (const settle of pending.values()) settle({ jsonrpc: '2.0', id: 0, error: { code: -32603, message: `the process exited (code ${code})` } } as JSONRPCMessage);
    };
    const call = (method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) => {
        const id = randomUUID();
        const timer = setTimeout(() => reject(new Error(`${method} timed out`)), timeoutMs);
        pending.set(id, (message) => {
          clearTimeout(timer);
          const m = message as { result?: Record<string, unknown>; error?: { message?: string } };
          if (m.error !== undefined) reject(new Error(m.error.message ?? `${method} failed`));
          else resolve(m.result ?? {});
        });
        child.send({ jsonrpc: '2.0', id, method, params } as JSONRPCMessage).catch(reject);
      });
    await child.start();
    try {
      // Declare what clients may declare: servers register some tools only for capable clients.
      await call('initialize', {
        protocolVersion: '2025-11-25',
        capabilities: { roots: { listChanged: true }, sampling: {}, elicitation: { form: {}, url: {} } },
        clientInfo: { name: 'mcp-warden-catalog', version: '0' },
      });
      await child.send({ jsonrpc: '2.0', method: 'notifications/initialized' } as JSONRPCMessage);
      const tools: unknown[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 100; page++) {
        const result = await call('tools/list', cursor === undefined ? {} : { cursor });
        if (Array.isArray(result['tools'])) tools.push(...result['tools']);
        cursor = typeof result['nextCursor'] === 'string' ? result['nextCursor'] : undefined;
        if (cursor === undefined) break;
      }
      return tools;
    } finally {
      await child.close();
    }
  }

  /** Keeps a closing child's promise until it settles, so close() can wait for every process. */
  #track(closing: Promise<void>): void {
    this.#closingChildren.add(closing);
    void closing.finally(() => this.#closingChildren.delete(closing));
  }

  /** Ends every session and waits until every child process has exited. */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#sweeper);
    await this.#modern.close();
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    for (const s of sessions) s.transport.close();
    for (const s of sessions) this.#track(s.child.close());
    await Promise.all([...this.#closingChildren]);
  }
}
