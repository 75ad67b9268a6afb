import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { introspectionVerifier } from '../../src/authn/introspection.js';
import type { Credential } from '../../src/types.js';

const RESOURCE = 'https://gw.example/mcp/everything';

/** An RFC 7662 endpoint on 127.0.0.1 that knows a few tokens and checks the resource server's client credentials. */
class FakeIntrospection {
  server!: Server;
  issuer = '';
  calls = 0;
  down = false;
  tokens = new Map<string, Record<string, unknown>>();

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (this.down) return void res.writeHead(503).end();
        if (req.url === '/.well-known/oauth-authorization-server') {
          return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: this.issuer, introspection_endpoint: `${this.issuer}/introspect` }));
        }
        if (req.url !== '/introspect' || req.method !== 'POST') return void res.writeHead(404).end();
        this.calls++;
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
        const basic = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString('utf8');
        const [id = '', secret = ''] = basic.split(':').map((p) => decodeURIComponent(p.replace(/\+/g, ' ')));
        if (id !== 'rs-client' || secret !== 'rs-secret') return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_client"}');
        const token = new URLSearchParams(body).get('token') ?? '';
        const known = this.tokens.get(token);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(known === undefined ? { active: false } : { active: true, ...known }));
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.issuer = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

const bearer = (value: string): Credential => ({ source: 'bearer', value });

describe('introspectionVerifier (RFC 7662)', () => {
  const as = new FakeIntrospection();
  const now = () => Math.floor(Date.now() / 1000);
  let issuerOptions: Parameters<typeof introspectionVerifier>[0]['issuers'][number];

  beforeAll(async () => {
    await as.start();
    issuerOptions = {
      name: 'corp',
      issuer: as.issuer,
      clientId: 'rs-client',
      clientSecret: 'rs-secret',
      claims: { roles: [{ claim: 'groups', values: { admins: ['admin'] } }] },
    };
    as.tokens.set('opaque-good', { sub: 'bob', aud: RESOURCE, scope: 'mcp:read mcp:write', groups: ['admins'], client_id: 'cli', iss: as.issuer, exp: now() + 300 });
    as.tokens.set('opaque-other-aud', { sub: 'bob', aud: 'https://other.example/mcp', exp: now() + 300 });
    as.tokens.set('opaque-no-aud', { sub: 'bob', exp: now() + 300 });
    as.tokens.set('opaque-other-iss', { sub: 'bob', aud: RESOURCE, iss: 'https://evil.example', exp: now() + 300 });
  });
  afterAll(() => as.close());

  it('accepts an active token for this resource, maps its claims, and reuses the answer', async () => {
    const verifier = introspectionVerifier({ issuers: [issuerOptions], audience: RESOURCE });
    const first = await verifier.verify(bearer('opaque-good'));
    expect(first?.ok === true && first.principal).toMatchObject({ id: 'corp:bob', kind: 'introspection', roles: ['admin'], scopes: ['mcp:read', 'mcp:write'], clientId: 'cli', scopeLimited: true });
    const calls = as.calls;
    expect((await verifier.verify(bearer('opaque-good')))?.ok).toBe(true);
    expect(as.calls).toBe(calls);
  });

  it('passes on inactive tokens and does not cache them', async () => {
    const verifier = introspectionVerifier({ issuers: [issuerOptions], audience: RESOURCE });
    const calls = as.calls;
    expect(await verifier.verify(bearer('never-issued'))).toBeUndefined();
    expect(await verifier.verify(bearer('never-issued'))).toBeUndefined();
    expect(as.calls).toBe(calls + 2);
  });

  it('never reuses an answer past the token expiry', async () => {
    // `exp` is in whole seconds: `now() + 1` left anywhere between 0 and 1 s, and the first
    // verification failed when the test began late in a second. `+ 2` leaves at least 1 s.
    as.tokens.set('short-lived', { sub: 'carol', aud: RESOURCE, exp: now() + 2 });
    const verifier = introspectionVerifier({ issuers: [{ ...issuerOptions, cacheTtlMs: 3_600_000 }], audience: RESOURCE });
    expect((await verifier.verify(bearer('short-lived')))?.ok).toBe(true);
    as.tokens.delete('short-lived');
    await new Promise((r) => setTimeout(r, 2100));
    expect(await verifier.verify(bearer('short-lived'))).toBeUndefined();
  });

  describe('Security', () => {
    it('audience confusion: refuses another resource and tokens without aud', async () => {
      const verifier = introspectionVerifier({ issuers: [issuerOptions], audience: RESOURCE });
      expect(await verifier.verify(bearer('opaque-other-aud'))).toMatchObject({ ok: false, reason: 'wrong_audience' });
      expect(await verifier.verify(bearer('opaque-no-aud'))).toMatchObject({ ok: false, reason: 'wrong_audience' });
    });

    it('an answer naming another issuer is not trusted', async () => {
      const verifier = introspectionVerifier({ issuers: [issuerOptions], audience: RESOURCE });
      expect(await verifier.verify(bearer('opaque-other-iss'))).toBeUndefined();
    });

    it('fails closed when the introspection endpoint is down or refuses our client', async () => {
      const verifier = introspectionVerifier({ issuers: [issuerOptions], audience: RESOURCE });
      as.down = true;
      try {
        await expect(verifier.verify(bearer('opaque-x'))).rejects.toThrow();
      } finally {
        as.down = false;
      }
      const wrongClient = introspectionVerifier({ issuers: [{ ...issuerOptions, clientSecret: 'nope' }], audience: RESOURCE });
      await expect(wrongClient.verify(bearer('opaque-good'))).rejects.toThrow();
    });

    it('refuses plain-http endpoints that are not loopback', () => {
      expect(() => introspectionVerifier({ issuers: [{ ...issuerOptions, issuer: 'http://idp.example.com' }], audience: RESOURCE })).toThrow(/must be https/);
    });
  });
});
