import type { Policy } from '../authz/policy.js';
import type { JsonRpcId, ListFamily, McpAction, Principal } from '../types.js';
import { keptSignature, listItemDecider } from './list-decisions.js';
import { LIST_RESULT_EXTRAS, type ScannedItem, TextChunks, bytesOf, listedItems, scanListResponse, unicodeOf } from './list-scan.js';

/**
 * List filtering: `tools/list`, `prompts/list`, `resources/list` and `resources/templates/list`
 * results are trimmed to what the principal may use, with the same `decide` that guards the calls, so
 * a hidden tool is also uncallable and a visible one callable. Works on JSON bodies and on SSE
 * streams; the gateway reuses it on proxied responses. Pagination cursors pass through untouched.
 */

/** The list requests of one HTTP exchange, by JSON-RPC id. */
export type PendingLists = ReadonlyMap<JsonRpcId, ListFamily>;

/**
 * The pending lists of an exchange that asked for none (a POST without a list request, a GET). Its
 * stream may still carry list answers: a server keeping its events replays them to a GET with
 * `Last-Event-ID`, and the official SDK's transport routes an answer to the stream of the last
 * request with the same id, so a `tools/list` answered while a call with its id is open goes out on
 * the call's stream. Every list answer is filtered by what it holds, wherever it goes (see
 * `filterMessage`); with no list requested, an event or body is only read when its text names a
 * list member (or holds a `\u00XX` escape that could spell one).
 */
export const NO_LIST_REQUESTS: PendingLists = Object.freeze(new Map<JsonRpcId, ListFamily>());

/** Collects the list requests among classified actions; `undefined` when there are none. */
export function pendingListsOf(actions: readonly McpAction[]): PendingLists | undefined {
  let lists: Map<JsonRpcId, ListFamily> | undefined;
  for (const action of actions) {
    if (action.kind === 'list' && action.list !== undefined && action.id !== undefined) {
      (lists ??= new Map()).set(action.id, action.list);
    }
  }
  return lists;
}

const ITEM_KEY: Record<ListFamily, { readonly member: string; readonly field: string }> = {
  tools: { member: 'tools', field: 'name' },
  prompts: { member: 'prompts', field: 'name' },
  resources: { member: 'resources', field: 'uri' },
  resourceTemplates: { member: 'resourceTemplates', field: 'uriTemplate' },
};

/**
 * Returns the result with only the items the principal may use. Items without a string name/URI
 * are dropped. Tool annotations in a `tools/list` result are learned first, so the filter and later
 * calls agree.
 */
export function filterListResult(
  family: ListFamily,
  result: Record<string, unknown>,
  principal: Principal,
  policy: Policy,
  learn = true,
): Record<string, unknown> {
  const { member, field } = ITEM_KEY[family];
  const items = result[member];
  if (!Array.isArray(items)) return result;
  if (family === 'tools' && learn) policy.annotations.learn(items);
  const allowed = listItemDecider(policy, principal, family);
  const kept = items.filter((item: unknown) => {
    if (typeof item !== 'object' || item === null) return false;
    const target = (item as Record<string, unknown>)[field];
    return typeof target === 'string' && allowed(target);
  });
  return kept.length === items.length ? result : { ...result, [member]: kept };
}

/** Every list family, in the order a result's lists are filtered. */
const FAMILIES = Object.keys(ITEM_KEY) as readonly ListFamily[];

/**
 * A message with every list its result holds filtered. Which request it answers does not matter:
 * an answer can reach the stream of another request (see {@link NO_LIST_REQUESTS}). Tool annotations
 * are only learned from the answer to a `tools/list` of this exchange, matched by id, that holds
 * nothing but the list ({@link listOnly}): anything else is decided with what the policy knows already.
 */
function filterMessage(message: unknown, lists: PendingLists, principal: Principal, policy: Policy): unknown {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return message;
  const m = message as Record<string, unknown>;
  if (typeof m['result'] !== 'object' || m['result'] === null) return message;
  const id = m['id'];
  const result = m['result'] as Record<string, unknown>;
  // A result with a null or missing id (a loose server's answer to a notification) is filtered too.
  const asked = typeof id === 'string' || typeof id === 'number' ? lists.get(id) : undefined;
  let filtered = result;
  for (const family of FAMILIES) {
    if (Array.isArray(filtered[ITEM_KEY[family].member])) filtered = filterListResult(family, filtered, principal, policy, family === asked && listOnly(result, family));
  }
  return filtered === result ? message : { ...m, result: filtered };
}

/**
 * Whether a result holds only its list and what may go beside one ({@link LIST_RESULT_EXTRAS}), as
 * the answer to a list request does. Annotations are learned only from such a result: the SDKs route
 * an answer by its id, so another request's answer with that id (a tool's result that happens to
 * hold a `tools` member) can arrive where a `tools/list` is awaited.
 */
function listOnly(result: Record<string, unknown>, family: ListFamily): boolean {
  const member = ITEM_KEY[family].member;
  for (const key in result) if (key !== member && !LIST_RESULT_EXTRAS.has(key)) return false;
  return true;
}

const NOT_SCANNED = Symbol('not scanned');

/**
 * Longest piece of output text, in UTF-16 code units: at most 96 KiB of UTF-8, so neither the string
 * nor its encoded copy is big enough for V8's or malloc's own mapping (see list-scan.ts).
 */
const PIECE = 32 * 1024;

/** Gathers output text as pieces of at most {@link PIECE} code units, short strings joined together. */
class Pieces {
  readonly out: string[] = [];
  #pending: string[] = [];
  #size = 0;

  add(text: string): void {
    if (this.#size + text.length > PIECE) this.#flush();
    if (text.length >= PIECE) this.out.push(text);
    else {
      this.#pending.push(text);
      this.#size += text.length;
    }
  }

  addRange(text: TextChunks, start: number, end: number): void {
    for (const piece of text.pieces(start, end, PIECE)) this.add(piece);
  }

  #flush(): void {
    if (this.#pending.length > 0) this.out.push(this.#pending.length === 1 ? (this.#pending[0] as string) : this.#pending.join(''));
    this.#pending = [];
    this.#size = 0;
  }

  done(): string[] {
    this.#flush();
    return this.out;
  }
}

/**
 * The fast path for the usual case (one list request, its response a single message): keep items by
 * slicing the original text, learning annotations from the scanned items. `NOT_SCANNED` when the text
 * is not of the shape the scanner accepts; the JSON path then decides.
 */
function filterByScan(text: TextChunks, lists: PendingLists, principal: Principal, policy: Policy): string[] | undefined | typeof NOT_SCANNED {
  const [id, family] = lists.entries().next().value as [JsonRpcId, ListFamily];
  const { member, field } = ITEM_KEY[family];
  const scanned = scanListResponse(text, member, field, family === 'tools');
  if (scanned === undefined) return NOT_SCANNED;
  // An answer to another request (or to none of this exchange): filtered without learning from it.
  if (scanned.id !== id) return NOT_SCANNED;
  // The names and annotations of a remembered scan are one frozen array, whatever the answer's id:
  // learned once until anything else is, and the policy's answers about them remembered.
  const listed = listedItems(scanned);
  // Another request's answer with this id holding a tools member: filtered, not learned from.
  if (family === 'tools' && scanned.listOnly) {
    try {
      policy.annotations.learnTextsOf(listed, () => {
        const tools: { name: string; annotations?: string | undefined }[] = [];
        for (const item of listed) if (item.key !== undefined) tools.push({ name: item.key, annotations: item.annotations });
        return tools;
      });
    } catch {
      return NOT_SCANNED;
    }
  }
  const signature = keptSignature(policy, principal, family, listed);
  if (!signature.includes('0')) return undefined;
  const out = new Pieces();
  out.addRange(text, 0, scanned.arrayStart);
  // What is kept of the array is a function of the items' text and which are kept: remembered for
  // a remembered scan (its frozen listed items), whose answers differ at most in their id, outside it.
  let byKept = keptArrays.get(listed);
  let array = byKept?.get(signature);
  if (array === undefined) {
    array = keptArray(text, scanned.items, signature);
    if (byKept === undefined) keptArrays.set(listed, (byKept = new Map()));
    if (byKept.size >= KEPT_ARRAYS_PER_LIST) byKept.delete(byKept.keys().next().value as string);
    byKept.set(signature, array);
  }
  for (const piece of array) out.add(piece);
  out.addRange(text, scanned.arrayEnd, text.length);
  return out.done();
}

/** The kept part of a list's array, by the list's items and by which are kept ('1'/'0' per item). */
const keptArrays = new WeakMap<readonly ScannedItem[], Map<string, readonly string[]>>();
const KEPT_ARRAYS_PER_LIST = 8;

/** The array with only the kept items (`signature[i] === '1'`), from `[` to `]`, in pieces. */
function keptArray(text: TextChunks, items: readonly ScannedItem[], signature: string): readonly string[] {
  const out = new Pieces();
  out.add('[');
  // Runs of kept items are sliced whole, the separators between them included.
  let first = true;
  for (let i = 0; i < items.length; i++) {
    if (signature.charCodeAt(i) !== 0x31) continue;
    let j = i;
    while (j + 1 < items.length && signature.charCodeAt(j + 1) === 0x31) j++;
    if (!first) out.add(',');
    first = false;
    out.addRange(text, (items[i] as ScannedItem).start, (items[j] as ScannedItem).end);
    i = j;
  }
  out.add(']');
  return out.done();
}

/**
 * Filters a JSON response body (one message or a batch). Returns the new text, or `undefined` when
 * nothing changed, including a body that is not JSON. Such a body may be a list cut off midway,
 * whose raw text names what the policy hides: to send a whole answer, use {@link filterJsonAnswer},
 * which says so ({@link WITHHELD}).
 */
export function filterJsonBody(text: string, lists: PendingLists, principal: Principal, policy: Policy): string | undefined {
  return filterJsonChunks([text], lists, principal, policy)?.join('');
}

/**
 * {@link filterJsonBody} for a body in the chunks it arrived in; the new text comes back in pieces of
 * at most 32 Ki code units, so a big list is never held as one string (see list-scan.ts for why).
 * With `bytes`, the chunks hold UTF-8 bytes, one per code unit, and so do the pieces returned (see
 * `unicodeOf` in list-scan.ts): a proxy then neither decodes nor encodes the text it relays.
 */
export function filterJsonChunks(chunks: readonly string[], lists: PendingLists, principal: Principal, policy: Policy, bytes = false): string[] | undefined {
  const out = filterJsonAnswer(chunks, lists, principal, policy, bytes);
  return out === WITHHELD ? undefined : out;
}

/** What {@link filterJsonAnswer} makes of an answer that is not JSON yet may hold a list: it must not pass. */
export const WITHHELD = Symbol('withheld');

/**
 * {@link filterJsonChunks} for a whole answer about to be sent: a text that is not JSON but may hold
 * a list (it names a list member or escapes a letter, as a list cut off midway does) is
 * {@link WITHHELD}. Its raw text would show the client what the policy hides, as an SSE event's
 * would, whose data the SSE filter drops. Text that is not JSON and holds no such thing (an HTML
 * error page) passes as it came.
 */
export function filterJsonAnswer(chunks: readonly string[], lists: PendingLists, principal: Principal, policy: Policy, bytes = false): string[] | undefined | typeof WITHHELD {
  // A byte order mark opening the body is dropped by a client's decoder before it parses (fetch's
  // `json()` and `text()` do, RFC 8259 section 8.1 lets parsers ignore it): the filter reads what
  // follows it, as the client will, and keeps the mark in a rewritten body.
  const bom = bytes ? BOM_BYTES : BOM_TEXT;
  const marked = lineHead(chunks, bom.length) === bom;
  const text = marked ? lineTail(chunks, bom.length) : chunks;
  const out = filterJsonText(text, lists, principal, policy, bytes);
  if (out === NOT_JSON) return mayHoldList(text) ? WITHHELD : undefined;
  return out === undefined || !marked ? out : [bom, ...out];
}

/** The JSON-RPC error sent instead of a {@link WITHHELD} answer (node and web filters alike). */
export function withheldBody(): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id: null,
    error: { code: -32603, message: 'Internal error: the answer is not valid JSON (cut off?) and may hold a list this caller may not see in full, so mcp-warden withheld it' },
  });
}

/** Texts one of which a JSON text must hold to hold a list: a list member's name as a key, or an escape. */
const LIST_NEEDLES = ['"tools"', '"prompts"', '"resources"', '"resourceTemplates"'];
/**
 * An escape that could spell a letter of a member's name (U+0040–U+007F). Escapes of other
 * characters, such as those of a server escaping all non-ASCII text (Python's `json.dumps`), do not
 * make a text worth parsing.
 */
const LETTER_ESCAPE = /\\u00[4-7]/;
const LONGEST_NEEDLE = 20;

/**
 * Whether a text (in chunks, as text or as bytes: the needles are ASCII) may hold a list: it names a
 * list member in quotes or holds an escape of a character in U+0040–U+007F (which could spell one).
 * A needle cut between chunks is found too. Text that is not JSON passes: the filter only reads JSON
 * it may have to change.
 */
function mayHoldList(chunks: readonly string[]): boolean {
  /** The last code units of the text before the chunk (a needle may begin there). */
  let tail = '';
  for (const chunk of chunks) {
    for (const needle of LIST_NEEDLES) if (chunk.includes(needle)) return true;
    if (LETTER_ESCAPE.test(chunk)) return true;
    if (tail !== '') {
      const seam = tail + chunk.slice(0, LONGEST_NEEDLE);
      for (const needle of LIST_NEEDLES) if (seam.includes(needle)) return true;
      if (LETTER_ESCAPE.test(seam)) return true;
    }
    tail = chunk.length >= LONGEST_NEEDLE ? chunk.slice(-LONGEST_NEEDLE) : (tail + chunk).slice(-LONGEST_NEEDLE);
  }
  return false;
}

/** {@link mayHoldList} of one chunk of bytes, read where it lies (no string is made of it). */
function bytesMayHoldList(chunk: Buffer): boolean {
  for (const needle of LIST_NEEDLES) if (chunk.includes(needle, 0, 'latin1')) return true;
  // LETTER_ESCAPE, byte by byte: a backslash, `u00`, then one of `4`–`7`.
  for (let at = chunk.indexOf('\\u00', 0, 'latin1'); at !== -1; at = chunk.indexOf('\\u00', at + 1, 'latin1')) {
    const digit = chunk[at + 4];
    if (digit !== undefined && digit >= 0x34 && digit <= 0x37) return true;
  }
  return false;
}

/**
 * The JSON-RPC error sent instead of an answer whose content coding the filter cannot read (node and
 * web filters alike): passed on, the client would decode it and see every list.
 */
export function codingRefusalBody(coding: string): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id: null,
    error: { code: -32603, message: `Internal error: the response is encoded (Content-Encoding: ${coding}) in a way mcp-warden cannot read to filter it; compress responses after mcp-warden, not before it` },
  });
}

/** What the filter makes of a text that is not JSON (an SSE event drops it; a body passes on as it came). */
const NOT_JSON = Symbol('not JSON');

/** {@link filterJsonChunks}, telling a text that is not JSON apart from one with nothing to change. */
function filterJsonText(chunks: readonly string[], lists: PendingLists, principal: Principal, policy: Policy, bytes: boolean): string[] | undefined | typeof NOT_JSON {
  if (lists.size === 0 && !mayHoldList(chunks)) return undefined;
  const text = new TextChunks(chunks, bytes);
  if (lists.size === 1) {
    const fast = filterByScan(text, lists, principal, policy);
    if (fast !== NOT_SCANNED) return fast;
  }
  const parsed = parseAndFilter(bytes ? unicodeOf(text.join()) : text.join(), lists, principal, policy);
  if (parsed === NOT_JSON || parsed === undefined) return parsed;
  return [bytes ? bytesOf(parsed) : parsed];
}

/** The general path: parse, filter, serialise. Exported for tests that compare it with the scan. */
export function filterJsonBodyParsed(text: string, lists: PendingLists, principal: Principal, policy: Policy): string | undefined {
  const out = parseAndFilter(text, lists, principal, policy);
  return out === NOT_JSON ? undefined : out;
}

function parseAndFilter(text: string, lists: PendingLists, principal: Principal, policy: Policy): string | undefined | typeof NOT_JSON {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return NOT_JSON;
  }
  if (Array.isArray(parsed)) {
    let changed = false;
    const out = parsed.map((m) => {
      const f = filterMessage(m, lists, principal, policy);
      if (f !== m) changed = true;
      return f;
    });
    return changed ? JSON.stringify(out) : undefined;
  }
  const filtered = filterMessage(parsed, lists, principal, policy);
  return filtered === parsed ? undefined : JSON.stringify(filtered);
}

/** One line of an SSE stream, in the pieces it arrived in (a long `data` line spans many chunks). */
type Line = string[];

function lineLength(line: Line): number {
  let n = 0;
  for (const piece of line) n += piece.length;
  return n;
}

/** The first `n` code units of a line (fewer when it is shorter). */
function lineHead(line: readonly string[], n: number): string {
  let head = '';
  for (const piece of line) {
    head += piece;
    if (head.length >= n) break;
  }
  return head.slice(0, n);
}

/** The line without its first `n` code units. */
function lineTail(line: readonly string[], n: number): Line {
  const out: Line = [];
  for (const piece of line) {
    if (n >= piece.length) n -= piece.length;
    else {
      out.push(n === 0 ? piece : piece.slice(n));
      n = 0;
    }
  }
  return out;
}

/**
 * An SSE line's field, as clients read it (WHATWG HTML, "process the field"): the name is the text
 * before the first colon, or the whole line when it has none (`event` alone sets an empty type, and
 * `data` alone adds an empty line of data). Only the two fields the filter acts on are told apart.
 */
function fieldOf(line: Line): 'data' | 'event' | undefined {
  const head = lineHead(line, 6);
  if (head.startsWith('data:') || head === 'data') return 'data';
  if (head === 'event:' || head === 'event') return 'event';
  return undefined;
}

/** Adds an event's lines but its data lines, each with its line end; whether any was added. */
function addNonData(lines: readonly Line[], out: Pieces): boolean {
  let any = false;
  for (const line of lines) {
    if (fieldOf(line) === 'data') continue;
    for (const piece of line) out.add(piece);
    out.add('\n');
    any = true;
  }
  return any;
}

/** The byte order mark as text, and as UTF-8 bytes one per code unit. */
const BOM_TEXT = '\uFEFF';
const BOM_BYTES = '\xEF\xBB\xBF';

/**
 * An incremental SSE (text/event-stream) rewriter. Feed it decoded text as it arrives (or, with
 * `bytes`, its UTF-8 bytes one per code unit, see {@link filterJsonChunks}); it returns what may be
 * sent on at once, in the same form. Events pass through as soon as their closing blank line arrives
 * (a comment outside an event at once); events whose response holds a list are rewritten, whatever
 * request they answer and whatever their type; a `message` event whose data is not JSON, and an event
 * the stream ends in the middle of, lose their data. Line ends are looked for in each chunk once, and
 * a long line is kept in the pieces it came in, never joined (see list-scan.ts for why a big string
 * is dear).
 */
/**
 * Turns an SSE event id (its UTF-8 bytes) into the id the client gets: ASCII, no line ends. The
 * gateway seals the ids of an HTTP upstream's events to the caller, so a `Last-Event-ID` can only
 * resume the caller's own events.
 */
export type EventIdSeal = (id: Buffer) => string;

export class SseListFilter {
  readonly #lists: PendingLists;
  readonly #principal: Principal;
  readonly #policy: Policy;
  /** The unfinished line's text, in the chunks it came in. */
  #held: Line = [];
  /** The finished lines of the unfinished event. */
  #lines: Line[] = [];
  /** The last chunk ended with a CR: an LF opening the next one is the rest of that line end. */
  #afterCr = false;
  /** The stream's text is UTF-8 bytes, one per code unit (see {@link filterJsonChunks}). */
  readonly #bytes: boolean;
  /** The stream's first code units while they may still be a byte order mark; undefined once decided. */
  #opening: string | undefined = '';
  /** What an event's `id` becomes on the way out (see {@link EventIdSeal}). */
  readonly #sealId: EventIdSeal | undefined;

  constructor(lists: PendingLists, principal: Principal, policy: Policy, bytes = false, sealId?: EventIdSeal) {
    this.#lists = lists;
    this.#principal = principal;
    this.#policy = policy;
    this.#bytes = bytes;
    this.#sealId = sealId;
  }

  /** An event's lines with a non-empty `id` field sealed (an empty one, which resets the client's last id, stays). */
  #sealed(lines: Line[]): Line[] {
    const seal = this.#sealId;
    if (seal === undefined) return lines;
    // Copied only when an id is sealed: most events (an answer without resumability) have none.
    let sealed: Line[] | undefined;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as Line;
      const head = lineHead(line, 4);
      if (!head.startsWith('id:')) continue;
      const value = lineTail(line, head === 'id: ' ? 4 : 3).join('');
      // Empty: resets the client's last id. With a NUL: ignored by clients (WHATWG HTML, "process the field").
      if (value === '' || value.includes('\0')) continue;
      sealed ??= [...lines];
      sealed[i] = [`id: ${seal(Buffer.from(value, this.#bytes ? 'latin1' : 'utf8'))}`];
    }
    return sealed ?? lines;
  }

  /**
   * Whether a chunk may go on exactly as it came, without being read line by line: it is what
   * {@link pushPieces} would send for it. That holds for a chunk of whole events (none left open
   * before it, and it ends with a blank line) with LF line ends only (a CR ending is sent as LF),
   * no event id to seal, and nothing that may hold a list (see `mayHoldList`) while no list answer
   * is awaited: every event then goes on as it is. The usual answer to a call (one `message` event in
   * one chunk) is one, and is checked with a few searches instead of being split into lines and
   * pieces. `chunk` is a string of the stream's text, or (for a filter of bytes) a Buffer of them.
   * Returns false (and changes nothing) when the chunk must go through {@link pushPieces}.
   */
  passesWhole(chunk: string | Buffer): boolean {
    if (this.#lists.size !== 0 || this.#held.length !== 0 || this.#lines.length !== 0 || this.#afterCr) return false;
    if (typeof chunk === 'string' ? this.#bytes : !this.#bytes) return false;
    const length = chunk.length;
    if (length < 2) return false;
    const first = typeof chunk === 'string' ? chunk.charCodeAt(0) : (chunk[0] as number);
    if (this.#opening !== undefined) {
      // Nothing read yet: a chunk that may open with a byte order mark goes the long way.
      if (this.#opening !== '' || first === (this.#bytes ? 0xef : 0xfeff)) return false;
    }
    if (typeof chunk === 'string') {
      if (chunk.charCodeAt(length - 1) !== 0x0a || chunk.charCodeAt(length - 2) !== 0x0a || chunk.includes('\r')) return false;
      if (this.#sealId !== undefined && (chunk.startsWith('id:') || chunk.includes('\nid:'))) return false;
      if (mayHoldList([chunk])) return false;
    } else {
      if (chunk[length - 1] !== 0x0a || chunk[length - 2] !== 0x0a || chunk.includes(0x0d)) return false;
      if (this.#sealId !== undefined && ((first === 0x69 && chunk[1] === 0x64 && chunk[2] === 0x3a) || chunk.includes('\nid:', 0, 'latin1'))) return false;
      if (bytesMayHoldList(chunk)) return false;
    }
    // The stream's opening was not a byte order mark (checked above): decided, as pushPieces would.
    this.#opening = undefined;
    return true;
  }

  /** Accepts a chunk of the stream; returns the text to send on now. */
  push(chunk: string): string {
    return this.pushPieces(chunk).join('');
  }

  /** Ends the stream: returns what was held back (an unfinished event without its data, see {@link flushPieces}). */
  flush(): string {
    return this.flushPieces().join('');
  }

  /** {@link push}, with the text to send in pieces of at most 32 Ki code units. */
  pushPieces(chunk: string): string[] {
    if (this.#opening === undefined) return this.#push(chunk);
    // A client's decoder drops a byte order mark that opens the stream (the SDK's TextDecoderStream
    // does) and reads the line after it: the filter must read that line too. The mark is relayed.
    const bom = this.#bytes ? BOM_BYTES : BOM_TEXT;
    const opening = this.#opening + chunk;
    if (opening.length < bom.length && bom.startsWith(opening)) {
      this.#opening = opening;
      return [];
    }
    this.#opening = undefined;
    return opening.startsWith(bom) ? [bom, ...this.#push(opening.slice(bom.length))] : this.#push(opening);
  }

  #push(chunk: string): string[] {
    const out = new Pieces();
    let start = 0;
    if (this.#afterCr && chunk.length > 0) {
      this.#afterCr = false;
      if (chunk.charCodeAt(0) === 0x0a) start = 1;
    }
    let lf = chunk.indexOf('\n', start);
    let cr = chunk.indexOf('\r', start);
    for (;;) {
      if (lf >= 0 && lf < start) lf = chunk.indexOf('\n', start);
      if (cr >= 0 && cr < start) cr = chunk.indexOf('\r', start);
      const end = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
      if (end < 0) break;
      const line = this.#held;
      if (end > start || line.length === 0) line.push(chunk.slice(start, end));
      this.#held = [];
      if (end === cr) {
        if (end + 1 === chunk.length) this.#afterCr = true;
        start = chunk.charCodeAt(end + 1) === 0x0a ? end + 2 : end + 1;
      } else start = end + 1;
      if (lineLength(line) === 0) this.#dispatch(out);
      else if (this.#lines.length === 0 && lineHead(line, 1) === ':') {
        // A comment outside an event (a keep-alive) goes on at once: held until a blank line, it would
        // not keep an idle stream alive. Clients ignore it wherever it stands.
        for (const piece of line) out.add(piece);
        out.add('\n');
      } else this.#lines.push(line);
    }
    if (start < chunk.length) this.#held.push(start === 0 ? chunk : chunk.slice(start));
    return out.done();
  }

  /** {@link flush}, in pieces. */
  flushPieces(): string[] {
    const out = new Pieces();
    if (this.#opening !== undefined) out.add(this.#opening);
    this.#opening = undefined;
    // An event the stream ends in the middle of loses its data and its unfinished line: clients
    // discard such an event (WHATWG HTML, server-sent events: an incomplete event is not
    // dispatched), and its raw text, say a list cut off when the upstream died, would show what the
    // policy hides to anyone reading the bytes. Its finished lines of other fields go on (a client
    // applies `retry` as soon as it reads it); no blank line follows them.
    const lines = this.#sealed(this.#lines);
    this.#lines = [];
    this.#held = [];
    this.#afterCr = false;
    addNonData(lines, out);
    return out.done();
  }

  #dispatch(out: Pieces): void {
    const lines = this.#sealed(this.#lines);
    this.#lines = [];
    let eventType = 'message';
    const data: Line[] = [];
    for (const line of lines) {
      const field = fieldOf(line);
      if (field === 'data') {
        const head = lineHead(line, 6);
        data.push(head === 'data' ? [] : lineTail(line, head === 'data: ' ? 6 : 5));
      } else if (field === 'event') {
        // An empty type is a `message` event (WHATWG HTML, "dispatch the event"), as clients read it.
        const type = line.join('').slice(6).trim();
        eventType = type === '' ? 'message' : type;
      }
    }
    // Any event type: MCP's answers are `message` events, but a client that reads every event's
    // data (not all check the type) must not find a hidden list in an `event: other`.
    if (data.length > 0) {
      const text: string[] = [];
      data.forEach((line, i) => {
        if (i > 0) text.push('\n');
        text.push(...line);
      });
      // Empty data (the priming event of a resumable stream: its id matters) has nothing to filter.
      const filtered = text.every((piece) => piece === '') ? undefined : filterJsonText(text, this.#lists, this.#principal, this.#policy, this.#bytes);
      if (filtered === NOT_JSON && eventType === 'message') {
        // Data that is not JSON loses its data lines: no client can read it, and its raw text (a
        // list the upstream wrote wrong) could name what the policy hides. The rest (`id`,
        // `retry`) is passed on. Another event type's text (the 2024-11-05 transport's
        // `event: endpoint` and its URL) is no message, and passes as it came.
        if (addNonData(lines, out)) out.add('\n');
        return;
      }
      if (filtered !== undefined && filtered !== NOT_JSON) {
        for (const line of lines) {
          if (fieldOf(line) === 'data') continue;
          for (const piece of line) out.add(piece);
          out.add('\n');
        }
        out.add('data: ');
        // Data split over several lines was joined with LFs, which the kept text may contain:
        // each starts a data line of its own again.
        for (const piece of filtered) out.add(data.length > 1 ? piece.replaceAll('\n', '\ndata: ') : piece);
        out.add('\n\n');
        return;
      }
    }
    if (lines.length === 0) {
      out.add('\n');
      return;
    }
    for (const line of lines) {
      for (const piece of line) out.add(piece);
      out.add('\n');
    }
    out.add('\n');
  }
}
