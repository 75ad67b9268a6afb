/**
 * The structural scan that filters list responses by slicing must agree with the parse-and-serialise
 * path on every input: property tests over generated list responses, plus the shapes it refuses.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Policy } from '../../src/authz/policy.js';
import { filterJsonBody, filterJsonBodyParsed, filterJsonChunks } from '../../src/mcp/filter.js';
import { TextChunks, forgetRecentScans, rangeEqual, sameText, scanListResponse, scanListText } from '../../src/mcp/list-scan.js';
import type { JsonRpcId, ListFamily } from '../../src/types.js';
import { cutPieces, principal } from '../helpers.js';

const roles = { reader: { verbs: ['read' as const], tools: { deny: ['x*'] }, resources: { deny: ['secret://**'] } }, writer: ['write' as const] };
const tricky = fc.string({ unit: fc.oneof(fc.constantFrom('a', 'x', '"', '\\', '/', '\n', '\u2028', '\uFEFF', 'é', '😀', '*', ' '), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 8 });
const annotations = fc.record({ readOnlyHint: fc.boolean(), destructiveHint: fc.boolean(), title: tricky }, { requiredKeys: [] });
const tool = fc.record(
  {
    name: fc.oneof(tricky, fc.constantFrom('read_a', 'xray', 'write_b')),
    description: tricky,
    inputSchema: fc.jsonValue({ maxDepth: 4 }),
    annotations,
  },
  { requiredKeys: ['name'] },
);
const item = fc.oneof({ weight: 20, arbitrary: tool }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) });
const response = fc.record({
  id: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom('1', 'a"b')),
  tools: fc.array(item, { maxLength: 8 }),
  cursor: fc.option(tricky, { nil: undefined }),
  resultFirst: fc.boolean(),
  indent: fc.constantFrom(0, 1, 2),
});

function text(r: { id: JsonRpcId; tools: unknown[]; cursor: string | undefined; resultFirst: boolean; indent: number }): string {
  const result = r.cursor === undefined ? { tools: r.tools } : { nextCursor: r.cursor, tools: r.tools };
  const message = r.resultFirst ? { result, jsonrpc: '2.0', id: r.id } : { jsonrpc: '2.0', id: r.id, result };
  return JSON.stringify(message, null, r.indent);
}

const cut = (body: string, cuts: readonly number[]): TextChunks => new TextChunks(cutPieces(body, cuts));

describe('list scan', () => {
  it('filters exactly like parse-and-serialise, for any tools/list response', () => {
    fc.assert(
      fc.property(response, fc.subarray(['reader', 'writer', 'ghost']), (r, held) => {
        const body = text(r);
        const lists = new Map<JsonRpcId, ListFamily>([[1, 'tools']]);
        const fast = filterJsonBody(body, lists, principal(held), new Policy({ roles }));
        const slow = filterJsonBodyParsed(body, lists, principal(held), new Policy({ roles }));
        expect(fast === undefined).toBe(slow === undefined);
        if (fast !== undefined && slow !== undefined) expect(JSON.parse(fast)).toEqual(JSON.parse(slow));
      }),
      { numRuns: 3000 },
    );
  });

  it('filters resources by URI exactly like parse-and-serialise', () => {
    const resources = fc.array(fc.record({ uri: fc.oneof(fc.constantFrom('file:///a', 'secret://k', 'file:///../x'), tricky), name: tricky }), { maxLength: 6 });
    fc.assert(
      fc.property(resources, (items) => {
        const body = JSON.stringify({ jsonrpc: '2.0', id: 'r', result: { resources: items } });
        const lists = new Map<JsonRpcId, ListFamily>([['r', 'resources']]);
        const fast = filterJsonBody(body, lists, principal(['reader']), new Policy({ roles }));
        const slow = filterJsonBodyParsed(body, lists, principal(['reader']), new Policy({ roles }));
        expect(fast === undefined).toBe(slow === undefined);
        if (fast !== undefined && slow !== undefined) expect(JSON.parse(fast)).toEqual(JSON.parse(slow));
      }),
      { numRuns: 1000 },
    );
  });

  it('finds the items, their names and annotations', () => {
    const body = '{ "result" : { "tools" : [ {"name":"a\\"b","annotations":{"readOnlyHint":true}} , {"x":1,"name":"c"} ] }, "jsonrpc":"2.0", "id": 7 }';
    const scanned = scanListResponse(body, 'tools', 'name', true);
    expect(scanned?.id).toBe(7);
    expect(scanned?.items.map((i) => [i.key, i.annotations])).toEqual([
      ['a"b', '{"readOnlyHint":true}'],
      ['c', undefined],
    ]);
    expect(body.slice(scanned?.arrayStart, scanned?.arrayEnd).startsWith('[')).toBe(true);
    expect(body.slice(scanned?.arrayStart, scanned?.arrayEnd).endsWith(']')).toBe(true);
  });

  describe('Security', () => {
    it('gives up (and leaves the decision to JSON.parse) on shapes it does not fully understand', () => {
      for (const body of [
        '[{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}]',
        '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}],"tools":[]}}',
        '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","name":"xray"}]}}',
        '{"jsonrpc":"2.0","id":1,"result":{"tools":[null]}}',
        '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}} trailing',
        '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a}]}}',
        `{"jsonrpc":"2.0","id":1,"result":{"tools":[${'['.repeat(200)}${']'.repeat(200)}]}}`,
      ]) {
        expect(scanListResponse(body, 'tools', 'name', true), body.slice(0, 60)).toBeUndefined();
      }
    });

    it('cannot be made to keep a denied tool by a duplicated name member', () => {
      const body = '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_a","annotations":{"readOnlyHint":true},"name":"xray"}]}}';
      const out = filterJsonBody(body, new Map([[1, 'tools']]), principal(['reader']), new Policy({ roles }));
      // JSON.parse keeps the last "name": the tool is "xray", which the reader may not see.
      expect(JSON.parse(out ?? body).result.tools).toEqual([]);
    });
  });
});

describe('list scan over chunks', () => {
  it('finds the same items in a text cut anywhere into chunks as in the text whole', () => {
    fc.assert(
      fc.property(response, fc.array(fc.nat(), { maxLength: 10 }), (r, cuts) => {
        const body = text(r);
        const chunks = cutPieces(body, cuts);
        // The uncached scanner on both sides: the remembered scans would hand the chunked text the whole one's result.
        expect(scanListText(new TextChunks(chunks), 'tools', 'name', true)).toEqual(scanListText(new TextChunks([body]), 'tools', 'name', true));
        const lists = new Map<JsonRpcId, ListFamily>([[1, 'tools']]);
        forgetRecentScans();
        const chunked = filterJsonChunks(chunks, lists, principal(['reader']), new Policy({ roles }))?.join('');
        forgetRecentScans();
        expect(chunked).toBe(filterJsonBody(body, lists, principal(['reader']), new Policy({ roles })));
      }),
      { numRuns: 2000 },
    );
  });

  it('hands a long span on in pieces of the chunks, never longer than asked', () => {
    const chunks = ['abc', 'defgh', 'ij'];
    const t = new TextChunks(chunks);
    expect(t.pieces(1, 9, 3)).toEqual(['bc', 'def', 'gh', 'i']);
    expect(t.slice(2, 8)).toBe('cdefgh');
    expect(t.join()).toBe('abcdefghij');
  });
});

describe('remembered scans', () => {
  it('sameText: equal however the texts are cut, unequal when one character differs', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 200 }), fc.array(fc.nat(), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 6 }), fc.nat(), (body, cutsA, cutsB, at) => {
        expect(sameText(cut(body, cutsA), cut(body, cutsB))).toBe(true);
        const i = at % body.length;
        const changed = body.slice(0, i) + (body[i] === 'a' ? 'b' : 'a') + body.slice(i + 1);
        expect(sameText(cut(body, cutsA), cut(changed, cutsB))).toBe(false);
        expect(sameText(cut(body, cutsA), cut(`${body} `, cutsB))).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });

  it('gives an equal text the remembered result, and a different one its own', () => {
    fc.assert(
      fc.property(response, response, fc.array(fc.nat(), { maxLength: 6 }), (r1, r2, cuts) => {
        forgetRecentScans();
        const a = text(r1);
        const b = text(r2);
        const first = scanListResponse(a, 'tools', 'name', true);
        // The same characters in other chunks: the remembered result, equal to a fresh scan.
        expect(scanListResponse(cut(a, cuts), 'tools', 'name', true)).toBe(first);
        expect(first).toEqual(scanListText(cut(a, cuts), 'tools', 'name', true));
        // Another text, after the first was remembered: its own scan (or, when only the id differs,
        // the remembered one with that id, naming the remembered items as its list's).
        const other = scanListResponse(b, 'tools', 'name', true);
        const { listed, ...own } = other ?? {};
        expect(other === undefined ? undefined : own).toEqual(scanListText(new TextChunks([b]), 'tools', 'name', true));
        if (listed !== undefined) expect(listed).toBe(first?.items);
        // Another member or field asked of the same text is scanned for it.
        expect(scanListResponse(a, 'resources', 'uri', false)).toEqual(scanListText(new TextChunks([a]), 'resources', 'uri', false));
      }),
      { numRuns: 500 },
    );
  });

  it('rangeEqual agrees with comparing slices of the joined texts', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), fc.string({ maxLength: 60 }), fc.array(fc.nat(), { maxLength: 5 }), fc.array(fc.nat(), { maxLength: 5 }), fc.nat(), fc.nat(), fc.nat(), (a, b, cutsA, cutsB, x, y, z) => {
        const startA = x % (a.length + 1);
        const startB = y % (b.length + 1);
        const length = z % (Math.max(a.length - startA, b.length - startB) + 2);
        const expected = startA + length <= a.length && startB + length <= b.length && a.slice(startA, startA + length) === b.slice(startB, startB + length);
        expect(rangeEqual(cut(a, cutsA), startA, cut(b, cutsB), startB, length)).toBe(expected);
        // A text against itself, any range that fits.
        expect(rangeEqual(cut(a, cutsA), startA, cut(a, cutsB), startA, Math.min(length, a.length - startA))).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it('gives the same answer with another id the remembered result with that id and moved offsets', () => {
    const id = fc.oneof(fc.integer({ min: -5, max: 10 ** 12 }), fc.string({ maxLength: 12 }), fc.constantFrom('a"b', '\\', '1e5', ''));
    fc.assert(
      fc.property(response, id, id, fc.array(fc.nat(), { maxLength: 6 }), (r, first, second, cuts) => {
        forgetRecentScans();
        const a = text({ ...r, id: first });
        const b = text({ ...r, id: second });
        const remembered = scanListResponse(a, 'tools', 'name', true);
        const again = scanListResponse(cut(b, cuts), 'tools', 'name', true);
        // What was remembered for the list (its listed items) is the first scan's, whatever the id.
        const fresh = scanListText(new TextChunks([b]), 'tools', 'name', true);
        if (again === undefined) expect(fresh).toBeUndefined();
        else {
          const { listed, ...found } = again;
          expect(found).toEqual(fresh);
          if (a !== b && remembered !== undefined) expect(listed).toBe(remembered.items);
        }
        // And the filter keeps exactly what the parse-and-serialise path keeps.
        const lists = new Map<JsonRpcId, ListFamily>([[second, 'tools']]);
        const policy = new Policy({ roles });
        const scanned = filterJsonChunks([b], lists, principal(['reader']), policy)?.join('') ?? b;
        expect(JSON.parse(scanned)).toEqual(JSON.parse(filterJsonBodyParsed(b, lists, principal(['reader']), policy) ?? b));
      }),
      { numRuns: 1000 },
    );
  });

  describe('Security', () => {
    it('does not take structure in place of the id for another id', () => {
      forgetRecentScans();
      const policy = new Policy({ roles });
      const body = (id: string): string => `{"jsonrpc":"2.0","id":${id},"result":{"tools":[{"name":"read_a","annotations":{"readOnlyHint":true}}]}}`;
      scanListResponse(body('1'), 'tools', 'name', true);
      // The same text around the id, but a second result smuggled in where the id was.
      const smuggled = body('1,"result":{"tools":[{"name":"xray","annotations":{"readOnlyHint":true}}]},"x":1');
      expect(scanListResponse(smuggled, 'tools', 'name', true)).toEqual(scanListText(new TextChunks([smuggled]), 'tools', 'name', true));
      const lists = new Map<JsonRpcId, ListFamily>([[1, 'tools']]);
      const out = filterJsonBody(smuggled, lists, principal(['reader']), policy);
      const names = (JSON.parse(out ?? smuggled) as { result: { tools: { name: string }[] } }).result.tools.map((t) => t.name);
      expect(names).not.toContain('xray');
    });
  });

  it('a denied tool renamed in an otherwise identical answer is filtered by its new name', () => {
    forgetRecentScans();
    const lists = new Map<JsonRpcId, ListFamily>([[1, 'tools']]);
    const policy = new Policy({ roles });
    const body = (name: string): string => JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [{ name, annotations: { readOnlyHint: true } }, { name: 'read_a', annotations: { readOnlyHint: true } }] } });
    const names = (out: string | undefined, original: string): string[] => (JSON.parse(out ?? original) as { result: { tools: { name: string }[] } }).result.tools.map((t) => t.name);
    const allowed = body('read_b');
    const denied = body('xray_b');
    expect(allowed.length).toBe(denied.length);
    expect(names(filterJsonBody(allowed, lists, principal(['reader']), policy), allowed)).toEqual(['read_b', 'read_a']);
    expect(names(filterJsonBody(denied, lists, principal(['reader']), policy), denied)).toEqual(['read_a']);
    expect(names(filterJsonBody(allowed, lists, principal(['reader']), policy), allowed)).toEqual(['read_b', 'read_a']);
  });

  it('principals who see different parts of one remembered list each get theirs, again and again', () => {
    fc.assert(
      fc.property(response, fc.array(fc.constantFrom('reader', 'writer', 'nobody'), { minLength: 2, maxLength: 6 }), fc.array(fc.integer({ min: 0, max: 99 }), { minLength: 6, maxLength: 6 }), (r, who, ids) => {
        forgetRecentScans();
        const policy = new Policy({ roles });
        who.forEach((role, i) => {
          const id = ids[i] as number;
          const body = text({ ...r, id });
          const lists = new Map<JsonRpcId, ListFamily>([[id, 'tools']]);
          const scanned = filterJsonChunks([body], lists, principal([role]), policy)?.join('') ?? body;
          expect(JSON.parse(scanned)).toEqual(JSON.parse(filterJsonBodyParsed(body, lists, principal([role]), policy) ?? body));
        });
      }),
      { numRuns: 500 },
    );
  });

  it('remembered results are frozen', () => {
    forgetRecentScans();
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'a' }] } });
    const scanned = scanListResponse(body, 'tools', 'name', true);
    expect(Object.isFrozen(scanned)).toBe(true);
    expect(Object.isFrozen(scanned?.items)).toBe(true);
    expect(Object.isFrozen(scanned?.items[0])).toBe(true);
  });
});

describe('list scan over UTF-8 bytes (one per code unit)', () => {
  /** A reader who may not see tools whose names start with x, é or 😀 (non-ASCII rules too). */
  const unicodeRoles = { reader: { verbs: ['read' as const], tools: { deny: ['x*', 'é*', '😀*'] } }, writer: ['write' as const] };
  const bytesOfText = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');
  const textOfBytes = (b: string): string => Buffer.from(b, 'latin1').toString('utf8');

  it('filters the bytes of a text exactly as the text, however the bytes are cut (inside a character too)', () => {
    fc.assert(
      fc.property(response, fc.array(fc.nat(), { maxLength: 8 }), fc.subarray(['reader', 'writer', 'ghost']), (r, cuts, held) => {
        const body = text(r);
        const lists = new Map<JsonRpcId, ListFamily>([[1, 'tools']]);
        forgetRecentScans();
        const decoded = filterJsonChunks([body], lists, principal(held), new Policy({ roles: unicodeRoles }));
        forgetRecentScans();
        const raw = filterJsonChunks(cutPieces(bytesOfText(body), cuts), lists, principal(held), new Policy({ roles: unicodeRoles }), true);
        expect(raw === undefined).toBe(decoded === undefined);
        if (raw !== undefined && decoded !== undefined) expect(textOfBytes(raw.join(''))).toBe(decoded.join(''));
      }),
      { numRuns: 2000 },
    );
  });

  it('finds the same id, names and annotations in the bytes as in the text', () => {
    fc.assert(
      fc.property(response, fc.array(fc.nat(), { maxLength: 8 }), (r, cuts) => {
        const body = text({ ...r, id: typeof r.id === 'string' ? `${r.id}é😀` : r.id });
        const inText = scanListText(new TextChunks([body]), 'tools', 'name', true);
        const inBytes = scanListText(new TextChunks(cutPieces(bytesOfText(body), cuts), true), 'tools', 'name', true);
        expect(inBytes === undefined).toBe(inText === undefined);
        if (inBytes === undefined || inText === undefined) return;
        expect(inBytes.id).toEqual(inText.id);
        expect(inBytes.items.map((i) => [i.key, i.annotations])).toEqual(inText.items.map((i) => [i.key, i.annotations]));
      }),
      { numRuns: 1000 },
    );
  });

  describe('Security', () => {
    it('does not hand bytes the remembered scan of the same code units as text', () => {
      forgetRecentScans();
      // U+00E9 as one code unit: "é" as text, but as bytes a lone 0xE9, which is no UTF-8 (U+FFFD).
      const body = '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"\u00e9"}]}}';
      expect(scanListResponse(new TextChunks([body]), 'tools', 'name', true)?.items[0]?.key).toBe('é');
      expect(scanListResponse(new TextChunks([body], true), 'tools', 'name', true)?.items[0]?.key).toBe('\uFFFD');
      expect(scanListResponse(new TextChunks([body]), 'tools', 'name', true)?.items[0]?.key).toBe('é');
    });

    it('matches a non-ASCII string id with the pending request, fresh and remembered with another id', () => {
      forgetRecentScans();
      const policy = new Policy({ roles: unicodeRoles });
      const body = (id: string): string =>
        bytesOfText(JSON.stringify({ jsonrpc: '2.0', id, result: { tools: [{ name: 'read_a', annotations: { readOnlyHint: true } }, { name: 'éclair', annotations: { readOnlyHint: true } }] } }));
      for (const id of ['é', 'ü😀', 'a']) {
        const out = filterJsonChunks([body(id)], new Map<JsonRpcId, ListFamily>([[id, 'tools']]), principal(['reader']), policy, true);
        // An id read wrongly would not match the pending request, and the list would pass unfiltered.
        expect(out, id).toBeDefined();
        const names = (JSON.parse(textOfBytes(out?.join('') ?? '')) as { result: { tools: { name: string }[] } }).result.tools.map((t) => t.name);
        expect(names, id).toEqual(['read_a']);
      }
    });

    it('reads a name that opens with U+FEFF with it, as a client decoding the whole answer does', () => {
      forgetRecentScans();
      // With the mark dropped, "\uFEFFread_a" would be read as "read_a" and shown, though a call by
      // its real name is refused (names with invisible characters are), and learned under the wrong name.
      const tools = [{ name: '\uFEFFread_a', annotations: { readOnlyHint: true } }, { name: 'read_b', annotations: { readOnlyHint: true } }];
      const body = bytesOfText(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools } }));
      expect(scanListText(new TextChunks([body], true), 'tools', 'name', true)?.items[0]?.key).toBe('\uFEFFread_a');
      const out = filterJsonChunks([body], new Map<JsonRpcId, ListFamily>([[1, 'tools']]), principal(['reader']), new Policy({ roles: unicodeRoles }), true);
      expect(JSON.parse(textOfBytes(out?.join('') ?? body)).result.tools.map((t: { name: string }) => t.name)).toEqual(['read_b']);
    });

    it('relays bytes that are not UTF-8 as they came, and filters by the names around them', () => {
      forgetRecentScans();
      const body = '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_a","description":"\xff\xfe\xc3","annotations":{"readOnlyHint":true}},{"name":"x\xff","annotations":{"readOnlyHint":true}}]}}';
      const out = filterJsonChunks([body], new Map<JsonRpcId, ListFamily>([[1, 'tools']]), principal(['reader']), new Policy({ roles: unicodeRoles }), true)?.join('');
      expect(out).toBe('{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_a","description":"\xff\xfe\xc3","annotations":{"readOnlyHint":true}}]}}');
    });

    it('keeps the bytes of the parse-and-serialise fallback UTF-8', () => {
      // A repeated member makes the scan give up: the fallback parses, filters and serialises.
      const body = bytesOfText('{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_é","annotations":{"readOnlyHint":true}},{"name":"éa"}],"tools":[{"name":"read_é","annotations":{"readOnlyHint":true}},{"name":"éa","annotations":{"readOnlyHint":true}}]}}');
      const out = filterJsonChunks([body], new Map<JsonRpcId, ListFamily>([[1, 'tools']]), principal(['reader']), new Policy({ roles: unicodeRoles }), true);
      expect(textOfBytes(out?.join('') ?? '')).toBe('{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_é","annotations":{"readOnlyHint":true}}]}}');
    });
  });
});
