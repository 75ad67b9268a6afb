/**
 * A structural scan of a JSON-RPC list response: where the list's items are, and each item's name
 * (or URI) and annotations, without building the whole document. Filtering a 100-tool `tools/list`
 * with `JSON.parse` + `JSON.stringify` costs about 300 µs (bench:middleware); this scan skips strings
 * with native `indexOf` and lets the filter keep items by slicing the original text.
 *
 * The text may come as one string or as the chunks it arrived in (a {@link TextChunks}): a big list
 * is then never joined into one string. V8 keeps a string over 128 KiB in a space of its own, mapped
 * for it alone and unmapped after the next collection; on the 2-core machines of bench:gateway each
 * such string cost about 1.6 ms for 300 KB of page faults, more than scanning it.
 *
 * It accepts exactly one shape: a top-level object whose `result` member is an object holding the
 * list member as an array of objects. Anything else, or any JSON it does not understand, makes it
 * give up (`undefined`) and the caller falls back to `JSON.parse`. It never has to be right about
 * malformed JSON: the fallback handles that too.
 */

/**
 * A UTF-8 text held as bytes: each code unit of the string is one byte (what `Buffer#toString('latin1')`
 * makes of the bytes, a copy with no decoding). JSON's structure is ASCII, and no byte of a multi-byte UTF-8
 * sequence is below 0x80, so the scan finds the same structure at the same offsets as in the decoded
 * text, and the offsets are byte offsets. Only the short spans whose value matters (a name, a URI,
 * an id, annotations) are decoded, by {@link unicodeOf}.
 */
const NON_ASCII = /[\u0080-\uffff]/;

/**
 * Decodes spans: a leading U+FEFF is part of a name, not a byte order mark (the client decodes the
 * whole body, where it is inside a string), so it is kept.
 */
const UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** The text a span of UTF-8 bytes (as code units) stands for; invalid bytes become U+FFFD, as a decoder makes them. */
export function unicodeOf(bytes: string): string {
  if (!NON_ASCII.test(bytes)) return bytes;
  const array = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) array[i] = bytes.charCodeAt(i);
  return UTF8.decode(array);
}

/** The UTF-8 bytes of `text`, one code unit per byte: the inverse of {@link unicodeOf} for valid text. */
export function bytesOf(text: string): string {
  if (!NON_ASCII.test(text)) return text;
  const array = new TextEncoder().encode(text);
  let out = '';
  for (let i = 0; i < array.length; i += 8192) out += String.fromCharCode(...array.subarray(i, i + 8192));
  return out;
}

/**
 * A text in pieces, read as if joined: the pieces are never concatenated into one string. With
 * `bytes`, the pieces hold UTF-8 bytes, one per code unit (see {@link unicodeOf}).
 */
export class TextChunks {
  /** The pieces, none empty (an empty text is one empty piece). */
  readonly chunks: readonly string[];
  /** Offset of each piece in the whole text. */
  readonly starts: readonly number[];
  readonly length: number;
  readonly bytes: boolean;

  constructor(chunks: readonly string[], bytes = false) {
    this.bytes = bytes;
    const nonEmpty = chunks.filter((c) => c.length > 0);
    this.chunks = nonEmpty.length === 0 ? [''] : nonEmpty;
    const starts: number[] = [];
    let length = 0;
    for (const chunk of this.chunks) {
      starts.push(length);
      length += chunk.length;
    }
    this.starts = starts;
    this.length = length;
  }

  /** The whole text as one string of its own code units (bytes, with `bytes`). */
  join(): string {
    return this.chunks.length === 1 ? (this.chunks[0] as string) : this.chunks.join('');
  }

  /** The text from `start` to `end` as one string (for short spans), decoded when the text is bytes. */
  slice(start: number, end: number): string {
    const raw = this.pieces(start, end, Number.POSITIVE_INFINITY).join('');
    return this.bytes ? unicodeOf(raw) : raw;
  }

  /**
   * The text from `start` to `end` as pieces of at most `max` code units each: slices of the chunks,
   * so a long span is handed on without ever being one string.
   */
  pieces(start: number, end: number, max: number): string[] {
    const out: string[] = [];
    end = Math.min(end, this.length);
    let i = 0;
    while (i + 1 < this.chunks.length && (this.starts[i + 1] as number) <= start) i++;
    for (let position = Math.max(0, start); position < end; ) {
      const chunk = this.chunks[i] as string;
      const low = this.starts[i] as number;
      const stop = Math.min(end, low + chunk.length, position + max);
      out.push(chunk.slice(position - low, stop - low));
      position = stop;
      if (position >= low + chunk.length) i++;
    }
    return out;
  }
}

/** One item of the list: where it is, and what the policy needs from it. */
export interface ScannedItem {
  readonly start: number;
  readonly end: number;
  /** The item's name or URI, when it is a JSON string. */
  readonly key?: string;
  /** The raw JSON text of the item's `annotations` member, when present. */
  readonly annotations?: string;
}

/** The list inside a response text. */
export interface ScannedList {
  /** The response's id (parsed), or undefined when absent. */
  readonly id: unknown;
  /** Offsets of the array's `[` and the character after its `]`. */
  readonly arrayStart: number;
  readonly arrayEnd: number;
  readonly items: readonly ScannedItem[];
  /** Where the id's JSON text starts and ends, when the id is a string or a number. */
  readonly idStart?: number;
  readonly idEnd?: number;
  /**
   * The items of the remembered scan this one was derived from for another id (see `withOtherId`):
   * the same names and annotations at that text's offsets, one array for a list whatever its ids'
   * lengths, so what is remembered per list (learned annotations, the policy's answers) is found
   * again. Absent on a scan of its own: its `items` are that array.
   */
  readonly listed?: readonly ScannedItem[];
  /**
   * Whether the result holds nothing but the list and the members a list result may carry beside it
   * (`nextCursor`, `_meta`, and 2026-07-28's `resultType` and `ttlMs`): what a list request is answered
   * with. Annotations are learned only from such a result (see `listOnly` in filter.ts).
   */
  readonly listOnly: boolean;
}

/** The members a list result may hold beside its list (2025-11-25 and 2026-07-28 schemas: `PaginatedResult`, `CacheableResult`). */
export const LIST_RESULT_EXTRAS: ReadonlySet<string> = new Set(['nextCursor', '_meta', 'resultType', 'ttlMs']);

/** The array that stands for a scanned list's names and annotations, whatever the answer's id. */
export function listedItems(scan: ScannedList): readonly ScannedItem[] {
  return scan.listed ?? scan.items;
}

class GiveUp extends Error {}
const giveUp = new GiveUp();

const MAX_DEPTH = 128;

/**
 * A forward reader over the chunks. The hot loops run on the current chunk's own string (native
 * `charCodeAt` and `indexOf`) and move to the next chunk at its end, so one string costs what it did
 * before chunks existed.
 */
class Scanner {
  pos = 0;
  /** The current chunk, its offset in the whole text and its end. */
  #chunk = '';
  #low = 0;
  #high = 0;
  readonly #chunks: readonly string[];
  readonly #starts: readonly number[];
  readonly length: number;

  constructor(readonly text: TextChunks) {
    this.#chunks = text.chunks;
    this.#starts = text.starts;
    this.length = text.length;
    this.#load(0);
  }

  /** Makes the chunk holding `position` current; false past the end. */
  #load(position: number): boolean {
    if (position >= this.#low && position < this.#high) return true;
    if (position < 0 || position >= this.length) return false;
    let i = 0;
    let low = 0;
    let high = this.length;
    // Binary search: texts of a few hundred chunks are sought once per chunk boundary.
    for (let lo = 0, hi = this.#chunks.length - 1; lo <= hi; ) {
      const mid = (lo + hi) >> 1;
      const start = this.#starts[mid] as number;
      if (position < start) hi = mid - 1;
      else if (position >= start + (this.#chunks[mid] as string).length) lo = mid + 1;
      else {
        i = mid;
        low = start;
        high = start + (this.#chunks[mid] as string).length;
        break;
      }
    }
    this.#chunk = this.#chunks[i] as string;
    this.#low = low;
    this.#high = high;
    return true;
  }

  /** The UTF-16 code unit at `position`; NaN past the end, like `String.prototype.charCodeAt`. */
  code(position: number): number {
    if (position >= this.#low && position < this.#high) return this.#chunk.charCodeAt(position - this.#low);
    return this.#load(position) ? this.#chunk.charCodeAt(position - this.#low) : Number.NaN;
  }

  ws(): void {
    let p = this.pos;
    for (;;) {
      const c = this.code(p);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
      else break;
    }
    this.pos = p;
  }

  expect(code: number): void {
    this.ws();
    if (this.code(this.pos) !== code) throw giveUp;
    this.pos++;
  }

  /** The first `"` at or after `from`. */
  #quote(from: number): number {
    for (;;) {
      if (!this.#load(from)) throw giveUp;
      const found = this.#chunk.indexOf('"', from - this.#low);
      if (found >= 0) return this.#low + found;
      from = this.#high;
    }
  }

  /** Skips a string starting at pos (on its quote); returns its end (after the closing quote). */
  string(): number {
    const start = this.pos;
    if (this.code(start) !== 0x22) throw giveUp;
    let p = start + 1;
    for (;;) {
      const q = this.#quote(p);
      let backslashes = 0;
      for (let b = q - 1; b > start && this.code(b) === 0x5c; b--) backslashes++;
      p = q + 1;
      if (backslashes % 2 === 0) break;
    }
    this.pos = p;
    return p;
  }

  /** The text from `start` to `end` (a short span: a key, a name, annotations), decoded when the text is bytes. */
  slice(start: number, end: number): string {
    if (start >= this.#low && end <= this.#high) {
      const raw = this.#chunk.slice(start - this.#low, end - this.#low);
      return this.text.bytes ? unicodeOf(raw) : raw;
    }
    return this.text.slice(start, end);
  }

  /** A string's value: sliced when it has no escapes, else decoded by JSON.parse. */
  stringValue(): string {
    const s = this.pos;
    const e = this.string();
    const raw = this.slice(s + 1, e - 1);
    return raw.includes('\\') ? (JSON.parse(this.slice(s, e)) as string) : raw;
  }

  value(depth: number): void {
    if (depth > MAX_DEPTH) throw giveUp;
    this.ws();
    const c = this.code(this.pos);
    if (c === 0x22) this.string();
    else if (c === 0x7b || c === 0x5b) this.container();
    else this.literal();
  }

  /**
   * Skips an object or array the caller does not look into (an input schema), by bracket depth with
   * strings jumped over natively. It does not check the inside's syntax: for valid JSON the skip is
   * exact, and invalid JSON is refused by the client's own parser whatever this scan keeps.
   */
  container(): void {
    let depth = 0;
    let p = this.pos;
    for (;;) {
      if (!this.#load(p)) throw giveUp;
      const t = this.#chunk;
      const low = this.#low;
      const n = t.length;
      let i = p - low;
      p = low + n;
      for (; i < n; i++) {
        const c = t.charCodeAt(i);
        if (c === 0x22) {
          this.pos = low + i;
          this.string();
          p = this.pos;
          break;
        } else if (c === 0x7b || c === 0x5b) {
          if (++depth > MAX_DEPTH) throw giveUp;
        } else if (c === 0x7d || c === 0x5d) {
          if (--depth === 0) {
            this.pos = low + i + 1;
            return;
          }
        }
      }
    }
  }

  literal(): void {
    let p = this.pos;
    for (;;) {
      const c = this.code(p);
      // digits, sign, dot, exponent, and the letters of true/false/null
      if ((c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || (c >= 0x61 && c <= 0x7a) || c === 0x45) p++;
      else break;
    }
    if (p === this.pos) throw giveUp;
    this.pos = p;
  }

  /** Walks an object; `member(key)` must consume the value after the colon. */
  object(depth: number, member: (key: string) => void): void {
    this.expect(0x7b);
    this.ws();
    if (this.code(this.pos) === 0x7d) {
      this.pos++;
      return;
    }
    for (;;) {
      this.ws();
      const key = this.stringValue();
      this.expect(0x3a);
      member(key);
      this.ws();
      const c = this.code(this.pos++);
      if (c === 0x7d) return;
      if (c !== 0x2c) throw giveUp;
      if (depth > MAX_DEPTH) throw giveUp;
    }
  }

  /** Walks an array; `element()` must consume one element. */
  array(depth: number, element: () => void): void {
    this.expect(0x5b);
    this.ws();
    if (this.code(this.pos) === 0x5d) {
      this.pos++;
      return;
    }
    for (;;) {
      element();
      this.ws();
      const c = this.code(this.pos++);
      if (c === 0x5d) return;
      if (c !== 0x2c) throw giveUp;
      if (depth > MAX_DEPTH) throw giveUp;
    }
  }

  /** The raw text of the value at pos. */
  rawValue(depth: number): string {
    this.ws();
    const start = this.pos;
    this.value(depth);
    return this.slice(start, this.pos);
  }
}

/** The chunk holding `position` and the offset in it (`[chunks.length, 0]` at the very end). */
function locate(text: TextChunks, position: number): [number, number] {
  let i = 0;
  while (i + 1 < text.chunks.length && (text.starts[i + 1] as number) <= position) i++;
  const offset = position - (text.starts[i] as number);
  return offset === (text.chunks[i] as string).length ? [i + 1, 0] : [i, offset];
}

/** Whether `length` characters of `a` from `startA` equal those of `b` from `startB`, however the texts are cut into chunks. */
export function rangeEqual(a: TextChunks, startA: number, b: TextChunks, startB: number, length: number): boolean {
  if (startA < 0 || startB < 0 || startA + length > a.length || startB + length > b.length) return false;
  let [i, offsetA] = locate(a, startA);
  let [j, offsetB] = locate(b, startB);
  for (let done = 0; done < length; ) {
    const chunkA = a.chunks[i] as string;
    const chunkB = b.chunks[j] as string;
    const step = Math.min(chunkA.length - offsetA, chunkB.length - offsetB, length - done);
    // Slices of a flat string share its characters: the comparison copies nothing.
    if (chunkA.slice(offsetA, offsetA + step) !== chunkB.slice(offsetB, offsetB + step)) return false;
    done += step;
    offsetA += step;
    offsetB += step;
    if (offsetA === chunkA.length) {
      i++;
      offsetA = 0;
    }
    if (offsetB === chunkB.length) {
      j++;
      offsetB = 0;
    }
  }
  return true;
}

/** Whether two texts hold the same characters, however they are cut into chunks. */
export function sameText(a: TextChunks, b: TextChunks): boolean {
  if (a.length !== b.length || a.bytes !== b.bytes) return false;
  if (a.chunks.length === 1 && b.chunks.length === 1) return a.chunks[0] === b.chunks[0];
  return rangeEqual(a, 0, b, 0, a.length);
}

/** Longest id text matched against a remembered scan (JSON-RPC ids are short). */
const MAX_ID_LENGTH = 64;

/**
 * The remembered scan's result for `text` when `text` is the remembered text with another id: the
 * same characters before and after the id, and between them one JSON string or number (parsed to
 * be sure: anything else, say `1,"result":…`, could change the document's structure). Offsets past
 * the id move by the difference in its length.
 */
function withOtherId(remembered: TextChunks, found: ScannedList, text: TextChunks): ScannedList | undefined {
  const { idStart, idEnd } = found;
  if (idStart === undefined || idEnd === undefined) return undefined;
  const suffix = remembered.length - idEnd;
  const idLength = text.length - idStart - suffix;
  if (idLength < 1 || idLength > MAX_ID_LENGTH) return undefined;
  if (!rangeEqual(remembered, 0, text, 0, idStart) || !rangeEqual(remembered, idEnd, text, idStart + idLength, suffix)) return undefined;
  let id: unknown;
  try {
    id = JSON.parse(text.slice(idStart, idStart + idLength));
  } catch {
    return undefined;
  }
  if (typeof id !== 'string' && typeof id !== 'number') return undefined;
  const delta = idLength - (idEnd - idStart);
  const moved = delta !== 0 && found.arrayStart > idEnd;
  // The moved items are made when first read: a filter reads them only to build a kept array it has
  // not remembered yet, and moving 1,000 of them costs ~0.2 ms.
  let items = moved ? undefined : found.items;
  return Object.freeze({
    id,
    listed: listedItems(found),
    arrayStart: moved ? found.arrayStart + delta : found.arrayStart,
    arrayEnd: moved ? found.arrayEnd + delta : found.arrayEnd,
    get items(): readonly ScannedItem[] {
      items ??= Object.freeze(found.items.map((item) => Object.freeze({ ...item, start: item.start + delta, end: item.end + delta })));
      return items;
    },
    idStart,
    idEnd: idStart + idLength,
    listOnly: found.listOnly,
  });
}

interface RecentScan {
  readonly text: TextChunks;
  readonly member: string;
  readonly field: string;
  readonly withAnnotations: boolean;
  readonly result: ScannedList | undefined;
}

/**
 * The last texts scanned and what the scan found. A server answers the same list to every client
 * until its list changes, byte for byte but for the request's id, and comparing a text with a
 * remembered one (a memory comparison) costs a small part of scanning it; the result is a function
 * of the text alone, so an equal text gets the same result, and the same text with another id the
 * result with that id (see {@link withOtherId}). Entries hold their texts, so texts past
 * {@link RECENT_MAX_LENGTH} are not remembered.
 */
const recentScans: RecentScan[] = [];
const RECENT_SCANS = 4;
const RECENT_MAX_LENGTH = 2 * 1024 * 1024;

/**
 * Scans `text` for `result[member]` and, in each item, the string member `field` and (when
 * `withAnnotations`) the `annotations` member. `undefined` when the text is not of that shape.
 * A text equal to one of the last few scanned gets that scan's result again.
 */
export function scanListResponse(text: string | TextChunks, member: string, field: string, withAnnotations: boolean): ScannedList | undefined {
  const chunks = typeof text === 'string' ? new TextChunks([text]) : text;
  if (chunks.length > RECENT_MAX_LENGTH) return scanListText(chunks, member, field, withAnnotations);
  for (let i = 0; i < recentScans.length; i++) {
    const recent = recentScans[i] as RecentScan;
    // A text of bytes and a decoded one may hold the same code units and stand for different texts.
    if (recent.member !== member || recent.field !== field || recent.withAnnotations !== withAnnotations || recent.text.bytes !== chunks.bytes) continue;
    let result: ScannedList | undefined;
    // The same text (a refused shape is remembered too), or the same with another id.
    if (sameText(recent.text, chunks)) result = recent.result;
    else if (recent.result === undefined || (result = withOtherId(recent.text, recent.result, chunks)) === undefined) continue;
    if (i > 0) {
      recentScans.splice(i, 1);
      recentScans.unshift(recent);
    }
    return result;
  }
  const result = scanListText(chunks, member, field, withAnnotations);
  recentScans.unshift({ text: chunks, member, field, withAnnotations, result });
  if (recentScans.length > RECENT_SCANS) recentScans.pop();
  return result;
}

/** Forgets the remembered scans (tests that must scan a text the cache has seen). */
export function forgetRecentScans(): void {
  recentScans.length = 0;
}

/** The members of a result that hold a list some filter reads. */
const LIST_MEMBERS = new Set(['tools', 'prompts', 'resources', 'resourceTemplates']);

/** {@link scanListResponse} without the remembered scans: always scans. */
export function scanListText(text: TextChunks, member: string, field: string, withAnnotations: boolean): ScannedList | undefined {
  const s = new Scanner(text);
  let id: unknown;
  let idStart = 0;
  let idEnd = 0;
  let list: { arrayStart: number; arrayEnd: number; items: ScannedItem[] } | undefined;
  let duplicate = false;
  let listOnly = true;
  try {
    s.object(1, (key) => {
      if (key === 'id') {
        if (id !== undefined) duplicate = true;
        s.ws();
        idStart = s.pos;
        id = JSON.parse(s.rawValue(1));
        idEnd = s.pos;
      } else if (key === 'result') {
        if (list !== undefined) duplicate = true;
        s.ws();
        s.object(2, (resultKey) => {
          if (resultKey !== member) {
            // Another list beside it: the caller filters one list, so the fallback takes it whole.
            if (LIST_MEMBERS.has(resultKey)) duplicate = true;
            if (!LIST_RESULT_EXTRAS.has(resultKey)) listOnly = false;
            return s.value(2);
          }
          if (list !== undefined) duplicate = true;
          s.ws();
          const arrayStart = s.pos;
          const items: ScannedItem[] = [];
          s.array(3, () => {
            s.ws();
            const start = s.pos;
            let itemKey: string | undefined;
            let annotations: string | undefined;
            s.object(4, (k) => {
              s.ws();
              if (k === field && s.code(s.pos) === 0x22) {
                if (itemKey !== undefined) duplicate = true;
                itemKey = s.stringValue();
              } else if (withAnnotations && k === 'annotations') {
                if (annotations !== undefined) duplicate = true;
                annotations = s.rawValue(4);
              } else {
                if (k === field) duplicate = true;
                s.value(4);
              }
            });
            items.push({ start, end: s.pos, key: itemKey, annotations });
          });
          list = { arrayStart, arrayEnd: s.pos, items };
        });
      } else s.value(1);
    });
    s.ws();
    if (s.pos !== s.length) return undefined;
  } catch (error) {
    if (error === giveUp || error instanceof SyntaxError) return undefined;
    throw error;
  }
  // Repeated members are legal JSON with last-wins semantics; the fallback handles them exactly.
  if (duplicate || list === undefined) return undefined;
  // Frozen: a remembered result is handed to every later caller with an equal text.
  const found = list as { arrayStart: number; arrayEnd: number; items: ScannedItem[] };
  for (const item of found.items) Object.freeze(item);
  const span = typeof id === 'string' || typeof id === 'number' ? { idStart, idEnd } : {};
  return Object.freeze({ id, arrayStart: found.arrayStart, arrayEnd: found.arrayEnd, items: Object.freeze(found.items), listOnly, ...span });
}
