/**
 * Brute-force counters in Redis (`auth.rateLimit.redis`): shared by every gateway instance, and
 * failing closed when Redis is unreachable. Runs against the real Redis of the machine
 * (MCP_WARDEN_TEST_REDIS_URL, default redis://127.0.0.1:6379); each test writes under its own key
 * prefix and deletes what it wrote.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { type AddressInfo, type Socket, createConnection, createServer } from 'node:net';
import { createWarden } from '@mcp-warden/core';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { mintKey, newKeyId } from '../../src/keys/format.js';
import { createAuthLimiter } from '../../src/ratelimit/auth-limiter.js';
import { type LimiterBackend, redisBackend } from '../../src/ratelimit/backend.js';
import { createLoginLimiter } from '../../src/ratelimit/login-limiter.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';
import { openServices } from '../../src/services.js';
import { body, discover, discoverResponse, request } from './attempts.js';

const REDIS_URL = process.env['MCP_WARDEN_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const LIMITS = { perAddress: { attempts: 3, window: 60_000, block: 120_000 }, perKey: { attempts: 2, window: 60_000, block: 300_000 } };

const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
const opened: LimiterBackend[] = [];
const prefixes: string[] = [];

function prefix(): string {
  const p = `mcpw-test-${randomUUID()}`;
  prefixes.push(p);
  return p;
}

async function backend(keyPrefix: string, url = REDIS_URL, onError?: (e: unknown) => void): Promise<LimiterBackend> {
  const b = redisBackend({ url, keyPrefix, connectTimeoutMs: 500, ...(onError === undefined ? {} : { onError }) });
  opened.push(b);
  if (url === REDIS_URL) expect(await b.ready(5000)).toBe(true);
  return b;
}

async function keysUnder(p: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${p}:*`, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found;
}


function pipeline(b: LimiterBackend) {
  return createWarden({ tokens: [{ id: 'ok', token: 'good-token', roles: [] }], policy: { roles: {} }, authLimiter: createAuthLimiter(LIMITS, b) });
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((b) => b.close()));
  for (const p of prefixes.splice(0)) {
    const keys = await keysUnder(p);
    if (keys.length > 0) await admin.del(...keys);
  }
});
afterAll(async () => {
  await admin.quit();
});

describe('Security: brute-force counters shared in Redis', () => {
  it('a block earned on one instance holds on another, and only this prefix is written', async () => {
    const p = prefix();
    const first = pipeline(await backend(p));
    const second = pipeline(await backend(p));
    for (let i = 0; i < 3; i++) {
      const answer = await first.handle(request(`Bearer wrong-${i}`, '10.9.0.1'), body);
      expect(answer.type === 'respond' && answer.response.status).toBe(401);
    }
    const blocked = await second.handle(request('Bearer good-token', '10.9.0.1'), body);
    expect(blocked.type === 'respond' && blocked.response.status).toBe(429);
    expect(Number(blocked.type === 'respond' ? blocked.response.headers['retry-after'] : 0)).toBeGreaterThan(100);
    // Another address is not affected, on either instance.
    expect((await second.handle(request('Bearer good-token', '10.9.0.2'), body)).type).toBe('forward');

    const keys = await keysUnder(p);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.every((k) => k.startsWith(`${p}:auth-addr:`))).toBe(true);
    // The counters name the address, never a presented credential.
    expect(keys.join(' ')).not.toContain('wrong-');
  });

  it('a key id that keeps failing is blocked on every instance, from any address', async () => {
    const p = prefix();
    const instances = [pipeline(await backend(p)), pipeline(await backend(p)), pipeline(await backend(p))];
    const id = newKeyId();
    const forged = mintKey(id).plaintext;
    await instances[0]?.handle(request(`Bearer ${forged}`, '10.8.0.1'), body);
    await instances[1]?.handle(request(`Bearer ${forged}`, '10.8.0.2'), body);
    const third = await instances[2]?.handle(request(`Bearer ${forged}`, '10.8.0.3'), body);
    expect(third?.type === 'respond' && third.response.status).toBe(429);
    const keys = await keysUnder(p);
    expect(keys).toContain(`${p}:auth-key:${id}`);
    // The key's secret part is not in Redis.
    expect(keys.join(' ')).not.toContain(forged);
  });

  it('sign-in failures of the built-in authorization server are shared too, by folded account name', async () => {
    const p = prefix();
    const limits = { perAddress: { attempts: 50, window: 60_000, block: 60_000 }, perAccount: { attempts: 2, window: 60_000, block: 600_000 }, nameSecret: 'instances-share-this' };
    const a = createLoginLimiter(limits, await backend(p));
    const b = createLoginLimiter(limits, await backend(p));
    expect(await b.check('10.7.0.1', 'alice')).toBeUndefined();
    await a.failed('10.7.0.1', 'Alice');
    await a.failed('10.7.0.2', 'alice');
    const wait = await b.check('10.7.0.3', 'ＡＬＩＣＥ');
    expect(wait).toBeGreaterThan(500);
    expect(await b.check('10.7.0.3', 'bob')).toBeUndefined();
    // What was typed in the name field (sometimes a password) is not stored as typed: an HMAC names the counter.
    await a.failed('10.7.0.4', 'hunter2-typed-as-name');
    const keys = (await keysUnder(p)).join(' ');
    expect(keys).toContain(`${p}:login-name:`);
    expect(keys.toLowerCase()).not.toContain('alice');
    expect(keys).not.toContain('hunter2');
  });

  it('fails closed while Redis is unreachable: 503 with Retry-After, never an unthrottled attempt', async () => {
    const errors: unknown[] = [];
    // Port 1 on loopback: nothing listens, the connection is refused.
    const down = await backend(prefix(), 'redis://127.0.0.1:1', (e) => errors.push(e));
    expect(await down.ready(300)).toBe(false);
    const warden = pipeline(down);
    const answer = await warden.handle(request('Bearer good-token', '10.6.0.1'), body);
    expect(answer.type === 'respond' && answer.response.status).toBe(503);
    expect(answer.type === 'respond' && answer.response.headers['retry-after']).toBe('1');
    await expect(createAuthLimiter(LIMITS, down).failed({ credential: { source: 'bearer', value: 'x' }, address: '10.6.0.1' })).rejects.toThrow();
    await expect(createLoginLimiter({ perAddress: LIMITS.perAddress, perAccount: LIMITS.perKey }, down).check('10.6.0.1', 'alice')).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 300));
    // Reported once per outage, not once per reconnection attempt.
    expect(errors).toHaveLength(1);
  });
});

describe('Security: a Redis that stops answering without closing the connection', () => {
  it('fails closed within about a second instead of holding the request', async () => {
    // A TCP proxy to the real Redis that can go silent (as behind a firewall that drops packets).
    let frozen = false;
    const sockets: Socket[] = [];
    const proxy = createServer((client) => {
      const upstream = createConnection(Number(new URL(REDIS_URL).port || 6379), new URL(REDIS_URL).hostname);
      sockets.push(client, upstream);
      client.on('data', (d) => frozen || upstream.write(d));
      upstream.on('data', (d) => frozen || client.write(d));
      client.on('error', () => {});
      upstream.on('error', () => {});
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const b = await backend(prefix(), `redis://127.0.0.1:${(proxy.address() as AddressInfo).port}`);
      expect(await b.ready(5000)).toBe(true);
      const warden = pipeline(b);
      expect((await warden.handle(request('Bearer good-token', '10.4.0.1'), body)).type).toBe('forward');
      frozen = true;
      const started = Date.now();
      const answer = await warden.handle(request('Bearer good-token', '10.4.0.1'), body);
      expect(answer.type === 'respond' && answer.response.status).toBe(503);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => proxy.close(r));
    }
  });
});

describe('auth.rateLimit.redis in the configuration', () => {
  it('accepts a redis:// or rediss:// URL from the environment, with a default key prefix', () => {
    const config = parseConfig('auth:\n  rateLimit:\n    redis: { url: "${REDIS_URL}" }\n', 'f.yaml', { REDIS_URL: 'rediss://:pw@cache.internal:6380/2' });
    expect(config.auth.rateLimit.redis).toEqual({ url: 'rediss://:pw@cache.internal:6380/2', keyPrefix: 'mcp-warden' });
    expect(parseConfig('', 'f.yaml', {}).auth.rateLimit.redis).toBeUndefined();
  });

  it('refuses another scheme or a bad prefix, without echoing the password of the URL', () => {
    let problems: readonly string[] = [];
    try {
      parseConfig('auth:\n  rateLimit:\n    redis: { url: "${REDIS_URL}", keyPrefix: "a b" }\n', 'f.yaml', { REDIS_URL: 'http://user:s3cret-pass@cache.internal:6379' });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems = error.problems;
    }
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain('auth.rateLimit.redis.url: expected a redis:// or rediss:// URL');
    expect(problems[0]).toContain('http://***@cache.internal:6379');
    expect(problems.join('\n')).not.toContain('s3cret-pass');
    expect(problems[1]).toContain('auth.rateLimit.redis.keyPrefix');
    // A password with '/' or '@' (the usual reason such a URL is invalid) is hidden whole, not in part.
    for (const url of ['redis://:pa/ss@host:6379', 'redis://:p@ss@host:6379', 'postgres://u:p@ss/w@db/x']) {
      let shown = '';
      try {
        parseConfig(`store: { type: postgres, url: "\${U}" }\nauth:\n  rateLimit:\n    redis: { url: "\${U}" }\n`, 'f.yaml', { U: url.replace(/^[a-z]+:/, 'http:') });
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        shown = error.problems.join('\n');
      }
      expect(shown).toContain('***@');
      expect(shown).not.toMatch(/pa\/ss|p@ss|ss@host|ss\/w/);
    }
  });

  it('openServices keeps the gateway\'s counters in Redis when configured, and closes the connection', async () => {
    const p = prefix();
    const config = parseConfig(`store: { type: memory }\nauth:\n  rateLimit:\n    perAddress: { attempts: 1, window: 1m, block: 1m }\n    redis: { url: "${REDIS_URL}", keyPrefix: "${p}" }\n`, 'f.yaml', {});
    const services = await openServices(config);
    try {
      expect(services.limiters.kind).toBe('redis');
      const warden = createWarden({ ...services.wardenOptions, tokens: [{ id: 'ok', token: 'good-token', roles: [] }] });
      await warden.handle(request('Bearer nope', '10.5.0.1'), body);
      const blocked = await warden.handle(request('Bearer good-token', '10.5.0.1'), body);
      expect(blocked.type === 'respond' && blocked.response.status).toBe(429);
      expect(await keysUnder(p)).toContain(`${p}:auth-addr:10.5.0.1`);
    } finally {
      await services.close();
    }
  });
});

describe('the Redis connection is not left behind', () => {
  it('when opening the services fails after it was made', async () => {
    const p = prefix();
    const named = async (): Promise<number> => ((await admin.client('LIST')) as string).split('\n').filter((line) => line.includes(` name=${p}-limiter `)).length;
    // A zero-width character in a pattern is refused when the pipeline options are built.
    const config = parseConfig(JSON.stringify({ store: { type: 'memory' }, audit: { recordArguments: ['note\u200b*'] }, auth: { rateLimit: { redis: { url: REDIS_URL, keyPrefix: p } } } }), 'f.yaml', {});
    await expect(openServices(config)).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 100));
    expect(await named()).toBe(0);
    // And the same configuration without the bad pattern does hold one, until closed.
    const services = await openServices(parseConfig(JSON.stringify({ store: { type: 'memory' }, auth: { rateLimit: { redis: { url: REDIS_URL, keyPrefix: p } } } }), 'f.yaml', {}));
    expect(await named()).toBe(1);
    await services.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(await named()).toBe(0);
  });
});

describe('Security: two gateway instances on one Redis', () => {
  const everything = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/dist/index.js');
  const quiet = { info: () => {}, warn: () => {}, error: () => {} };
  const READER = 'reader-static-token-for-rate-limits';
  const OTHER = 'other-static-token-for-rate-limits';
  const gateways: Gateway[] = [];
  afterEach(async () => {
    await Promise.all(gateways.splice(0).map((g) => g.close()));
  });
  /** Two gateway instances on one configuration (each with its own memory store). */
  async function startTwo(config: Record<string, unknown>): Promise<[Gateway, Gateway]> {
    const text = JSON.stringify({ store: { type: 'memory' }, roles: { reader: ['read'] }, upstreams: { everything: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'] } }, ...config });
    for (let i = 0; i < 2; i++) {
      const gateway = await startGateway({ config: parseConfig(text, 'test.yaml', {}), logger: quiet, port: 0 });
      await gateway.ready;
      gateways.push(gateway);
    }
    return gateways as [Gateway, Gateway];
  }

  it('an address that failed on one instance is answered 429 by the other, before its credential is looked at', async () => {
    const p = prefix();
    const [a, b] = await startTwo({ auth: { rateLimit: { perAddress: { attempts: 2, window: '1m', block: '1m' }, redis: { url: REDIS_URL, keyPrefix: p } } } });
    const reader = (await b.services.keys.create({ name: 'reader', roles: ['reader'] })).plaintext;
    const post = (gateway: Gateway, token: string) =>
      fetch(`${gateway.url}/mcp/everything`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
      });
    for (let i = 0; i < 2; i++) expect((await post(a, `wrong-token-${i}`)).status).toBe(401);
    const blocked = await post(b, reader);
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await keysUnder(p)).toEqual([`${p}:auth-addr:127.0.0.1`]);
    expect((await fetch(`${a.url}/readyz`)).status).toBe(200);
  }, 60_000);

  it('requestRateLimit.perPrincipal counts a caller\'s requests across instances: 429 with Retry-After over the limit, others unaffected', async () => {
    const p = prefix();
    const [a, b] = await startTwo({
      requestRateLimit: { perPrincipal: { requests: 3, window: '1m' } },
      auth: {
        // The same tokens on both instances (by digest, so the config holds no secret).
        staticTokens: [
          { id: 'reader', sha256: createHash('sha256').update(READER).digest('hex'), roles: ['reader'] },
          { id: 'other', sha256: createHash('sha256').update(OTHER).digest('hex'), roles: ['reader'] },
        ],
        rateLimit: { redis: { url: REDIS_URL, keyPrefix: p } },
      },
    });
    const endpoint = (gateway: Gateway): string => `${gateway.url}/mcp/everything`;
    const statuses = [await discover(endpoint(a), READER), await discover(endpoint(b), READER), await discover(endpoint(a), READER)];
    expect(statuses).toEqual([200, 200, 200]);
    const limited = await discoverResponse(endpoint(b), READER);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    expect(((await limited.json()) as { error: { code: number } }).error.code).toBe(-32000);
    expect(await discover(endpoint(a), OTHER)).toBe(200);
    // The counters live in Redis under the principal's kind and id, never the token.
    const keys = await keysUnder(p);
    expect(keys.sort()).toEqual([`${p}:req-principal:static-token:other`, `${p}:req-principal:static-token:reader`]);
    expect(keys.join(' ')).not.toContain(READER);
  }, 60_000);

  it('/readyz answers 503 while the counters\' Redis cannot be reached', async () => {
    const text = JSON.stringify({
      store: { type: 'memory' },
      auth: { rateLimit: { redis: { url: 'redis://127.0.0.1:1', keyPrefix: prefix() } } },
      upstreams: { everything: { type: 'stdio', command: process.execPath, args: [everything, 'stdio'] } },
    });
    // The gateway still starts (after waiting up to 3 s for Redis), refusing what needs the counters.
    const gateway = await startGateway({ config: parseConfig(text, 'test.yaml', {}), logger: quiet, port: 0 });
    gateways.push(gateway);
    await gateway.ready;
    const answer = await fetch(`${gateway.url}/readyz`);
    expect(answer.status).toBe(503);
    expect(await answer.json()).toEqual({ status: 'rate-limit store unavailable' });
  }, 60_000);
});
