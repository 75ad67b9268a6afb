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
  return String(value ?? '').toLowerCase();
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

/**
 * Filters list results on a Node `ServerResponse` while the MCP server writes it, whatever writes it
 * (SDK v1 transport, SDK v2 `toNodeHandler`, `@hono/node-server`). A JSON body is held until `end`
 * and rewritten with a fresh `Content-Length`; an SSE stream is rewritten event by event as it flows;
 * anything else passes untouched. Only installed when the request carried a list request.
 */
export function filterNodeResponse(res: ServerResponse, lists: PendingLists, principal: Principal, policy: Policy): void {
  const originalWriteHead = res.writeHead;
  const originalWrite = res.write;
  const originalEnd = res.end;
  const decoder = new StringDecoder('utf8');
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
      sse = new SseListFilter(lists, principal, policy);
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
      json.push(toText(decoder, chunk, encoding));
      if (cb !== undefined) process.nextTick(cb);
      return true;
    }
    if (mode === 'sse' && sse !== undefined) {
      const out = sse.pushPieces(toText(decoder, chunk, encoding));
      if (out.length === 0) {
        if (cb !== undefined) process.nextTick(cb);
        return true;
      }
      let flowing = true;
      out.forEach((piece, i) => {
        flowing = (originalWrite as (...a: unknown[]) => boolean).call(this, piece, 'utf8', i === out.length - 1 ? cb : undefined);
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
      if (data !== undefined && data !== null) json.push(toText(decoder, data, enc));
      json.push(decoder.end());
      const body = (filterJsonChunks(json, lists, principal, policy) ?? json).filter((piece) => piece !== '');
      const last = body.length === 0 ? '' : (body[body.length - 1] as string);
      if (!this.headersSent) {
        let length = 0;
        for (const piece of body) length += Buffer.byteLength(piece);
        if (held === undefined) this.setHeader('content-length', length);
        else {
          const reason = typeof held.args[0] === 'string' ? [held.args[0]] : [];
          const headers = withContentLength(reason.length === 1 ? held.args[1] : held.args[0], length);
          if (headers === undefined) this.setHeader('content-length', length);
          (originalWriteHead as (...a: unknown[]) => ServerResponse).call(this, held.status, ...reason, ...(headers === undefined ? [] : [headers]));
        }
      }
      for (let i = 0; i + 1 < body.length; i++) (originalWrite as (...a: unknown[]) => boolean).call(this, body[i], 'utf8');
      return originalEnd.call(this, last, 'utf8', cb);
    }
    if (mode === 'sse' && sse !== undefined) {
      const out = [...(data === undefined || data === null ? [] : sse.pushPieces(toText(decoder, data, enc))), ...sse.pushPieces(decoder.end()), ...sse.flushPieces()];
      for (let i = 0; i + 1 < out.length; i++) (originalWrite as (...a: unknown[]) => boolean).call(this, out[i], 'utf8');
      const last = out[out.length - 1];
      return (originalEnd as (...a: unknown[]) => ServerResponse).call(this, ...(last === undefined ? [] : [last, 'utf8']), cb);
    }
    return (originalEnd as (...a: unknown[]) => ServerResponse).call(this, chunk, encoding, callback);
  } as typeof res.end;
}
