import zlib from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { Policy } from '../../src/authz/policy.js';
import { NO_LIST_REQUESTS, SseListFilter, WITHHELD, filterJsonAnswer, filterJsonBody, filterJsonChunks, pendingListsOf } from '../../src/mcp/filter.js';
import { filterWebResponse } from '../../src/mcp/filter-web.js';
import { forgetRecentScans } from '../../src/mcp/list-scan.js';
import type { JsonRpcId, ListFamily } from '../../src/types.js';
import { cutPieces, principal } from '../helpers.js';

const policy = new Policy({
  roles: { reader: { verbs: ['read'], resources: { deny: ['secret://**'] }, prompts: { deny: ['admin_*'] } }, admin: ['delete'] },
});
const reader = principal(['reader']);
const tools = [
  { name: 'read_file', annotations: { readOnlyHint: true } },
  { name: 'write_file', annotations: { readOnlyHint: false, destructiveHint: false } },
  { name: 'rm', annotations: { destructiveHint: true } },
  { name: 'bare' },
];
const lists = new Map<JsonRpcId, ListFamily>([
  [1, 'tools' as const],
  ['p', 'prompts' as const],
  [3, 'resources' as const],
  [4, 'resourceTemplates' as const],
]);
const toolsResponse = { jsonrpc: '2.0', id: 1, result: { tools, nextCursor: 'next-page' } };

describe('filterJsonBody', () => {
  it('trims tools/list to what the principal may call, keeping the cursor', () => {
    const out = JSON.parse(filterJsonBody(JSON.stringify(toolsResponse), lists, reader, policy) ?? 'null');
    expect(out.result.tools.map((t: { name: string }) => t.name)).toEqual(['read_file']);
    expect(out.result.nextCursor).toBe('next-page');
    expect(out.id).toBe(1);
  });
  it('trims prompts, resources and templates', () => {
    const body = JSON.stringify([
      { jsonrpc: '2.0', id: 'p', result: { prompts: [{ name: 'greet' }, { name: 'admin_reset' }] } },
      { jsonrpc: '2.0', id: 3, result: { resources: [{ uri: 'file:///a', name: 'a' }, { uri: 'secret://k', name: 'k' }, { uri: 'file:///../x', name: 'x' }] } },
      { jsonrpc: '2.0', id: 4, result: { resourceTemplates: [{ uriTemplate: 'file:///{p}', name: 't' }, { uriTemplate: 'secret://{k}', name: 's' }] } },
    ]);
    const out = JSON.parse(filterJsonBody(body, lists, reader, policy) ?? 'null');
    expect(out[0].result.prompts).toEqual([{ name: 'greet' }]);
    expect(out[1].result.resources.map((r: { uri: string }) => r.uri)).toEqual(['file:///a']);
    expect(out[2].result.resourceTemplates.map((r: { name: string }) => r.name)).toEqual(['t']);
  });
  it('leaves errors, answers without a list and non-JSON alone', () => {
    expect(filterJsonBody(JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: 1, message: 'x' } }), lists, reader, policy)).toBeUndefined();
    expect(filterJsonBody(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [] } }), lists, reader, policy)).toBeUndefined();
    expect(filterJsonBody('not json', lists, reader, policy)).toBeUndefined();
  });

  describe('Security', () => {
    it('filters a body opened by a byte order mark, which a client drops before parsing, and keeps the mark', async () => {
      const text = `\uFEFF${JSON.stringify(toolsResponse)}`;
      // What a client makes of it: fetch's json() decodes UTF-8, dropping the mark, and parses.
      const seen = (body: string): string[] => ((JSON.parse(new TextDecoder().decode(Buffer.from(body, 'utf8'))) as typeof toolsResponse).result.tools.map((t) => t.name));
      expect(seen(text)).toContain('rm');
      const out = filterJsonBody(text, lists, reader, policy);
      expect(out?.startsWith('\uFEFF')).toBe(true);
      expect(seen(out ?? '')).toEqual(['read_file']);
      // As UTF-8 bytes, one per code unit (the gateway's form), with the mark cut anywhere.
      const bytes = Buffer.from(text, 'utf8').toString('latin1');
      for (const cut of [0, 1, 2, 3, 4, 40]) {
        const pieces = filterJsonChunks([bytes.slice(0, cut), bytes.slice(cut)], new Map(lists), reader, policy, true);
        const body = Buffer.from((pieces ?? []).join(''), 'latin1').toString('utf8');
        expect(body.startsWith('\uFEFF'), `cut at ${cut}`).toBe(true);
        expect(seen(body), `cut at ${cut}`).toEqual(['read_file']);
      }
      // Nothing to hide: the body passes as it came, mark included.
      expect(filterJsonBody(`\uFEFF${JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [tools[0]] } })}`, lists, reader, policy)).toBeUndefined();
      // A mark alone, or one not opening the body, is no JSON to filter.
      expect(filterJsonBody('\uFEFF', lists, reader, policy)).toBeUndefined();
      expect(filterJsonBody(` \uFEFF${JSON.stringify(toolsResponse)}`, lists, reader, policy)).toBeUndefined();
      // Through the web filter too (it decodes with the mark dropped).
      const web = await filterWebResponse(new Response(text, { headers: { 'content-type': 'application/json' } }), lists, reader, policy);
      expect(seen(await web.text())).toEqual(['read_file']);
    });

    it('filters a list answering another request (an answer routed by its id to another stream), learning nothing from it', () => {
      const p = new Policy({ roles: { reader: { verbs: ['read'] } } });
      // Listed as read-only by an answer to no list request of this exchange: not believed.
      const claimed = [{ name: 'rm', annotations: { readOnlyHint: true } }, { name: 'read_file', annotations: { readOnlyHint: true } }];
      for (const [id, within] of [
        [99, lists],
        ['1', lists], // ids match by JSON type: the id "1" is not the id 1
        [99, new Map<JsonRpcId, ListFamily>([[1, 'tools']])], // one list asked: the scan's path
        [5, NO_LIST_REQUESTS],
      ] as const) {
        const out = JSON.parse(filterJsonBody(JSON.stringify({ jsonrpc: '2.0', id, result: { tools: claimed } }), within, reader, p) ?? 'null');
        expect(out.result.tools).toEqual([]);
        expect(p.annotations.get('rm')).toBeUndefined();
      }
      // The answer to this exchange's own tools/list is learned from.
      const answer = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: claimed } });
      const own = JSON.parse(filterJsonBody(answer, lists, reader, p) ?? answer);
      expect(own.result.tools.map((t: { name: string }) => t.name)).toEqual(['rm', 'read_file']);
      expect(p.annotations.get('rm')).toEqual({ readOnlyHint: true });
    });

    it("learns nothing from an answer with a pending tools/list's id that holds more than a list (another request's answer routed by its id)", () => {
      const claimed = [{ name: 'rm', annotations: { readOnlyHint: true } }];
      const one = new Map<JsonRpcId, ListFamily>([[7, 'tools']]);
      const several = new Map<JsonRpcId, ListFamily>([[7, 'tools'], ['p', 'prompts']]);
      // A tool's result that holds a tools member, beside what a call result holds.
      for (const extra of [{ content: [] }, { structuredContent: {} }, { isError: false }, { tools2: 1 }]) {
        for (const within of [one, several]) {
          for (const sse of [false, true]) {
            forgetRecentScans();
            const p = new Policy({ roles: { reader: { verbs: ['read'] } } });
            const text = JSON.stringify({ jsonrpc: '2.0', id: 7, result: { ...extra, tools: claimed } });
            const out = sse
              ? new SseListFilter(within, reader, p).push(`event: message\ndata: ${text}\n\n`)
              : (filterJsonBody(text, within, reader, p) ?? text);
            // Filtered (rm is not known to be read-only) and not learned from.
            expect(out).not.toContain('"rm"');
            expect(p.annotations.get('rm')).toBeUndefined();
          }
        }
      }
      // A list answer with the members a list result may carry (2025-11-25 and 2026-07-28) is learned from, by either path.
      for (const within of [one, several]) {
        forgetRecentScans();
        const p = new Policy({ roles: { reader: { verbs: ['read'] } } });
        const text = JSON.stringify({ jsonrpc: '2.0', id: 7, result: { _meta: {}, tools: claimed, nextCursor: 'c', resultType: 'complete', ttlMs: 1000 } });
        const out = JSON.parse(filterJsonBody(text, within, reader, p) ?? text);
        expect(out.result.tools.map((t: { name: string }) => t.name)).toEqual(['rm']);
        expect(p.annotations.get('rm')).toEqual({ readOnlyHint: true });
      }
    });

    it('filters a list whose answer has a null or no id', () => {
      for (const id of [null, undefined]) {
        const body = JSON.stringify({ jsonrpc: '2.0', id, result: { tools } });
        for (const within of [lists, NO_LIST_REQUESTS]) {
          const out = JSON.parse(filterJsonBody(body, within, reader, policy) ?? 'null');
          expect(out.result.tools.map((t: { name: string }) => t.name)).toEqual(['read_file']);
        }
      }
    });

    it('filters every list an answer holds, one list asked or not', () => {
      const both = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools, prompts: [{ name: 'greet' }, { name: 'admin_reset' }] } });
      for (const within of [new Map<JsonRpcId, ListFamily>([[1, 'tools']]), lists, NO_LIST_REQUESTS]) {
        const out = JSON.parse(filterJsonBody(both, within, reader, policy) ?? 'null');
        expect(out.result.tools.map((t: { name: string }) => t.name)).toEqual(['read_file']);
        expect(out.result.prompts).toEqual([{ name: 'greet' }]);
      }
    });

    it('filters every list an answer holds, a batch with one id twice included', () => {
      const twice = new Map<JsonRpcId, ListFamily>([[7, 'prompts']]);
      const body = JSON.stringify([
        { jsonrpc: '2.0', id: 7, result: { tools } },
        { jsonrpc: '2.0', id: 7, result: { prompts: [{ name: 'greet' }, { name: 'admin_reset' }] } },
      ]);
      const out = JSON.parse(filterJsonBody(body, twice, reader, policy) ?? 'null');
      expect(out[0].result.tools.map((t: { name: string }) => t.name)).toEqual(['read_file']);
      expect(out[1].result.prompts).toEqual([{ name: 'greet' }]);
    });

    it('reads a text with no list requested only when it may hold one, a list member cut between chunks included', () => {
      const list = JSON.stringify({ jsonrpc: '2.0', id: 3, result: { tools } });
      const escaped = list.replace('"tools"', '"tool\\u0073"');
      expect(JSON.parse(escaped).result.tools).toHaveLength(4);
      for (const text of [list, escaped]) {
        for (let cut = 1; cut < 40; cut++) {
          const chunks = cutPieces(text, [cut, cut + 1, cut + 2]);
          const out = filterJsonChunks(chunks, NO_LIST_REQUESTS, reader, policy);
          expect(JSON.parse(out?.join('') ?? 'null').result.tools.map((t: { name: string }) => t.name)).toEqual(['read_file']);
        }
      }
      expect(filterJsonChunks(['{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"rm"}]}}'], NO_LIST_REQUESTS, reader, policy)).toBeUndefined();
    });

    it('does not parse an answer with no list whose escapes cannot spell one (Python escapes all non-ASCII)', () => {
      const parse = vi.spyOn(JSON, 'parse');
      try {
        const python = '{"jsonrpc": "2.0", "id": 3, "result": {"content": [{"type": "text", "text": "caf\\u00e9 \\u4e2d\\u6587"}]}}';
        expect(filterJsonChunks([python], NO_LIST_REQUESTS, reader, policy)).toBeUndefined();
        expect(parse).not.toHaveBeenCalled();
        // An escape of a letter could spell a member's name: that text is read.
        expect(filterJsonChunks([python.replace('"result"', '"r\\u0065sult"')], NO_LIST_REQUESTS, reader, policy)).toBeUndefined();
        expect(parse).toHaveBeenCalled();
      } finally {
        parse.mockRestore();
      }
    });
  });
  it('drops items without a usable name', () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [{ name: 5 }, null, { name: 'read_file', annotations: { readOnlyHint: true } }] } });
    const out = JSON.parse(filterJsonBody(body, lists, principal(['admin']), policy) ?? 'null');
    expect(out.result.tools.map((t: { name: string }) => t.name)).toEqual(['read_file']);
  });
  it('collects pending lists from actions', () => {
    expect(pendingListsOf([{ method: 'tools/call', kind: 'tool', id: 1, target: 'x' }])).toBeUndefined();
    expect(pendingListsOf([{ method: 'tools/list', kind: 'list', id: 2, list: 'tools' }])?.get(2)).toBe('tools');
  });
});

describe('SseListFilter', () => {
  const stream =
    ': keep-alive\n\n' +
    'event: message\nid: 7\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n' +
    `event: message\nid: 8\ndata: ${JSON.stringify(toolsResponse)}\n\n` +
    'retry: 1000\n\n';

  function run(chunks: string[]): string {
    const filter = new SseListFilter(lists, reader, policy);
    return chunks.map((c) => filter.push(c)).join('') + filter.flush();
  }

  it('rewrites only the list response and passes every other event through', () => {
    const out = run([stream]);
    const events = out.split('\n\n');
    expect(events[0]).toBe(': keep-alive');
    expect(events[1]).toContain('notifications/progress');
    expect(events[2]).toContain('id: 8');
    const data = JSON.parse((events[2] ?? '').split('\n').find((l) => l.startsWith('data: '))?.slice(6) ?? 'null');
    expect(data.result.tools.map((t: { name: string }) => t.name)).toEqual(['read_file']);
    expect(events[3]).toBe('retry: 1000');
  });

  it('filters an event whose type is empty: clients take it for a message event', () => {
    // WHATWG HTML, server-sent events: an empty event type buffer dispatches a `message` event.
    const out = run([`event:\ndata: ${JSON.stringify(toolsResponse)}\n\n`, `event: \ndata: ${JSON.stringify(toolsResponse)}\n\n`]);
    expect(out).toContain('read_file');
    expect(out).not.toContain('write_file');
  });

  it('passes a keep-alive comment on at once, blank line or not', () => {
    const filter = new SseListFilter(NO_LIST_REQUESTS, reader, policy, true);
    expect(filter.push(': keepalive\n')).toBe(': keepalive\n');
    expect(filter.push(':\n\n')).toBe(':\n\n');
    // Inside an event it stays where it is.
    expect(filter.push('id: 3\n: note\n')).toBe('');
    expect(filter.push('data: {"jsonrpc":"2.0","method":"x"}\n\n')).toBe('id: 3\n: note\ndata: {"jsonrpc":"2.0","method":"x"}\n\n');
  });

  it('emits each event as soon as it is complete', () => {
    const filter = new SseListFilter(lists, reader, policy);
    expect(filter.push('event: message\ndata: {"jsonrpc":"2.0","method":"x"}\n')).toBe('');
    expect(filter.push('\n')).toContain('"method":"x"');
  });

  it('handles CRLF and CR line endings and multi-line data', () => {
    const crlf = `event: message\r\ndata: ${JSON.stringify(toolsResponse)}\r\n\r\n`;
    expect(run([crlf])).toContain('"read_file"');
    expect(run([crlf])).not.toContain('write_file');
    const multi = `data: ${JSON.stringify(toolsResponse).replace(',"result"', '\ndata: ,"result"')}\r\r`;
    expect(run([multi])).not.toContain('write_file');
  });

  it('gives the same output however the stream is cut into chunks', () => {
    const whole = run([stream.replace(/\n/g, '\r\n')]);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 12 }), (cuts) => {
        const text = stream.replace(/\n/g, '\r\n');
        expect(run(cutPieces(text, cuts))).toBe(whole);
      }),
      { numRuns: 500 },
    );
  });
});

describe('SseListFilter, a stream that ends in the middle of an event', () => {
  describe('Security', () => {
    it('relays nothing of an unfinished event but its finished non-data lines: a list cut off shows no hidden tool, one complete but unterminated neither', () => {
      const list = JSON.stringify(toolsResponse);
      const progress = 'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n';
      for (const unfinished of [`event: message\ndata: ${list.slice(0, list.indexOf('"rm"') + 10)}`, `event: message\ndata: ${list}\n`, `event: message\ndata: ${list}`]) {
        for (const bytes of [false, true]) {
          const filter = new SseListFilter(lists, reader, policy, bytes);
          const out = filter.push(progress) + filter.push(unfinished) + filter.flush();
          // Its finished line of another field goes on (no blank line after it): not its data.
          expect(out).toBe(`${progress}event: message\n`);
        }
      }
    });

    it('drops a message event whose data is not JSON: a list the upstream wrote wrong shows no hidden tool', () => {
      const list = JSON.stringify(toolsResponse);
      const wrong = list.replace(']', ',]');
      expect(() => JSON.parse(wrong)).toThrow();
      const after = 'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":2}}\n\n';
      for (const bytes of [false, true]) {
        const filter = new SseListFilter(lists, reader, policy, bytes);
        expect(filter.push(`: hi\n\nevent: message\nid: 9\ndata: ${wrong}\n\n${after}`) + filter.flush()).toBe(`: hi\n\nevent: message\nid: 9\n\n${after}`);
      }
      // The priming event of a resumable stream (empty data; its id is what a client resumes from) passes as it came.
      for (const priming of ['id: 5\nretry: 10\ndata: \n\n', 'id: 6\ndata:\n\n', 'id: 7\ndata\n\n']) {
        const f = new SseListFilter(lists, reader, policy, true);
        expect(f.push(priming) + f.flush()).toBe(priming);
      }
      // An event of another type whose data is not JSON passes as it came (the 2024-11-05 transport's endpoint event).
      const filter = new SseListFilter(lists, reader, policy);
      expect(filter.push('event: other\ndata: not json\n\n')).toBe('event: other\ndata: not json\n\n');
      expect(filter.push('event: endpoint\ndata: /messages?sessionId=1\n\n')).toBe('event: endpoint\ndata: /messages?sessionId=1\n\n');
    });

    it('filters a list in an event of another type too (a client may read every event), whatever was asked', () => {
      for (const within of [lists, NO_LIST_REQUESTS]) {
        for (const bytes of [false, true]) {
          const filter = new SseListFilter(within, reader, policy, bytes);
          const out = filter.push(`event: other\nid: 3\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools } })}\n\n`) + filter.flush();
          expect(out.startsWith('event: other\nid: 3\ndata: ')).toBe(true);
          expect(JSON.parse(out.split('data: ')[1] as string).result.tools.map((t: { name: string }) => t.name)).toEqual(['read_file']);
          // And a progress notification of another type passes as it came.
          const progress = 'event: other\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n';
          expect(filter.push(progress)).toBe(progress);
        }
      }
    });
  });
});

describe('SseListFilter over UTF-8 bytes', () => {
  const unicodePolicy = new Policy({ roles: { reader: { verbs: ['read'], tools: { deny: ['é*'] } } } });
  const named = [
    { name: 'read_ü😀', description: 'ünïcode — "quoted" \u2028', annotations: { readOnlyHint: true } },
    { name: 'éclair', annotations: { readOnlyHint: true } },
    { name: 'write_é', annotations: { readOnlyHint: false } },
  ];
  const stream =
    'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"héllo"}}\n\n' +
    `event: message\r\nid: 1\r\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: named } })}\r\n\r\n: après\n\n`;
  const bytes = Buffer.from(stream, 'utf8').toString('latin1');

  /** One list request: the scan (not the parse-and-serialise fallback) filters the answer. */
  const oneList = new Map<JsonRpcId, ListFamily>([[1, 'tools']]);

  function run(chunks: string[], asBytes: boolean): string {
    const filter = new SseListFilter(oneList, reader, unicodePolicy, asBytes);
    return [...chunks.flatMap((c) => filter.pushPieces(c)), ...filter.flushPieces()].join('');
  }

  it('filters the bytes of a stream as it filters the text, however the bytes are cut (inside a character too)', () => {
    const whole = run([stream], false);
    expect(whole).toContain('read_ü😀');
    expect(whole).not.toContain('éclair');
    expect(whole).not.toContain('write_é');
    fc.assert(
      fc.property(fc.array(fc.nat({ max: bytes.length }), { maxLength: 30 }), (cuts) => {
        expect(Buffer.from(run(cutPieces(bytes, cuts), true), 'latin1').toString('utf8')).toBe(whole);
      }),
      { numRuns: 300 },
    );
  });

  it('relays bytes that are not UTF-8 in a kept tool as they came', () => {
    const raw = `event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_a","description":"\xff\xc3","annotations":{"readOnlyHint":true}},{"name":"\xc3\xa9x","annotations":{"readOnlyHint":true}}]}}\n\n`;
    expect(run([raw.slice(0, 70), raw.slice(70)], true)).toBe(
      'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_a","description":"\xff\xc3","annotations":{"readOnlyHint":true}}]}}\n\n',
    );
  });

  describe('Security', () => {
    const list = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: named } });
    const names = (out: string): string[] => {
      const line = out.split(/\r?\n/).find((l) => l.startsWith('data: ') && l.includes('"result"')) ?? 'data: null';
      return (JSON.parse(line.slice(6)) as { result: { tools: { name: string }[] } }).result.tools.map((t) => t.name);
    };

    it('reads the event after a byte order mark opening the stream, as clients do, and relays the mark', () => {
      const text = `\uFEFFdata: ${list}\n\n`;
      const out = run([text], false);
      expect(out.startsWith('\uFEFF')).toBe(true);
      expect(names(out.slice(1))).toEqual(['read_ü😀']);
      const bytes = Buffer.from(text, 'utf8').toString('latin1');
      for (const cut of [1, 2, 3, 4]) {
        const out = Buffer.from(run([bytes.slice(0, cut), bytes.slice(cut)], true), 'latin1').toString('utf8');
        expect(out.startsWith('\uFEFF'), `cut at ${cut}`).toBe(true);
        expect(names(out.slice(1)), `cut at ${cut}`).toEqual(['read_ü😀']);
      }
      // A stream that only looks like the start of a mark is relayed as it came.
      expect(run(['\xEF'], true)).toBe('\xEF');
      expect(run(['\xEF', 'x\n\n'], true)).toBe('\xEFx\n\n');
    });

    it('takes a bare `event` line for an empty type and a bare `data` line for empty data, as clients do', () => {
      // WHATWG HTML, "process the field": a line without a colon is a field name with an empty value.
      expect(names(run([`event: other\nevent\ndata: ${list}\n\n`], false))).toEqual(['read_ü😀']);
      const out = run([`data\ndata: ${list}\n\n`], false);
      // The empty line of data stays the first of the event's data, as the client joins them.
      expect(out.startsWith('data: \ndata: {')).toBe(true);
      expect(names(out)).toEqual(['read_ü😀']);
      expect(out).not.toContain('éclair');
    });
  });
});

describe('filterWebResponse', () => {
  it('filters a JSON response and drops the stale Content-Length', async () => {
    const body = JSON.stringify(toolsResponse);
    const response = new Response(body, { headers: { 'content-type': 'application/json', 'content-length': String(body.length) } });
    const out = await filterWebResponse(response, lists, reader, policy);
    expect(out.headers.get('content-length')).toBeNull();
    expect((await out.json()).result.tools).toHaveLength(1);
  });
  it('filters an SSE response as it streams', async () => {
    const encoder = new TextEncoder();
    const text = `event: message\ndata: ${JSON.stringify(toolsResponse)}\n\n`;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < text.length; i += 7) controller.enqueue(encoder.encode(text.slice(i, i + 7)));
        controller.close();
      },
    });
    const out = await filterWebResponse(new Response(body, { headers: { 'content-type': 'text/event-stream' } }), lists, reader, policy);
    const received = await out.text();
    expect(received).toContain('read_file');
    expect(received).not.toContain('write_file');
  });
  it('passes a JSON body with nothing to change as the bytes it came in (a byte order mark, bytes that are not UTF-8)', async () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"jsonrpc":"2.0","id":9,"result":{"content":[{"type":"text","text":"'), Buffer.from([0xff, 0xc3]), Buffer.from('"}]}}')]);
    const out = await filterWebResponse(new Response(bytes, { headers: { 'content-type': 'application/json', 'content-length': String(bytes.length) } }), lists, reader, policy);
    expect(Buffer.from(await out.arrayBuffer()).equals(bytes)).toBe(true);
    expect(out.headers.get('content-length')).toBe(String(bytes.length));
  });
  it('relays a byte order mark opening an SSE stream, and filters the event after it', async () => {
    const text = `\uFEFFevent: message\ndata: ${JSON.stringify(toolsResponse)}\n\n`;
    const out = await filterWebResponse(new Response(text, { headers: { 'content-type': 'text/event-stream' } }), lists, reader, policy);
    const received = new TextDecoder('utf-8', { ignoreBOM: true }).decode(await out.arrayBuffer());
    expect(received.startsWith('\uFEFFevent: message\n')).toBe(true);
    expect(received).toContain('read_file');
    expect(received).not.toContain('write_file');
  });
  describe('Security: a body compressed inside the middleware', () => {
    const gzip = (text: string): Uint8Array<ArrayBuffer> => new Uint8Array(zlib.gzipSync(Buffer.from(text, 'utf8')));
    it('decodes gzip and deflate, filters, and sends the body without its coding', async () => {
      const body = JSON.stringify(toolsResponse);
      for (const [coding, bytes] of [
        ['gzip', gzip(body)],
        ['deflate', new Uint8Array(zlib.deflateSync(Buffer.from(body))) as Uint8Array<ArrayBuffer>],
      ] as const) {
        const out = await filterWebResponse(new Response(bytes, { headers: { 'content-type': 'application/json', 'content-encoding': coding, 'content-length': String(bytes.length) } }), lists, reader, policy);
        expect(out.headers.get('content-encoding'), coding).toBeNull();
        expect(out.headers.get('content-length'), coding).toBeNull();
        expect((await out.json()).result.tools.map((t: { name: string }) => t.name), coding).toEqual(['read_file']);
      }
      const sse = await filterWebResponse(new Response(gzip(`event: message\ndata: ${body}\n\n`), { headers: { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' } }), lists, reader, policy);
      expect(sse.headers.get('content-encoding')).toBeNull();
      const received = await sse.text();
      expect(received).toContain('read_file');
      expect(received).not.toContain('write_file');
    });
    it('refuses a coding it cannot decode, or bytes that are not in the coding named, with a JSON-RPC error', async () => {
      const body = JSON.stringify(toolsResponse);
      const broken = gzip(body);
      const middle = Math.floor(broken.length / 2);
      broken[middle] = (broken[middle] as number) ^ 0xff;
      for (const [coding, bytes] of [
        ['br', new Uint8Array(zlib.brotliCompressSync(Buffer.from(body))) as Uint8Array<ArrayBuffer>],
        ['gzip', broken],
      ] as const) {
        const out = await filterWebResponse(new Response(bytes, { headers: { 'content-type': 'application/json', 'content-encoding': coding } }), lists, reader, policy);
        expect(out.status, coding).toBe(500);
        expect(out.headers.get('content-encoding')).toBeNull();
        const text = await out.text();
        expect(text).not.toContain('write_file');
        expect(JSON.parse(text)).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32603 } });
      }
    });
  });
  it('filters a JSON body whose content type a client reads as JSON once trimmed (U+00A0)', async () => {
    const out = await filterWebResponse(new Response(JSON.stringify(toolsResponse), { headers: { 'content-type': '\u00a0application/json' } }), lists, reader, policy);
    expect((await out.json()).result.tools).toHaveLength(1);
  });
  it('passes other responses untouched', async () => {
    const response = new Response('hello', { headers: { 'content-type': 'text/plain' } });
    expect(await filterWebResponse(response, lists, reader, policy)).toBe(response);
  });
});

describe('SseListFilter, big lists in many chunks', () => {
  const many = Array.from({ length: 300 }, (_, i) => ({
    name: `tool_${i}`,
    description: `tool ${i} ${'é'.repeat(i % 7)}`,
    inputSchema: { type: 'object', properties: { q: { type: 'string', description: 'a "quoted" \\ text' } } },
    ...(i % 3 === 0 ? { annotations: { readOnlyHint: true } } : {}),
  }));
  const message = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: many } });
  const stream = `event: message\r\nid: 1\r\ndata: ${message}\r\n\r\n: after\n\n`;

  function run(chunks: string[], pieces: boolean): string {
    const filter = new SseListFilter(lists, reader, policy);
    if (!pieces) return chunks.map((c) => filter.push(c)).join('') + filter.flush();
    const out = [...chunks.flatMap((c) => filter.pushPieces(c)), ...filter.flushPieces()];
    for (const piece of out) expect(piece.length).toBeLessThanOrEqual(32 * 1024);
    return out.join('');
  }

  it('keeps exactly the allowed tools, in pieces no longer than 32 Ki code units', () => {
    const out = run([stream], true);
    const data = JSON.parse(out.split('\n').find((l) => l.startsWith('data: '))?.slice(6) ?? 'null');
    expect(data.result.tools.map((t: { name: string }) => t.name)).toEqual(many.filter((t) => t.annotations !== undefined).map((t) => t.name));
    expect(out.endsWith('\n\n: after\n\n')).toBe(true);
  });

  it('gives the same output however the stream is cut, items and line ends split across chunks', () => {
    const whole = run([stream], false);
    fc.assert(
      fc.property(fc.array(fc.nat({ max: stream.length }), { maxLength: 40 }), fc.boolean(), (cuts, pieces) => {
        expect(run(cutPieces(stream, cuts), pieces)).toBe(whole);
      }),
      { numRuns: 300 },
    );
  });

  it('writes data that came on several lines back as valid SSE: every line of the event is a field', () => {
    const pretty = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: many.slice(0, 6) } }, null, 1);
    const out = run([`event: message\ndata: ${pretty.split('\n').join('\ndata: ')}\n\n`], true);
    const lines = out.split('\n\n')[0]?.split('\n') ?? [];
    expect(lines.every((l) => l.startsWith('data: ') || l.startsWith('event: '))).toBe(true);
    const data = JSON.parse(lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n'));
    expect(data.result.tools.map((t: { name: string }) => t.name)).toEqual(['tool_0', 'tool_3']);
  });
});

describe('the same list answered again with another id', () => {
  const many = Array.from({ length: 50 }, (_, i) => ({ name: `tool_${i}`, annotations: { readOnlyHint: i % 2 === 0 } }));
  // Id first, as the Python SDK writes it: an id of another length moves every offset of the list.
  const answer = (id: JsonRpcId): string => JSON.stringify({ jsonrpc: '2.0', id, result: { tools: many } });
  const filtered = (id: JsonRpcId, p: Policy): string[] => {
    const out = filterJsonChunks([answer(id)], new Map([[id, 'tools' as const]]), reader, p);
    return (JSON.parse(out?.join('') ?? 'null') as { result: { tools: { name: string }[] } }).result.tools.map((t) => t.name);
  };

  it('keeps what was learned and decided for the list, whatever the id, and keeps the same tools', () => {
    forgetRecentScans();
    const p = new Policy({ roles: { reader: { verbs: ['read'] } } });
    const expected = many.filter((_, i) => i % 2 === 0).map((t) => t.name);
    expect(filtered(7, p)).toEqual(expected);
    const learn = vi.spyOn(p.annotations, 'learnTexts');
    const decide = vi.spyOn(p, 'decide');
    for (const id of [10, 12345, 'a-string-id', 8]) expect(filtered(id, p)).toEqual(expected);
    // Neither the annotations nor the policy's answers about the 50 tools were worked out again.
    expect(learn).not.toHaveBeenCalled();
    expect(decide).not.toHaveBeenCalled();
  });
});

describe('SseListFilter on a GET stream (NO_LIST_REQUESTS)', () => {
  describe('Security', () => {
    it('filters every list answer a resumed stream replays, whatever its id, and passes the rest', () => {
      const prompts = { jsonrpc: '2.0', id: 'q', result: { prompts: [{ name: 'greet' }, { name: 'admin_reset' }] } };
      const resources = { jsonrpc: '2.0', id: 5, result: { resources: [{ uri: 'file:///a' }, { uri: 'secret://k' }], resourceTemplates: [{ uriTemplate: 'secret://{k}' }, { uriTemplate: 'file:///{p}' }] } };
      const notification = '{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}';
      const call = '{"jsonrpc":"2.0","id":8,"result":{"content":[{"type":"text","text":"write_file"}]}}';
      const stream = [
        'id: 1\ndata: \n\n',
        `id: 2\nevent: message\ndata: ${JSON.stringify({ ...toolsResponse, id: 77 })}\n\n`,
        `id: 3\ndata: ${JSON.stringify(prompts)}\n\n`,
        `id: 4\ndata: ${JSON.stringify(resources)}\n\n`,
        `id: 5\ndata: ${notification}\n\n`,
        `id: 6\ndata: ${call}\n\n`,
      ].join('');
      for (const bytes of [false, true]) {
        const filter = new SseListFilter(NO_LIST_REQUESTS, reader, policy, bytes);
        const out = filter.push(bytes ? Buffer.from(stream).toString('latin1') : stream) + filter.flush();
        const events = out.split('\n\n');
        const data = (i: number): unknown => JSON.parse((events[i] ?? '').split('\n').find((l) => l.startsWith('data: '))?.slice(6) ?? 'null');
        expect(events[0]).toBe('id: 1\ndata: ');
        expect((data(1) as typeof toolsResponse).result.tools.map((t) => t.name)).toEqual(['read_file']);
        expect(data(2)).toEqual({ ...prompts, result: { prompts: [{ name: 'greet' }] } });
        expect(data(3)).toEqual({ ...resources, result: { resources: [{ uri: 'file:///a' }], resourceTemplates: [{ uriTemplate: 'file:///{p}' }] } });
        expect(events[4]).toBe(`id: 5\ndata: ${notification}`);
        expect(events[5]).toBe(`id: 6\ndata: ${call}`);
      }
    });
  });
});

describe('SseListFilter sealing event ids', () => {
  const seal = (id: Buffer): string => `S(${id.toString('hex')})`;
  const hex = (text: string): string => Buffer.from(text, 'utf8').toString('hex');

  it('seals every non-empty id, whatever the event, however the stream is cut, in text and in bytes', () => {
    const call = '{"jsonrpc":"2.0","id":8,"result":{"content":[]}}';
    const stream = [
      'id: prime-1\ndata: \n\n',
      `event: message\nid:é-2\ndata: ${JSON.stringify(toolsResponse)}\n\n`,
      `id: 3\ndata: ${call}\n\n`,
      'id\ndata: {"jsonrpc":"2.0","method":"notifications/x"}\n\n',
      'id: a\u0000b\ndata: {"jsonrpc":"2.0","method":"notifications/y"}\n\n',
      ': keep-alive\n',
      'id: tail-4\nretry: 10\n',
    ].join('');
    for (const bytes of [false, true]) {
      const input = bytes ? Buffer.from(stream).toString('latin1') : stream;
      const every = (n: number): string[] => Array.from({ length: Math.ceil(input.length / n) }, (_, i) => input.slice(i * n, (i + 1) * n));
      for (const cuts of [[input], every(7), every(1)]) {
        const filter = new SseListFilter(lists, reader, policy, bytes, seal);
        const out = cuts.map((piece) => filter.push(piece)).join('') + filter.flush();
        const text = bytes ? Buffer.from(out, 'latin1').toString('utf8') : out;
        expect(text).toContain(`id: S(${hex('prime-1')})\ndata: \n\n`);
        expect(text).toContain(`id: S(${hex('é-2')})\n`);
        expect(text).toContain(`id: S(${hex('3')})\ndata: ${call}\n\n`);
        // The list answer is filtered as without sealing.
        expect(text).toContain('"read_file"');
        expect(text).not.toContain('"rm"');
        // An empty id (a reset) and one with a NUL (which clients ignore) pass as they are.
        expect(text).toContain('id\ndata: {"jsonrpc":"2.0","method":"notifications/x"}');
        expect(text).toContain('id: a\u0000b\n');
        // The unfinished event at the end keeps its id line, sealed.
        expect(text).toContain(`id: S(${hex('tail-4')})\nretry: 10\n`);
        expect(text).not.toMatch(/^id: (prime-1|é-2|3|tail-4)$/m);
      }
    }
  });
});

describe('SseListFilter.passesWhole (a chunk sent on as it came)', () => {
  const answer = 'event: message\ndata: {"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}]}}\n\n';
  const seal = (id: Buffer): string => `sealed-${id.toString('hex')}`;

  it('passes the usual answer to a call, as text and as bytes, and what it passes is what pushPieces sends', () => {
    expect(new SseListFilter(NO_LIST_REQUESTS, reader, policy).passesWhole(answer)).toBe(true);
    expect(new SseListFilter(NO_LIST_REQUESTS, reader, policy, true).passesWhole(Buffer.from(answer, 'utf8'))).toBe(true);
    expect(new SseListFilter(NO_LIST_REQUESTS, reader, policy).pushPieces(answer).join('')).toBe(answer);
  });

  it('refuses a chunk of the other form, a cut event, and one after a cut event', () => {
    expect(new SseListFilter(NO_LIST_REQUESTS, reader, policy).passesWhole(Buffer.from(answer))).toBe(false);
    expect(new SseListFilter(NO_LIST_REQUESTS, reader, policy, true).passesWhole(answer)).toBe(false);
    expect(new SseListFilter(NO_LIST_REQUESTS, reader, policy).passesWhole(answer.slice(0, -1))).toBe(false);
    const filter = new SseListFilter(NO_LIST_REQUESTS, reader, policy);
    expect(filter.pushPieces('event: message\n')).toEqual([]);
    expect(filter.passesWhole('\n')).toBe(false);
    expect(filter.passesWhole(answer)).toBe(false);
  });

  describe('Security', () => {
    it('never passes a chunk that names a list member, or escapes a letter, or while a list answer is awaited', () => {
      const listed = `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 9, result: { tools } })}\n\n`;
      const escaped = 'event: message\ndata: {"jsonrpc":"2.0","id":9,"result":{"\\u0074ools":[{"name":"rm"}]}}\n\n';
      for (const bytes of [false, true]) {
        const form = (text: string): string | Buffer => (bytes ? Buffer.from(text, 'utf8') : text);
        expect(new SseListFilter(NO_LIST_REQUESTS, reader, policy, bytes).passesWhole(form(listed))).toBe(false);
        expect(new SseListFilter(NO_LIST_REQUESTS, reader, policy, bytes).passesWhole(form(escaped))).toBe(false);
        expect(new SseListFilter(lists, reader, policy, bytes).passesWhole(form(answer))).toBe(false);
        // What the long way makes of them: the hidden tool is gone.
        const out = new SseListFilter(NO_LIST_REQUESTS, reader, policy, bytes).pushPieces(bytes ? Buffer.from(listed).toString('latin1') : listed).join('');
        expect(out).not.toContain('"rm"');
      }
    });

    it('never passes CR line ends, a byte order mark, or an event id to seal', () => {
      for (const bytes of [false, true]) {
        const form = (text: string): string | Buffer => (bytes ? Buffer.from(text, 'utf8') : text);
        expect(new SseListFilter(NO_LIST_REQUESTS, reader, policy, bytes).passesWhole(form(answer.replace('\n', '\r\n')))).toBe(false);
        expect(new SseListFilter(NO_LIST_REQUESTS, reader, policy, bytes).passesWhole(form(`\uFEFF${answer}`))).toBe(false);
        expect(new SseListFilter(NO_LIST_REQUESTS, reader, policy, bytes, seal).passesWhole(form(`id: 5\n${answer}`))).toBe(false);
        expect(new SseListFilter(NO_LIST_REQUESTS, reader, policy, bytes, seal).passesWhole(form(`: x\nid:5\n${answer}`))).toBe(false);
        // Without a seal, an id goes on as it is either way.
        expect(new SseListFilter(NO_LIST_REQUESTS, reader, policy, bytes).passesWhole(form(`id: 5\n${answer}`))).toBe(true);
      }
    });

    it('passes only what pushPieces would send unchanged, for any text made of SSE-ish lines (property)', () => {
      const line = fc.oneof(
        fc.constantFrom('event: message', 'data: {"jsonrpc":"2.0","id":1,"result":{}}', 'data: {"tools":[]}', 'data: \\u0074', 'id: 3', 'id:', ': c', 'retry: 5', 'data', '', '\uFEFF', '\r'),
        fc.string({ maxLength: 12 }),
      );
      fc.assert(
        fc.property(fc.array(line, { maxLength: 8 }), fc.constantFrom('\n', '\n\n', '\r\n\r\n', ''), fc.boolean(), fc.boolean(), fc.boolean(), (lines, end, bytes, sealed, awaited) => {
          const text = lines.join('\n') + end;
          const make = (): SseListFilter => new SseListFilter(awaited ? lists : NO_LIST_REQUESTS, reader, policy, bytes, sealed ? seal : undefined);
          const asBytes = Buffer.from(text, 'utf8');
          const passed = make().passesWhole(bytes ? asBytes : text);
          if (!passed) return;
          const slow = make().pushPieces(bytes ? asBytes.toString('latin1') : text).join('');
          expect(slow).toBe(bytes ? asBytes.toString('latin1') : text);
        }),
        { numRuns: 3000 },
      );
    });
  });
});

describe('Security: a JSON answer cut off midway (not JSON, yet it may hold a list)', () => {
  const full = JSON.stringify(toolsResponse);
  // Cut after the hidden tool's name: its raw text would show it.
  const cut = full.slice(0, full.indexOf('"rm"') + 6);

  it('filterJsonAnswer withholds it, as text and as bytes, whether or not a list was awaited', () => {
    for (const pending of [lists, NO_LIST_REQUESTS]) {
      expect(filterJsonAnswer([cut], pending, reader, policy)).toBe(WITHHELD);
      expect(filterJsonAnswer([Buffer.from(cut).toString('latin1')], pending, reader, policy, true)).toBe(WITHHELD);
      expect(filterJsonAnswer([`\uFEFF${cut}`], pending, reader, policy)).toBe(WITHHELD);
    }
    // filterJsonChunks keeps its contract: undefined means "send it as it came", so callers that
    // cannot refuse use filterJsonAnswer.
    expect(filterJsonChunks([cut], lists, reader, policy)).toBeUndefined();
  });

  it('passes what is not JSON and holds nothing of a list (an HTML error page, a cut call answer)', () => {
    expect(filterJsonAnswer(['<html><body>502 Bad Gateway</body></html>'], lists, reader, policy)).toBeUndefined();
    expect(filterJsonAnswer(['{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"te'], lists, reader, policy)).toBeUndefined();
  });

  it('filterWebResponse answers 500 with a JSON-RPC error and nothing of the body', async () => {
    const out = await filterWebResponse(new Response(cut, { headers: { 'content-type': 'application/json' } }), lists, reader, policy);
    expect(out.status).toBe(500);
    const text = await out.text();
    expect(text).not.toContain('"rm"');
    expect(JSON.parse(text)).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32603 } });
  });
});
