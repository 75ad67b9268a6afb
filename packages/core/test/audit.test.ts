import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loggerAuditSink } from '../src/audit/event.js';
import { createWarden } from '../src/pipeline.js';
import { view } from './helpers.js';

describe('loggerAuditSink with a real pino logger', () => {
  it('writes one JSON line per decision, denials at warn, with no secret in it', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(...chunk.toString().trim().split('\n'));
        callback();
      },
    });
    const logger = pino({ level: 'info' }, destination);
    const warden = createWarden({
      tokens: [{ id: 'reader', token: 'the-reader-secret', roles: ['reader'] }],
      policy: { roles: { reader: ['read'] } },
      audit: loggerAuditSink(logger),
    });
    const headers: [string, string][] = [['host', 'localhost'], ['content-type', 'application/json'], ['authorization', 'Bearer the-reader-secret']];
    await warden.handle(view({ headers }), { read: async () => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'rm', arguments: { path: '/' } } }) });
    await warden.handle(view({ headers }), { read: async () => JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }) });
    await new Promise((resolve) => setImmediate(resolve));
    const records = lines.map((l) => JSON.parse(l) as { level: number; msg: string; audit: Record<string, unknown> });
    expect(records.map((r) => [r.level, r.msg])).toEqual([
      [40, 'mcp-warden deny tools/call'],
      [30, 'mcp-warden allow tools/list'],
    ]);
    expect(records[0]?.audit).toMatchObject({ decision: 'deny', target: 'rm', rule: 'default-deny', principal: { id: 'reader' } });
    expect(lines.join('\n')).not.toContain('the-reader-secret');
    // Arguments are not recorded by default.
    expect(records[0]?.audit).not.toHaveProperty('arguments');
  });

  it('records the resources a subscriptions/listen follows as its target, allowed or refused', async () => {
    const events: Record<string, unknown>[] = [];
    const warden = createWarden({
      tokens: [{ id: 'reader', token: 'the-reader-secret', roles: ['reader'] }],
      policy: { roles: { reader: { verbs: ['read'], resources: { deny: ['secret://**'] } } } },
      audit: (e) => events.push(e as unknown as Record<string, unknown>),
    });
    const headers: [string, string][] = [['host', 'localhost'], ['content-type', 'application/json'], ['authorization', 'Bearer the-reader-secret']];
    const listen = (notifications: unknown) => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'subscriptions/listen', params: { notifications } });
    await warden.handle(view({ headers }), { read: async () => listen({ resourceSubscriptions: ['file:///a', 'file:///b'] }) });
    await warden.handle(view({ headers }), { read: async () => listen({ resourceSubscriptions: ['file:///a', 'secret://k'] }) });
    await warden.handle(view({ headers }), { read: async () => listen({ resourceUris: ['secret://k'] }) });
    await warden.handle(view({ headers }), { read: async () => listen({ toolsListChanged: true }) });
    expect(events.map((e) => [e['decision'], e['target']])).toEqual([
      ['allow', '["file:///a","file:///b"]'],
      ['deny', '["file:///a","secret://k"]'],
      ['deny', undefined],
      ['allow', undefined],
    ]);
  });
});
