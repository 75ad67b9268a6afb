import type { IncomingMessage } from 'node:http';
import { WardenError } from './errors.js';
import type { RequestView } from './http.js';

/**
 * A {@link RequestView} over Node's `IncomingMessage`. Node keeps only the first of a repeated
 * `Authorization` (and other singleton headers), so repetitions are counted from `rawHeaders`.
 * A class, not an object literal with closures: one is built for every request.
 */
class NodeRequestView implements RequestView {
  readonly method: string;
  readonly url: string;
  readonly requestId: string | undefined;
  readonly #req: IncomingMessage;
  readonly #headers: IncomingMessage['headers'];
  readonly #remoteAddress: string | undefined;

  constructor(req: IncomingMessage, requestId: string | undefined) {
    this.#req = req;
    this.requestId = requestId;
    this.#headers = req.headers;
    this.method = req.method ?? 'GET';
    this.url = req.url ?? '/';
    // Read now, as the socket may be gone by the time an audit event asks.
    this.#remoteAddress = req.socket?.remoteAddress;
  }

  get remoteAddress(): string | undefined {
    return this.#remoteAddress;
  }

  header(name: string): string | undefined {
    const value = this.#headers[name];
    if (value === undefined || typeof value === 'string') return value;
    return value.join(', ');
  }

  headerCount(name: string): number {
    const raw = this.#req.rawHeaders;
    let count = 0;
    for (let i = 0; i < raw.length; i += 2) {
      const key = raw[i] as string;
      if (key.length === name.length && key.toLowerCase() === name) count++;
    }
    return count;
  }
}

/**
 * Takes the header that carried the credential off a Node request before the handler sees it: from
 * `headers`, `headersDistinct` and `rawHeaders` (SDKs and frameworks read each of them).
 */
export function removeCredentialHeader(req: IncomingMessage, name: string): void {
  // Node builds `headers` and `headersDistinct` from `rawHeaders` when first read, counting the
  // headers it parsed: both are built now, before `rawHeaders` is shortened.
  const { headers, headersDistinct } = req;
  if (headers[name] !== undefined) delete headers[name];
  // (node:http2's compatibility request has no headersDistinct.)
  if (headersDistinct?.[name] !== undefined) delete headersDistinct[name];
  const raw = req.rawHeaders;
  for (let i = raw.length - 2; i >= 0; i -= 2) {
    const key = raw[i] as string;
    if (key.length === name.length && key.toLowerCase() === name) raw.splice(i, 2);
  }
}

/** The {@link RequestView} of a Node request; `requestId`, when given, names it in the audit events. */
export function nodeRequestView(req: IncomingMessage, requestId?: string): RequestView {
  return new NodeRequestView(req, requestId);
}

/**
 * Reads a Node request body as UTF-8, refusing past `limit` bytes with `body_too_large` (413). The
 * rest of an oversized body is discarded, not buffered, and the 413 closes the connection.
 */
export function readNodeBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        // Discard what is still in flight, so closing the socket after the 413 sends FIN, not RST
        // (a reset could destroy the answer before the client reads it).
        req.resume();
        reject(new WardenError('body_too_large', `Payload Too Large: the body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      // No cleanup: the request has ended, so 'data' cannot fire again, and a late 'error' would only
      // reject a settled promise (the listener keeps it from becoming an uncaught exception).
      const text = chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8');
      // The listeners stay (cheaper than removing them), so let go of the buffers they reach.
      chunks.length = 0;
      resolve(text);
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(new WardenError('invalid_request', 'Bad Request: the body could not be read', { cause: error }));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
