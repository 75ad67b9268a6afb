import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import zlib from 'node:zlib';
import type { Policy } from '../authz/policy.js';
import type { Principal } from '../types.js';
import { type EventIdSeal, type PendingLists, SseListFilter, WITHHELD, codingRefusalBody, filterJsonAnswer, withheldBody } from './filter.js';

type WriteCallback = (error?: Error | null) => void;

/** Whether a `writeHead` headers array is a list of `[name, value]` pairs (not names and values in turn). */
function isPairList(headers: readonly unknown[]): headers is unknown[][] {
  return headers.length > 0 && Array.isArray(headers[0]);
}

/**
 * The `[name, value]` pairs of a `writeHead` headers argument, in any form Node takes: an object, a
 * flat array of names and values, or an array of pairs.
 */
function headerPairs(headers: unknown): [string, unknown][] {
  if (Array.isArray(headers)) {
    if (isPairList(headers)) return headers.map((pair) => [String(pair[0]), pair[1]]);
    const out: [string, unknown][] = [];
    for (let i = 0; i + 1 < headers.length; i += 2) out.push([String(headers[i]), headers[i + 1]]);
    return out;
  }
  if (typeof headers === 'object' && headers !== null) return Object.entries(headers as OutgoingHttpHeaders);
  return [];
}

/** A header's value as it will be sent: from the `writeHead` headers (which win), else as set on `res`. */
function headerValue(res: ServerResponse, headers: unknown, name: string): unknown {
  let value: unknown;
  if (typeof headers === 'object' && headers !== null && !Array.isArray(headers)) {
    // The usual form, read without making pairs (this runs for every response).
    for (const key in headers) if (key.length === name.length && key.toLowerCase() === name) value = (headers as Record<string, unknown>)[key];
  } else for (const [key, v] of headerPairs(headers)) if (key.toLowerCase() === name) value = v;
  return value ?? res.getHeader(name);
}

function contentTypeOf(res: ServerResponse, headers: unknown): string {
  // Trimmed as the SDK clients' `mediaTypeEssence` trims (String#trim: U+00A0 too, which HTTP
  // parsers keep): a type they read as JSON or SSE must be filtered as such, not passed.
  return String(headerValue(res, headers, 'content-type') ?? '').trim().toLowerCase();
}

/**
 * The response's content coding (RFC 9110 section 8.4), lower-cased, from the `writeHead` headers
 * or those already set; `undefined` for none or `identity`.
 */
function contentCodingOf(res: ServerResponse, headers: unknown): string | undefined {
  const value = headerValue(res, headers, 'content-encoding');
  const coding = (Array.isArray(value) ? value.join(',') : String(value ?? '')).trim().toLowerCase();
  return coding === '' || coding === 'identity' ? undefined : coding;
}

/** How to undo a content coding: as a stream (SSE) and in one go (JSON). */
interface Decoding {
  stream(): NodeJS.ReadWriteStream;
  whole(bytes: Buffer): Buffer;
}

/** The codings a client's fetch undoes (x-gzip is gzip: RFC 9110 section 8.4.1.3). */
const DECODINGS: Readonly<Record<string, Decoding>> = {
  gzip: { stream: () => zlib.createGunzip(), whole: (bytes) => zlib.gunzipSync(bytes) },
  'x-gzip': { stream: () => zlib.createGunzip(), whole: (bytes) => zlib.gunzipSync(bytes) },
  deflate: { stream: () => zlib.createInflate(), whole: (bytes) => zlib.inflateSync(bytes) },
  br: { stream: () => zlib.createBrotliDecompress(), whole: (bytes) => zlib.brotliDecompressSync(bytes) },
};

/** Headers the filter sets itself on what it sends: a rewritten body's length, and no coding (it goes out decoded). */
const REWRITTEN = new Set(['content-length', 'content-encoding']);

function withoutRewritten(headers: unknown): unknown {
  if (Array.isArray(headers)) {
    if (isPairList(headers)) return headers.filter((pair) => !REWRITTEN.has(String(pair[0]).toLowerCase()));
    const out: unknown[] = [];
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (!REWRITTEN.has(String(headers[i]).toLowerCase())) out.push(headers[i], headers[i + 1]);
    }
    return out;
  }
  if (typeof headers === 'object' && headers !== null) {
    // Usually there is nothing to take out (this runs for every SSE answer): the object itself.
    for (const key in headers) {
      if (REWRITTEN.has(key.toLowerCase())) return Object.fromEntries(Object.entries(headers).filter(([name]) => !REWRITTEN.has(name.toLowerCase())));
    }
  }
  return headers;
}

/**
 * The answer sent instead of a body the filter cannot read because of its content coding: it would
 * pass unfiltered, and the client would decode it and read every list.
 */
function refuseCoding(res: ServerResponse, coding: string): void {
  refuseWith(res, codingRefusalBody(coding));
}

/** Answers 500 with a JSON-RPC error instead of what the app wrote (none of its headers either). */
function refuseWith(res: ServerResponse, body: string): void {
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  res.writeHead(500, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The headers argument of `writeHead` with `Content-Length` set to `length` (and no `Content-Encoding`); `undefined` when there was none. */
function withContentLength(headers: unknown, length: number): unknown {
  const rest = withoutRewritten(headers);
  if (Array.isArray(rest)) return isPairList(rest) ? [...rest, ['content-length', String(length)]] : [...rest, 'content-length', String(length)];
  if (typeof rest === 'object' && rest !== null) return { ...rest, 'content-length': String(length) };
  return undefined;
}

function toText(decoder: StringDecoder, chunk: unknown, encoding?: unknown): string {
  if (typeof chunk === 'string') return typeof encoding === 'string' && encoding !== 'utf8' && encoding !== 'utf-8' ? decoder.write(Buffer.from(chunk, encoding as BufferEncoding)) : chunk;
  if (chunk instanceof Uint8Array) return decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  return '';
}

/** Whether a string written with this `encoding` argument (or a callback in its place) is UTF-8 text. */
function writtenAsUtf8(encoding: unknown): boolean {
  return encoding === undefined || typeof encoding === 'function' || encoding === 'utf8' || encoding === 'utf-8';
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

/** A write to a response the filter has ended or refused: dropped, its callback still called. */
function droppedWrite(this: ServerResponse, _chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
  const cb = (typeof encoding === 'function' ? encoding : callback) as WriteCallback | undefined;
  if (cb !== undefined) process.nextTick(cb);
  return true;
}

/** An end of a response the filter has ended or refused: its callback is called. */
function droppedEnd(this: ServerResponse, ...args: unknown[]): ServerResponse {
  const cb = args.find((a) => typeof a === 'function') as (() => void) | undefined;
  if (cb !== undefined) process.nextTick(cb);
  return this;
}

/** What {@link filterNodeResponse} tells its caller about the response it filters. */
export interface FilteredResponse {
  /**
   * Whether the app has begun its answer. A JSON answer's headers and body are held until `end`
   * (its length is the filter's), so `res.headersSent` stays false meanwhile: an error handler
   * that answers only when it is false would write its error into the held answer.
   */
  readonly answerBegun: boolean;
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
 *
 * A body with a content coding (compression registered after mcp-warden, so it wraps the response
 * outside the filter and hands it compressed bytes) is decoded, filtered and sent without the coding:
 * gzip, deflate and br (what clients' fetch decodes). Any other coding cannot be read, and the answer
 * is replaced by a JSON-RPC error (500): passed on, the client would decode it and see every list.
 */
export function filterNodeResponse(res: ServerResponse, lists: PendingLists, principal: Principal, policy: Policy, sealId?: EventIdSeal): FilteredResponse {
  /** The app has begun its answer (a JSON answer's headers are held, so `headersSent` does not say). */
  let begun = false;
  const originalWriteHead = res.writeHead;
  const originalWrite = res.write;
  const originalEnd = res.end;
  const restore = (): void => {
    res.writeHead = originalWriteHead;
    res.write = originalWrite;
    res.end = originalEnd;
  };
  /** Decodes the chunks written as bytes to a filter of text; made by the first such chunk. */
  let decoder: StringDecoder | undefined;
  /** Whether the text is kept as bytes (decided by the first chunk written). */
  let bytes: boolean | undefined;
  const text = (chunk: unknown, encoding?: unknown): string => {
    bytes ??= typeof chunk !== 'string';
    if (bytes) return toBytes(chunk, encoding);
    // A string in UTF-8 is the text itself: only bytes (or another encoding) need the decoder.
    if (typeof chunk === 'string' && writtenAsUtf8(encoding)) return chunk;
    return toText((decoder ??= new StringDecoder('utf8')), chunk, encoding);
  };
  /**
   * Whether an SSE chunk may be written as it came (see `SseListFilter.passesWhole`): bytes to a
   * filter of bytes, or a string in UTF-8 to a filter of text that has decoded nothing (a string
   * after bytes would overtake what the decoder holds).
   */
  const passesWhole = (chunk: unknown, encoding: unknown): boolean => {
    bytes ??= typeof chunk !== 'string';
    const whole = bytes
      ? Buffer.isBuffer(chunk)
      : typeof chunk === 'string' && decoder === undefined && writtenAsUtf8(encoding);
    if (!whole) return false;
    sse ??= new SseListFilter(lists, principal, policy, bytes, sealId);
    return sse.passesWhole(chunk as string | Buffer);
  };
  /** How the text's pieces are written: as the bytes they hold, or encoded to UTF-8. */
  const written = (): BufferEncoding => (bytes === true ? 'latin1' : 'utf8');
  let mode: 'undecided' | 'json' | 'sse' | 'pass' | 'refuse' = 'undecided';
  let held: { status: number; args: unknown[] } | undefined;
  /** A JSON body as written, in chunks: a big list is never one string (see list-scan.ts). */
  const json: string[] = [];
  let sse: SseListFilter | undefined;
  /** The body's content coding, when it has one. */
  let coding: string | undefined;
  /** How to undo it (json and sse modes). */
  let decoding: Decoding | undefined;
  /** An SSE body's decoder, as a stream: what it gives is filtered and written as it comes. */
  let inflater: NodeJS.ReadWriteStream | undefined;
  /** A write of the coded SSE body returned false: the app waits for a 'drain' the filter owes it. */
  let owedDrain = false;
  /** The response is over as far as the app is concerned (refused, or ended by the filter): what it writes now is dropped. */
  let closed = false;
  /** Callbacks of the app's `end`, called once the filter has really ended the response. */
  const ended: (() => void)[] = [];

  const decide = (headers: unknown): void => {
    if (mode !== 'undecided') return;
    const type = contentTypeOf(res, headers);
    if (type.startsWith('application/json')) mode = 'json';
    else if (type.startsWith('text/event-stream')) mode = 'sse';
    else {
      mode = 'pass';
      return;
    }
    coding = contentCodingOf(res, headers);
    if (coding !== undefined) {
      decoding = DECODINGS[coding];
      if (decoding === undefined) mode = 'refuse';
      // The coded bytes are bytes, whatever form they are written in.
      bytes = true;
    }
    // What leaves is never coded (the body goes out decoded) and its length is the filter's.
    if (!res.headersSent) {
      res.removeHeader('content-encoding');
      if (mode === 'sse') res.removeHeader('content-length');
    }
  };

  /** Replaces the answer with a JSON-RPC error, once; what the app writes after is dropped. */
  const refuse = (): void => {
    if (closed) return;
    closed = true;
    restore();
    if (!res.headersSent) refuseCoding(res, coding as string);
    else res.end();
    // The app goes on writing to what it thinks is its response: swallowed. (Its `writeHead` is
    // the filter's, which does nothing once refused.)
    swallow();
    res.writeHead = function writeHead(this: ServerResponse): ServerResponse {
      return this;
    } as typeof res.writeHead;
  };

  /**
   * From now on the app's writes and ends are dropped (their callbacks still run). `writeHead` stays
   * as it is: Node's own implicit headers go through it.
   */
  const swallow = (): void => {
    res.write = droppedWrite as typeof res.write;
    res.end = droppedEnd as typeof res.end;
  };

  /** Filters SSE text (or bytes) and writes what may go on now. */
  const relaySse = (piece: string, cb?: WriteCallback): boolean => {
    sse ??= new SseListFilter(lists, principal, policy, bytes === true, sealId);
    const out = sse.pushPieces(piece);
    if (out.length === 0) {
      if (cb !== undefined) process.nextTick(cb);
      return true;
    }
    const as = written();
    let flowing = true;
    out.forEach((p, i) => {
      flowing = (originalWrite as (...a: unknown[]) => boolean).call(res, p, as, i === out.length - 1 ? cb : undefined);
    });
    return flowing;
  };

  /** Ends an SSE response: what the filter holds back goes, an unfinished event loses its data. */
  const finishSse = (): void => {
    if (closed) return;
    closed = true;
    sse ??= new SseListFilter(lists, principal, policy, bytes === true, sealId);
    const out = [...(bytes === true || decoder === undefined ? [] : sse.pushPieces(decoder.end())), ...sse.flushPieces()];
    restore();
    const as = written();
    for (let i = 0; i + 1 < out.length; i++) (originalWrite as (...a: unknown[]) => boolean).call(res, out[i], as);
    const last = out[out.length - 1];
    // A callback only when the app gave one: each is a 'finish' listener.
    const callbacks = ended.splice(0);
    const done = callbacks.length === 0 ? [] : [() => callbacks.forEach((cb) => cb())];
    (originalEnd as (...a: unknown[]) => ServerResponse).call(res, ...(last === undefined ? [] : [last, as]), ...done);
    swallow();
  };

  /** The SSE body's decoder, started on its first bytes: the response ends when it has given all it will. */
  const inflate = (): NodeJS.ReadWriteStream => {
    if (inflater !== undefined) return inflater;
    const stream = (decoding as Decoding).stream();
    inflater = stream;
    // Back-pressure, both ways: a full response pauses the decoder until it drains, and a decoder
    // that has taken the app's bytes again tells the app (which waits for the response's 'drain',
    // as `compression` does) to go on.
    stream.on('data', (chunk: Buffer) => {
      if (!relaySse(chunk.toString('latin1'))) stream.pause();
    });
    res.on('drain', () => stream.resume());
    stream.on('drain', () => {
      // While the response itself is full its own 'drain' is still to come, and tells the app.
      if (!owedDrain || res.writableNeedDrain) return;
      owedDrain = false;
      res.emit('drain');
    });
    // Its input ended: the response ends. Bytes that do not decode end it too, with what decoded
    // before: the event they cut off is dropped by the flush, and nothing undecoded reaches the
    // client; the app's later writes are dropped.
    stream.once('end', finishSse);
    // `on`, not `once`: a second error (a write to the stream after the first) must not go unheard.
    stream.on('error', finishSse);
    // The client went away: nothing more to decode.
    res.once('close', () => {
      stream.removeAllListeners('data');
      (stream as unknown as { destroy(): void }).destroy();
    });
    return stream;
  };

  res.writeHead = function writeHead(this: ServerResponse, status: number, ...args: unknown[]): ServerResponse {
    begun = true;
    const headers = typeof args[0] === 'string' ? args[1] : args[0];
    decide(headers);
    if (mode === 'refuse') {
      refuse();
      return this;
    }
    if (mode === 'json') {
      // `flushHeaders` calls this again with the status alone: the headers given first stay.
      held = held !== undefined && args.length === 0 ? { status, args: held.args } : { status, args };
      return this;
    }
    if (mode === 'sse') {
      const rest = typeof args[0] === 'string' ? [args[0], withoutRewritten(args[1])] : [withoutRewritten(args[0])];
      return (originalWriteHead as (...a: unknown[]) => ServerResponse).call(this, status, ...rest);
    }
    return (originalWriteHead as (...a: unknown[]) => ServerResponse).call(this, status, ...args);
  } as typeof res.writeHead;

  res.write = function write(this: ServerResponse, chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    begun = true;
    decide(undefined);
    const cb = (typeof encoding === 'function' ? encoding : callback) as WriteCallback | undefined;
    if (mode === 'refuse') {
      refuse();
      return this.write(chunk, encoding as BufferEncoding, cb);
    }
    if (mode === 'json') {
      json.push(text(chunk, encoding));
      if (cb !== undefined) process.nextTick(cb);
      return true;
    }
    if (mode === 'sse') {
      if (decoding === undefined && passesWhole(chunk, encoding)) return (originalWrite as (...a: unknown[]) => boolean).call(this, chunk, encoding, callback);
      const piece = text(chunk, encoding);
      if (decoding === undefined) return relaySse(piece, cb);
      const flowing = inflate().write(Buffer.from(piece, 'latin1')) && !res.writableNeedDrain;
      if (!flowing) owedDrain = true;
      if (cb !== undefined) process.nextTick(cb);
      return flowing;
    }
    return (originalWrite as (...a: unknown[]) => boolean).call(this, chunk, encoding, callback);
  } as typeof res.write;

  res.end = function end(this: ServerResponse, chunk?: unknown, encoding?: unknown, callback?: unknown): ServerResponse {
    begun = true;
    decide(undefined);
    const cb = [chunk, encoding, callback].find((a) => typeof a === 'function') as (() => void) | undefined;
    const data = typeof chunk === 'function' ? undefined : chunk;
    const enc = typeof encoding === 'function' ? undefined : encoding;
    if (mode === 'json') {
      // A coding set after `writeHead` (the headers were held, so any layer could still set one)
      // counts as much as one set before.
      const late = contentCodingOf(this, held === undefined ? undefined : typeof held.args[0] === 'string' ? held.args[1] : held.args[0]);
      if (late !== undefined && coding === undefined) {
        coding = late;
        decoding = DECODINGS[late];
        if (!this.headersSent) this.removeHeader('content-encoding');
        if (decoding === undefined) {
          refuse();
          if (cb !== undefined) process.nextTick(cb);
          return this;
        }
      }
    }
    if (mode === 'refuse') {
      refuse();
      if (cb !== undefined) process.nextTick(cb);
      return this;
    }
    if (mode === 'json') {
      restore();
      if (data !== undefined && data !== null) json.push(text(data, enc));
      if (bytes !== true && decoder !== undefined) json.push(decoder.end());
      if (decoding !== undefined) {
        let decoded: Buffer;
        try {
          // Written as text before the coding was known, the bytes are already lost: refused too.
          if (bytes !== true) throw new Error('decoded as text');
          decoded = decoding.whole(Buffer.from(json.join(''), 'latin1'));
        } catch {
          // Not what the coding says: nothing of it may pass.
          refuse();
          if (cb !== undefined) process.nextTick(cb);
          return this;
        }
        json.length = 0;
        json.push(decoded.toString('latin1'));
      }
      const as = written();
      const filtered = filterJsonAnswer(json, lists, principal, policy, bytes === true);
      if (filtered === WITHHELD) {
        // Not JSON, and it may hold a list (cut off midway): none of it may pass.
        if (!this.headersSent) refuseWith(this, withheldBody());
        else (originalEnd as (...a: unknown[]) => ServerResponse).call(this);
        if (cb !== undefined) process.nextTick(cb);
        return this;
      }
      const body = (filtered ?? json).filter((piece) => piece !== '');
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
      if (decoding === undefined && data !== undefined && data !== null && !closed && passesWhole(data, enc)) {
        // Nothing is held back (passesWhole says so), so nothing but this last chunk is owed.
        closed = true;
        restore();
        const result = (originalEnd as (...a: unknown[]) => ServerResponse).call(this, chunk, encoding, callback);
        swallow();
        return result;
      }
      const piece = data === undefined || data === null ? undefined : text(data, enc);
      if (cb !== undefined) ended.push(cb);
      if (decoding === undefined) {
        if (piece !== undefined) relaySse(piece);
        finishSse();
        return this;
      }
      // The decoder gives its last bytes asynchronously: the response ends once it has (`inflate`).
      // Until then the app's further writes and ends are dropped, as after any end.
      const stream = inflate();
      swallow();
      if (piece === undefined) stream.end();
      else stream.end(Buffer.from(piece, 'latin1'));
      return this;
    }
    restore();
    return (originalEnd as (...a: unknown[]) => ServerResponse).call(this, chunk, encoding, callback);
  } as typeof res.end;
  return {
    get answerBegun(): boolean {
      return begun;
    },
  };
}
