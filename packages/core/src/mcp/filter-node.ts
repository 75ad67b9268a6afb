import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { Policy } from '../authz/policy.js';
import type { Principal } from '../types.js';
import { type PendingLists, SseListFilter, filterJsonChunks } from './filter.js';

type WriteCallback = (error?: Error | null) => void;

function contentTypeOf(res: ServerResponse, headers: unknown): string {
  let value: unknown;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === 'content-type') value = headers[i + 1];
    }
  } else if (typeof headers === 'object' && headers !== null) {
    for (const [key, v] of Object.entries(headers as OutgoingHttpHeaders)) if (key.toLowerCase() === 'content-type') value = v;
  }
  value ??= res.getHeader('content-type');
  // Trimmed as the SDK clients' `mediaTypeEssence` trims (String#trim: U+00A0 too, which HTTP
  // parsers keep): a type they read as JSON or SSE must be filtered as such, not passed.
  return String(value ?? '').trim().toLowerCase();
}

function withoutContentLength(headers: unknown): unknown {
  if (Array.isArray(headers)) {
    const out: unknown[] = [];
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() !== 'content-length') out.push(headers[i], headers[i + 1]);
    }
    return out;
  }
  if (typeof headers === 'object' && headers !== null) {
    return Object.fromEntries(Object.entries(headers).filter(([key]) => key.toLowerCase() !== 'content-length'));
  }
  return headers;
}

/** The headers argument of `writeHead` with `Content-Length` set to `length`; `undefined` when there was none. */
function withContentLength(headers: unknown, length: number): unknown {
  const rest = withoutContentLength(headers);
  if (Array.isArray(rest)) return [...rest, 'content-length', String(length)];
  if (typeof rest === 'object' && rest !== null) return { ...rest, 'content-length': String(length) };
  return undefined;
}

function toText(decoder: StringDecoder, chunk: unknown, encoding?: unknown): string {
  if (typeof chunk === 'string') return typeof encoding === 'string' && encoding !== 'utf8' && encoding !== 'utf-8' ? decoder.write(Buffer.from(chunk, encoding as BufferEncoding)) : chunk;
  if (chunk instanceof Uint8Array) return decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  return '';
}

/** A chunk's bytes as a string of one code unit per byte (see `unicodeOf` in list-scan.ts). */
function toBytes(chunk: unknown, encoding?: unknown): string {
  if (typeof chunk === 'string') {
    // An unknown encoding throws here as it does in text mode (and in Node's own write).
    const named = (typeof encoding === 'string' ? encoding : 'utf8') as BufferEncoding;
    return named === 'latin1' || named === 'binary' ? chunk : Buffer.from(chunk, named).toString('latin1');
  }
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1');
  return '';
}

/**
 * Filters list results on a Node `ServerResponse` while the MCP server writes it, whatever writes it
 * (SDK v1 transport, SDK v2 `toNodeHandler`, `@hono/node-server`, the gateway's proxy). A JSON body is
 * held until `end` and rewritten with a fresh `Content-Length`; an SSE stream is rewritten event by
 * event as it flows; anything else passes untouched. Installed on every POST and GET of the MCP
 * endpoint (a list answer may come on any stream, see `NO_LIST_REQUESTS`).
 *
 * When the body's first chunk is bytes (a proxy relaying what it received), the text is kept as bytes,
 * one per code unit, and written as such: nothing is decoded from UTF-8 or encoded to it but the short
 * spans the policy reads, and a body the scan gives up on (on a 300 KB list through the gateway,
 * decoding and encoding cost about a tenth of the gateway's CPU). When it is a string (an SDK
 * serialising its answer), the text is decoded.
 */
export function filterNodeResponse(res: ServerResponse, lists: PendingLists, principal: Principal, policy: Policy): void {
  const originalWriteHead = res.writeHead;
  const originalWrite = res.write;
  const originalEnd = res.end;
  const decoder = new StringDecoder('utf8');
  /** Whether the text is kept as bytes (decided by the first chunk written). */
  let bytes: boolean | undefined;
  const text = (chunk: unknown, encoding?: unknown): string => {
    bytes ??= typeof chunk !== 'string';
    return bytes ? toBytes(chunk, encoding) : toText(decoder, chunk, encoding);
  };
  /** How the text's pieces are written: as the bytes they hold, or encoded to UTF-8. */
  const written = (): BufferEncoding => (bytes === true ? 'latin1' : 'utf8');
  let mode: 'undecided' | 'json' | 'sse' | 'pass' = 'undecided';
  let held: { status: number; args: unknown[] } | undefined;
  /** A JSON body as written, in chunks: a big list is never one string (see list-scan.ts). */
  const json: string[] = [];
  let sse: SseListFilter | undefined;

  const decide = (headers: unknown): void => {
    if (mode !== 'undecided') return;
    const type = contentTypeOf(res, headers);
    if (type.startsWith('application/json')) mode = 'json';
    else if (type.startsWith('text/event-stream')) {
      mode = 'sse';
      if (!res.headersSent) res.removeHeader('content-length');
    } else mode = 'pass';
  };

  res.writeHead = function writeHead(this: ServerResponse, status: number, ...args: unknown[]): ServerResponse {
    const headers = typeof args[0] === 'string' ? args[1] : args[0];
    decide(headers);
    if (mode === 'json') {
      held = { status, args };
      return this;
    }
    if (mode === 'sse') {
      const rest = typeof args[0] === 'string' ? [args[0], withoutContentLength(args[1])] : [withoutContentLength(args[0])];
      return (originalWriteHead as (...a: unknown[]) => ServerResponse).call(this, status, ...rest);
    }
    return (originalWriteHead as (...a: unknown[]) => ServerResponse).call(this, status, ...args);
  } as typeof res.writeHead;

  res.write = function write(this: ServerResponse, chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    decide(undefined);
    const cb = (typeof encoding === 'function' ? encoding : callback) as WriteCallback | undefined;
    if (mode === 'json') {
      json.push(text(chunk, encoding));
      if (cb !== undefined) process.nextTick(cb);
      return true;
    }
    if (mode === 'sse') {
      const piece = text(chunk, encoding);
      sse ??= new SseListFilter(lists, principal, policy, bytes);
      const out = sse.pushPieces(piece);
      if (out.length === 0) {
        if (cb !== undefined) process.nextTick(cb);
        return true;
      }
      const as = written();
      let flowing = true;
      out.forEach((piece, i) => {
        flowing = (originalWrite as (...a: unknown[]) => boolean).call(this, piece, as, i === out.length - 1 ? cb : undefined);
      });
      return flowing;
    }
    return (originalWrite as (...a: unknown[]) => boolean).call(this, chunk, encoding, callback);
  } as typeof res.write;

  res.end = function end(this: ServerResponse, chunk?: unknown, encoding?: unknown, callback?: unknown): ServerResponse {
    decide(undefined);
    const cb = [chunk, encoding, callback].find((a) => typeof a === 'function') as (() => void) | undefined;
    const data = typeof chunk === 'function' ? undefined : chunk;
    const enc = typeof encoding === 'function' ? undefined : encoding;
    res.writeHead = originalWriteHead;
    res.write = originalWrite;
    res.end = originalEnd;
    if (mode === 'json') {
      if (data !== undefined && data !== null) json.push(text(data, enc));
      if (bytes !== true) json.push(decoder.end());
      const as = written();
      const body = (filterJsonChunks(json, lists, principal, policy, bytes === true) ?? json).filter((piece) => piece !== '');
      const last = body.length === 0 ? '' : (body[body.length - 1] as string);
      if (!this.headersSent) {
        let length = 0;
        for (const piece of body) length += as === 'latin1' ? piece.length : Buffer.byteLength(piece);
        if (held === undefined) this.setHeader('content-length', length);
        else {
          const reason = typeof held.args[0] === 'string' ? [held.args[0]] : [];
          const headers = withContentLength(reason.length === 1 ? held.args[1] : held.args[0], length);
          if (headers === undefined) this.setHeader('content-length', length);
          (originalWriteHead as (...a: unknown[]) => ServerResponse).call(this, held.status, ...reason, ...(headers === undefined ? [] : [headers]));
        }
      }
      for (let i = 0; i + 1 < body.length; i++) (originalWrite as (...a: unknown[]) => boolean).call(this, body[i], as);
      return originalEnd.call(this, last, as, cb);
    }
    if (mode === 'sse') {
      const piece = data === undefined || data === null ? undefined : text(data, enc);
      sse ??= new SseListFilter(lists, principal, policy, bytes === true);
      const out = [...(piece === undefined ? [] : sse.pushPieces(piece)), ...(bytes === true ? [] : sse.pushPieces(decoder.end())), ...sse.flushPieces()];
      const as = written();
      for (let i = 0; i + 1 < out.length; i++) (originalWrite as (...a: unknown[]) => boolean).call(this, out[i], as);
      const last = out[out.length - 1];
      return (originalEnd as (...a: unknown[]) => ServerResponse).call(this, ...(last === undefined ? [] : [last, as]), cb);
    }
    return (originalEnd as (...a: unknown[]) => ServerResponse).call(this, chunk, encoding, callback);
  } as typeof res.end;
}
