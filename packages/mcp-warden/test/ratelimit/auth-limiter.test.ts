import { describe, expect, it } from 'vitest';
import { type AuditEvent, createWarden } from '@mcp-warden/core';
import { createAuthLimiter } from '../../src/ratelimit/auth-limiter.js';
import { mintKey, newKeyId } from '../../src/keys/format.js';
import { body, request } from './attempts.js';


describe('Security: brute-force protection', () => {
  function setup() {
    const events: AuditEvent[] = [];
    const warden = createWarden({
      tokens: [{ id: 'ok', token: 'good-token', roles: [] }],
      policy: { roles: {} },
      authLimiter: createAuthLimiter({ perAddress: { attempts: 3, window: 60_000, block: 120_000 }, perKey: { attempts: 2, window: 60_000, block: 300_000 } }),
      audit: (e) => events.push(e),
    });
    return { warden, events };
  }

  it('answers 429 with Retry-After once an address has failed too often, and audits it', async () => {
    const { warden, events } = setup();
    for (let i = 0; i < 3; i++) expect((await warden.handle(request(`Bearer wrong-${i}`), body)).type).toBe('respond');
    const blocked = await warden.handle(request('Bearer good-token'), body);
    expect(blocked.type === 'respond' && blocked.response.status).toBe(429);
    const retryAfter = blocked.type === 'respond' ? Number(blocked.response.headers['retry-after']) : 0;
    expect(retryAfter).toBeGreaterThan(100);
    expect(retryAfter).toBeLessThanOrEqual(120);
    expect(events.at(-1)).toMatchObject({ decision: 'deny', rule: 'ratelimit:too_many_attempts', clientAddress: '10.0.0.7' });
    // Another address is not affected.
    expect((await warden.handle(request('Bearer good-token', '10.0.0.8'), body)).type).toBe('forward');
  });

  it('blocks a key id that keeps failing, from any address', async () => {
    const { warden } = setup();
    const id = newKeyId();
    const forged = mintKey(id).plaintext;
    for (const address of ['10.1.0.1', '10.1.0.2']) await warden.handle(request(`Bearer ${forged}`, address), body);
    const third = await warden.handle(request(`Bearer ${forged}`, '10.1.0.3'), body);
    expect(third.type === 'respond' && third.response.status).toBe(429);
  });

  it('does not count successful authentications', async () => {
    const { warden } = setup();
    for (let i = 0; i < 10; i++) expect((await warden.handle(request('Bearer good-token'), body)).type).toBe('forward');
  });
});
