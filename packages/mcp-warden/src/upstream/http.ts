/**
 * A Streamable HTTP upstream: a reverse proxy at the MCP level, one keep-alive undici `Pool` per
 * upstream. POST bodies are re-serialised from what the pipeline parsed; responses are relayed as
 * they arrive (SSE chunk by chunk, JSON checked whole before a byte is sent, so a broken upstream
 * still yields a clean JSON-RPC error); GET (the server's SSE stream, resumable with Last-Event-ID)
 * and DELETE (session termination) pass through.
 *
 * Headers travel on allow-lists in both directions, so the caller's credential (`Authorization`,
 * `Cookie`, `X-API-Key`, anything not listed) never reaches the upstream, which gets the configured
 * `headers` instead (MCP authorization, "Access Token Privilege Restriction": no token passthrough).
 *
 * The upstream's `Mcp-Session-Id` is handed to the client base64url-encoded and signed for the
 * principal (see `SessionSigner`), so one principal cannot use another's session and any gateway
 * instance holding the key can translate it back without shared state.
 *
 * The SSE streams relayed to clients are watched for `notifications/tools/list_changed` (a byte
 * search, see `ToolsChangedWatch`), so the gateway re-reads the annotations as it does for stdio.
 * @see https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#streamable-http
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { Principal } from '@mcp-warden/core';
import { type Dispatcher, Pool } from 'undici';
import type { HttpUpstreamConfig } from '../config/schema.js';
import type { SessionSigner } from '../server/sessions.js';
import { type JsonRpcId, jsonRpcError, requestIdOf } from './json-rpc.js';
import type { Upstream, UpstreamErrorKind, UpstreamLogger } from './types.js';

/** The protocol revision the gateway's own catalog client asks for. */
const CATALOG_PROTOCOL_VERSION = '2025-11-25';

/** Largest JSON answer held in memory for checking; past it the upstream is treated as broken. */
const MAX_JSON_RESPONSE_BYTES = 64 * 1024 * 1024;

/** How many verified session ids are remembered per upstream (oldest forgotten first). */
const VERIFIED_SESSIONS = 4096;

/** How long a session counts as open (`sessionCount`) after its last request: 30 minutes. */
const SESSION_IDLE_MS = 30 * 60 * 1000;

/** How many upstream sessions `sessionCount` follows (the oldest is forgotten first). */
const COUNTED_SESSIONS = 10_000;

/** Request headers that carry MCP semantics and nothing about the caller's identity. */
const FORWARDED_REQUEST_HEADERS = new Set(['accept', 'mcp-protocol-version', 'last-event-id', 'mcp-method', 'mcp-name']);

/** Hop-by-hop headers (RFC 9110 §7.6.1), plus those undici manages itself and refuses to be given. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const MANAGED_BY_PROXY = new Set(['content-length', 'content-type', 'expect', 'mcp-session-id']);

/** Why the proxy aborted an upstream request; compared by identity with `Exchange.reason`. */
const TIMED_OUT = new Error('upstream timed out');
const CLIENT_GONE = new Error('client disconnected');
const CLOSING = new Error('upstream closing');

/** A response the upstream should not have sent (garbage JSON, an unknown content type…). */
class UpstreamProtocolError extends Error {}

interface Forwarded {
  /** The signed session id the client presented, reused when the upstream echoes the same id. */
  readonly presented: string | undefined;
  /** The upstream's own session id, decoded from `presented`. */
  readonly session: string | undefined;
}

/**
 * One request to the upstream and its abort switch, timed out after `timeout` ms unless cleared.
 * undici accepts an EventEmitter as `signal` and reads its `reason`: far cheaper per request than an
 * AbortController, whose EventTarget costs several microseconds on the hot path.
 */
class Exchange extends EventEmitter {
  reason: Error | undefined;
  readonly timer: NodeJS.Timeout;
  /** The gateway's id of the client's request, for log lines (none for the catalog client's own). */
  requestId: string | undefined;

  constructor(timeout: number) {
    super();
    this.timer = setTimeout(() => this.abort(TIMED_OUT), timeout);
  }

  abort(reason: Error): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.emit('abort');
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') return code;
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return typeof cause === 'string' ? cause : (error as Error | undefined)?.name ?? 'Error';
}

/**
 * What the watch searches for: the end of `notifications/tools/list_changed` that survives JSON's
 * escapes of `/` (`notifications\/tools\/list_changed`, as PHP's `json_encode` writes it by default).
 * It also finds the prompts' and resources' notices, which a line read whole tells apart.
 */
const TOOLS_CHANGED = Buffer.from('list_changed', 'latin1');
/**
 * What the search looks for first: a part of `TOOLS_CHANGED`, at `ANCHOR_AT` in it, shorter than 8
 * bytes and opening with a byte rare in text. Node searches a needle that short by `memchr` of its
 * first byte (src/string_search.h); a longer one by Boyer-Moore-Horspool, which on English and JSON
 * text (most of `list_changed`'s letters are common ones) skips little: on a 300 KB tool list, about
 * 110 µs for `list_changed` against 4–9 µs for `_change`.
 */
const ANCHOR = Buffer.from('_change', 'latin1');
const ANCHOR_AT = 4;

/**
 * Where `TOOLS_CHANGED` is first found in `chunk` at or after `from`, or -1: what
 * `chunk.indexOf(TOOLS_CHANGED, from)` answers, found by `ANCHOR` first.
 */
export function indexOfToolsChanged(chunk: Buffer, from: number): number {
  const last = chunk.length - TOOLS_CHANGED.length;
  for (let search = Math.max(0, from) + ANCHOR_AT; ; ) {
    const anchor = chunk.indexOf(ANCHOR, search);
    const at = anchor - ANCHOR_AT;
    if (anchor === -1 || at > last) return -1;
    search = anchor + 1;
    let whole = true;
    for (let i = 0; i < ANCHOR_AT && whole; i++) whole = chunk[at + i] === TOOLS_CHANGED[i];
    for (let i = ANCHOR_AT + ANCHOR.length; i < TOOLS_CHANGED.length && whole; i++) whole = chunk[at + i] === TOOLS_CHANGED[i];
    if (whole) return at;
  }
}

/** Whether a complete `data:` line holds a JSON-RPC message (or a batch with one) announcing a changed tool list. */
function announcesToolsChanged(message: unknown): boolean {
  if (Array.isArray(message)) return message.some(announcesToolsChanged);
  return typeof message === 'object' && message !== null && (message as { method?: unknown }).method === 'notifications/tools/list_changed';
}

/**
 * Watches the raw chunks of one SSE stream for `notifications/tools/list_changed`. Parsing every
 * event of a relayed stream would cost more than relaying it, so each chunk is searched for the
 * method's last bytes, `list_changed` (see {@link indexOfToolsChanged}; a `/` may be written `\/`,
 * so the whole method is not searched for), and the bytes around a chunk boundary are searched in a
 * small window (the stream's last bytes before the chunk, then the chunk's first bytes), so a method
 * cut in two (or more) by the transport is still seen.
 *
 * A match inside a chunk is confirmed by parsing its line when that line lies whole in the chunk:
 * a tool result quoting the method (documentation, an echo) is then no announcement. A match that
 * cannot be confirmed so (cut by a chunk boundary, on a line longer than the chunk, in JSON spread
 * over several `data:` lines, on a line that is no `data:` line) counts as an announcement: a false
 * one only makes the gateway read the tools once more, which any client can cause anyway by
 * listing them, while a missed one would leave annotations stale.
 */
export class ToolsChangedWatch {
  /** The stream's last bytes (up to one less than the needle) followed by the next chunk's first ones. */
  readonly #window = Buffer.allocUnsafe(2 * (TOOLS_CHANGED.length - 1));
  /** How many of the stream's last bytes `#window` starts with. */
  #kept = 0;

  /** Whether `chunk`, the stream's next bytes, announces a changed tool list. */
  seen(chunk: Buffer): boolean {
    // Both, always: `#across` keeps the stream's last bytes, which the next chunk's search needs.
    const within = this.#within(chunk);
    return this.#across(chunk) || within;
  }

  #within(chunk: Buffer): boolean {
    // A method that would end in the next chunk is `#across`'s to find.
    for (let at = indexOfToolsChanged(chunk, 0); at !== -1; ) {
      const start = chunk.lastIndexOf(0x0a, at) + 1;
      const end = chunk.indexOf(0x0a, at);
      // The line began in an earlier chunk or ends in a later one: not isolable here. (A chunk
      // starts a line when it starts the stream or the previous one ended with a line feed.)
      if ((start === 0 && this.#kept !== 0 && this.#window[this.#kept - 1] !== 0x0a) || end === -1) return true;
      if (chunk.toString('latin1', start, start + 5) !== 'data:') return true;
      let message: unknown;
      try {
        message = JSON.parse(chunk.toString('utf8', start + 5, end));
      } catch {
        return true;
      }
      if (announcesToolsChanged(message)) return true;
      // The rest of this line is settled too: the search goes on on the next line.
      at = indexOfToolsChanged(chunk, end + 1);
    }
    return false;
  }

  /** Finds the method across the boundary before `chunk`, then keeps the stream's new last bytes. */
  #across(chunk: Buffer): boolean {
    const keep = TOOLS_CHANGED.length - 1;
    const window = this.#window;
    const head = Math.min(chunk.length, keep);
    chunk.copy(window, this.#kept, 0, head);
    const filled = this.#kept + head;
    // Neither side alone can hold the whole method, so a match within `filled` spans the boundary;
    // bytes past `filled` are stale, and a match reaching them is no match.
    const at = window.indexOf(TOOLS_CHANGED);
    const found = at !== -1 && at + TOOLS_CHANGED.length <= filled;
    if (chunk.length >= keep) {
      chunk.copy(window, 0, chunk.length - keep);
      this.#kept = keep;
    } else {
      const from = Math.max(0, filled - keep);
      window.copyWithin(0, from, filled);
      this.#kept = filled - from;
    }
    return found;
  }
}

/** Largest answer relayed as one string; a bigger one is relayed in the chunks it came in. */
const ONE_WRITE_BYTES = 64 * 1024;

/**
 * Reads a whole body, refusing past `limit` bytes (events, not async iteration: this is the hot path).
 * The chunks stay apart: a big answer joined into one buffer would be one more allocation of its
 * size, which costs page faults on every answer (see list-scan.ts in core).
 */
function readBody(body: Dispatcher.ResponseData['body'], limit: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    body.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (length > limit) body.destroy(new UpstreamProtocolError(`answered more than ${limit} bytes of JSON`));
      else chunks.push(chunk);
    });
    body.once('error', reject);
    body.once('end', () => resolve(chunks));
  });
}

/** A body's text from its chunks, joined once as text (a multi-byte character may span two chunks). */
function decodeChunks(chunks: readonly Buffer[]): string {
  const decoder = new StringDecoder('utf8');
  const parts = chunks.map((chunk) => decoder.write(chunk));
  parts.push(decoder.end());
  return parts.join('');
}

/** The JSON-RPC messages of an SSE stream, as they arrive (only `data` lines matter to MCP). */
async function* sseMessages(body: AsyncIterable<Buffer>): AsyncGenerator<unknown> {
  const decoder = new StringDecoder('utf8');
  let buffer = '';
  let data: string[] = [];
  let first = true;
  for await (const chunk of body) {
    buffer += decoder.write(chunk);
    // The event stream format ignores one byte order mark at the start of the stream.
    if (first && buffer !== '') {
      first = false;
      if (buffer.charCodeAt(0) === 0xfeff) buffer = buffer.slice(1);
    }
    let newline: number;
    while ((newline = buffer.indexOf('\n')) !== -1) {
      const line = buffer.endsWith('\r', newline) ? buffer.slice(0, newline - 1) : buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line === '') {
        // An event without data (the priming event of a resumable stream) carries no message.
        const text = data.join('\n');
        if (text !== '') yield JSON.parse(text);
        data = [];
      } else if (line.startsWith('data:')) {
        data.push(line.charCodeAt(5) === 0x20 ? line.slice(6) : line.slice(5));
      }
    }
  }
}

/** An SSE `id` field at the start of a line (the line before ended with LF or CR). */
const LF_ID_FIELD = Buffer.from('\nid:');
const CR_ID_FIELD = Buffer.from('\rid:');

/** Whether `bytes` (a stream's last chunk) hold the answer to the request `id` (a result or an error). */
function answersIn(bytes: Buffer | undefined, id: string | number): boolean {
  if (bytes === undefined) return false;
  const text = bytes.toString('utf8');
  const idPattern = JSON.stringify(id).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`"id"\\s*:\\s*${idPattern}\\s*[,}]`).test(text) && /"(?:result|error)"\s*:/.test(text);
}

/**
 * The configured headers of an HTTP upstream as sent (lower-case names).
 * @throws TypeError naming the key when one is a header the proxy must control (hop-by-hop,
 * `Proxy-*`, `Content-Length`, `Content-Type`, `Expect`, `Mcp-Session-Id`) or a value holds a
 * control character. (`config check` runs it too.)
 */
export function injectedHeaders(name: string, headers: Readonly<Record<string, string>>): Record<string, string> {
  const injected: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) {
    const lower = key.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-') || MANAGED_BY_PROXY.has(lower)) {
      throw new TypeError(`upstreams.${name}.headers.${key}: this header is set by the gateway and cannot be configured`);
    }
    // A CR or LF would split the request; undici would refuse it on every call, so refuse it once here.
    if (/[\0\r\n]/.test(value)) throw new TypeError(`upstreams.${name}.headers.${key}: the value contains a control character`);
    injected[lower] = value;
  }
  return injected;
}

/**
 * Serves one upstream MCP server reached over Streamable HTTP. Constructed once per configured
 * upstream by the gateway; `handle` is called only for requests the pipeline allowed.
 * @throws TypeError when `config.headers` names a header the proxy must control (hop-by-hop,
 * `Content-Length`, `Content-Type`, `Expect`, `Mcp-Session-Id`) or holds a value with control characters.
 */
export class HttpUpstream implements Upstream {
  readonly name: string;
  onToolsChanged?: () => void;
  onError?: (kind: UpstreamErrorKind) => void;
  readonly #config: HttpUpstreamConfig;
  readonly #signer: SessionSigner;
  readonly #log: UpstreamLogger;
  readonly #pool: Pool;
  readonly #path: string;
  readonly #injected: Readonly<Record<string, string>>;
  readonly #inFlight = new Set<Exchange>();
  /** Session ids already verified: the HMAC is computed once per session, not once per request. */
  readonly #verified = new Map<string, { readonly principalId: string; readonly session: string }>();
  /** The upstream's session ids that `sessionCount` follows, in the order first seen, with their last request. */
  readonly #sessions = new Map<string, { lastRequest: number }>();
  #closed = false;

  readonly #identity: ((principal: Principal) => Promise<readonly [string, string]>) | undefined;
  readonly #now: () => number;

  /**
   * `identity`, when given, supplies a header naming the caller (the gateway's signed identity JWT,
   * see server/identity.ts), sent instead of anything the caller presented. `now` (milliseconds,
   * default `Date.now`) is the clock of session idleness, replaced by tests.
   */
  constructor(
    name: string,
    config: HttpUpstreamConfig,
    signer: SessionSigner,
    log: UpstreamLogger,
    options: { readonly identity?: (principal: Principal) => Promise<readonly [string, string]>; readonly now?: () => number } = {},
  ) {
    this.#identity = options.identity;
    this.#now = options.now ?? Date.now;
    this.name = name;
    this.#config = config;
    this.#signer = signer;
    this.#log = log;
    this.#injected = injectedHeaders(name, config.headers);
    const url = new URL(config.url);
    this.#path = `${url.pathname}${url.search}`;
    // Keep-alive stays at undici's default (4 s, or less when the server says so): shorter than
    // common servers' idle timeouts, so a request is not sent on a socket the server is closing.
    this.#pool = new Pool(url.origin, {
      // The proxy's own timer (config.timeout) covers connecting and waiting for headers; undici's
      // timers only back it up. SSE streams may stay silent for as long as the client listens.
      connectTimeout: config.timeout,
      headersTimeout: config.timeout,
      bodyTimeout: 0,
    });
  }

  /**
   * The upstream's sessions that are open as far as this gateway instance can tell: answered with
   * a 2xx through it within the last 30 minutes (the first such answer, carrying a new
   * `Mcp-Session-Id`, is the session's creation; a session used again after a gateway restart or a
   * long pause counts again), and not ended through it (a DELETE answered 2xx, or the upstream
   * answering 404). An open GET stream alone does not keep a session counted. At most 10,000
   * sessions are followed, the oldest forgotten first. Read by the metrics scrape, which also
   * forgets the idle ones.
   */
  get sessionCount(): number {
    const idleSince = this.#now() - SESSION_IDLE_MS;
    for (const [session, entry] of this.#sessions) {
      if (entry.lastRequest < idleSince) this.#sessions.delete(session);
    }
    return this.#sessions.size;
  }

  async handle(req: IncomingMessage, res: ServerResponse, body: unknown, principal: Principal, requestId?: string): Promise<void> {
    const id = requestIdOf(body);
    if (this.#closed) return jsonRpcError(res, 503, id, -32000, `Service Unavailable: upstream ${this.name} is shutting down`);
    const method = req.method;
    if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
      res.setHeader('allow', 'GET, POST, DELETE');
      return jsonRpcError(res, 405, id, -32000, 'Method Not Allowed');
    }
    let forwarded: Forwarded = { presented: undefined, session: undefined };
    const header = req.headers['mcp-session-id'];
    if (header !== undefined) {
      // A forged id, one signed for another principal or upstream, and a duplicated header are all
      // unknown here; the upstream is not asked, so it cannot be probed with guessed ids.
      const session = typeof header === 'string' ? this.#upstreamSession(header, principal.id) : undefined;
      if (session === undefined || typeof header !== 'string') return jsonRpcError(res, 404, id, -32001, 'Session not found');
      forwarded = { presented: header, session };
    }
    const headers = this.#requestHeaders(req, method, forwarded.session);
    if (this.#identity !== undefined) {
      const [name, value] = await this.#identity(principal);
      headers[name] = value;
    }
    let payload: string | undefined;
    if (method === 'POST') {
      payload = JSON.stringify(body);
      if (payload === undefined) return jsonRpcError(res, 400, null, -32700, 'Parse error: the request has no JSON body');
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }

    const exchange = this.#start();
    exchange.requestId = requestId;
    const onClose = (): void => {
      if (!res.writableFinished) exchange.abort(CLIENT_GONE);
    };
    res.once('close', onClose);
    let answered = false;
    try {
      const response = await this.#pool.request({ path: this.#path, method, headers, body: payload, signal: exchange });
      answered = true;
      await this.#relay(response, res, exchange, forwarded, principal, id, method);
    } catch (error) {
      this.#fail(res, id, error, exchange, method, answered);
    } finally {
      this.#finish(exchange);
      res.off('close', onClose);
    }
  }

  #start(): Exchange {
    const exchange = new Exchange(this.#config.timeout);
    this.#inFlight.add(exchange);
    return exchange;
  }

  #finish(exchange: Exchange): void {
    clearTimeout(exchange.timer);
    this.#inFlight.delete(exchange);
  }

  /** The upstream's own session id behind a signed one, when it was signed for this principal. */
  #upstreamSession(presented: string, principalId: string): string | undefined {
    const known = this.#verified.get(presented);
    // The MAC binds the principal: an id verified for one principal is unknown to every other.
    if (known !== undefined) return known.principalId === principalId ? known.session : undefined;
    const inner = this.#signer.verify(this.name, principalId, presented);
    if (inner === undefined) return undefined;
    const session = Buffer.from(inner, 'base64url').toString('utf8');
    this.#remember(presented, principalId, session);
    return session;
  }

  #remember(presented: string, principalId: string, session: string): void {
    if (this.#verified.size >= VERIFIED_SESSIONS) {
      const oldest = this.#verified.keys().next();
      if (oldest.done !== true) this.#verified.delete(oldest.value);
    }
    this.#verified.set(presented, { principalId, session });
  }

  /**
   * The caller's MCP headers that may travel, then the configured ones, then the upstream's session.
   * `Last-Event-ID` travels on GET only: "Resumption is always via HTTP GET with Last-Event-ID"
   * (transports, 2025-11-25), so on a POST it could only ask a server for events it should not replay.
   */
  #requestHeaders(req: IncomingMessage, method: string, session: string | undefined): Record<string, string> {
    const incoming = req.headers;
    const connection = incoming.connection?.toLowerCase();
    // Headers named in Connection are hop-by-hop for this request only (RFC 9110 §7.6.1).
    const hopByHop = connection === undefined || connection === 'keep-alive' || connection === 'close' ? undefined : new Set(connection.split(',').map((token) => token.trim()));
    const headers: Record<string, string> = {};
    for (const key in incoming) {
      const value = incoming[key];
      if (value === undefined || !(FORWARDED_REQUEST_HEADERS.has(key) || key.startsWith('mcp-param-')) || hopByHop?.has(key)) continue;
      if (key === 'last-event-id' && method !== 'GET') continue;
      headers[key] = Array.isArray(value) ? value.join(', ') : value;
    }
    Object.assign(headers, this.#injected);
    if (session !== undefined) headers['mcp-session-id'] = session;
    return headers;
  }

  /**
   * Follows the upstream's sessions for `sessionCount`: one lookup and a field update for a
   * request in a known session, which is the per-request cost.
   */
  #count(method: string, status: number, presented: string | undefined, answered: string | undefined): void {
    const ok = status >= 200 && status < 300;
    if (presented !== undefined) {
      if (status === 404 || (method === 'DELETE' && ok)) {
        this.#sessions.delete(presented);
        return;
      }
      const entry = this.#sessions.get(presented);
      if (entry !== undefined) {
        entry.lastRequest = this.#now();
        if (answered === undefined || answered === presented) return;
      }
    }
    const session = answered ?? presented;
    if (!ok || session === undefined || this.#sessions.has(session)) return;
    if (this.#sessions.size >= COUNTED_SESSIONS) {
      const oldest = this.#sessions.keys().next();
      if (oldest.done !== true) this.#sessions.delete(oldest.value);
    }
    this.#sessions.set(session, { lastRequest: this.#now() });
  }

  /** Relays the upstream's answer: SSE as it flows, JSON once checked, an empty body as is. */
  async #relay(response: Dispatcher.ResponseData, res: ServerResponse, exchange: Exchange, forwarded: Forwarded, principal: Principal, id: JsonRpcId, method: string): Promise<void> {
    const { statusCode, headers, body } = response;
    const type = headerValue(headers['content-type']);
    if (statusCode === 401) {
      // The upstream refused the gateway's configured credential, not the caller's: relaying a 401
      // would send the caller's client into an OAuth flow against the gateway that cannot help.
      body.dump().catch(() => {});
      throw new UpstreamProtocolError('refused the configured credentials (HTTP 401)');
    }
    const out: OutgoingHttpHeaders = {};
    if (type !== undefined) out['content-type'] = type;
    const cacheControl = headerValue(headers['cache-control']);
    if (cacheControl !== undefined) out['cache-control'] = cacheControl;
    const session = headerValue(headers['mcp-session-id']);
    if (forwarded.session !== undefined || session !== undefined) this.#count(method, statusCode, forwarded.session, session);
    if (session !== undefined) {
      // Re-signing costs an HMAC; the id the client presented is already the signed form of this one.
      if (session === forwarded.session && forwarded.presented !== undefined) out['mcp-session-id'] = forwarded.presented;
      else {
        const signed = this.#signer.sign(this.name, principal.id, Buffer.from(session, 'utf8').toString('base64url'));
        this.#remember(signed, principal.id, session);
        out['mcp-session-id'] = signed;
      }
    }
    const lowerType = type?.toLowerCase();

    if (lowerType?.startsWith('text/event-stream') === true) {
      clearTimeout(exchange.timer);
      res.writeHead(statusCode, out);
      // Headers go out now when no event came with them: a stream may stay silent for a long time
      // before its first event. An event already here (the usual answer to a POST) carries them.
      if (body.readableLength === 0) res.flushHeaders();
      await this.#stream(body, res, exchange, id, new ToolsChangedWatch());
      return;
    }
    if (lowerType !== undefined && !lowerType.startsWith('application/json')) {
      body.dump().catch(() => {});
      throw new UpstreamProtocolError(`answered with an unexpected content type (${type})`);
    }
    // A JSON answer (or an empty one) is read whole before anything is sent, under the same timeout
    // as the headers, so garbage or a stalled body still becomes a clean JSON-RPC error.
    exchange.timer.refresh();
    const chunks = await readBody(body, MAX_JSON_RESPONSE_BYTES);
    let length = 0;
    for (const chunk of chunks) length += chunk.length;
    clearTimeout(exchange.timer);
    if (lowerType === undefined) {
      if (length > 0) throw new UpstreamProtocolError('answered a body without a content type');
      res.writeHead(statusCode, out).end();
      return;
    }
    if (length === 0 && (statusCode === 202 || statusCode === 204)) {
      res.writeHead(statusCode, out).end();
      return;
    }
    const text = chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : decodeChunks(chunks);
    try {
      // RFC 8259 §8.1: a parser may ignore a leading byte order mark, and fetch's `json()` (the
      // SDKs' clients) does. Checked without it, relayed with it: the bytes pass as sent.
      JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
    } catch {
      throw new UpstreamProtocolError('answered a body that is not JSON');
    }
    out['content-length'] = length;
    res.writeHead(statusCode, out);
    // A short answer as a string: Node then sends headers and body in one write instead of a writev.
    if (length <= ONE_WRITE_BYTES) {
      res.end(text);
      return;
    }
    res.cork();
    for (const chunk of chunks) res.write(chunk);
    res.end();
  }

  /**
   * Pipes an SSE body to the client with back-pressure; a stream that breaks just ends the client's.
   * `watch` reports a changed tool list to `onToolsChanged` (JSON answers cannot carry notifications).
   */
  #stream(body: Dispatcher.ResponseData['body'], res: ServerResponse, exchange: Exchange, id: JsonRpcId, watch: ToolsChangedWatch): Promise<void> {
    return new Promise<void>((resolve) => {
      const resume = (): void => {
        body.resume();
      };
      const finish = (): void => {
        res.off('drain', resume);
        if (!res.writableEnded && !res.destroyed) res.end();
        resolve();
      };
      // What arrives in one turn of the event loop leaves in one write: an answer and the end of
      // its stream usually come together, and each write is a system call.
      let corked = false;
      const uncork = (): void => {
        corked = false;
        res.uncork();
      };
      /**
       * The stream's events carry ids, so a client can resume it (GET with `Last-Event-ID`): decided
       * on its first bytes, as servers with an event store give every event an id, the first too.
       */
      let resumable: boolean | undefined;
      /** The stream's latest bytes: where its answer is, if it came before a break. */
      let last: Buffer | undefined;
      body.on('data', (chunk: Buffer) => {
        if (!corked) {
          corked = true;
          res.cork();
          setImmediate(uncork);
        }
        if (!res.write(chunk)) body.pause();
        if (watch.seen(chunk)) this.onToolsChanged?.();
        resumable ??= (chunk[0] === 0x69 && chunk[1] === 0x64 && chunk[2] === 0x3a) || chunk.indexOf(LF_ID_FIELD) !== -1 || chunk.indexOf(CR_ID_FIELD) !== -1;
        last = chunk;
      });
      res.on('drain', resume);
      body.once('end', finish);
      body.once('error', (error: unknown) => {
        // The proxy's own aborts (client gone, closing) are not the upstream's fault.
        if (exchange.reason === undefined) {
          const code = errorCode(error);
          this.#log.warn({ upstream: this.name, requestId: exchange.requestId, id, err: code }, 'upstream stream broke off');
          this.onError?.('broken');
          // A POST's stream that cannot be resumed will not bring the answer: the client gets an
          // error for its request instead of waiting for it (blank lines first end an event cut off
          // midway), unless the answer went by just before the break.
          if (resumable !== true && id !== null && !res.writableEnded && !res.destroyed && !answersIn(last, id)) {
            const message = { jsonrpc: '2.0', id, error: { code: -32603, message: `Bad Gateway: upstream ${this.name} broke off its answer (${code})` } };
            res.write(`\n\nevent: message\ndata: ${JSON.stringify(message)}\n\n`);
          }
        }
        finish();
      });
    });
  }

  /** Maps a failed exchange to its answer: 504 for slowness, 503 while closing, 502 otherwise. */
  #fail(res: ServerResponse, id: JsonRpcId, error: unknown, exchange: Exchange, method: string, answered: boolean): void {
    const { reason, requestId } = exchange;
    if (reason === CLIENT_GONE) {
      if (!res.destroyed) res.destroy();
      return;
    }
    if (reason === CLOSING) return jsonRpcError(res, 503, id, -32000, `Service Unavailable: upstream ${this.name} is shutting down`);
    const code = errorCode(error);
    if (reason === TIMED_OUT || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
      this.#log.warn({ upstream: this.name, requestId, method, id, timeout: this.#config.timeout }, 'upstream timed out');
      this.onError?.('timeout');
      return jsonRpcError(res, 504, id, -32603, `Gateway Timeout: upstream ${this.name} did not answer within ${this.#config.timeout} ms`);
    }
    if (error instanceof UpstreamProtocolError) {
      this.#log.warn({ upstream: this.name, requestId, method, id, err: error.message }, 'upstream answered badly');
      this.onError?.('bad_answer');
      return jsonRpcError(res, 502, id, -32603, `Bad Gateway: upstream ${this.name} ${error.message}`);
    }
    this.#log.warn({ upstream: this.name, requestId, method, id, err: code }, answered ? 'upstream broke off its answer' : 'upstream unreachable');
    this.onError?.(answered ? 'broken' : 'unreachable');
    jsonRpcError(res, 502, id, -32603, `Bad Gateway: upstream ${this.name} ${answered ? 'broke off its answer' : 'is unreachable'} (${code})`);
  }

  /**
   * Asks the upstream for its tools as a client of its own (configured headers only): initialize,
   * `notifications/initialized`, `tools/list` page by page, then DELETE of the session. Each step
   * waits at most `config.timeout` for its answer.
   */
  async listTools(): Promise<unknown[]> {
    const base: Record<string, string> = { ...this.#injected, accept: 'application/json, text/event-stream' };
    let nextId = 0;
    const post = async (method: string, params: Record<string, unknown> | undefined, request: boolean): Promise<{ result: Record<string, unknown>; session: string | undefined }> => {
      const id = request ? ++nextId : undefined;
      const payload = JSON.stringify({ jsonrpc: '2.0', ...(id === undefined ? {} : { id }), method, ...(params === undefined ? {} : { params }) });
      return this.#catalogExchange(method, { ...base, 'content-type': 'application/json' }, payload, id);
    };
    const init = await post('initialize', { protocolVersion: CATALOG_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'mcp-warden-catalog', version: '0' } }, true);
    if (init.session !== undefined) base['mcp-session-id'] = init.session;
    base['mcp-protocol-version'] = typeof init.result['protocolVersion'] === 'string' ? init.result['protocolVersion'] : CATALOG_PROTOCOL_VERSION;
    try {
      await post('notifications/initialized', undefined, false);
      const tools: unknown[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 100; page++) {
        const { result } = await post('tools/list', cursor === undefined ? {} : { cursor }, true);
        if (Array.isArray(result['tools'])) tools.push(...(result['tools'] as unknown[]));
        cursor = typeof result['nextCursor'] === 'string' ? result['nextCursor'] : undefined;
        if (cursor === undefined) break;
      }
      return tools;
    } finally {
      // Ending the session frees what a stateful upstream keeps per session; 405 (no session
      // termination) and other failures change nothing for the catalog.
      if (init.session !== undefined) await this.#catalogExchange('DELETE', base, undefined, undefined).catch(() => {});
    }
  }

  /** One request of the catalog client; resolves with the answer to `id` (JSON or SSE). */
  async #catalogExchange(method: string, headers: Record<string, string>, payload: string | undefined, id: number | undefined): Promise<{ result: Record<string, unknown>; session: string | undefined }> {
    if (this.#closed) throw new Error(`upstream ${this.name} is closed`);
    const exchange = this.#start();
    try {
      const response = await this.#pool.request({ path: this.#path, method: payload === undefined ? 'DELETE' : 'POST', headers, body: payload, signal: exchange });
      const session = headerValue(response.headers['mcp-session-id']);
      if (response.statusCode >= 300) {
        await response.body.dump().catch(() => {});
        throw new Error(`${method} answered HTTP ${response.statusCode}`);
      }
      if (id === undefined) {
        await response.body.dump();
        return { result: {}, session };
      }
      const type = headerValue(response.headers['content-type'])?.toLowerCase() ?? '';
      let messages: AsyncIterable<unknown> | Iterable<unknown>;
      if (type.startsWith('text/event-stream')) messages = sseMessages(response.body as AsyncIterable<Buffer>);
      else if (type.startsWith('application/json')) {
        const parsed: unknown = await response.body.json();
        messages = Array.isArray(parsed) ? parsed : [parsed];
      } else {
        await response.body.dump().catch(() => {});
        throw new Error(`${method} answered an unexpected content type (${type || 'none'})`);
      }
      for await (const message of messages) {
        const m = message as { id?: unknown; result?: Record<string, unknown>; error?: { message?: string } };
        if (m.id !== id || (m.result === undefined && m.error === undefined)) continue;
        // Leaving the loop ends the iteration, which destroys a stream that stays open for more events.
        if (m.error !== undefined) throw new Error(`${method} failed: ${m.error.message ?? 'unknown error'}`);
        return { result: m.result ?? {}, session };
      }
      throw new Error(`${method}: the upstream ended without answering`);
    } catch (error) {
      if (exchange.reason === TIMED_OUT) throw new Error(`${method} timed out after ${this.#config.timeout} ms`, { cause: error });
      throw error;
    } finally {
      this.#finish(exchange);
    }
  }

  /** Aborts every request in flight (their clients get 503, or the end of their stream) and closes the pool. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const exchange of this.#inFlight) exchange.abort(CLOSING);
    this.#inFlight.clear();
    await this.#pool.destroy();
  }
}
