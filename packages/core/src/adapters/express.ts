/**
 * Express adapter: `app.use('/mcp', warden(options))`. Thin: it reads the request, runs the pipeline,
 * and either answers or sets `req.auth` (the SDK's `AuthInfo`, seen by tool handlers as
 * `extra.authInfo` in SDK v1 and `ctx.http.authInfo` in SDK v2) and `req.body` (the parsed JSON-RPC
 * body; pass it to `transport.handleRequest(req, res, req.body)`).
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { filterNodeResponse } from '../mcp/filter-node.js';
import { nodeRequestView, readNodeBody, removeCredentialHeader } from '../node-http.js';
import { type Warden, type WardenOptions, createWarden } from '../pipeline.js';

/** An Express middleware that also exposes its pipeline (for its policy and tests). */
export type WardenExpressMiddleware = RequestHandler & { readonly warden: Warden };

/** Creates the Express middleware from options, or from a pipeline shared with other adapters. */
export function warden(options: WardenOptions | Warden): WardenExpressMiddleware {
  const pipeline = 'handle' in options ? options : createWarden(options);
  const middleware = function mcpWarden(req: Request, res: Response, next: NextFunction): void {
    const body = req.body !== undefined ? { parsed: req.body as unknown } : { read: (limit: number) => readNodeBody(req, limit) };
    pipeline.handle(nodeRequestView(req), body).then((result) => {
      if (result.type === 'respond') {
        res.writeHead(result.response.status, result.response.headers).end(result.response.body);
        return;
      }
      (req as Request & { auth?: unknown }).auth = result.authInfo;
      if (result.credentialHeader !== undefined) removeCredentialHeader(req, result.credentialHeader);
      if (result.body !== undefined) req.body = result.body;
      if (result.lists !== undefined) filterNodeResponse(res, result.lists, result.principal, pipeline.policy);
      next();
    }, next);
  };
  return Object.assign(middleware, { warden: pipeline });
}
