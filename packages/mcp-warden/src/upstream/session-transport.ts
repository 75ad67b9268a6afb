/**
 * The HTTP face of one stdio session: the server side of MCP's Streamable HTTP transport (2025-03-26
 * to 2025-11-25 revisions), written on node:http for the gateway's stdio bridge. It does what the
 * official SDK's `StreamableHTTPServerTransport` did here, and answers alike (its test runs the same
 * exchanges against both), minus what the bridge never used (resumability, JSON answers,
 * DNS-rebinding checks, which the pipeline does). The SDK's transport turns every request into a web
 * `Request` and every answer into a web `Response` with a `ReadableStream` (`@hono/node-server`),
 * validates each message again with zod, and sends an SSE answer's headers in a write of their own:
 * bench:gateway's stdio scenario (e) went from 228 to 100 µs of gateway CPU per call without it.
 *
 * - POST: `Accept` must list `application/json` and `text/event-stream` (406). At most 100 messages
 *   (400). An `initialize` opens the session and must come alone, once (400). Other POSTs need a
 *   supported `MCP-Protocol-Version` when they send one (400). Notifications and responses only: 202.
 *   Requests: an SSE stream that carries what relates to them and ends with their last answer.
 * - GET: the session's one standalone SSE stream (409 for a second, 406 without `text/event-stream`),
 *   for server messages that relate to no request in flight.
 * - DELETE: ends the session (200).
 *
 * A request id still in flight in the session is refused when used again (400): MCP forbids reusing
 * an id in a session (basic/index "Requests"), and the answer could not tell the two requests apart.
 * An id whose client went away is taken again, though (a client resending after a dropped
 * connection): the child's first answer with it goes to the new stream, as with the SDK's transport.
 * A stream silent for 7.5 to 15 s gets an SSE comment (the SDK's get one every 15 s), so idle
 * connections are not cut. A request given up on (cancelled, timed out) keeps its id refused until
 * the child's late answer to it comes, or for the upstream's timeout.
 * @see https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#streamable-http
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { type JSONRPCMessage, RELATED_TASK_META_KEY, type RequestId, SUPPORTED_PROTOCOL_VERSIONS, isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { isRequest, isResponse, jsonRpcError } from './json-rpc.js';

/** Most messages in one POST (the SDK's limit). */
const MAX_BATCH = 100;

/**
 * How long the headers of a POST's stream wait for its first event (ms). Each write to a socket is a
 * system call that also wakes the reader: an answer that comes within this leaves with the headers in
 * one write; a slower one finds them already sent, so its client knows it is connected.
 */
const HEADERS_GRACE_MS = 20;

/**
 * How often the session's open streams are looked at: one silent since the last look gets an SSE
 * comment, so no stream is silent for more than 15 s (the SDK's keep-alive interval).
 */
const KEEP_ALIVE_MS = 7_500;

/** Most retired request ids remembered per session (the oldest is forgotten first). */
const MAX_RETIRED = 4096;

const SSE_HEADERS: Readonly<OutgoingHttpHeaders> = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
};

/** One SSE response: a POST's (its requests not yet answered) or the session's GET stream. */
class Stream {
  /** The requests whose answers this stream still waits for (empty for the GET stream). */
  readonly pending = new Set<RequestId>();
  open = true;
  /** Nothing was written since the last keep-alive tick (set by the tick, cleared by a write). */
  quiet = false;
  #headersTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly res: ServerResponse,
    headers: OutgoingHttpHeaders,
    flushNow: boolean,
  ) {
    res.writeHead(200, headers);
    if (flushNow) res.flushHeaders();
    else {
      this.#headersTimer = setTimeout(() => {
        this.#headersTimer = undefined;
        // (`headersSent` is already true here: it means rendered by writeHead, not written.)
        if (this.open && !res.writableEnded && !res.destroyed) res.flushHeaders();
      }, HEADERS_GRACE_MS);
    }
  }

  write(text: string): void {
    if (!this.open) return;
    this.quiet = false;
    this.#settleHeaders();
    this.res.write(text);
  }

  /** Ends the response, with `last` as its final event when given. */
  end(last?: string): void {
    if (!this.open) return;
    this.open = false;
    this.#settleHeaders();
    if (this.res.writableEnded || this.res.destroyed) return;
    if (last === undefined) this.res.end();
    else this.res.end(last);
  }

  #settleHeaders(): void {
    if (this.#headersTimer === undefined) return;
    clearTimeout(this.#headersTimer);
    this.#headersTimer = undefined;
  }
}

/**
 * An SSE `message` event carrying `message`: as `text`, the JSON it was read from (a stdio child's
 * line: serialising a big list again would cost more than relaying it), unless that text holds a CR,
 * which JSON allows as whitespace and SSE reads as a line end.
 */
function sseEvent(message: JSONRPCMessage, text: string | undefined): string {
  return `event: message\ndata: ${text === undefined || text.includes('\r') ? JSON.stringify(message) : text}\n\n`;
}

/** A JSON-RPC error with no id, as the SDK's transport answers a refused HTTP request. */
function refuse(res: ServerResponse, status: number, code: number, message: string): void {
  jsonRpcError(res, status, null, code, message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The members each kind of JSON-RPC message may have (the SDK's schemas are strict). */
const REQUEST_KEYS = new Set(['jsonrpc', 'id', 'method', 'params']);
const RESULT_KEYS = new Set(['jsonrpc', 'id', 'result']);
const ERROR_KEYS = new Set(['jsonrpc', 'id', 'error']);

function onlyKeys(message: Record<string, unknown>, allowed: ReadonlySet<string>): boolean {
  for (const key in message) if (!allowed.has(key)) return false;
  return true;
}

/**
 * Whether a message has the shape of a JSON-RPC 2.0 request, notification or response as the SDK's
 * schema requires (the pipeline already checked `jsonrpc`, the id's type and the method): no other
 * members, params an object, a result an object, an error an object with an integer code and a
 * string message, an id a string or an integer.
 */
function wellFormed(message: unknown): message is JSONRPCMessage {
  if (!isRecord(message) || message['jsonrpc'] !== '2.0') return false;
  const id = message['id'];
  if (id !== undefined && typeof id !== 'string' && !Number.isSafeInteger(id)) return false;
  if (typeof message['method'] === 'string') {
    const params = message['params'];
    return onlyKeys(message, REQUEST_KEYS) && (params === undefined || (isRecord(params) && metaWellFormed(params['_meta'])));
  }
  if (id === undefined) return false;
  const result = message['result'];
  if (Object.hasOwn(message, 'result')) return onlyKeys(message, RESULT_KEYS) && isRecord(result) && metaWellFormed(result['_meta']);
  const error = message['error'];
  return onlyKeys(message, ERROR_KEYS) && isRecord(error) && Number.isSafeInteger(error['code']) && typeof error['message'] === 'string';
}

/** A `_meta` as the SDK reads it: an object, its progress token a string or an integer, its related task one with a string id. */
function metaWellFormed(meta: unknown): boolean {
  if (meta === undefined) return true;
  if (!isRecord(meta)) return false;
  const token = meta['progressToken'];
  if (token !== undefined && typeof token !== 'string' && !Number.isSafeInteger(token)) return false;
  const task = meta[RELATED_TASK_META_KEY];
  return task === undefined || (isRecord(task) && typeof task['taskId'] === 'string');
}

export interface SessionTransportOptions {
  /** Names the session when its `initialize` arrives. */
  readonly sessionId: () => string;
  /** Told once the session exists (its `initialize` was accepted). */
  readonly onSessionInitialized?: (sessionId: string) => void;
}

/** The Streamable HTTP server side of one session (see the module comment). */
export class SessionTransport {
  /** Messages from the client, in the order they arrive. */
  onmessage?: (message: JSONRPCMessage) => void;
  /** Told once when the session ends (DELETE or `close`). */
  onclose?: () => void;
  sessionId: string | undefined;
  readonly #options: SessionTransportOptions;
  /** Open request streams by the ids of the requests they wait for. */
  readonly #byRequest = new Map<RequestId, Stream>();
  readonly #streams = new Set<Stream>();
  /** Ids of requests given up on (cancelled, timed out) whose late answer may still come, with when they may be used again. */
  readonly #retired = new Map<RequestId, number>();
  #standalone: Stream | undefined;
  /** The headers of this session's SSE answers, made once its id is known. */
  #sseHeaders: OutgoingHttpHeaders = SSE_HEADERS;
  #keepAlive: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: SessionTransportOptions) {
    this.#options = options;
  }

  /** Answers one HTTP request of the session; `body` is the POST body the pipeline parsed. */
  handle(req: IncomingMessage, res: ServerResponse, body: unknown): void {
    if (this.#closed) return refuse(res, 404, -32001, 'Session not found');
    switch (req.method) {
      case 'POST':
        return this.#post(req, res, body);
      case 'GET':
        return this.#get(req, res);
      case 'DELETE':
        if (!this.#versionOk(req, res)) return;
        res.writeHead(200).end();
        return this.close();
      default:
        res.setHeader('allow', 'GET, POST, DELETE');
        return refuse(res, 405, -32000, 'Method not allowed.');
    }
  }

  /**
   * Sends a message to the client: an answer on its request's stream (which ends after its last
   * answer), a message related to a request in flight on that request's stream, anything else on the
   * GET stream. A message with nowhere to go is dropped, as the SDK's transport drops it. `text`,
   * when given, is the message's JSON text as it was read, sent instead of serialising it again; it
   * must hold no line feed.
   */
  send(message: JSONRPCMessage, relatedRequestId?: RequestId, text?: string): void {
    if (this.#closed) return;
    if (isResponse(message)) {
      const stream = this.#byRequest.get(message.id);
      if (stream === undefined) return;
      this.#byRequest.delete(message.id);
      stream.pending.delete(message.id);
      if (stream.pending.size === 0) {
        this.#streams.delete(stream);
        stream.end(sseEvent(message, text));
      } else stream.write(sseEvent(message, text));
      return;
    }
    const stream = relatedRequestId === undefined ? this.#standalone : this.#byRequest.get(relatedRequestId);
    stream?.write(sseEvent(message, text));
  }

  /**
   * Stops waiting for an answer to `id` (a request the client cancelled, or one answered for the
   * child after its timeout): its stream ends once it waits for nothing else, and the id stays
   * refused for `holdMs`, or until {@link release}, so the child's late answer to it can never be
   * taken for the answer to a new request reusing the id.
   */
  retire(id: RequestId, holdMs: number): void {
    const stream = this.#byRequest.get(id);
    if (stream !== undefined) {
      this.#byRequest.delete(id);
      stream.pending.delete(id);
      if (stream.pending.size === 0) {
        this.#streams.delete(stream);
        stream.end();
      }
    }
    this.#retired.delete(id);
    if (this.#retired.size >= MAX_RETIRED) this.#retired.delete(this.#retired.keys().next().value as RequestId);
    this.#retired.set(id, Date.now() + holdMs);
  }

  /** The child answered a retired request after all: its id may be used again. */
  release(id: RequestId): void {
    this.#retired.delete(id);
  }

  /** Ends every stream and the session; `onclose` is told once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keepAlive);
    for (const stream of this.#streams) stream.end();
    this.#standalone?.end();
    this.#streams.clear();
    this.#byRequest.clear();
    this.#retired.clear();
    this.#standalone = undefined;
    this.onclose?.();
  }

  #post(req: IncomingMessage, res: ServerResponse, body: unknown): void {
    const accept = req.headers.accept;
    if (accept === undefined || !accept.includes('application/json') || !accept.includes('text/event-stream')) {
      return refuse(res, 406, -32000, 'Not Acceptable: Client must accept both application/json and text/event-stream');
    }
    const messages: unknown[] = Array.isArray(body) ? body : [body];
    if (messages.length > MAX_BATCH) return refuse(res, 400, -32600, `Invalid Request: Batch must not exceed ${MAX_BATCH} messages`);
    if (!messages.every(wellFormed)) return refuse(res, 400, -32700, 'Parse error: Invalid JSON-RPC message');
    const valid = messages as JSONRPCMessage[];
    // The SDK's own check (its schema, params included): it runs once per session.
    const initializing = valid.some((m) => isRequest(m) && m.method === 'initialize' && isInitializeRequest(m));
    if (initializing) {
      if (this.sessionId !== undefined) return refuse(res, 400, -32600, 'Invalid Request: Server already initialized');
      if (valid.length > 1) return refuse(res, 400, -32600, 'Invalid Request: Only one initialization request is allowed');
      this.sessionId = this.#options.sessionId();
      this.#sseHeaders = { ...SSE_HEADERS, 'mcp-session-id': this.sessionId };
      this.#options.onSessionInitialized?.(this.sessionId);
    } else {
      if (this.sessionId === undefined) return refuse(res, 400, -32000, 'Bad Request: Server not initialized');
      if (!this.#versionOk(req, res)) return;
    }
    const ids: RequestId[] = [];
    for (const message of valid) {
      if (!isRequest(message)) continue;
      const id = message.id;
      // A request whose client went away (its stream is closed) leaves its id free: a client that
      // lost its connection may send the request again, and gets the child's answer to either, as
      // it would from the SDK's transport.
      if (this.#byRequest.get(id)?.open === true || this.#isRetired(id)) {
        return refuse(res, 400, -32600, `Invalid Request: the id ${JSON.stringify(id)} belongs to a request still in flight in this session`);
      }
      if (ids.includes(id)) return refuse(res, 400, -32600, `Invalid Request: the id ${JSON.stringify(id)} appears twice in the batch`);
      ids.push(id);
    }
    if (ids.length === 0) {
      res.writeHead(202).end();
      for (const message of valid) this.onmessage?.(message);
      return;
    }
    const stream = new Stream(res, this.#sseHeaders, false);
    this.#open(stream);
    for (const id of ids) {
      stream.pending.add(id);
      this.#byRequest.set(id, stream);
    }
    this.#watch(req, res, stream);
    for (const message of valid) this.onmessage?.(message);
  }

  #get(req: IncomingMessage, res: ServerResponse): void {
    if (req.headers.accept?.includes('text/event-stream') !== true) {
      return refuse(res, 406, -32000, 'Not Acceptable: Client must accept text/event-stream');
    }
    if (this.sessionId === undefined) return refuse(res, 400, -32000, 'Bad Request: Server not initialized');
    if (!this.#versionOk(req, res)) return;
    if (this.#standalone !== undefined) return refuse(res, 409, -32000, 'Conflict: Only one SSE stream is allowed per session');
    const stream = new Stream(res, this.#sseHeaders, true);
    this.#standalone = stream;
    this.#open(stream);
    this.#watch(req, res, stream);
  }

  /**
   * Forgets the stream when its connection closes. The pipeline may have waited (a verifier, a
   * limiter) before the request got here, so the client may be gone already: then at once.
   */
  #watch(req: IncomingMessage, res: ServerResponse, stream: Stream): void {
    if (res.destroyed || req.socket.destroyed) {
      this.#lost(stream);
      return;
    }
    res.once('close', () => this.#lost(stream));
  }

  #isRetired(id: RequestId): boolean {
    const until = this.#retired.get(id);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#retired.delete(id);
    return false;
  }

  /** Whether the request's `MCP-Protocol-Version`, when present, is one the transport speaks; else answers 400. */
  #versionOk(req: IncomingMessage, res: ServerResponse): boolean {
    const version = req.headers['mcp-protocol-version'];
    if (version === undefined || (typeof version === 'string' && SUPPORTED_PROTOCOL_VERSIONS.includes(version))) return true;
    const named = Array.isArray(version) ? version.join(', ') : version;
    refuse(res, 400, -32000, `Bad Request: Unsupported protocol version: ${named} (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`);
    return false;
  }

  #open(stream: Stream): void {
    this.#streams.add(stream);
    this.#keepAlive ??= setInterval(() => {
      for (const open of this.#streams) {
        if (open.quiet) open.write(': keepalive\n\n');
        open.quiet = true;
      }
      const now = Date.now();
      for (const [id, until] of this.#retired) if (until <= now) this.#retired.delete(id);
    }, KEEP_ALIVE_MS).unref();
  }

  /**
   * A stream whose connection closed (answered, or the client went away). Its requests stay known,
   * so their answers, when they come, are dropped rather than sent elsewhere.
   */
  #lost(stream: Stream): void {
    stream.open = false;
    this.#streams.delete(stream);
    if (this.#standalone === stream) this.#standalone = undefined;
  }
}
