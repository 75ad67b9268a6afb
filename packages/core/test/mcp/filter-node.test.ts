/**
 * filterNodeResponse on a real node:http server: a body written as bytes (what a proxy relays) is
 * filtered as bytes and written back byte for byte, cut anywhere, inside a character too; a body
 * written as strings (what an SDK writes) as text.
 */
import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { mediaTypeEssence } from '@modelcontextprotocol/sdk/shared/mediaType.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Policy } from '../../src/authz/policy.js';
import { NO_LIST_REQUESTS, type PendingLists } from '../../src/mcp/filter.js';
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
  /**
   * A content coding, set with `setHeader` as a compression middleware outside the filter sets it:
   * the body is written encoded (raw for a coding zlib does not know), cut at `cuts` of the encoded
   * bytes; `corrupt` flips a byte in the middle of them.
   */
  readonly coding?: string;
  readonly corrupt?: boolean;
}

function encode(body: string, coding: string | undefined, corrupt: boolean): Buffer {
  const raw = Buffer.from(body, 'utf8');
  const name = coding?.trim().toLowerCase();
  const out = name === 'gzip' || name === 'x-gzip' ? zlib.gzipSync(raw) : name === 'deflate' ? zlib.deflateSync(raw) : name === 'br' ? zlib.brotliCompressSync(raw) : raw;
  const middle = Math.floor(out.length / 2);
  if (corrupt) out[middle] = (out[middle] as number) ^ 0xff;
  return out;
}

let server: Server;
let base = '';
const answers = new Map<string, Answer>();

beforeAll(async () => {
  server = createServer((req, res) => {
    const answer = answers.get(req.url ?? '') as Answer;
    filterNodeResponse(res, lists, principal(['reader']), policy);
    if (answer.coding !== undefined) res.setHeader('content-encoding', answer.coding);
    res.writeHead(200, { 'content-type': answer.type });
    const bytes = answer.coding === undefined ? Buffer.from(answer.body, 'utf8') : encode(answer.body, answer.coding, answer.corrupt === true);
    let last = 0;
    for (const cut of [...answer.cuts, bytes.length]) {
      if (answer.as === 'bytes') res.write(bytes.subarray(last, cut));
      // Encoded bytes as strings: one code unit per byte (what `latin1` writes).
      else if (answer.coding !== undefined) res.write(bytes.subarray(last, cut).toString('latin1'), 'latin1');
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

async function fetchAnswer(name: string, answer: Answer): Promise<{ body: Buffer; length: string | null; status: number; coding: string | null }> {
  answers.set(`/${name}`, answer);
  // fetch decodes what its Content-Encoding says, as a client's does.
  const response = await fetch(`${base}/${name}`);
  const body = await response.arrayBuffer().then(
    (b) => Buffer.from(b),
    () => Buffer.from('<broken>'),
  );
  return { body, length: response.headers.get('content-length'), status: response.status, coding: response.headers.get('content-encoding') };
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
    describe('a body compressed outside the filter (a compression middleware registered after mcp-warden)', () => {
      const sse = `event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"héllo"}}\n\nevent: message\ndata: ${message}\n\n`;
      const sseKept = `event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"héllo"}}\n\nevent: message\ndata: ${kept}\n\n`;

      it.each(['gzip', 'deflate', 'br', 'x-gzip', ' GZIP '])('decodes a JSON body in %j, filters it and sends it without the coding', async (coding) => {
        const size = encode(message, coding, false).length;
        for (const cuts of [[], [1, 2, 3], [Math.floor(size / 2)]]) {
          for (const as of ['bytes', 'strings'] as const) {
            const answer = await fetchAnswer(`json-coded-${encodeURIComponent(coding.trim())}-${cuts.length}-${as}`, { type: 'application/json', body: message, cuts, as, coding });
            expect(answer.coding).toBeNull();
            expect(answer.body.toString('utf8'), as).toBe(kept);
            expect(Number(answer.length)).toBe(answer.body.length);
          }
        }
      });

      it('decodes an SSE stream in gzip as it flows, cut anywhere, and filters it', async () => {
        const size = encode(sse, 'gzip', false).length;
        for (const step of [1, 7, 64]) {
          const cuts = Array.from({ length: Math.floor((size - 1) / step) }, (_, i) => (i + 1) * step);
          const answer = await fetchAnswer(`sse-gzip-${step}`, { type: 'text/event-stream', body: sse, cuts, as: 'bytes', coding: 'gzip' });
          expect(answer.coding, `step ${step}`).toBeNull();
          expect(answer.body.toString('utf8'), `step ${step}`).toBe(sseKept);
        }
      });

      it('refuses a JSON or SSE body in a coding it cannot read, or not in the coding it names, with a JSON-RPC error and nothing of the body', async () => {
        for (const [i, answer] of [
          { type: 'application/json', body: message, cuts: [], as: 'bytes', coding: 'zstd' },
          { type: 'text/event-stream', body: sse, cuts: [], as: 'bytes', coding: 'compress' },
          { type: 'application/json', body: message, cuts: [5], as: 'bytes', coding: 'gzip, br' },
          { type: 'application/json', body: message, cuts: [], as: 'bytes', coding: 'gzip', corrupt: true },
        ].entries()) {
          const got = await fetchAnswer(`refused-${i}`, answer as Answer);
          expect(got.status, JSON.stringify(answer.coding)).toBe(500);
          expect(got.coding).toBeNull();
          expect(JSON.parse(got.body.toString('utf8'))).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32603 } });
          expect(got.body.toString('utf8')).toContain(`Content-Encoding: ${answer.coding}`);
        }
      });

      it('ends an SSE stream whose bytes stop decoding with what decoded before, and no event they cut', async () => {
        const first = 'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"first"}}\n\n';
        // The list's event is cut by the bad byte: none of it may reach the client.
        const answer = await fetchAnswer('sse-corrupt', { type: 'text/event-stream', body: `${first}event: message\ndata: ${message}\n\n`, cuts: [40], as: 'bytes', coding: 'gzip', corrupt: true });
        expect(answer.coding).toBeNull();
        const text = answer.body.toString('utf8');
        expect(text).not.toContain('éclair');
        expect(text).not.toContain('write_é');
        expect(first.startsWith(text) || text === '').toBe(true);
      });

      it('passes a body in a coding untouched when it is neither JSON nor SSE', async () => {
        const answer = await fetchAnswer('plain-gzip', { type: 'text/plain', body: message, cuts: [], as: 'bytes', coding: 'gzip' });
        expect(answer.coding).toBe('gzip');
        expect(answer.body.toString('utf8')).toBe(message);
      });
    });

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

  it('an SSE event given whole to end() (how the stdio bridge ends a stream): a call answer goes as written with its callback; a list answer is still filtered', async () => {
    const callAnswer = 'event: message\ndata: {"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"é"}]}}\n\n';
    const listAnswer = `event: message\ndata: ${message}\n\n`;
    const cases: [string, PendingLists, string, string | Buffer][] = [
      ['call as a string', NO_LIST_REQUESTS, callAnswer, callAnswer],
      ['call as bytes', NO_LIST_REQUESTS, callAnswer, Buffer.from(callAnswer, 'utf8')],
      ['list awaited, as a string', lists, `event: message\ndata: ${kept}\n\n`, listAnswer],
      ['list not awaited (another stream), as bytes', NO_LIST_REQUESTS, `event: message\ndata: ${kept}\n\n`, Buffer.from(listAnswer, 'utf8')],
    ];
    for (const [what, pending, expected, last] of cases) {
      let called = 0;
      const local = createServer((_req, res) => {
        filterNodeResponse(res, pending, principal(['reader']), policy);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(last, () => {
          called++;
        });
        // What the app writes after its end is dropped, as after any end.
        res.write('data: late\n\n');
      });
      await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
      try {
        const response = await fetch(`http://127.0.0.1:${(local.address() as AddressInfo).port}/`);
        expect(Buffer.from(await response.arrayBuffer()).toString('utf8'), what).toBe(expected);
        await new Promise((resolve) => setImmediate(resolve));
        expect(called, what).toBe(1);
      } finally {
        await new Promise<void>((resolve) => local.close(() => resolve()));
      }
    }
  });

  describe('Security: a JSON list answer cut off midway', () => {
    it('is withheld (500, a JSON-RPC error, no byte of it), however the app ended it', async () => {
      const cut = message.slice(0, message.indexOf('éclair') + 8);
      const cases: [string, (res: ServerResponse) => void][] = [
        ['ended cut, as a string', (res) => res.end(cut)],
        ['ended cut, as bytes', (res) => res.end(Buffer.from(cut, 'utf8'))],
        // A handler that wrote part of it and threw, and an error handler that answered after it.
        ['an error answer appended', (res) => {
          res.write(cut);
          res.statusCode = 500;
          res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32603, message: 'Internal error' } }));
        }],
      ];
      for (const [what, write] of cases) {
        const local = createServer((_req, res) => {
          filterNodeResponse(res, lists, principal(['reader']), policy);
          res.writeHead(200, { 'content-type': 'application/json', 'x-app': 'kept?' });
          write(res);
        });
        await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
        try {
          const response = await fetch(`http://127.0.0.1:${(local.address() as AddressInfo).port}/`);
          const text = await response.text();
          expect(response.status, what).toBe(500);
          expect(text, what).not.toContain('éclair');
          expect(JSON.parse(text), what).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32603 } });
          expect(Number(response.headers.get('content-length')), what).toBe(Buffer.byteLength(text));
          // None of the app's headers either: the answer is the filter's own.
          expect(response.headers.get('x-app'), what).toBeNull();
        } finally {
          await new Promise<void>((resolve) => local.close(() => resolve()));
        }
      }
    });
  });

  it('keeps writing whole SSE events as they came (the app\'s own arguments) after an event that had to be read line by line', async () => {
    const writes: unknown[][] = [];
    const event = (n: number) => `event: message\ndata: {"jsonrpc":"2.0","id":${n},"result":{}}\n\n`;
    const local = createServer((_req, res) => {
      const original = res.write;
      // What reaches Node's own write, with its arguments, under the filter.
      res.write = function recorded(this: ServerResponse, ...args: unknown[]): boolean {
        writes.push(args.filter((a) => a !== undefined && typeof a !== 'function'));
        return (original as (...a: unknown[]) => boolean).apply(this, args);
      } as typeof res.write;
      filterNodeResponse(res, NO_LIST_REQUESTS, principal(['reader']), policy);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(event(1));
      // An event cut in two: read line by line.
      res.write(event(2).slice(0, 20));
      res.write(event(2).slice(20));
      res.write(event(3));
      res.end();
    });
    await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
    try {
      const body = await (await fetch(`http://127.0.0.1:${(local.address() as AddressInfo).port}/`)).text();
      expect(body).toBe(event(1) + event(2) + event(3));
      expect(writes[0]).toEqual([event(1)]);
      expect(writes.at(-1)).toEqual([event(3)]);
    } finally {
      await new Promise<void>((resolve) => local.close(() => resolve()));
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

/** A server of its own whose handler writes through the filter as `write` says. */
async function withServer(write: (res: ServerResponse) => void, use: (url: string) => Promise<void>): Promise<void> {
  const local = createServer((_req, res) => {
    filterNodeResponse(res, lists, principal(['reader']), policy);
    write(res);
  });
  await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
  try {
    await use(`http://127.0.0.1:${(local.address() as AddressInfo).port}/`);
  } finally {
    local.closeAllConnections();
    await new Promise<void>((resolve) => local.close(() => resolve()));
  }
}

describe('filterNodeResponse: headers given in every way Node takes them', () => {
  describe('Security', () => {
    it('reads the content type from writeHead headers given as an array of pairs or a flat array', async () => {
      for (const headers of [[['content-type', 'application/json']], ['content-type', 'application/json']]) {
        await withServer(
          (res) => {
            res.writeHead(200, headers as never);
            res.end(message);
          },
          async (url) => {
            const response = await fetch(url);
            expect(await response.text(), JSON.stringify(headers)).toBe(kept);
            expect(response.headers.get('content-type')).toBe('application/json');
          },
        );
      }
    });

    it('decodes a JSON body whose coding was set after writeHead (the headers are held until end)', async () => {
      await withServer(
        (res) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.setHeader('content-encoding', 'gzip');
          res.end(zlib.gzipSync(Buffer.from(message)));
        },
        async (url) => {
          const response = await fetch(url);
          expect(response.headers.get('content-encoding')).toBeNull();
          expect(await response.text()).toBe(kept);
        },
      );
      await withServer(
        (res) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.setHeader('content-encoding', 'zstd');
          res.end(Buffer.from(message));
        },
        async (url) => {
          const response = await fetch(url);
          expect(response.status).toBe(500);
          expect(await response.text()).not.toContain('write_é');
        },
      );
    });

    it('answers a refused coding on an SSE stream at once, not when the app ends it', async () => {
      let finish: (() => void) | undefined;
      await withServer(
        (res) => {
          res.setHeader('content-encoding', 'zstd');
          res.writeHead(200, { 'content-type': 'text/event-stream' }).flushHeaders();
          res.write(`data: ${message}\n\n`);
          // The app ends only once the client has its answer: a refusal held until then would never come.
          finish = () => res.end();
        },
        async (url) => {
          const response = await fetch(url);
          expect(response.status).toBe(500);
          const text = await response.text();
          expect(text).toContain('Content-Encoding: zstd');
          expect(text).not.toContain('write_é');
          finish?.();
        },
      );
    });
  });

  it('keeps the headers given to writeHead when the app flushes them before a JSON body', async () => {
    await withServer(
      (res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'x-app': 'kept' });
        res.flushHeaders();
        res.end(message);
      },
      async (url) => {
        const response = await fetch(url);
        expect(response.headers.get('content-type')).toBe('application/json');
        expect(response.headers.get('x-app')).toBe('kept');
        expect(await response.text()).toBe(kept);
      },
    );
  });

  it('sends no coding an earlier setHeader named when writeHead says identity', async () => {
    await withServer(
      (res) => {
        res.setHeader('content-encoding', 'gzip');
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'identity' });
        res.end(message);
      },
      async (url) => {
        const response = await fetch(url);
        expect(response.headers.get('content-encoding')).toBeNull();
        expect(await response.text()).toBe(kept);
      },
    );
  });

  it('passes back-pressure through a gzip SSE stream: the app is told to wait while the client does not read, and nothing is lost', async () => {
    // ~16 MB of events that compress poorly, more than the sockets' buffers hold.
    const events: string[] = [];
    for (let i = 0; i < 8_000; i++) events.push(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: randomBytes(1_500).toString('base64') } })}\n\n`);
    const stream = events.join('');
    const coded = zlib.gzipSync(Buffer.from(stream));
    const slice = 16 * 1024;
    let written = 0;
    let waits = 0;
    await withServer(
      (res) => {
        res.setHeader('content-encoding', 'gzip');
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        // As `compression` writes: on while write says so, then after the next 'drain'.
        const pump = (): void => {
          while (written < coded.length) {
            const chunk = coded.subarray(written, written + slice);
            written += chunk.length;
            if (!res.write(chunk)) {
              waits += 1;
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
      },
      async (url) => {
        const received: Buffer[] = [];
        const response = await new Promise<IncomingMessage>((resolve, reject) => get(url, resolve).on('error', reject));
        // The client reads nothing for a while: the app must stop well before the end.
        response.pause();
        await new Promise((resolve) => setTimeout(resolve, 300));
        const whilePaused = written;
        expect(waits).toBeGreaterThan(0);
        expect(whilePaused).toBeLessThan(coded.length / 2);
        response.on('data', (chunk: Buffer) => received.push(chunk));
        // (A stream paused by `pause` stays paused when a 'data' listener comes.)
        response.resume();
        await new Promise((resolve) => response.once('end', resolve));
        expect(Buffer.concat(received).toString('utf8')).toBe(stream);
      },
    );
    expect(written).toBe(coded.length);
  });

  it('ends a gzip SSE stream once all of it is decoded, however often the app calls end', async () => {
    const stream = `event: message\ndata: ${message}\n\nevent: message\ndata: ${message}\n\n`;
    let callbacks = 0;
    await withServer(
      (res) => {
        res.setHeader('content-encoding', 'gzip');
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(zlib.gzipSync(Buffer.from(stream)), () => void (callbacks += 1));
        res.end();
        res.write('late');
      },
      async (url) => {
        const response = await fetch(url);
        expect(await response.text()).toBe(`event: message\ndata: ${kept}\n\nevent: message\ndata: ${kept}\n\n`);
      },
    );
    expect(callbacks).toBe(1);
  });
});
