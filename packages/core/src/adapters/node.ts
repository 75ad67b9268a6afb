/**
 * node:http adapter: `http.createServer(withWarden(options, (req, res, body) => transport.handleRequest(req, res, body)))`.
 * Thin: runs the pipeline, answers refusals, and calls the handler with `req.auth` set (the SDK's
 * `AuthInfo`) and the parsed body.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EventIdSeal } from '../mcp/filter.js';
import { type FilteredResponse, filterNodeResponse } from '../mcp/filter-node.js';
import { nodeRequestView, readNodeBody, removeCredentialHeader } from '../node-http.js';
import { type Warden, type WardenOptions, createWarden } from '../pipeline.js';
import type { Principal, SdkAuthInfo } from '../types.js';

/** The request as the handler receives it: `auth` is set by mcp-warden. */
export type AuthenticatedRequest = IncomingMessage & { auth?: SdkAuthInfo };

/** What runs after the pipeline allowed a request. `body` is the parsed JSON-RPC body of a POST. */
export type WardenNodeHandler = (req: AuthenticatedRequest, res: ServerResponse, body: unknown, principal: Principal) => void | Promise<void>;

/** How the adapter runs. */
export interface WithWardenOptions {
  /** The id the host gave the request (what its logs carry): its audit events get it too. */
  readonly requestId?: (req: IncomingMessage) => string | undefined;
  /**
   * How the ids of the answer's SSE events are rewritten for this caller (`undefined`: left as
   * they are). The gateway seals an HTTP upstream's event ids to the principal, and opens a
   * `Last-Event-ID` again before it goes upstream.
   */
  readonly eventIds?: (principal: Principal) => EventIdSeal | undefined;
}

/** The host's id of a request; a host callback that throws leaves the pipeline to make one. */
function hostRequestId(requestIdOf: WithWardenOptions['requestId'], req: IncomingMessage): string | undefined {
  if (requestIdOf === undefined) return undefined;
  try {
    return requestIdOf(req);
  } catch {
    return undefined;
  }
}

/** Wraps a node:http request handler with the pipeline. */
export function withWarden(
  options: WardenOptions | Warden,
  handler: WardenNodeHandler,
  adapter: WithWardenOptions = {},
): ((req: IncomingMessage, res: ServerResponse) => void) & { readonly warden: Warden } {
  const pipeline = 'handle' in options ? options : createWarden(options);
  const requestIdOf = adapter.requestId;
  const listener = function mcpWarden(req: IncomingMessage, res: ServerResponse): void {
    let filtered: FilteredResponse | undefined;
    pipeline
      .handle(nodeRequestView(req, hostRequestId(requestIdOf, req)), { read: (limit) => readNodeBody(req, limit) })
      .then(async (result) => {
        if (result.type === 'respond') {
          res.writeHead(result.response.status, result.response.headers).end(result.response.body);
          return;
        }
        (req as AuthenticatedRequest).auth = result.authInfo;
        if (result.credentialHeader !== undefined) removeCredentialHeader(req, result.credentialHeader);
        if (result.lists !== undefined) filtered = filterNodeResponse(res, result.lists, result.principal, pipeline.policy, adapter.eventIds?.(result.principal));
        await handler(req, res, result.body, result.principal);
      })
      .catch((error: unknown) => {
        // A handler that failed after it began its answer: end the connection, as without the
        // filter (whose held JSON answer would otherwise take the error into its body).
        if (res.headersSent || filtered?.answerBegun === true) {
          res.destroy();
          return;
        }
        const response = pipeline.errorResponse(error);
        res.writeHead(response.status, response.headers).end(response.body);
      });
  };
  return Object.assign(listener, { warden: pipeline });
}
