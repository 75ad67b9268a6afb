import { WardenError } from '../errors.js';
import type { RequestView } from '../http.js';
import type { ActionKind, JsonRpcId, ListFamily, McpAction } from '../types.js';

/** The body of a POST, parsed once and named for the policy. */
export interface ClassifiedBody {
  /** The parsed body: one JSON-RPC message or a batch, handed on so nobody parses it again. */
  readonly body: unknown;
  readonly batch: boolean;
  /** One action per message, in order. */
  readonly actions: readonly McpAction[];
}

/** Options of {@link classifyBody}. */
export interface ClassifyOptions {
  /**
   * Deepest nesting of arrays and objects accepted in a body.
   * @default 64
   */
  readonly maxJsonDepth?: number;
  /**
   * Most messages accepted in one batch. Every message is decided and audited, so without a bound one
   * request of a megabyte of `{"jsonrpc":"2.0","method":"n"}` is tens of thousands of audit events.
   * @default 100
   */
  readonly maxBatchSize?: number;
}

const LIST_METHODS: Record<string, ListFamily> = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/list': 'resources',
  'resources/templates/list': 'resourceTemplates',
};

const LIFECYCLE_METHODS = new Set(['initialize', 'server/discover', 'ping', 'logging/setLevel', 'subscriptions/listen']);
const RESOURCE_METHODS = new Set(['resources/read', 'resources/subscribe', 'resources/unsubscribe']);

/**
 * The body member that the 2026-07-28 `Mcp-Name` header mirrors, per method (SEP-2243 "Standard
 * Request Headers"; the same table as `MCP_NAME_HEADER_SOURCE` in the TypeScript SDK v2).
 */
const MCP_NAME_SOURCE: Record<string, string> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'tasks/get': 'taskId',
  'tasks/update': 'taskId',
  'tasks/cancel': 'taskId',
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringMember(record: Record<string, unknown> | undefined, key: string): string | undefined {
  if (record === undefined || !Object.hasOwn(record, key)) return undefined;
  const value = record[key];
  return typeof value === 'string' ? value : undefined;
}

function argumentsOf(params: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  const args = params !== undefined && Object.hasOwn(params, 'arguments') ? params['arguments'] : undefined;
  return isRecord(args) ? args : undefined;
}

/** Names one JSON-RPC message. Throws `invalid_request` for something that is not JSON-RPC 2.0. */
export function classifyMessage(message: unknown): McpAction {
  const action = classifyOne(message);
  // A request method sent without an id: decided as that request, with no `id` member at all.
  if (action.id === undefined && Object.hasOwn(action, 'id')) {
    const { id: _id, ...rest } = action;
    return rest;
  }
  return action;
}

function classifyOne(message: unknown): McpAction {
  if (!isRecord(message) || message['jsonrpc'] !== '2.0') {
    throw new WardenError('invalid_request', 'Invalid Request: not a JSON-RPC 2.0 message');
  }
  const rawId = message['id'];
  const hasId = Object.hasOwn(message, 'id');
  if (hasId && typeof rawId !== 'string' && typeof rawId !== 'number') {
    throw new WardenError('invalid_request', 'Invalid Request: the id must be a string or a number');
  }
  const id = rawId as JsonRpcId | undefined;
  const method = message['method'];
  if (method === undefined) {
    if (hasId && (Object.hasOwn(message, 'result') || Object.hasOwn(message, 'error'))) {
      return { method: 'response', kind: 'response', id: id as JsonRpcId };
    }
    throw new WardenError('invalid_request', 'Invalid Request: a message needs a method, or a result or error');
  }
  if (typeof method !== 'string' || method === '') {
    throw new WardenError('invalid_request', 'Invalid Request: the method must be a non-empty string');
  }
  const rawParams = message['params'];
  if (rawParams !== undefined && typeof rawParams !== 'object') {
    throw new WardenError('invalid_request', 'Invalid Request: params must be an object or an array');
  }
  const params = isRecord(rawParams) ? rawParams : undefined;
  // MCP's notifications are `notifications/…`. Any other method without an id is decided as the
  // request it names: JSON-RPC 2.0 has a server process a notification, so a generic dispatcher runs
  // `{"method":"tools/call","params":{"name":"wipe"}}` without an id as a call (answering nothing).
  if (!hasId && method.startsWith('notifications/')) return { method, kind: 'notification' };

  // Built property by property, in one order, rather than spread: this runs for every message.
  const list = Object.hasOwn(LIST_METHODS, method) ? LIST_METHODS[method] : undefined;
  if (list !== undefined) return { method, id: id as JsonRpcId, kind: 'list', list };
  if (method === 'tools/call') return named(method, id as JsonRpcId, 'tool', stringMember(params, 'name'), argumentsOf(params));
  if (method === 'prompts/get') return named(method, id as JsonRpcId, 'prompt', stringMember(params, 'name'), argumentsOf(params));
  if (RESOURCE_METHODS.has(method)) return named(method, id as JsonRpcId, 'resource', stringMember(params, 'uri'), undefined);
  if (method === 'completion/complete') {
    const ref = params !== undefined && isRecord(params['ref']) ? params['ref'] : undefined;
    const type = stringMember(ref, 'type');
    if (type === 'ref/prompt') return named(method, id as JsonRpcId, 'prompt', stringMember(ref, 'name'), undefined);
    if (type === 'ref/resource') {
      const action = named(method, id as JsonRpcId, 'resource', stringMember(ref, 'uri'), undefined);
      action.template = true;
      return action;
    }
    return { method, id: id as JsonRpcId, kind: 'other' };
  }
  if (method === 'subscriptions/listen') {
    const filter = listenFilterOf(params);
    if (filter.subscriptions !== undefined || filter.tasks) {
      const action: MutableAction = { method, id: id as JsonRpcId, kind: 'lifecycle' };
      if (filter.subscriptions !== undefined) action.subscriptions = filter.subscriptions;
      if (filter.tasks) action.listensToTasks = true;
      return action;
    }
  }
  if (LIFECYCLE_METHODS.has(method)) return { method, id: id as JsonRpcId, kind: 'lifecycle' };
  if (method.startsWith('tasks/')) return { method, id: id as JsonRpcId, kind: 'task' };
  return { method, id: id as JsonRpcId, kind: 'other' };
}

/** The boolean fields of a listen filter (MCP 2026-07-28, basic/patterns/subscriptions), folded (see {@link foldField}). */
const LISTEN_FLAGS: ReadonlySet<string> = new Set(['toolslistchanged', 'promptslistchanged', 'resourceslistchanged']);
/** Most resource URIs one listen may follow: each is a policy decision, made on every listen. */
const MAX_LISTEN_RESOURCES = 1000;

/**
 * A filter field's name folded: lower case, no underscores. Some servers accept a field by its
 * snake_case name as well (the python-sdk's models populate by name and by alias), so
 * `resource_subscriptions` must be read as `resourceSubscriptions` is.
 */
function foldField(key: string): string {
  return key.toLowerCase().replaceAll('_', '');
}

/**
 * What a `subscriptions/listen` asks to follow (`params.notifications`): the resource URIs of
 * `resourceSubscriptions`, and whether it names tasks (`taskIds`, the tasks extension). A filter the
 * policy cannot fully read yields `subscriptions: ['']`, which the policy refuses: one that is not an
 * object, a `resourceSubscriptions` that is not an array of strings, more than
 * {@link MAX_LISTEN_RESOURCES} URIs, or a field it does not know (a server may read it as naming
 * something; passing it on unread would fail open). Fields are read with `for…in`, inherited ones
 * included, as an upstream's validator reading `filter[key]` would see them.
 */
function listenFilterOf(params: Record<string, unknown> | undefined): { subscriptions?: readonly string[]; tasks?: boolean } {
  if (params === undefined || !Object.hasOwn(params, 'notifications')) return {};
  const filter = params['notifications'];
  if (filter === undefined || filter === null) return {};
  const refused = { subscriptions: Object.freeze(['']) };
  if (!isRecord(filter)) return refused;
  const uris: string[] = [];
  let tasks = false;
  for (const key in filter) {
    const folded = foldField(key);
    const value = (filter as Record<string, unknown>)[key];
    if (LISTEN_FLAGS.has(folded)) continue;
    if (folded === 'taskids') {
      if (value !== undefined && value !== null) tasks = true;
      continue;
    }
    if (folded !== 'resourcesubscriptions') return refused;
    if (value === undefined || value === null) continue;
    if (!Array.isArray(value) || !value.every((uri) => typeof uri === 'string')) return refused;
    uris.push(...(value as string[]));
    if (uris.length > MAX_LISTEN_RESOURCES) return refused;
  }
  return { ...(uris.length === 0 ? {} : { subscriptions: Object.freeze(uris) }), tasks };
}

type MutableAction = { -readonly [K in keyof McpAction]: McpAction[K] };

function named(method: string, id: JsonRpcId, kind: ActionKind, target: string | undefined, args: Record<string, unknown> | undefined): MutableAction {
  const action: MutableAction = { method, id, kind };
  if (target !== undefined) action.target = target;
  if (args !== undefined) action.arguments = args;
  return action;
}

/**
 * Parses a POST body once (a single message or a batch) and names each message. Malformed JSON is a
 * JSON-RPC parse error (400), never an HTML page or a stack trace.
 */
export function classifyBody(text: string, options: ClassifyOptions = {}): ClassifiedBody {
  const maxDepth = options.maxJsonDepth ?? 64;
  const scanned = scanJsonText(text, maxDepth, MAYBE_INEXACT.test(text));
  if (scanned.tooDeep) {
    throw new WardenError('parse_error', `Parse error: the JSON nests deeper than ${maxDepth} levels`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new WardenError('parse_error', 'Parse error: the body is not valid JSON');
  }
  const inexact = scanned.inexact;
  if (inexact !== undefined) {
    throw new WardenError(
      'invalid_request',
      `Invalid Request: the number ${clip(inexact, 40)} is beyond what a double holds exactly, so it would not reach the server as sent; send it as a string`,
    );
  }
  return classifyParsed(body, options);
}

/**
 * What a number must hold to be changed by `JSON.parse` and `JSON.stringify`: 16 digits in a row (no
 * shorter integer exceeds 2^53, 9007199254740992) or an exponent of 3 digits (a double ends near 1e308).
 */
const MAYBE_INEXACT = /\d{16}|[eE]\+?\d{3}/;

/**
 * One linear pass over a JSON text, strings skipped: whether it nests arrays and objects deeper
 * than `maxDepth`, and the first number that would not reach the server as sent (when `numbers`):
 * an integer literal a double cannot hold exactly, or a number beyond a double's range. The text is
 * parsed, checked and passed on as what `JSON.parse` made of it (the gateway sends `JSON.stringify`
 * of that): `12345678901234567890` became `12345678901234567000`, an id 2^53 + 1 came back as 2^53,
 * and `1e400` became `null`.
 */
function scanJsonText(text: string, maxDepth: number, numbers: boolean): { tooDeep: boolean; inexact?: string } {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) return { tooDeep: true };
    } else if (c === 0x7d || c === 0x5d) depth--;
    else if (numbers && (c === 0x2d || (c >= 0x30 && c <= 0x39))) {
      // A number: its whole token (digits, sign, fraction, exponent).
      let end = i + 1;
      for (; end < text.length; end++) {
        const d = text.charCodeAt(end);
        if (!((d >= 0x30 && d <= 0x39) || d === 0x2e || d === 0x65 || d === 0x45 || d === 0x2b || d === 0x2d)) break;
      }
      const token = text.slice(i, end);
      const value = Number(token);
      // Exactly: 2^53 itself and many larger integers (powers of two) are held as written.
      if (!Number.isFinite(value) || (end - i >= 16 && !/[.eE]/.test(token) && BigInt(token) !== BigInt(value))) return { tooDeep: false, inexact: token };
      i = end - 1;
    }
  }
  return { tooDeep: false };
}

/** The first number of a JSON text that would not reach the server as sent (see {@link scanJsonText}). */
export function inexactNumber(text: string): string | undefined {
  return scanJsonText(text, Number.POSITIVE_INFINITY, MAYBE_INEXACT.test(text)).inexact;
}

/**
 * A member name folded as Go's `encoding/json` matches names to struct fields (`foldName`: ASCII
 * upper-cased, any other character mapped to the upper case of its lower case, so `ſ` is `S` and the
 * Kelvin sign is `K`). JavaScript has only the full mappings: where one gives several characters,
 * the single character it started from is kept, as Go's simple mappings mostly do; U+0130, whose
 * simple lower case is `i`, is mapped so.
 */
function foldMemberName(name: string): string {
  if (!NON_ASCII.test(name)) return name.toUpperCase();
  let out = '';
  for (const char of name) {
    if (char.charCodeAt(0) < 0x80) {
      out += char.toUpperCase();
      continue;
    }
    let lower = char === '\u0130' ? 'i' : char.toLowerCase();
    if ([...lower].length !== 1) lower = char;
    const upper = lower.toUpperCase();
    out += [...upper].length === 1 ? upper : lower;
  }
  return out;
}

const NON_ASCII = /[\u0080-\uffff]/;

/** `text` cut to `max` characters (with an ellipsis), for names echoed in an error. */
function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
/** A name no other can fold to unless it holds an upper-case letter or a character beyond ASCII. */
const FOLDABLE = /[A-Z\u0080-\uffff]/;

/**
 * The first object (a JSON path, and two of its member names) holding two names that differ only
 * as Go's `encoding/json` folds them. A server whose parser matches names that way reads the last of
 * them where mcp-warden reads the exact one: `{"method":"tools/list","Method":"tools/call"}` is a
 * list for the policy and a call for it (the Go SDK's GHSA-wvj2-96wp-fq3f, CVE-2026-27896; Go's
 * standard library still parses so, and many servers use it).
 */
function foldedDuplicate(body: unknown, maxDepth: number): { path: string; names: [string, string] } | { tooDeep: true } | undefined {
  // Depth first without recursion (a body parsed before the pipeline was not depth-checked, and is
  // checked here: `depth` counts the arrays and objects around a value, as the text scan does); the
  // path is made only for the object found, from each entry's parent and key.
  interface Entry {
    readonly value: object;
    readonly parent: Entry | undefined;
    readonly key: string | number;
    readonly depth: number;
  }
  const pathOf = (entry: Entry): string => {
    let path = '';
    for (let at: Entry | undefined = entry; at?.parent !== undefined; at = at.parent) path = `${typeof at.key === 'number' ? `[${at.key}]` : `.${at.key}`}${path}`;
    return `$${path}`;
  };
  const stack: Entry[] = typeof body === 'object' && body !== null ? [{ value: body, parent: undefined, key: '', depth: 1 }] : [];
  for (let entry = stack.pop(); entry !== undefined; entry = stack.pop()) {
    if (entry.depth > maxDepth) return { tooDeep: true };
    const value = entry.value;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) {
        const item: unknown = value[i];
        if (typeof item === 'object' && item !== null) stack.push({ value: item, parent: entry, key: i, depth: entry.depth + 1 });
      }
      continue;
    }
    const record = value as Record<string, unknown>;
    const names = Object.keys(record);
    if (names.length > 1 && names.some((name) => FOLDABLE.test(name))) {
      const seen = new Map<string, string>();
      for (const name of names) {
        const folded = foldMemberName(name);
        const other = seen.get(folded);
        if (other !== undefined) return { path: pathOf(entry), names: [other, name] };
        seen.set(folded, name);
      }
    }
    for (let i = names.length - 1; i >= 0; i--) {
      const name = names[i] as string;
      const member = record[name];
      if (typeof member === 'object' && member !== null) stack.push({ value: member, parent: entry, key: name, depth: entry.depth + 1 });
    }
  }
  return undefined;
}

/** Names the messages of an already parsed body (when a body parser ran before the pipeline). */
export function classifyParsed(body: unknown, options: ClassifyOptions = {}): ClassifiedBody {
  const maxBatch = options.maxBatchSize ?? 100;
  if (Array.isArray(body) && body.length > maxBatch) {
    throw new WardenError('invalid_request', `Invalid Request: a batch of ${body.length} messages; at most ${maxBatch} are accepted in one request`);
  }
  const maxDepth = options.maxJsonDepth ?? 64;
  const duplicate = foldedDuplicate(body, maxDepth);
  if (duplicate !== undefined && 'tooDeep' in duplicate) {
    throw new WardenError('parse_error', `Parse error: the JSON nests deeper than ${maxDepth} levels`);
  }
  if (duplicate !== undefined) {
    const [first, second] = duplicate.names.map((name) => JSON.stringify(clip(name, 64)));
    throw new WardenError(
      'invalid_request',
      `Invalid Request: ${clip(duplicate.path, 200)} has members ${first} and ${second}, which differ only in case; JSON-RPC names are exact, and a server that matches them loosely would read another one than mcp-warden does`,
    );
  }
  if (Array.isArray(body)) {
    if (body.length === 0) throw new WardenError('invalid_request', 'Invalid Request: an empty batch');
    return { body, batch: true, actions: body.map(classifyMessage) };
  }
  return { body, batch: false, actions: [classifyMessage(body)] };
}

const BASE64_SENTINEL = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/;

/** Decodes an `Mcp-Name` value: plain, or the `=?base64?…?=` sentinel carrying UTF-8. */
export function decodeMcpHeaderValue(value: string): string | undefined {
  const match = BASE64_SENTINEL.exec(value);
  if (match === null) return value;
  const payload = match[1] ?? '';
  if (payload.length % 4 !== 0) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(payload, 'base64'));
  } catch {
    return undefined;
  }
}

/**
 * The 2026-07-28 cross-check: requests repeat their method and name in `Mcp-Method` / `Mcp-Name`
 * headers so intermediaries can route without parsing. mcp-warden always decides from the body, and
 * refuses (400, `HEADER_MISMATCH`) a request whose headers disagree with it, so nothing downstream
 * that trusts the headers can be steered past the policy.
 */
export function checkMcpHeaders(request: RequestView, classified: ClassifiedBody): void {
  const methodHeader = request.header('mcp-method');
  const nameHeader = request.header('mcp-name');
  if (methodHeader === undefined && nameHeader === undefined) return;
  const first = classified.actions[0];
  const id = classified.batch ? undefined : first?.id;
  if (request.headerCount('mcp-method') > 1 || request.headerCount('mcp-name') > 1) {
    throw mismatch('the Mcp-Method and Mcp-Name headers may appear once each', id);
  }
  if (classified.batch || first === undefined || first.kind === 'response') {
    throw mismatch('Mcp-Method and Mcp-Name describe a single request, but the body is not one');
  }
  if (methodHeader !== undefined && methodHeader.trim() !== first.method) {
    throw mismatch(`the body names method ${JSON.stringify(first.method)} but the Mcp-Method header does not`, id);
  }
  if (nameHeader !== undefined && Object.hasOwn(MCP_NAME_SOURCE, first.method)) {
    const decoded = decodeMcpHeaderValue(nameHeader.trim());
    const body = classified.body as { params?: Record<string, unknown> };
    const field = MCP_NAME_SOURCE[first.method] ?? '';
    const bodyValue = isRecord(body.params) ? body.params[field] : undefined;
    if (decoded === undefined || decoded !== bodyValue) {
      throw mismatch(`the Mcp-Name header does not match params.${field} of the body`, id);
    }
  }
}

/** The answer keeps the request's id, so a 2026-07-28 client reads it as the request's JSON-RPC error. */
function mismatch(description: string, id?: JsonRpcId): WardenError {
  return new WardenError('header_mismatch', `Bad Request: the request headers and body disagree: ${description}`, id === undefined ? {} : { id });
}
