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
  /** Client sessions open now, as each transport defines them (see its own doc); absent when not followed. */
  readonly sessionCount?: number;
}
