/**
 * `maxSessions` of a stdio upstream against requests that reach it together. In the gateway several
 * requests reach the upstream in one turn of the event loop when their pipelines resume together
 * (answers of a shared store read, say); a session's process is spawned asynchronously, so a limit
 * that counted it only once it ran would let all of them through. Here the requests are handed to
 * the upstream in one synchronous loop, which is that case made certain.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Principal } from '@mcp-warden/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { StdioUpstreamConfig } from '../../src/config/schema.js';
import { SessionSigner } from '../../src/server/sessions.js';
import { StdioUpstream } from '../../src/upstream/stdio.js';
import { MODERN_ENVELOPE } from '../support/modern-request.js';

const crashy = new URL('../fixtures/crashy-server.mjs', import.meta.url).pathname;
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

function principalNamed(id: string): Principal {
  return { id, kind: 'test', subject: id, roles: ['admin'], scopes: [], claims: {} };
}

describe('stdio upstream: maxSessions holds for requests that reach it in one turn', () => {
  /** The upstream the held requests are handed to. */
  let upstream: StdioUpstream;
  let first: StdioUpstream;
  let server: Server;
  let url: string;
  /** Requests held until `batch` have arrived, then handed to the upstream together. */
  let held: { req: IncomingMessage; res: ServerResponse; body: unknown; principal: Principal }[] = [];
  let batch = 0;
  /** Called right after the held requests are handed to the upstream. */
  let handedOver: (() => void) | undefined;

  beforeAll(async () => {
    const config = parseConfig(
      JSON.stringify({ store: { type: 'memory' }, upstreams: { two: { type: 'stdio', command: process.execPath, args: [crashy], maxSessions: 2 } } }),
      'limits.yaml',
      {},
    );
    first = upstream = new StdioUpstream('two', config.upstreams['two'] as StdioUpstreamConfig, new SessionSigner(randomBytes(32)), quiet);
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const principal = principalNamed(String(req.headers['x-principal']));
        // What the gateway's pipeline leaves for the SDK entry of the modern face.
        (req as IncomingMessage & { auth?: unknown }).auth = { token: 'unused', clientId: principal.id, scopes: [], extra: { principal } };
        held.push({ req, res, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown, principal });
        if (held.length < batch) return;
        const now = held;
        held = [];
        for (const { req: r, res: s, body, principal: p } of now) void upstream.handle(r, s, body, p);
        handedOver?.();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  });
  afterAll(async () => {
    await first?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  const initialize = (principal: string) =>
    fetch(url, {
      method: 'POST',
      headers: { 'x-principal': principal, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'old', version: '1' } } }),
    });
  const modernCall = (principal: string) =>
    fetch(url, {
      method: 'POST',
      headers: {
        'x-principal': principal,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'pid',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'pid', arguments: {}, _meta: MODERN_ENVELOPE } }),
    });

  it('counts 2025 sessions whose process is still being spawned, for both kinds of client', async () => {
    batch = 5;
    const responses = await Promise.all([initialize('p1'), modernCall('p2'), initialize('p3'), modernCall('p4'), initialize('p5')]);
    const answers = await Promise.all(responses.map(async (response) => ({ status: response.status, text: await response.text() })));
    expect(answers.filter((answer) => answer.status === 200)).toHaveLength(2);
    const refused = answers.filter((answer) => answer.status === 503);
    expect(refused).toHaveLength(3);
    for (const answer of refused) expect(answer.text).toMatch(/has reached its limit of 2 (sessions|processes)/);
    // The two admitted are counted: sessions opened, and 2026-07-28 children (requests 2 and 4).
    expect(upstream.sessionCount + answers.filter((answer, i) => answer.status === 200 && i % 2 === 1).length).toBe(2);
  });

  it('gives the slot of an attempt back when it ends without a session', async () => {
    const config = parseConfig(
      JSON.stringify({
        store: { type: 'memory' },
        upstreams: {
          missing: { type: 'stdio', command: '/nonexistent/mcp-server', maxSessions: 1 },
          one: { type: 'stdio', command: process.execPath, args: [crashy], maxSessions: 1 },
        },
      }),
      'limits.yaml',
      {},
    );
    const signer = new SessionSigner(randomBytes(32));
    const missing = new StdioUpstream('missing', config.upstreams['missing'] as StdioUpstreamConfig, signer, quiet);
    const one = new StdioUpstream('one', config.upstreams['one'] as StdioUpstreamConfig, signer, quiet);
    batch = 1;
    try {
      // A process that cannot start: 502 each time, never 503 for a slot still held by the last attempt.
      upstream = missing;
      for (let i = 0; i < 2; i++) {
        const answer = await initialize('p1');
        expect(answer.status).toBe(502);
        expect(await answer.text()).toMatch(/could not be started/);
      }
      // An initialize the transport refuses (it does not accept an event stream): the session is
      // not opened, and its slot is free for the next.
      upstream = one;
      const refused = await fetch(url, {
        method: 'POST',
        headers: { 'x-principal': 'p1', 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'old', version: '1' } } }),
      });
      expect(refused.status).toBe(406);
      await refused.text();
      const admitted = await initialize('p2');
      expect(admitted.status).toBe(200);
      await admitted.text();
      expect(one.sessionCount).toBe(1);
    } finally {
      await missing.close();
      await one.close();
    }
  });

  it('holds maxSessionsPerPrincipal: one caller cannot take every process, 2025 sessions and 2026-07-28 child together', async () => {
    const config = parseConfig(
      JSON.stringify({ store: { type: 'memory' }, upstreams: { shared: { type: 'stdio', command: process.execPath, args: [crashy], maxSessions: 5, maxSessionsPerPrincipal: 2 } } }),
      'limits.yaml',
      {},
    );
    const shared = new StdioUpstream('shared', config.upstreams['shared'] as StdioUpstreamConfig, new SessionSigner(randomBytes(32)), quiet);
    upstream = shared;
    batch = 1;
    const status = async (response: Promise<Response>): Promise<[number, string]> => {
      const answer = await response;
      return [answer.status, await answer.text()];
    };
    try {
      expect((await status(initialize('a')))[0]).toBe(200);
      expect((await status(initialize('a')))[0]).toBe(200);
      const third = await status(initialize('a'));
      expect(third[0]).toBe(503);
      expect(third[1]).toContain('has reached its limit of 2 sessions for one caller');
      const modern = await status(modernCall('a'));
      expect(modern[0]).toBe(503);
      expect(modern[1]).toContain('has reached its limit of 2 processes for one caller');
      // Another caller still gets its share: a child, then one session, then no more.
      expect((await status(modernCall('b')))[0]).toBe(200);
      expect((await status(initialize('b')))[0]).toBe(200);
      expect((await status(initialize('b')))[1]).toContain('for one caller');
      expect(shared.sessionCount).toBe(3);
    } finally {
      await shared.close();
    }
  });

  it('does not leave the process of a session being opened when the upstream closes meanwhile', async () => {
    // A hot reload closes the old upstream while the gateway runs on: a session whose process was
    // still starting must not outlive it.
    const marker = `stdio-limits-${process.pid}-${Date.now()}`;
    const config = parseConfig(
      JSON.stringify({ store: { type: 'memory' }, upstreams: { closing: { type: 'stdio', command: process.execPath, args: [crashy, marker] } } }),
      'limits.yaml',
      {},
    );
    const closing = new StdioUpstream('closing', config.upstreams['closing'] as StdioUpstreamConfig, new SessionSigner(randomBytes(32)), quiet);
    upstream = closing;
    batch = 1;
    let closed: Promise<void> | undefined;
    handedOver = () => {
      closed = closing.close();
    };
    try {
      const answer = await initialize('a');
      expect(answer.status).toBe(503);
      expect(await answer.text()).toContain('shutting down');
      await closed;
      expect(closing.sessionCount).toBe(0);
      // The process was spawned and then ended: none with the marker is left.
      const deadline = Date.now() + 5000;
      while (running(marker) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(running(marker)).toBe(false);
    } finally {
      handedOver = undefined;
    }
  });

  it("counts a 2026-07-28 child whose spawn throws as dead, so it holds no slot of its principal", async () => {
    // A command with a NUL byte makes spawn() throw at once, with no exit event to follow.
    const config = parseConfig(
      JSON.stringify({ store: { type: 'memory' }, upstreams: { broken: { type: 'stdio', command: 'node\u0000x', maxSessionsPerPrincipal: 1 } } }),
      'limits.yaml',
      {},
    );
    const broken = new StdioUpstream('broken', config.upstreams['broken'] as StdioUpstreamConfig, new SessionSigner(randomBytes(32)), quiet);
    const kinds: string[] = [];
    broken.onError = (kind) => kinds.push(kind);
    upstream = broken;
    batch = 1;
    try {
      const first = await modernCall('a');
      expect(await first.text()).toMatch(/error/);
      expect(kinds).toEqual(['start_failed']);
      // Its principal's 2025 session is not refused for a child that never ran: it fails to start
      // like any (502), it is not refused for a slot (503).
      const session = await initialize('a');
      expect(session.status).toBe(502);
      await session.text();
    } finally {
      await broken.close();
    }
  });
});

/** Whether a process whose command line holds `marker` runs (Linux /proc). */
function running(marker: string): boolean {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)) return true;
    } catch {
      // Gone meanwhile.
    }
  }
  return false;
}
