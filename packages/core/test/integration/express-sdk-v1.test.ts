/**
 * The Express adapter in front of real official SDK v1 servers, driven by the real SDK v1 client
 * over Streamable HTTP (the tutorial example's app), plus the Security block over raw HTTP.
 */
import { createServer, type Server } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTutorialApp } from '../../../../examples/tutorial/app.js';
import type { AuditEvent } from '../../src/audit/event.js';
import { close, listen, post, rawRequest } from './http-helpers.js';

async function connect(url: string, authorization: string, extraHeaders: Record<string, string> = {}) {
  const client = new Client({ name: 'test-client', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: authorization, ...extraHeaders } } }));
  return client;
}

function textOf(result: Awaited<ReturnType<Client['callTool']>>): string {
  const content = result.content as { type: string; text?: string }[];
  return content.map((c) => c.text ?? '').join('');
}

const call = (name: string, args: Record<string, unknown> = {}, id: number | string = 1) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

describe('Express + SDK v1 (default mode)', () => {
  let server: Server;
  let url: string;
  const events: AuditEvent[] = [];

  beforeAll(async () => {
    server = createServer(createTutorialApp({ tutorialMode: false, audit: (e) => events.push(e) }));
    url = `${await listen(server)}/mcp`;
  });
  afterAll(() => close(server));

  it("shows a reader only the read-only tools", async () => {
    const client = await connect(url, 'Bearer reader-token');
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(['list_notes', 'read_note', 'whoami']);
    } finally {
      await client.close();
    }
  });

  it("refuses a reader's call of a write or delete tool, naming the permission", async () => {
    const client = await connect(url, 'Bearer reader-token');
    try {
      const write = client.callTool({ name: 'add_note', arguments: { name: 'x', text: 'y' } });
      await expect(write).rejects.toBeInstanceOf(McpError);
      await expect(write).rejects.toMatchObject({ code: -32003, message: expect.stringContaining('missing permission: write') });
      await expect(client.callTool({ name: 'delete_note', arguments: { name: 'welcome' } })).rejects.toMatchObject({
        code: -32003,
        message: expect.stringContaining('missing permission: delete'),
      });
      expect(textOf(await client.callTool({ name: 'read_note', arguments: { name: 'welcome' } }))).toBe('Hello from the mcp-warden tutorial');
    } finally {
      await client.close();
    }
  });

  it('lets the admin see and call everything', async () => {
    const client = await connect(url, 'Bearer admin-token');
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(['add_note', 'delete_note', 'list_notes', 'read_note', 'whoami']);
      expect(textOf(await client.callTool({ name: 'add_note', arguments: { name: 'admin-note', text: 'hi' } }))).toBe('saved admin-note');
      expect(textOf(await client.callTool({ name: 'delete_note', arguments: { name: 'admin-note' } }))).toBe('deleted admin-note');
    } finally {
      await client.close();
    }
  });

  it('hands the caller to tool handlers as extra.authInfo', async () => {
    const client = await connect(url, 'Bearer reader-token');
    try {
      expect(JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} })))).toEqual({ clientId: 'reader', roles: ['reader'] });
    } finally {
      await client.close();
    }
  });

  it('answers no credential with 401 and a bare Bearer challenge', async () => {
    const r = await post(url, call('list_notes'));
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('Bearer');
    expect(r.json.error.code).toBe(-32001);
  });

  it('answers a wrong token with 401 invalid_token', async () => {
    const r = await post(url, call('list_notes'), { authorization: 'Bearer wrong' });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);
  });

  it('refuses a disallowed Origin with 403', async () => {
    const r = await post(url, call('list_notes'), { authorization: 'Bearer admin-token', origin: 'http://evil.example' });
    expect(r.status).toBe(403);
  });

  it('audits each decision', async () => {
    events.length = 0;
    await post(url, call('delete_note', { name: 'welcome' }), { authorization: 'Bearer reader-token' });
    expect(events).toEqual([
      expect.objectContaining({ decision: 'deny', target: 'delete_note', rule: 'default-deny', principal: { id: 'reader', kind: 'static-token' } }),
    ]);
  });

  describe('Security', () => {
    const listBody = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });
    const rawPost = (headers: string, body = listBody) =>
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nConnection: close\r\n${headers}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

    it('refuses duplicate Authorization headers (Node would keep only the first)', async () => {
      const r = await rawRequest(url, rawPost('Authorization: Bearer reader-token\r\nAuthorization: Bearer admin-token\r\n'));
      expect(r.status).toBe(400);
      expect(r.text).toContain('error="invalid_request"');
    });

    it('refuses CR/LF smuggled into a header before any handler runs', async () => {
      const r = await rawRequest(url, rawPost('Authorization: Bearer admin-token\rX-Injected: 1\r\n'));
      expect(r.status).toBe(400);
      expect(r.text).not.toContain('"result"');
    });

    it('refuses quotes in the credential', async () => {
      const r = await post(url, call('list_notes'), { authorization: 'Bearer "admin-token"' });
      expect(r.status).toBe(400);
    });

    it('accepts a lowercase scheme', async () => {
      const r = await post(url, JSON.parse(listBody), { authorization: 'bearer reader-token' });
      expect(r.status).toBe(200);
      expect(r.json.result.tools).toHaveLength(3);
    });

    it('ignores a token in the query string (401), and refuses it next to a header (400)', async () => {
      expect((await post(`${url}?access_token=admin-token`, JSON.parse(listBody))).status).toBe(401);
      expect((await post(`${url}?access_token=admin-token`, JSON.parse(listBody), { authorization: 'Bearer admin-token' })).status).toBe(400);
    });

    it('refuses a 10 MB body with 413, declared or streamed', async () => {
      const big = JSON.stringify(call('read_note', { name: 'x'.repeat(10 * 1024 * 1024) }));
      const declared = await post(url, big, { authorization: 'Bearer admin-token' });
      expect(declared.status).toBe(413);
      const chunked = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: 'Bearer admin-token' },
        body: new Blob([big]).stream(),
        duplex: 'half',
      } as RequestInit);
      expect(chunked.status).toBe(413);
    });

    it('refuses deeply nested JSON with a JSON-RPC parse error', async () => {
      const r = await post(url, `${'['.repeat(5000)}${']'.repeat(5000)}`, { authorization: 'Bearer admin-token' });
      expect(r.status).toBe(400);
      expect(r.json.error.code).toBe(-32700);
    });

    it('answers malformed JSON with a JSON-RPC error, not HTML', async () => {
      const r = await post(url, '{"jsonrpc":"2.0",', { authorization: 'Bearer admin-token' });
      expect(r.status).toBe(400);
      expect(r.headers.get('content-type')).toContain('application/json');
      expect(r.text).not.toMatch(/<html|at \w+ \(/i);
    });

    it('refuses a batch mixing allowed and denied calls without running any of it', async () => {
      const r = await post(url, [call('add_note', { name: 'smuggled', text: 'x' }, 1), call('read_note', { name: 'welcome' }, 2)], {
        authorization: 'Bearer reader-token',
      });
      expect(r.status).toBe(200);
      expect(r.json.map((m: { error: { code: number } }) => m.error.code)).toEqual([-32003, -32003]);
      const admin = await connect(url, 'Bearer admin-token');
      try {
        expect(textOf(await admin.callTool({ name: 'list_notes', arguments: {} }))).not.toContain('smuggled');
      } finally {
        await admin.close();
      }
    });

    it('does not let a unicode look-alike borrow the read-only annotations of a real tool', async () => {
      const r = await post(url, call('re\u0430d_note', { name: 'welcome' }), { authorization: 'Bearer reader-token' });
      expect(r.json.error).toMatchObject({ code: -32003, message: expect.stringContaining('missing permission: delete') });
      const zeroWidth = await post(url, call('read\u200b_note', { name: 'welcome' }), { authorization: 'Bearer admin-token' });
      expect(zeroWidth.json.error).toMatchObject({ code: -32003, data: { rule: 'builtin:invalid-target' } });
    });

    it('refuses a foreign Host (DNS rebinding) on a loopback bind', async () => {
      const r = await rawRequest(url, rawPost('Authorization: Bearer admin-token\r\n').replace('Host: 127.0.0.1', 'Host: evil.example'));
      expect(r.status).toBe(403);
    });
  });
});

describe('Express + SDK v1 (tutorial mode)', () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    server = createServer(createTutorialApp({ tutorialMode: true }));
    url = `${await listen(server)}/mcp`;
  });
  afterAll(() => close(server));

  it('reproduces the tutorial: missing → 401, wrong → 403, raw secret → works', async () => {
    expect((await post(url, call('list_notes'))).status).toBe(401);
    expect((await post(url, call('list_notes'), { authorization: 'wrong-secret' })).status).toBe(403);
    const client = await connect(url, 'secret123');
    try {
      expect((await client.listTools()).tools).toHaveLength(5);
    } finally {
      await client.close();
    }
    const another = await connect(url, 'another-token');
    await another.close();
  });
});
