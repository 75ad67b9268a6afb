import type { Policy } from '../authz/policy.js';
import type { Principal } from '../types.js';
import { type PendingLists, SseListFilter, filterJsonBody } from './filter.js';

/**
 * Filters list results on a web `Response` (Hono, fetch handlers, the gateway's proxied responses):
 * a JSON body is rewritten whole, an SSE body event by event as it streams; other bodies pass.
 */
export async function filterWebResponse(response: Response, lists: PendingLists, principal: Principal, policy: Policy): Promise<Response> {
  const type = (response.headers.get('content-type') ?? '').toLowerCase();
  if (response.body === null) return response;
  if (type.startsWith('application/json')) {
    const text = await response.text();
    const body = filterJsonBody(text, lists, principal, policy) ?? text;
    const headers = new Headers(response.headers);
    headers.delete('content-length');
    return new Response(body, { status: response.status, statusText: response.statusText, headers });
  }
  if (type.startsWith('text/event-stream')) {
    const filter = new SseListFilter(lists, principal, policy);
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    const stream = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          for (const piece of filter.pushPieces(decoder.decode(chunk, { stream: true }))) controller.enqueue(encoder.encode(piece));
        },
        flush(controller) {
          for (const piece of [...filter.pushPieces(decoder.decode()), ...filter.flushPieces()]) controller.enqueue(encoder.encode(piece));
        },
      }),
    );
    const headers = new Headers(response.headers);
    headers.delete('content-length');
    return new Response(stream, { status: response.status, statusText: response.statusText, headers });
  }
  return response;
}
