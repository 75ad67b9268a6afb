import type { Policy } from '../authz/policy.js';
import type { Principal } from '../types.js';
import { type PendingLists, SseListFilter, filterJsonBody } from './filter.js';

/**
 * Filters list results on a web `Response` (Hono, fetch handlers, the gateway's proxied responses):
 * a JSON body is rewritten whole, an SSE body event by event as it streams; other bodies pass.
 */
export async function filterWebResponse(response: Response, lists: PendingLists, principal: Principal, policy: Policy): Promise<Response> {
  // Trimmed as the SDK clients trim it (see contentTypeOf in filter-node.ts).
  const type = (response.headers.get('content-type') ?? '').trim().toLowerCase();
  if (response.body === null) return response;
  if (type.startsWith('application/json')) {
    // Decoded with a byte order mark kept (the filter reads past it as a client does); a body with
    // nothing to change passes as the bytes it came in.
    const raw = await response.arrayBuffer();
    const filtered = filterJsonBody(new TextDecoder('utf-8', { ignoreBOM: true }).decode(raw), lists, principal, policy);
    const headers = new Headers(response.headers);
    if (filtered !== undefined) headers.delete('content-length');
    return new Response(filtered ?? raw, { status: response.status, statusText: response.statusText, headers });
  }
  if (type.startsWith('text/event-stream')) {
    const filter = new SseListFilter(lists, principal, policy);
    // A byte order mark opening the stream reaches the filter, which reads past it and relays it.
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
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
