import type { Policy } from '../authz/policy.js';
import type { Principal } from '../types.js';
import { type PendingLists, SseListFilter, WITHHELD, codingRefusalBody, filterJsonAnswer, withheldBody } from './filter.js';

/**
 * Filters list results on a web `Response` (Hono, fetch handlers, the gateway's proxied responses):
 * a JSON body is rewritten whole, an SSE body event by event as it streams; other bodies pass. A
 * body compressed inside the middleware (gzip, deflate) is decoded and goes on without its coding;
 * one the runtime cannot decode (br with Node's `DecompressionStream`) is replaced by a JSON-RPC
 * error (500), as passed on, the client would decode it and see every list.
 */
export async function filterWebResponse(response: Response, lists: PendingLists, principal: Principal, policy: Policy): Promise<Response> {
  // Trimmed as the SDK clients trim it (see contentTypeOf in filter-node.ts).
  const type = (response.headers.get('content-type') ?? '').trim().toLowerCase();
  if (response.body === null) return response;
  const json = type.startsWith('application/json');
  if (!json && !type.startsWith('text/event-stream')) return response;
  // A body with a content coding (a compression middleware inside mcp-warden's) is decoded and goes
  // on without it; one the runtime cannot decode is refused.
  const coding = (response.headers.get('content-encoding') ?? '').trim().toLowerCase();
  let body: ReadableStream<Uint8Array> = response.body;
  const headers = new Headers(response.headers);
  if (coding !== '' && coding !== 'identity') {
    const format = coding === 'gzip' || coding === 'x-gzip' ? 'gzip' : coding === 'deflate' ? 'deflate' : undefined;
    if (format === undefined || typeof DecompressionStream !== 'function') {
      await response.body.cancel();
      return refusedCoding(coding);
    }
    body = response.body.pipeThrough(new DecompressionStream(format) as unknown as TransformStream<Uint8Array, Uint8Array>);
    headers.delete('content-encoding');
    headers.delete('content-length');
  }
  if (json) {
    // Decoded with a byte order mark kept (the filter reads past it as a client does); a body with
    // nothing to change passes as the bytes it came in.
    let raw: ArrayBuffer;
    try {
      raw = await new Response(body).arrayBuffer();
    } catch (error) {
      // Not what its coding says: nothing of it may pass.
      if (body !== response.body) return refusedCoding(coding);
      throw error;
    }
    const filtered = filterJsonAnswer([new TextDecoder('utf-8', { ignoreBOM: true }).decode(raw)], lists, principal, policy);
    // Not JSON, and it may hold a list (cut off midway): none of it may pass.
    if (filtered === WITHHELD) return refusal(withheldBody());
    if (filtered !== undefined) headers.delete('content-length');
    return new Response(filtered === undefined ? raw : filtered.join(''), { status: response.status, statusText: response.statusText, headers });
  }
  const filter = new SseListFilter(lists, principal, policy);
  // A byte order mark opening the stream reaches the filter, which reads past it and relays it.
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const encoder = new TextEncoder();
  const stream = body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        for (const piece of filter.pushPieces(decoder.decode(chunk, { stream: true }))) controller.enqueue(encoder.encode(piece));
      },
      flush(controller) {
        for (const piece of [...filter.pushPieces(decoder.decode()), ...filter.flushPieces()]) controller.enqueue(encoder.encode(piece));
      },
    }),
  );
  headers.delete('content-length');
  return new Response(stream, { status: response.status, statusText: response.statusText, headers });
}

/** The answer sent instead of a body whose content coding cannot be read to filter it. */
function refusedCoding(coding: string): Response {
  return refusal(codingRefusalBody(coding));
}

/** A 500 with the filter's own JSON-RPC error instead of the app's answer. */
function refusal(body: string): Response {
  return new Response(body, { status: 500, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } });
}
