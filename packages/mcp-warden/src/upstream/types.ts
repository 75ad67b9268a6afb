/** What the gateway needs of an upstream, whatever its transport. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '@mcp-warden/core';

/** The subset of a pino logger the upstreams use. */
export interface UpstreamLogger {
  /** Optional: a logger without it logs no per-request lines. */
  debug?(object: object, message?: string): void;
  /** Whether a level is logged (pino's); without it every level is taken as logged. */
  isLevelEnabled?(level: string): boolean;
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}

/**
 * How an upstream failed, for `mcp_warden_upstream_errors_total`: not reached (`unreachable`), no
 * answer in time (`timeout`), an answer that is not MCP (`bad_answer`), an answer or stream cut off
 * after it began (`broken`), a process that ended by itself (`exited`) or could not start
 * (`start_failed`).
 */
export type UpstreamErrorKind = 'unreachable' | 'timeout' | 'bad_answer' | 'broken' | 'exited' | 'start_failed';

export interface Upstream {
  readonly name: string;
  /**
   * Serves one request the pipeline allowed: `body` is the parsed JSON-RPC body of a POST;
   * `requestId`, the gateway's id of the request (its audit events and `X-Request-Id`), goes into
   * the log lines about it.
   */
  handle(req: IncomingMessage, res: ServerResponse, body: unknown, principal: Principal, requestId?: string): Promise<void>;
  /** The upstream's tools, asked outside any client session, so the policy knows their annotations. */
  listTools(): Promise<unknown[]>;
  /** Ends every session and process. */
  close(): Promise<void>;
  /** Set by the gateway: called when the upstream announces `notifications/tools/list_changed`. */
  onToolsChanged?: () => void;
  /** Set by the gateway: called for each failure of the upstream (not for the gateway's own refusals, nor a client leaving). */
  onError?: (kind: UpstreamErrorKind) => void;
  /** Client sessions open now, as each transport defines them (see its own doc); absent when not followed. */
  readonly sessionCount?: number;
}
