/**
 * Hono adapter: `app.use('/mcp', warden(options))`. Thin: runs the pipeline and either answers, or
 * sets `c.var.auth` (the SDK's `AuthInfo`), `c.var.principal` and `c.var.parsedBody` (the variable
 * `@modelcontextprotocol/hono` uses), then filters list results on the way out. Hand both to an SDK
 * v2 handler: `handler.fetch(c.req.raw, { authInfo: c.get('auth'), parsedBody: c.get('parsedBody') })`.
 */
import type { IncomingMessage } from 'node:http';
import type { Context, MiddlewareHandler, Next } from 'hono';
import { WardenError } from '../errors.js';
import type { RequestView } from '../http.js';
import { removeCredentialHeader } from '../node-http.js';
import { filterWebResponse } from '../mcp/filter-web.js';
import { type Warden, type WardenOptions, createWarden } from '../pipeline.js';
import type { Principal, SdkAuthInfo } from '../types.js';

/** The context variables the middleware sets. */
export interface WardenVariables {
  auth: SdkAuthInfo;
  principal: Principal;
  parsedBody: unknown;
}

async function readWebBody(request: Request, limit: number): Promise<string> {
  if (request.body === null) return '';
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new WardenError('body_too_large', `Payload Too Large: the body exceeds ${limit} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function webRequestView(c: Context): RequestView {
  const headers = c.req.raw.headers;
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming;
  const url = new URL(c.req.url);
  const remoteAddress = incoming?.socket?.remoteAddress;
  return {
    method: c.req.method,
    url: url.pathname + url.search,
    // Fetch runtimes may leave Host out of the headers; the request URL carries the same authority.
    header: (name) => headers.get(name) ?? (name === 'host' ? url.host : undefined),
    // Web Headers join repeated fields with ", "; the credential and origin parsers refuse that form.
    headerCount: (name) => (headers.has(name) || name === 'host' ? 1 : 0),
    ...(remoteAddress === undefined ? {} : { remoteAddress }),
  };
}

/** Creates the Hono middleware from options, or from a pipeline shared with other adapters. */
export function warden(options: WardenOptions | Warden): MiddlewareHandler<{ Variables: WardenVariables }> & { readonly warden: Warden } {
  const pipeline = 'handle' in options ? options : createWarden(options);
  const middleware = async function mcpWarden(c: Context<{ Variables: WardenVariables }>, next: Next): Promise<Response | void> {
    const raw = c.req.raw;
    let text: string | undefined;
    const result = await pipeline.handle(webRequestView(c), {
      read: async (limit) => (text = await readWebBody(raw, limit)),
    });
    if (result.type === 'respond') {
      return new Response(result.response.body, { status: result.response.status, headers: result.response.headers });
    }
    const credentialHeader = result.credentialHeader;
    if (text !== undefined || credentialHeader !== undefined) {
      // The handler sees the request without the header that carried the credential.
      let headers = raw.headers;
      if (credentialHeader !== undefined) {
        headers = new Headers(raw.headers);
        headers.delete(credentialHeader);
        // Under @hono/node-server the Node request is there too (`c.env.incoming`).
        const incoming = (c.env as { incoming?: Partial<IncomingMessage> } | undefined)?.incoming;
        if (Array.isArray(incoming?.rawHeaders) && typeof incoming.headers === 'object') removeCredentialHeader(incoming as IncomingMessage, credentialHeader);
      }
      // A body not read here (a method but POST) goes on as the stream it is.
      const body = text !== undefined ? { body: text } : raw.body === null ? {} : ({ body: raw.body, duplex: 'half' } as RequestInit);
      c.req.raw = new Request(raw.url, { method: raw.method, headers, ...body, signal: raw.signal });
    }
    c.set('auth', result.authInfo);
    c.set('principal', result.principal);
    if (result.body !== undefined) c.set('parsedBody', result.body);
    await next();
    if (result.lists !== undefined) {
      const filtered = await filterWebResponse(c.res, result.lists, result.principal, pipeline.policy);
      c.res = undefined;
      c.res = filtered;
    }
  };
  return Object.assign(middleware, { warden: pipeline });
}
