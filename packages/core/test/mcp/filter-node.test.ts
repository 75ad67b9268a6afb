/**
 * filterNodeResponse on a real node:http server: a body written as bytes (what a proxy relays) is
 * filtered as bytes and written back byte for byte, cut anywhere, inside a character too; a body
 * written as strings (what an SDK writes) as text.
 */
import { type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mediaTypeEssence } from '@modelcontextprotocol/sdk/shared/mediaType.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Policy } from '../../src/authz/policy.js';
import { filterNodeResponse } from '../../src/mcp/filter-node.js';
import type { JsonRpcId, ListFamily } from '../../src/types.js';
import { principal } from '../helpers.js';

const policy = new Policy({ roles: { reader: { verbs: ['read'], tools: { deny: ['é*'] } } } });
const lists = new Map<JsonRpcId, ListFamily>([[1, 'tools']]);
const tools = [
  { name: 'read_ü😀', description: 'ünïcode — "quoted"', annotations: { readOnlyHint: true } },
  { name: 'éclair', annotations: { readOnlyHint: true } },
  { name: 'write_é', annotations: { readOnlyHint: false } },
];
const message = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools } });
const kept = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [tools[0]] } });

/** How the handler writes its answer: the content type, the body, and the points where it cuts it. */
interface Answer {
  readonly type: string;
  readonly body: string;
  readonly cuts: readonly number[];
  readonly as: 'bytes' | 'strings';
}

let server: Server;
let base = '';
const answers = new Map<string, Answer>();

beforeAll(async () => {
  server = createServer((req, res) => {
    const answer = answers.get(req.url ?? '') as Answer;
    filterNodeResponse(res, lists, principal(['reader']), policy);
    res.writeHead(200, { 'content-type': answer.type });
    const bytes = Buffer.from(answer.body, 'utf8');
    let last = 0;
    for (const cut of [...answer.cuts, bytes.length]) {
      if (answer.as === 'bytes') res.write(bytes.subarray(last, cut));
      else res.write(answer.body.slice(last, cut));
      last = cut;
    }
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function fetchAnswer(name: string, answer: Answer): Promise<{ body: Buffer; length: string | null }> {
  answers.set(`/${name}`, answer);
  const response = await fetch(`${base}/${name}`);
  return { body: Buffer.from(await response.arrayBuffer()), length: response.headers.get('content-length') };
}

describe('filterNodeResponse', () => {
  it('filters a JSON body written as bytes, cut inside characters, with the right Content-Length', async () => {
    const whole = Buffer.from(message, 'utf8');
    // Cut inside the 4-byte emoji and the 2-byte é.
    const emoji = whole.indexOf(Buffer.from('😀'));
    const e = whole.indexOf(Buffer.from('é'));
    const { body, length } = await fetchAnswer('json-bytes', { type: 'application/json', body: message, cuts: [emoji + 1, emoji + 3, e + 1], as: 'bytes' });
    expect(body.toString('utf8')).toBe(kept);
    expect(Number(length)).toBe(body.length);
  });

  describe('Security', () => {
    it('filters a body whose content type a client reads as JSON or SSE only once trimmed (a space, U+00A0)', async () => {
      for (const [i, type] of [' application/json', '\u00a0Application/JSON; charset=utf-8', '\ttext/event-stream'].entries()) {
        const sse = type.includes('event-stream');
        // What the official SDK client makes of it.
        expect(mediaTypeEssence(type)).toBe(sse ? 'text/event-stream' : 'application/json');
        const { body } = await fetchAnswer(`odd-type-${i}`, { type, body: sse ? `data: ${message}\n\n` : message, cuts: [], as: 'bytes' });
        expect(body.toString('utf8'), JSON.stringify(type)).toBe(sse ? `data: ${kept}\n\n` : kept);
      }
    });

    it('filters a JSON body opened by a byte order mark (fetch drops the mark and parses the rest), as bytes and as strings', async () => {
      for (const as of ['bytes', 'strings'] as const) {
        // Cut inside the mark when written as bytes.
        const { body, length } = await fetchAnswer(`json-bom-${as}`, { type: 'application/json', body: `\uFEFF${message}`, cuts: as === 'bytes' ? [1, 2] : [1], as });
        expect(body.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf])), as).toBe(true);
        expect(body.subarray(3).toString('utf8'), as).toBe(kept);
        expect(Number(length), as).toBe(body.length);
      }
    });
  });

  it('filters an SSE stream written as bytes, cut anywhere, byte for byte what the text filter makes', async () => {
    const stream = `event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"héllo"}}\n\nevent: message\ndata: ${message}\n\n`;
    const size = Buffer.byteLength(stream);
    const expected = `event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"héllo"}}\n\nevent: message\ndata: ${kept}\n\n`;
    for (const step of [1, 3, 7, 64]) {
      const cuts = Array.from({ length: Math.floor((size - 1) / step) }, (_, i) => (i + 1) * step);
      const { body } = await fetchAnswer(`sse-bytes-${step}`, { type: 'text/event-stream', body: stream, cuts, as: 'bytes' });
      expect(body.toString('utf8'), `cut every ${step} bytes`).toBe(expected);
    }
  });

  it('filters a body written as strings as text, as before', async () => {
    const { body, length } = await fetchAnswer('json-strings', { type: 'application/json', body: message, cuts: [10, 40], as: 'strings' });
    expect(body.toString('utf8')).toBe(kept);
    expect(Number(length)).toBe(body.length);
  });

  it('takes later writes of either kind into the kind the first chose, and data given to end', async () => {
    const bytes = Buffer.from(message, 'utf8');
    const e = bytes.indexOf(Buffer.from('é'));
    const sse = (body: string): string => `event: message\ndata: ${body}\n\n`;
    const cases: [string, string, (res: ServerResponse) => void][] = [
      // Bytes first, then a string in base64 and one in UTF-8, the rest given to end().
      ['application/json', kept, (res) => {
        res.write(bytes.subarray(0, 30));
        res.write(bytes.subarray(30, 60).toString('base64'), 'base64');
        res.write(bytes.subarray(60, e + 1).toString('latin1'), 'latin1');
        res.end(bytes.subarray(e + 1));
      }],
      // A string first, then bytes cut inside a character.
      ['application/json', kept, (res) => {
        res.write(message.slice(0, 20));
        res.write(bytes.subarray(Buffer.byteLength(message.slice(0, 20)), e + 1));
        res.end(bytes.subarray(e + 1));
      }],
      // SSE as bytes, the last of it given to end().
      ['text/event-stream', sse(kept), (res) => {
        const all = Buffer.from(sse(message), 'utf8');
        res.write(all.subarray(0, e + 1));
        res.end(all.subarray(e + 1));
      }],
    ];
    for (const [type, expected, write] of cases) {
      const local = createServer((_req, res) => {
        filterNodeResponse(res, lists, principal(['reader']), policy);
        res.writeHead(200, { 'content-type': type });
        write(res);
      });
      await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
      try {
        const response = await fetch(`http://127.0.0.1:${(local.address() as AddressInfo).port}/`);
        const body = Buffer.from(await response.arrayBuffer());
        expect(body.toString('utf8')).toBe(expected);
        if (type === 'application/json') expect(Number(response.headers.get('content-length'))).toBe(body.length);
      } finally {
        await new Promise<void>((resolve) => local.close(() => resolve()));
      }
    }
  });

  it('relays bytes that are not UTF-8 in what it keeps as they came', async () => {
    const raw = Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_a","description":"'), Buffer.from([0xff, 0xc3]), Buffer.from('","annotations":{"readOnlyHint":true}},{"name":"éx"}]}}')]);
    const local = createServer((req, res) => {
      filterNodeResponse(res, lists, principal(['reader']), policy);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(raw.subarray(0, 60));
      res.end(raw.subarray(60));
    });
    await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
    try {
      const response = await fetch(`http://127.0.0.1:${(local.address() as AddressInfo).port}/`);
      const body = Buffer.from(await response.arrayBuffer());
      expect(body.equals(Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_a","description":"'), Buffer.from([0xff, 0xc3]), Buffer.from('","annotations":{"readOnlyHint":true}}]}}')]))).toBe(true);
    } finally {
      await new Promise<void>((resolve) => local.close(() => resolve()));
    }
  });
});
