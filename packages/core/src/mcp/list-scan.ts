/**
 * A structural scan of a JSON-RPC list response: where the list's items are, and each item's name
 * (or URI) and annotations, without building the whole document. Filtering a 100-tool `tools/list`
 * with `JSON.parse` + `JSON.stringify` costs about 300 µs (bench:middleware); this scan skips strings
 * with native `indexOf` and lets the filter keep items by slicing the original text.
 *
 * It accepts exactly one shape: a top-level object whose `result` member is an object holding the
 * list member as an array of objects. Anything else, or any JSON it does not understand, makes it
 * give up (`undefined`) and the caller falls back to `JSON.parse`. It never has to be right about
 * malformed JSON: the fallback handles that too.
 */

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
}

class GiveUp extends Error {}
const giveUp = new GiveUp();

const MAX_DEPTH = 128;

class Scanner {
  pos = 0;
  constructor(readonly text: string) {}

  ws(): void {
    const t = this.text;
    let p = this.pos;
    for (;;) {
      const c = t.charCodeAt(p);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
      else break;
    }
    this.pos = p;
  }

  expect(code: number): void {
    this.ws();
    if (this.text.charCodeAt(this.pos) !== code) throw giveUp;
    this.pos++;
  }

  /** Skips a string starting at pos (on its quote); returns [start, end) including the quotes. */
  string(): [number, number] {
    const t = this.text;
    const start = this.pos;
    if (t.charCodeAt(start) !== 0x22) throw giveUp;
    let p = start + 1;
    for (;;) {
      const q = t.indexOf('"', p);
      if (q < 0) throw giveUp;
      let backslashes = 0;
      for (let b = q - 1; b > start && t.charCodeAt(b) === 0x5c; b--) backslashes++;
      p = q + 1;
      if (backslashes % 2 === 0) break;
    }
    this.pos = p;
    return [start, p];
  }

  /** A string's value: sliced when it has no escapes, else decoded by JSON.parse. */
  stringValue(): string {
    const [s, e] = this.string();
    const raw = this.text.slice(s + 1, e - 1);
    return raw.includes('\\') ? (JSON.parse(this.text.slice(s, e)) as string) : raw;
  }

  value(depth: number): void {
    if (depth > MAX_DEPTH) throw giveUp;
    this.ws();
    const c = this.text.charCodeAt(this.pos);
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
    const t = this.text;
    const len = t.length;
    let depth = 0;
    for (let p = this.pos; p < len; p++) {
      const c = t.charCodeAt(p);
      if (c === 0x22) {
        this.pos = p;
        this.string();
        p = this.pos - 1;
      } else if (c === 0x7b || c === 0x5b) {
        if (++depth > MAX_DEPTH) throw giveUp;
      } else if (c === 0x7d || c === 0x5d) {
        if (--depth === 0) {
          this.pos = p + 1;
          return;
        }
      }
    }
    throw giveUp;
  }

  literal(): void {
    const t = this.text;
    let p = this.pos;
    for (;;) {
      const c = t.charCodeAt(p);
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
    if (this.text.charCodeAt(this.pos) === 0x7d) {
      this.pos++;
      return;
    }
    for (;;) {
      this.ws();
      const key = this.stringValue();
      this.expect(0x3a);
      member(key);
      this.ws();
      const c = this.text.charCodeAt(this.pos++);
      if (c === 0x7d) return;
      if (c !== 0x2c) throw giveUp;
      if (depth > MAX_DEPTH) throw giveUp;
    }
  }

  /** Walks an array; `element()` must consume one element. */
  array(depth: number, element: () => void): void {
    this.expect(0x5b);
    this.ws();
    if (this.text.charCodeAt(this.pos) === 0x5d) {
      this.pos++;
      return;
    }
    for (;;) {
      element();
      this.ws();
      const c = this.text.charCodeAt(this.pos++);
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
    return this.text.slice(start, this.pos);
  }
}

/**
 * Scans `text` for `result[member]` and, in each item, the string member `field` and (when
 * `withAnnotations`) the `annotations` member. `undefined` when the text is not of that shape.
 */
export function scanListResponse(text: string, member: string, field: string, withAnnotations: boolean): ScannedList | undefined {
  const s = new Scanner(text);
  let id: unknown;
  let list: { arrayStart: number; arrayEnd: number; items: ScannedItem[] } | undefined;
  let duplicate = false;
  try {
    s.object(1, (key) => {
      if (key === 'id') {
        if (id !== undefined) duplicate = true;
        id = JSON.parse(s.rawValue(1));
      } else if (key === 'result') {
        if (list !== undefined) duplicate = true;
        s.ws();
        s.object(2, (resultKey) => {
          if (resultKey !== member) return s.value(2);
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
              if (k === field && s.text.charCodeAt(s.pos) === 0x22) {
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
            items.push({ start, end: s.pos, ...(itemKey === undefined ? {} : { key: itemKey }), ...(annotations === undefined ? {} : { annotations }) });
          });
          list = { arrayStart, arrayEnd: s.pos, items };
        });
      } else s.value(1);
    });
    s.ws();
    if (s.pos !== text.length) return undefined;
  } catch (error) {
    if (error === giveUp || error instanceof SyntaxError) return undefined;
    throw error;
  }
  // Repeated members are legal JSON with last-wins semantics; the fallback handles them exactly.
  if (duplicate || list === undefined) return undefined;
  return { id, ...(list as { arrayStart: number; arrayEnd: number; items: ScannedItem[] }) };
}
