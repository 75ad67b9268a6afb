/**
 * Clients of MCP 2026-07-28 in front of a stdio upstream. That revision has no sessions: every
 * request carries its own `_meta` envelope and may open with `server/discover`. stdio servers speak
 * the 2025 handshake, so the gateway serves the modern wire itself (the official SDK v2's
 * `createMcpHandler`, which owns discovery, envelopes, the Mcp-Method/Mcp-Name checks and SSE) and
 * answers each request through a child it keeps per principal, initialized the 2025 way. Principals
 * never share a child. Not bridged: server-to-client requests (sampling, elicitation, roots) from the
 * child, which get a JSON-RPC error; resource subscriptions.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '@mcp-warden/core';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { Server, createMcpHandler } from '@modelcontextprotocol/server';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { StdioChild } from './stdio-child.js';
import type { UpstreamLogger } from './types.js';

const FIRST_MODERN_REVISION = '2026-07-28';
const ENVELOPE_PREFIX = 'io.modelcontextprotocol/';

/** Whether a POST body (one message) claims a 2026-07-28-or-later revision in its `_meta` envelope. */
export function isModernMessage(body: unknown, protocolHeader: string | undefined): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const params = (body as { params?: unknown }).params;
  const meta = typeof params === 'object' && params !== null ? (params as { _meta?: unknown })._meta : undefined;
  const claim = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>)[`${ENVELOPE_PREFIX}protocolVersion`] : undefined;
  if (typeof claim === 'string') return claim >= FIRST_MODERN_REVISION;
  return protocolHeader !== undefined && protocolHeader >= FIRST_MODERN_REVISION;
}

interface PendingCall {
  resolve(result: Record<string, unknown>): void;
  reject(error: Error & { code?: number; data?: unknown }): void;
  onProgress?: (params: Record<string, unknown>) => void;
}

/** One principal's child, initialized with the 2025 handshake, shared by that principal's requests. */
class PooledChild {
  readonly ready: Promise<Record<string, unknown>>;
  lastUsed = Date.now();
  readonly #child: StdioChild;
  readonly #pending = new Map<string, PendingCall>();
  #next = 0;
  #dead = false;

  constructor(child: StdioChild, onDead: () => void) {
    this.#child = child;
    child.onmessage = (message) => this.#receive(message as unknown as Record<string, unknown>);
    child.onclose = () => {
      this.#dead = true;
      for (const call of this.#pending.values()) call.reject(Object.assign(new Error('the upstream process exited'), { code: -32603 }));
      this.#pending.clear();
      onDead();
    };
    this.ready = child.start().then(async () => {
      const result = await this.call('initialize', {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'mcp-warden-modern-bridge', version: '1' },
      });
      await child.send({ jsonrpc: '2.0', method: 'notifications/initialized' } as JSONRPCMessage);
      return result;
    });
  }

  get dead(): boolean {
    return this.#dead;
  }

  call(method: string, params: Record<string, unknown>, options: { signal?: AbortSignal; onProgress?: PendingCall['onProgress'] } = {}): Promise<Record<string, unknown>> {
    const id = `m${++this.#next}`;
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
    if (typeof method === 'string' && (typeof id === 'string' || typeof id === 'number')) {
      // A server-to-client request: 2026-07-28 asks for input differently, and this bridge does not translate it.
      void this.#child
        .send({ jsonrpc: '2.0', id, error: { code: -32601, message: `mcp-warden does not bridge ${method} to 2026-07-28 clients of a stdio upstream` } } as JSONRPCMessage)
        .catch(() => {});
    }
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

export class ModernStdioFace {
  readonly #name: string;
  readonly #spawn: () => StdioChild;
  readonly #log: UpstreamLogger;
  readonly #pool = new Map<string, PooledChild>();
  readonly #node: NodeHandler;
  readonly #handler: ReturnType<typeof createMcpHandler>;
  readonly #sweeper: NodeJS.Timeout;

  constructor(name: string, spawn: () => StdioChild, log: UpstreamLogger, idleTimeoutMs: number) {
    this.#name = name;
    this.#spawn = spawn;
    this.#log = log;
    this.#handler = createMcpHandler((ctx) => this.#serverFor(ctx.authInfo?.extra?.['principal'] as { id?: string } | undefined), { legacy: 'reject' });
    this.#node = toNodeHandler(this.#handler);
    this.#sweeper = setInterval(() => {
      const cutoff = Date.now() - idleTimeoutMs;
      for (const [id, pooled] of this.#pool) {
        if (pooled.lastUsed < cutoff) {
          this.#pool.delete(id);
          void pooled.close();
        }
      }
    }, Math.max(1000, Math.min(idleTimeoutMs / 4, 60_000)));
    this.#sweeper.unref();
  }

  handle(req: IncomingMessage, res: ServerResponse, body: unknown, _principal: Principal): Promise<void> {
    return this.#node(req as Parameters<NodeHandler>[0], res, body);
  }

  #child(principalId: string): PooledChild {
    let pooled = this.#pool.get(principalId);
    if (pooled === undefined || pooled.dead) {
      const created: PooledChild = new PooledChild(this.#spawn(), () => {
        if (this.#pool.get(principalId) === created) this.#pool.delete(principalId);
      });
      pooled = created;
      this.#pool.set(principalId, pooled);
      this.#log.info({ upstream: this.#name, principal: principalId }, 'child started for 2026-07-28 requests');
    }
    return pooled;
  }

  async #serverFor(principal: { id?: string } | undefined): Promise<Server> {
    if (principal?.id === undefined) throw new Error('no principal: the pipeline must run before the modern face');
    const pooled = this.#child(principal.id);
    const init = await pooled.ready;
    const capabilities = (init['capabilities'] as Record<string, unknown> | undefined) ?? {};
    const serverInfo = (init['serverInfo'] as { name: string; version: string } | undefined) ?? { name: this.#name, version: '0' };
    const forwarded = FORWARDED.filter(([capability]) => capabilities[capability] !== undefined);
    const server = new Server(serverInfo, {
      capabilities: Object.fromEntries(forwarded.map(([capability]) => [capability, {}])),
      ...(typeof init['instructions'] === 'string' ? { instructions: init['instructions'] } : {}),
    });
    for (const [, method] of forwarded) {
      server.setRequestHandler(method as 'tools/list', async (request, ctx) => {
        const token = ctx.mcpReq._meta?.progressToken;
        const result = await pooled.call(method, (request.params ?? {}) as Record<string, unknown>, {
          signal: ctx.mcpReq.signal,
          ...(token === undefined
            ? {}
            : {
                onProgress: (params: Record<string, unknown>) =>
                  void ctx.mcpReq.notify({ method: 'notifications/progress', params: { ...params, progressToken: token } } as never).catch(() => {}),
              }),
        });
        return result as never;
      });
    }
    return server;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    await this.#handler.close();
    const children = [...this.#pool.values()];
    this.#pool.clear();
    await Promise.all(children.map((c) => c.close()));
  }
}
