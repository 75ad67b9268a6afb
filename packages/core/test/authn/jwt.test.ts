import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, type JWK, SignJWT, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrustedIssuer, jwtVerifier } from '../../src/authn/jwt.js';
import { createWarden } from '../../src/pipeline.js';
import type { Credential, VerificationResult } from '../../src/types.js';
import { view } from '../helpers.js';

const RESOURCE = 'https://gw.example/mcp/everything';

/** A minimal identity provider on 127.0.0.1: discovery, a JWKS whose keys the test rotates, fetch counting. */
class FakeIdp {
  server!: Server;
  issuer = '';
  keys: { kid: string; privateKey: CryptoKey; jwk: JWK }[] = [];
  jwksFetches = 0;
  down = false;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      if (this.down) return void res.writeHead(500).end();
      if (req.url === '/.well-known/oauth-authorization-server') {
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: this.issuer, jwks_uri: `${this.issuer}/jwks` }));
      }
      if (req.url === '/jwks') {
        this.jwksFetches++;
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys.map((k) => k.jwk) }));
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.issuer = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async addKey(kid: string): Promise<void> {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    this.keys.push({ kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } });
  }

  async token(claims: Record<string, unknown> = {}, options: { kid?: string; typ?: string; expiresIn?: string | number; notBefore?: string | number } = {}): Promise<string> {
    const key = options.kid === undefined ? (this.keys.at(-1) as FakeIdp['keys'][number]) : (this.keys.find((k) => k.kid === options.kid) as FakeIdp['keys'][number]);
    let jwt = new SignJWT({ scope: 'mcp:read', groups: ['mcp-readers'], ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, ...(options.typ === undefined ? {} : { typ: options.typ }) })
      .setIssuer(typeof claims['iss'] === 'string' ? claims['iss'] : this.issuer)
      .setSubject('alice')
      .setIssuedAt()
      .setJti(crypto.randomUUID())
      .setExpirationTime(options.expiresIn ?? '5m');
    if (claims['aud'] === undefined) jwt = jwt.setAudience(RESOURCE);
    if (options.notBefore !== undefined) jwt = jwt.setNotBefore(options.notBefore);
    return jwt.sign(key.privateKey);
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

const bearer = (value: string): Credential => ({ source: 'bearer', value });
const refusedFor = (result: VerificationResult | undefined) => (result === undefined || result.ok ? undefined : result.reason);

describe('jwtVerifier', () => {
  const idp = new FakeIdp();
  let issuer: TrustedIssuer;

  beforeAll(async () => {
    await idp.start();
    await idp.addKey('k1');
    issuer = new TrustedIssuer({
      name: 'corp',
      issuer: idp.issuer,
      jwksCooldownMs: 0,
      claims: { roles: [{ claim: 'groups', values: { 'mcp-readers': ['reader'], 'mcp-admins': ['admin'] } }], defaultRoles: ['member'] },
    });
  });
  afterAll(() => idp.close());

  it('verifies a token found by discovery and maps groups to roles and scope to scopes', async () => {
    const verifier = jwtVerifier({ issuers: [issuer], audience: RESOURCE, cache: false });
    const result = await verifier.verify(bearer(await idp.token({ client_id: 'cli-1' })));
    expect(result?.ok).toBe(true);
    if (result?.ok !== true) return;
    expect(result.principal).toMatchObject({ id: 'corp:alice', kind: 'jwt', subject: 'alice', roles: ['member', 'reader'], scopes: ['mcp:read'], clientId: 'cli-1', scopeLimited: true });
  });

  it('reads Entra-style scp lists and nested Keycloak claims', async () => {
    const keycloak = new TrustedIssuer({ name: 'kc', issuer: idp.issuer, jwksCooldownMs: 0, claims: { roles: [{ claim: 'realm_access.roles', values: { writer: ['writer'] } }] } });
    const verifier = jwtVerifier({ issuers: [keycloak], audience: RESOURCE, cache: false });
    const result = await verifier.verify(bearer(await idp.token({ scope: undefined, scp: ['mcp:read', 'mcp:write'], realm_access: { roles: ['writer', 'other'] } })));
    expect(result?.ok === true && result.principal).toMatchObject({ roles: ['writer'], scopes: ['mcp:read', 'mcp:write'] });
  });

  it('leaves non-JWT credentials and JWTs of unknown issuers to other verifiers', async () => {
    const verifier = jwtVerifier({ issuers: [issuer], audience: RESOURCE });
    expect(await verifier.verify(bearer('mcpw_abc_def'))).toBeUndefined();
    expect(await verifier.verify({ source: 'api-key', value: await idp.token() })).toBeUndefined();
    const other = new FakeIdp();
    await other.start();
    await other.addKey('x');
    expect(await verifier.verify(bearer(await other.token()))).toBeUndefined();
    await other.close();
  });

  it('accepts several issuers at once, each with its own claim mapping', async () => {
    const second = new FakeIdp();
    await second.start();
    await second.addKey('s1');
    try {
      const other = new TrustedIssuer({ name: 'partner', issuer: second.issuer, jwksCooldownMs: 0, claims: { roles: [{ claim: 'groups', values: { 'mcp-readers': ['guest'] } }] } });
      const verifier = jwtVerifier({ issuers: [issuer, other], audience: RESOURCE, cache: false });
      const mine = await verifier.verify(bearer(await idp.token()));
      const theirs = await verifier.verify(bearer(await second.token()));
      expect(mine?.ok === true && mine.principal).toMatchObject({ id: 'corp:alice', roles: ['member', 'reader'] });
      expect(theirs?.ok === true && theirs.principal).toMatchObject({ id: 'partner:alice', roles: ['guest'] });
      // A token naming one issuer but signed by the other's key is refused.
      const forged = await second.token({ iss: idp.issuer });
      expect(refusedFor(await verifier.verify(bearer(forged)))).toBe('invalid');
    } finally {
      await second.close();
    }
  });

  it('refuses expired and not-yet-valid tokens, allowing the clock skew', async () => {
    const verifier = jwtVerifier({ issuers: [issuer], audience: RESOURCE, cache: false });
    const now = Math.floor(Date.now() / 1000);
    expect(refusedFor(await verifier.verify(bearer(await idp.token({}, { expiresIn: now - 120 }))))).toBe('expired');
    expect((await verifier.verify(bearer(await idp.token({}, { expiresIn: now - 5 }))))?.ok).toBe(true);
    expect(refusedFor(await verifier.verify(bearer(await idp.token({}, { notBefore: now + 600 }))))).toBe('not_yet_valid');
  });

  it('requires typ at+jwt and the RFC 9068 claims with the rfc9068 profile', async () => {
    const strict = new TrustedIssuer({ name: 'strict', issuer: idp.issuer, profile: 'rfc9068', jwksCooldownMs: 0 });
    const verifier = jwtVerifier({ issuers: [strict], audience: RESOURCE, cache: false });
    expect(refusedFor(await verifier.verify(bearer(await idp.token({ client_id: 'c' }))))).toBe('invalid');
    expect(refusedFor(await verifier.verify(bearer(await idp.token({}, { typ: 'at+jwt' }))))).toBe('invalid');
    expect((await verifier.verify(bearer(await idp.token({ client_id: 'c' }, { typ: 'at+jwt' }))))?.ok).toBe(true);
  });

  it('follows a key rotation: an unknown kid refetches the key set', async () => {
    const verifier = jwtVerifier({ issuers: [issuer], audience: RESOURCE, cache: false });
    expect((await verifier.verify(bearer(await idp.token({}, { kid: 'k1' }))))?.ok).toBe(true);
    const before = idp.jwksFetches;
    await idp.addKey('k2');
    expect((await verifier.verify(bearer(await idp.token({}, { kid: 'k2' }))))?.ok).toBe(true);
    expect(idp.jwksFetches).toBe(before + 1);
    idp.keys = idp.keys.filter((k) => k.kid !== 'k1');
    await idp.addKey('k3');
    expect((await verifier.verify(bearer(await idp.token({}, { kid: 'k3' }))))?.ok).toBe(true);
  });

  it('keeps verified tokens by hash until they expire', async () => {
    const verifier = jwtVerifier({ issuers: [issuer], audience: RESOURCE });
    const token = await idp.token();
    const first = await verifier.verify(bearer(token));
    idp.down = true;
    try {
      // A cached token is answered synchronously: no promise, so the pipeline awaits nothing for it.
      const pending = verifier.verify(bearer(token));
      expect(pending).not.toBeInstanceOf(Promise);
      const second = await pending;
      expect(second?.ok === true && second.principal).toBe(first?.ok === true && first.principal);
    } finally {
      idp.down = false;
    }
  });

  it('refuses a shared-secret algorithm in the configuration', () => {
    expect(() => new TrustedIssuer({ name: 'x', issuer: idp.issuer, algorithms: ['HS256'] })).toThrow(/not an asymmetric algorithm/);
    expect(() => new TrustedIssuer({ name: 'x', issuer: 'http://idp.example.com' })).toThrow(/must be https/);
  });

  describe('Security', () => {
    it('audience confusion: a token minted for another resource is refused', async () => {
      const verifier = jwtVerifier({ issuers: [issuer], audience: RESOURCE, cache: false });
      expect(refusedFor(await verifier.verify(bearer(await idp.token({ aud: 'https://other.example/mcp' }))))).toBe('wrong_audience');
      expect(refusedFor(await verifier.verify(bearer(await idp.token({ aud: `${RESOURCE}/../admin` }))))).toBe('wrong_audience');
    });

    it('algorithm confusion: alg none and HS256 signed with the public key are refused', async () => {
      const verifier = jwtVerifier({ issuers: [issuer], audience: RESOURCE, cache: false });
      const body = Buffer.from(JSON.stringify({ iss: idp.issuer, sub: 'mallory', aud: RESOURCE, exp: Math.floor(Date.now() / 1000) + 300 })).toString('base64url');
      const none = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${body}.`;
      expect(refusedFor(await verifier.verify(bearer(none)))).toBe('invalid');
      const secret = new TextEncoder().encode(JSON.stringify((idp.keys.at(-1) as { jwk: JWK }).jwk));
      const hs = await new SignJWT({ sub: 'mallory' }).setProtectedHeader({ alg: 'HS256', kid: (idp.keys.at(-1) as { kid: string }).kid }).setIssuer(idp.issuer).setAudience(RESOURCE).setExpirationTime('5m').sign(secret);
      expect(refusedFor(await verifier.verify(bearer(hs)))).toBe('invalid');
    });

    it('a token signed by a key outside the issuer set is refused, even with a known kid', async () => {
      const verifier = jwtVerifier({ issuers: [issuer], audience: RESOURCE, cache: false });
      const { privateKey } = await generateKeyPair('ES256');
      const kid = (idp.keys.at(-1) as { kid: string }).kid;
      const forged = await new SignJWT({ sub: 'mallory' }).setProtectedHeader({ alg: 'ES256', kid }).setIssuer(idp.issuer).setAudience(RESOURCE).setExpirationTime('5m').sign(privateKey);
      expect(refusedFor(await verifier.verify(bearer(forged)))).toBe('invalid');
    });

    it('an unreachable key set fails closed (503), and the pipeline answers 401 invalid_token with resource_metadata for a bad token', async () => {
      const fresh = new TrustedIssuer({ name: 'corp', issuer: idp.issuer, jwksCooldownMs: 0 });
      const warden = createWarden({
        verifiers: [jwtVerifier({ issuers: [fresh], audience: RESOURCE, cache: false })],
        policy: { roles: {} },
        resourceMetadataUrl: 'https://gw.example/.well-known/oauth-protected-resource/mcp/everything',
      });
      const post = async (token: string) =>
        warden.handle(view({ headers: [['host', '127.0.0.1:3000'], ['content-type', 'application/json'], ['authorization', `Bearer ${token}`]] }), {
          read: async () => '{"jsonrpc":"2.0","id":1,"method":"ping"}',
        });
      const token = await idp.token();
      idp.down = true;
      try {
        const r = await post(token);
        expect(r.type === 'respond' && r.response.status).toBe(503);
      } finally {
        idp.down = false;
      }
      const wrong = await post(await idp.token({ aud: 'https://other.example/mcp' }));
      expect(wrong.type === 'respond' && wrong.response.status).toBe(401);
      expect(wrong.type === 'respond' && wrong.response.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token", .*resource_metadata="https:\/\/gw\.example\/\.well-known\/oauth-protected-resource\/mcp\/everything"$/);
      expect((await post(await idp.token())).type).toBe('forward');
    });
  });
});
