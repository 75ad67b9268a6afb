import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../src/audit/event.js';
import { NO_LIST_REQUESTS } from '../src/mcp/filter.js';
import { type PipelineResult, createWarden } from '../src/pipeline.js';
import { view } from './helpers.js';

const SECRET = 'reader-secret-value';
const base: [string, string][] = [
  ['host', '127.0.0.1:3000'],
  ['content-type', 'application/json'],
];

function setup(extra: Partial<Parameters<typeof createWarden>[0]> = {}) {
  const events: AuditEvent[] = [];
  const warden = createWarden({
    tokens: [
      { id: 'reader', token: SECRET, roles: ['reader'] },
      { id: 'admin', token: 'admin-secret', roles: ['admin'] },
    ],
    policy: { roles: { reader: ['read'], admin: ['read', 'write', 'delete'] }, toolAnnotations: { echo: { readOnlyHint: true } } },
    audit: (e) => events.push(e),
    ...extra,
  });
  const post = (body: unknown, headers: [string, string][] = [['authorization', `Bearer ${SECRET}`]]) =>
    warden.handle(view({ headers: [...base, ...headers] }), { read: async () => (typeof body === 'string' ? body : JSON.stringify(body)) });
  return { warden, events, post };
}

const call = (name: string, id: number | string = 1) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });

function respond(result: PipelineResult) {
  if (result.type !== 'respond') throw new Error(`expected a refusal, got ${result.type}`);
  return { ...result.response, json: JSON.parse(result.response.body) };
}

describe('createWarden pipeline', () => {
  it('forwards an allowed call with the parsed body and the caller in AuthInfo shape', async () => {
    const { post } = setup();
    const result = await post(call('echo'));
    expect(result.type).toBe('forward');
    if (result.type !== 'forward') return;
    expect(result.body).toEqual(call('echo'));
    expect(result.authInfo).toEqual({
      token: expect.stringMatching(/^sha256:[0-9a-f]{16}$/),
      clientId: 'reader',
      scopes: [],
      extra: { principal: { id: 'reader', kind: 'static-token', subject: 'reader', roles: ['reader'] }, roles: ['reader'] },
    });
    // No list asked, but the answer is still filtered: a list answer can come on this stream.
    expect(result.lists).toBe(NO_LIST_REQUESTS);
  });

  it('gives the fingerprint of the credential itself, computed when read, and lets a handler replace it', async () => {
    const { post } = setup();
    const result = await post(call('echo'));
    if (result.type !== 'forward') throw new Error('expected forward');
    expect(result.authInfo.token).toBe(`sha256:${createHash('sha256').update(SECRET).digest('hex').slice(0, 16)}`);
    expect(JSON.parse(JSON.stringify(result.authInfo)).token).toBe(result.authInfo.token);
    result.authInfo.token = 'replaced';
    expect(result.authInfo.token).toBe('replaced');
  });

  it('hands the credential to handlers only when told to', async () => {
    const { post } = setup({ exposeCredentialToHandlers: true });
    const result = await post(call('echo'));
    expect(result.type === 'forward' && result.authInfo.token).toBe(SECRET);
  });

  it('answers a denied call with a JSON-RPC error naming the missing permission, keeping the id', async () => {
    const { post } = setup();
    const r = respond(await post(call('drop_db', 'abc')));
    expect(r.status).toBe(200);
    expect(r.json.id).toBe('abc');
    expect(r.json.error.code).toBe(-32003);
    expect(r.json.error.message).toMatch(/drop_db.*missing permission: delete/);
    expect(r.json.error.data).toEqual({ rule: 'default-deny', permission: 'delete' });
  });

  it('marks list requests for filtering', async () => {
    const { post } = setup();
    const result = await post({ jsonrpc: '2.0', id: 9, method: 'tools/list' });
    expect(result.type === 'forward' && result.lists?.get(9)).toBe('tools');
  });

  it('lets GET (stream) and DELETE (session end) through for authenticated callers only', async () => {
    const { warden } = setup();
    const get = await warden.handle(view({ method: 'GET', headers: [['host', 'localhost'], ['authorization', `Bearer ${SECRET}`]] }), {});
    expect(get.type).toBe('forward');
    // A GET's stream may replay list answers (a resumed stream): every one on it is filtered.
    expect(get.type === 'forward' && get.lists).toBe(NO_LIST_REQUESTS);
    const remove = await warden.handle(view({ method: 'DELETE', headers: [['host', 'localhost'], ['authorization', `Bearer ${SECRET}`]] }), {});
    expect(remove.type === 'forward' && remove.lists).toBeUndefined();
    const anonymous = await warden.handle(view({ method: 'DELETE', headers: [['host', 'localhost']] }), {});
    expect(respond(anonymous).status).toBe(401);
  });

  it('uses a body a framework already parsed', async () => {
    const { warden } = setup();
    const result = await warden.handle(view({ headers: [...base, ['authorization', `Bearer ${SECRET}`]] }), { parsed: call('echo') });
    expect(result.type).toBe('forward');
  });

  it('checks the credential before reading the body', async () => {
    const { warden } = setup();
    let read = false;
    const result = await warden.handle(view({ headers: base }), {
      read: async () => {
        read = true;
        return '{}';
      },
    });
    expect(respond(result).status).toBe(401);
    expect(read).toBe(false);
  });

  it('fails closed with 503 when a verifier cannot answer', async () => {
    const { post } = setup({ verifiers: [{ name: 'db', verify: () => Promise.reject(new Error('ECONNREFUSED')) }] });
    const r = respond(await post(call('echo')));
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('1');
  });

  describe('how the body is handed over', () => {
    const headers: [string, string][] = [...base, ['authorization', `Bearer ${SECRET}`]];

    it('a reader that throws at once, or rejects, gets an answer (500 for an error that is not the pipeline\'s), never a throw', async () => {
      const { warden, events } = setup();
      const thrown = warden.handle(view({ headers }), {
        read: () => {
          throw new Error('socket gone');
        },
      });
      expect(thrown).toBeInstanceOf(Promise);
      expect(respond(await thrown).status).toBe(500);
      const rejected = respond(await warden.handle(view({ headers }), { read: () => Promise.reject(new Error('socket gone')) }));
      expect(rejected.status).toBe(500);
      expect(events.map((e) => e.rule)).toEqual(['classify:internal', 'classify:internal']);
    });

    it('a reader answering with a plain value is awaited all the same; one resolving to nothing is a failure (500)', async () => {
      const { warden } = setup();
      const plain = await warden.handle(view({ headers }), { read: (() => JSON.stringify(call('echo'))) as unknown as (limit: number) => Promise<string> });
      expect(plain.type).toBe('forward');
      const nothing = respond(await warden.handle(view({ headers }), { read: async () => undefined as unknown as string }));
      expect(nothing.status).toBe(500);
    });

    it('a body a framework parsed is decided without a read, and a denied one is not forwarded', async () => {
      const { warden } = setup();
      expect((await warden.handle(view({ headers }), { parsed: call('echo') })).type).toBe('forward');
      expect(respond(await warden.handle(view({ headers }), { parsed: call('wipe') })).json.error.code).toBeLessThan(0);
    });

    it('a failure nobody planned for rejects the promise instead of throwing to the caller', async () => {
      const { warden } = setup({
        audit: {
          write: () => undefined,
          accepting: () => {
            throw new Error('bug');
          },
        },
      });
      const pending = warden.handle(view({ headers }), { read: async () => JSON.stringify(call('echo')) });
      expect(pending).toBeInstanceOf(Promise);
      await expect(pending).rejects.toThrow('bug');
    });
  });

  it('validates its options at creation', () => {
    expect(() => createWarden({ policy: { roles: {} } })).toThrow(/at least one credential verifier/);
    expect(() => createWarden({ tokens: [], policy: undefined as never })).toThrow(/options\.policy is required/);
    expect(() => createWarden({ tokens: [], policy: { roles: {} }, invalidCredentialStatus: 404 as 401 })).toThrow(/invalidCredentialStatus/);
  });

  describe('audit', () => {
    it('emits one event per decision with the rule and reason, and never the secret', async () => {
      const { post, events } = setup();
      await post([call('echo', 1), call('rm', 2)]);
      await post(call('echo'), [['authorization', 'Bearer wrong-secret']]);
      expect(events.map((e) => [e.decision, e.rule, e.target])).toEqual([
        ['allow', 'role:reader verb:read', 'echo'],
        ['deny', 'default-deny', 'rm'],
        ['deny', 'authn:credential_invalid', undefined],
      ]);
      expect(events[0]).toMatchObject({ principal: { id: 'reader', kind: 'static-token' }, method: 'tools/call', kind: 'tool', clientAddress: '127.0.0.1' });
      expect(events[0]?.requestId).toBe(events[1]?.requestId);
      expect(events[2]?.credentialRef).toMatch(/^sha256:[0-9a-f]{12}$/);
      const serialised = JSON.stringify(events);
      expect(serialised).not.toContain(SECRET);
      expect(serialised).not.toContain('wrong-secret');
    });
    it('survives a throwing sink', async () => {
      const { post } = setup({ audit: () => { throw new Error('sink down'); } });
      expect((await post(call('echo'))).type).toBe('forward');
    });
  });

  describe('audit writers, limiter, arguments', () => {
    it('refuses new requests with 503 while an audit writer has no room', async () => {
      let room = false;
      const written: AuditEvent[] = [];
      const { post } = setup({ audit: { write: (e) => written.push(e), accepting: () => room } });
      const r = respond(await post(call('echo')));
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBe('1');
      room = true;
      expect((await post(call('echo'))).type).toBe('forward');
      expect(written.map((e) => e.decision)).toEqual(['deny', 'allow']);
    });

    it('asks the limiter before verifying, reports refusals, and answers 429 with Retry-After', async () => {
      const failures: string[] = [];
      let blocked: number | undefined = undefined;
      const { post, events } = setup({
        authLimiter: {
          check: () => blocked,
          failed: (attempt) => {
            failures.push(`${attempt.address}:${attempt.credential.source}`);
          },
        },
      });
      await post(call('echo'), [['authorization', 'Bearer wrong']]);
      await post(call('echo'));
      expect(failures).toEqual(['127.0.0.1:bearer']);
      blocked = 30;
      const r = respond(await post(call('echo')));
      expect(r.status).toBe(429);
      expect(r.headers['retry-after']).toBe('30');
      expect(events.at(-1)).toMatchObject({ decision: 'deny', rule: 'ratelimit:too_many_attempts' });
    });

    it('counts each authenticated request with the request limiter, before reading the body; 429 over the limit, 503 when it fails', async () => {
      const taken: string[] = [];
      let wait: number | undefined = undefined;
      let broken = false;
      let bodiesRead = 0;
      const { warden, events } = setup({
        requestLimiter: {
          take: (principal) => {
            if (broken) throw new Error('store down');
            taken.push(principal.id);
            return wait;
          },
        },
      });
      const post = (authorization: string) =>
        warden.handle(view({ headers: [...base, ['authorization', authorization]] }), {
          read: async () => {
            bodiesRead++;
            return JSON.stringify(call('echo'));
          },
        });
      expect((await post(`Bearer ${SECRET}`)).type).toBe('forward');
      // An unauthenticated request is refused before it is counted.
      expect(respond(await post('Bearer wrong')).status).toBe(401);
      expect(taken).toEqual(['reader']);
      wait = 12;
      const limited = respond(await post(`Bearer ${SECRET}`));
      expect(limited.status).toBe(429);
      expect(limited.headers['retry-after']).toBe('12');
      expect(limited.json.error.code).toBe(-32000);
      expect(events.at(-1)).toMatchObject({ decision: 'deny', rule: 'ratelimit:rate_limited', principal: { id: 'reader' } });
      expect(bodiesRead).toBe(1);
      broken = true;
      const failed = respond(await post(`Bearer ${SECRET}`));
      expect(failed.status).toBe(503);
      expect(failed.headers['retry-after']).toBe('1');
    });

    it('records arguments only where asked, with secret-looking fields redacted, and labels the upstream', async () => {
      const { post, events } = setup({ recordArguments: (action) => action.target === 'echo', upstream: 'notes' });
      await post({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi', apiKey: 'k-123', nested: { password: 'p' } } } });
      await post({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'other', arguments: { text: 'not recorded' } } });
      expect(events[0]).toMatchObject({ upstream: 'notes', arguments: { text: 'hi', apiKey: '[REDACTED]', nested: { password: '[REDACTED]' } } });
      expect(events[1]).not.toHaveProperty('arguments');
      expect(JSON.stringify(events)).not.toContain('k-123');
    });
  });

  describe('Security', () => {
    it('refuses a whole batch that mixes allowed and denied calls; nothing is forwarded', async () => {
      const { post } = setup();
      const r = respond(await post([call('echo', 1), call('rm', 2), { jsonrpc: '2.0', method: 'notifications/initialized' }]));
      expect(r.status).toBe(200);
      expect(r.json).toHaveLength(2);
      expect(r.json[0]).toMatchObject({ id: 1, error: { code: -32003, message: expect.stringContaining('another request in the same batch') } });
      expect(r.json[1]).toMatchObject({ id: 2, error: { code: -32003, message: expect.stringContaining('missing permission: delete') } });
    });
    it('refuses a batch of more than maxBatchSize messages (100) before deciding or auditing any of them', async () => {
      // One megabyte of notifications would otherwise be ~30,000 decisions and audit events.
      const notification = { jsonrpc: '2.0', method: 'notifications/initialized' };
      const { post, events } = setup();
      const r = respond(await post(Array.from({ length: 101 }, () => notification)));
      expect(r.status).toBe(400);
      expect(r.json).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid Request: a batch of 101 messages; at most 100 are accepted in one request' } });
      expect(events.length).toBeLessThanOrEqual(1);
      const before = events.length;
      expect((await post(Array.from({ length: 100 }, () => notification))).type).toBe('forward');
      // At the limit, every message is decided and audited as before.
      expect(events.length - before).toBe(100);
      // Configurable, and a body parsed before the pipeline is held to it too.
      const small = setup({ maxBatchSize: 2 });
      expect(respond(await small.post([call('echo', 1), call('echo', 2), call('echo', 3)])).json.error.code).toBe(-32600);
      const parsed = await small.warden.handle(view({ headers: [...base, ['authorization', `Bearer ${SECRET}`]] }), { parsed: [call('echo', 1), call('echo', 2), call('echo', 3)] });
      expect(respond(parsed).json.error.message).toContain('at most 2');
      expect((await small.post([call('echo', 1), call('echo', 2)])).type).toBe('forward');
    });
    it('decides a request method sent without an id as the request it names, not as a notification', async () => {
      // JSON-RPC 2.0 has a server process a notification: a generic dispatcher would run this call.
      const { post, events } = setup();
      const idless = { jsonrpc: '2.0', method: 'tools/call', params: { name: 'rm', arguments: {} } };
      const refused = respond(await post(idless));
      expect(refused.status).toBe(403);
      expect(refused.json).toMatchObject({ id: null, error: { code: -32003, message: expect.stringContaining('rm') } });
      expect(events.at(-1)).toMatchObject({ decision: 'deny', kind: 'tool', target: 'rm' });
      expect(respond(await post([call('echo', 1), idless])).json).toHaveLength(1);
      // What the policy allows goes on as sent (the server answers nothing), and MCP's notifications stay notifications.
      expect((await post({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'echo', arguments: {} } })).type).toBe('forward');
      expect((await post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } })).type).toBe('forward');
    });
    it('answers malformed JSON with a JSON-RPC parse error, not a stack trace', async () => {
      const { post } = setup();
      const r = respond(await post('{"jsonrpc": "2.0", "id": 1, "method": '));
      expect(r.status).toBe(400);
      expect(r.json).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error: the body is not valid JSON' } });
    });
    it('does not reveal whether a credential exists through the error', async () => {
      const { post } = setup();
      const a = respond(await post(call('echo'), [['authorization', 'Bearer admin-secreX']]));
      const b = respond(await post(call('echo'), [['authorization', 'Bearer zzz']]));
      expect(a.body).toBe(b.body);
      expect(a.headers).toEqual(b.headers);
    });
  });
});
