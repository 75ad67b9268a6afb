/**
 * `requestRateLimit.perPrincipal` in memory: the limiter itself, and a gateway applying it on reload.
 * (Shared across instances in Redis: see redis.test.ts.)
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Principal } from '@mcp-warden/core';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { createRequestLimiter } from '../../src/ratelimit/request-limiter.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { discover } from './attempts.js';

const principal = (id: string, kind = 'static-token'): Principal => ({ id, kind, subject: id, roles: [], scopes: [], claims: {} });

describe('createRequestLimiter (memory)', () => {
  it('allows the given number per window and principal, then answers the seconds to wait, without a block past the window', async () => {
    const limiter = createRequestLimiter({ requests: 2, window: 1000 });
    expect(await limiter.take(principal('a'))).toBeUndefined();
    expect(await limiter.take(principal('a'))).toBeUndefined();
    expect(await limiter.take(principal('a'))).toBe(1);
    // Counted by kind and id: another principal, or the same id of another kind, has its own count.
    expect(await limiter.take(principal('b'))).toBeUndefined();
    expect(await limiter.take(principal('a', 'jwt'))).toBeUndefined();
    await new Promise((r) => setTimeout(r, 1100));
    expect(await limiter.take(principal('a'))).toBeUndefined();
  });
});

describe('a gateway with requestRateLimit', () => {
  const everything = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
  const quiet = { info: () => {}, warn: () => {}, error: () => {} };
  const TOKEN = 'request-limit-static-token';
  let gateway: Gateway | undefined;
  afterEach(async () => {
    await gateway?.close();
  });

  it('applies a limit added by a reload at once, and lifts it when a reload removes it', async () => {
    const config = (extra: Record<string, unknown>) =>
      parseConfig(
        JSON.stringify({
          store: { type: 'memory' },
          roles: { reader: ['read'] },
          auth: { staticTokens: [{ id: 'reader', sha256: createHash('sha256').update(TOKEN).digest('hex'), roles: ['reader'] }] },
          upstreams: { everything: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'] } },
          ...extra,
        }),
        'test.yaml',
        {},
      );
    gateway = await startGateway({ config: config({}), logger: quiet, port: 0 });
    await gateway.ready;
    const url = `${gateway.url}/mcp/everything`;
    const ask = (): Promise<number> => discover(url, TOKEN);
    expect([await ask(), await ask(), await ask()]).toEqual([200, 200, 200]);
    await gateway.reload(config({ requestRateLimit: { perPrincipal: { requests: 2, window: '1m' } } }));
    expect([await ask(), await ask(), await ask()]).toEqual([200, 200, 429]);
    // An unchanged limit keeps its counts across a reload.
    await gateway.reload(config({ requestRateLimit: { perPrincipal: { requests: 2, window: '1m' } }, deny: { tools: ['x'] } }));
    expect(await ask()).toBe(429);
    await gateway.reload(config({}));
    expect(await ask()).toBe(200);
  }, 60_000);
});
